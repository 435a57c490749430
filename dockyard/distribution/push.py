"""``docker push``: a local image's blobs and manifest into a registry repository.

The steps, as dockerd takes them, per layer (at most ``max-concurrent-uploads`` at once), then the
config, then the manifest last, so a registry never names a blob it lacks:

1. ``HEAD /v2/<name>/blobs/<digest>``: a blob already there is skipped (``Layer already exists``);
2. else, when another repository of the same registry holds it (a local reference of that registry
   names an image with this layer), a cross-repository *mount*
   (``POST …/blobs/uploads/?mount=<digest>&from=<repo>``; ``201``: ``Mounted from <repo>``);
3. else an upload: ``POST …/blobs/uploads/`` opens a session, and one ``PUT <location>&digest=…``
   sends the whole blob (a *monolithic* upload), streamed from the content store; a blob larger than
   ``DOCKYARD_UPLOAD_CHUNK_BYTES`` (32 MiB) goes up *chunked*: ``PATCH`` per piece with its
   ``Content-Range``, each to the ``Location`` the last one answered, then ``PUT …&digest=`` alone.

Layers go up compressed, as Docker sends them: a compressed layer blob (a pulled layer, kept as the
registry served it) goes as it is; each uncompressed layer of the store is gzip-compressed into a
temporary blob (under a ``push`` lease; removed after), on every core
(:mod:`~dockyard.distribution.parallel_gzip`), deterministically, so pushing it again finds it there. The manifest pushed is an OCI manifest of those blobs and the config, ``PUT`` under the
tag; its digest becomes the image's repo digest (``name@sha256:…``), as after a Docker push.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

from dockyard.content import Descriptor, sha256_digest
from dockyard.content import mediatypes as mt
from dockyard.distribution.auth import Credentials
from dockyard.distribution.client import RegistryError, RepositoryClient, Unreachable
from dockyard.distribution.parallel_gzip import gzip_stream
from dockyard.distribution.pull import ProgressThrottle, RegistryWork, progress_bar
from dockyard.errors import DockyardError, InvalidParameter, NotFound
from dockyard.images.reference import Reference, parse_normalized
from dockyard.images.service import short_id
from dockyard.images.store import LayerRecord
from dockyard.metadata import leases

DEFAULT_UPLOAD_CHUNK = 32 << 20


def _with_digest(url: str, digest: str) -> str:
    return url + ("&" if "?" in url else "?") + urllib.parse.urlencode([("digest", digest)])


class _Counting:
    """A blob being uploaded: reads through, reporting how far it got."""

    def __init__(self, raw: BinaryIO, report: Any, total: int) -> None:
        self._raw = raw
        self._report = report
        self._throttle = ProgressThrottle(total)
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.count += len(data)
        if data and self._throttle.due(self.count):
            self._report(self.count)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        self.count = offset
        return self._raw.seek(offset, whence)


class Pusher(RegistryWork):
    """Pushes from ``images`` with the daemon's registry ``settings`` and a shared token cache."""

    def local_tags(self, name: str, tag: str) -> list[Reference]:
        """The references a push of ``name`` (+ ``tag``; none: every tag of the repository) sends."""
        repo = parse_normalized(name)
        if repo.is_canonical:
            raise InvalidParameter("cannot push a digest reference")
        if tag or repo.tag:
            ref = repo.with_tag(tag) if tag else repo
            if self.images.store.lookup(ref) is None:
                raise NotFound(f"tag does not exist: {ref.familiar()}")
            return [ref]
        refs = [parse_normalized(r) for r in self.images.store.all_references()]
        found = [r for r in refs if r.name == repo.name and r.tag is not None and not r.is_canonical]
        if not found:
            raise NotFound(f"An image does not exist locally with the tag: {repo.familiar_name()}")
        return sorted(found, key=lambda r: r.tag or "")

    def push(self, ref: Reference, credentials: Credentials) -> str:
        """Push the image ``ref`` names under its tag; returns the manifest digest."""
        image_id = self.images.store.lookup(ref)
        if image_id is None:
            raise NotFound(f"tag does not exist: {ref.familiar()}")
        record = self.images.store.get(image_id)
        self.emit(f"The push refers to repository [{ref.name}]")
        failures: list[DockyardError] = []
        for endpoint in [e for e in self.settings.endpoints(ref.domain) if not e.mirror]:
            client = RepositoryClient(endpoint, ref.path, credentials, self.tokens, actions="pull,push")
            try:
                client.request("GET", "/v2/", ok=(200,), retry=False).close()
            except Unreachable as e:
                failures.append(e)
                continue
            except RegistryError as e:
                if e.http_status not in (401, 403):  # a registry that wants a token for everything else
                    raise
            config = Descriptor(mt.OCI_CONFIG, image_id, self.images.content.size(image_id))
            for layer in reversed(record.layers):
                self.emit("Preparing", short_id(layer.digest), progressDetail={})
            with leases.hold(self.images.metadata, "push"):  # the compressed layers, until they are sent
                packed: list[str] = []
                try:
                    layers = self._push_blobs(client, ref, record.layers, packed)
                    self._push_blob(client, ref, config, quiet=True)
                finally:
                    for digest in packed:
                        if self.images.metadata.one("SELECT 1 FROM blobs WHERE digest = ?", (digest,)) is None:
                            self.images.content.delete(digest)
            manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config.to_json(),
                                   "layers": [layer.to_json() for layer in layers]}, separators=(",", ":")).encode()
            digest = self._push_manifest(client, ref, manifest)
            self.images.store.add_reference(Reference(ref.domain, ref.path, None, digest), image_id)
            self.emit(f"{ref.tag}: digest: {digest} size: {len(manifest)}")
            self.emit("", progressDetail={}, aux={"Tag": ref.tag, "Digest": digest, "Size": len(manifest)})
            return digest
        raise failures[-1]

    def _push_blobs(self, client: RepositoryClient, ref: Reference, layers: list[LayerRecord],
                    packed: list[str]) -> list[Descriptor]:
        """Push the layers (compressed, in parallel); returns their descriptors, bottom first.
        ``packed`` collects the compressed blobs made on the way (the caller removes them)."""
        failed = threading.Event()
        workers = max(1, min(self.settings.max_concurrent_uploads, len(layers)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="push") as pool:
            futures = [pool.submit(self._push_layer, client, ref, layer, failed, packed) for layer in layers]
            out, errors = [], []
            for future in futures:
                try:
                    out.append(future.result())
                except BaseException as e:  # noqa: BLE001 - the first one is raised below
                    failed.set()
                    errors.append(e)
        if errors:
            raise errors[0]
        return out

    def _push_layer(self, client: RepositoryClient, ref: Reference, layer: LayerRecord,
                    failed: threading.Event, packed: list[str]) -> Descriptor:
        if failed.is_set():
            raise InvalidParameter("push cancelled: another layer failed")
        blob = Descriptor(layer.media_type, layer.digest, layer.size)
        if layer.media_type in (mt.OCI_LAYER, mt.DOCKER_LAYER):  # sent gzip-compressed, as Docker sends it
            blob = self._gzip(layer)
            packed.append(blob.digest)
        self._push_blob(client, ref, blob, quiet=False, layer_id=short_id(layer.digest), mount_key=layer.digest)
        return blob

    def _gzip(self, layer: LayerRecord) -> Descriptor:
        """The layer compressed into a new blob, on every core (gzip without a name or time, in fixed
        blocks, so the same layer always gives the same digest and a second push finds it there)."""
        with self.images.content.open(layer.digest) as raw, self.images.content.writer() as writer:
            gzip_stream(raw, writer.write)
            info = writer.commit()
        return Descriptor(mt.OCI_LAYER_GZIP, info.digest, info.size)

    def _push_blob(self, client: RepositoryClient, ref: Reference, blob: Descriptor, *, quiet: bool,
                   layer_id: str = "", mount_key: str = "") -> None:
        layer_id = layer_id or short_id(blob.digest)
        repo = client.repository
        head = client.request("HEAD", f"/v2/{repo}/blobs/{blob.digest}", ok=(200, 404))
        head.close()
        if head.status == 200:
            if not quiet:
                self.emit("Layer already exists", layer_id, progressDetail={})
            return
        location = None
        for source in self._mount_sources(ref, mount_key) if mount_key else []:
            client.extra_scopes = [f"repository:{source}:pull"]
            query = urllib.parse.urlencode([("mount", blob.digest), ("from", source)])
            with client.request("POST", f"/v2/{repo}/blobs/uploads/?{query}", ok=(201, 202)) as answer:
                if answer.status == 201:
                    if not quiet:
                        self.emit(f"Mounted from {source}", layer_id, progressDetail={})
                    return
                location = answer.headers.get("Location")
            break
        if location is None:
            with client.request("POST", f"/v2/{repo}/blobs/uploads/", ok=(202,)) as answer:
                location = answer.headers.get("Location")
        if not location:
            raise RegistryError("the registry opened an upload without a Location", 502, [])
        url = urllib.parse.urljoin(client.endpoint.url + f"/v2/{repo}/blobs/uploads/", location)

        def report(count: int) -> None:
            if not quiet:
                self.emit("Pushing", layer_id, progressDetail={"current": count, "total": blob.size},
                          progress=progress_bar(count, blob.size))

        with self.images.content.open(blob.digest) as raw:
            if blob.size > self.chunk_size:  # chunked: PATCH each piece, then PUT the digest alone
                offset = 0
                while offset < blob.size:
                    piece = raw.read(min(self.chunk_size, blob.size - offset))
                    with client.request("PATCH", url, {"Content-Type": mt.OCTET_STREAM,
                                                       "Content-Length": str(len(piece)),
                                                       "Content-Range": f"{offset}-{offset + len(piece) - 1}"},
                                        piece, ok=(202,)) as answer:
                        url = urllib.parse.urljoin(url, answer.headers.get("Location") or url)
                    offset += len(piece)
                    report(offset)
                client.request("PUT", _with_digest(url, blob.digest), {"Content-Length": "0"}, b"", ok=(201,)).close()
            else:  # monolithic: one PUT with the whole blob
                client.request("PUT", _with_digest(url, blob.digest),
                               {"Content-Type": mt.OCTET_STREAM, "Content-Length": str(blob.size)},
                               _Counting(raw, report, blob.size), ok=(201,)).close()  # type: ignore[arg-type]
        if not quiet:
            self.emit("Pushed", layer_id, progressDetail={})

    @property
    def chunk_size(self) -> int:
        """Blobs larger than this go up in pieces of this size (``DOCKYARD_UPLOAD_CHUNK_BYTES``, default 32 MiB)."""
        try:
            return max(int(os.environ.get("DOCKYARD_UPLOAD_CHUNK_BYTES", "")), 1)
        except ValueError:
            return DEFAULT_UPLOAD_CHUNK

    def _mount_sources(self, ref: Reference, digest: str) -> list[str]:
        """Other repositories of the same registry that a local image with layer ``digest`` went to or came from."""
        sources: list[str] = []
        rows = self.images.metadata.query("SELECT DISTINCT image_id FROM image_layers WHERE digest = ?", (digest,))
        users = {str(r[0]) for r in rows}
        for name, image_id in self.images.store.all_references().items():
            other = parse_normalized(name)
            if image_id in users and other.domain == ref.domain and other.path != ref.path \
                    and other.is_canonical and other.path not in sources:
                sources.append(other.path)  # a repo digest: the image was pushed there or pulled from it
        return sources[:3]

    def _push_manifest(self, client: RepositoryClient, ref: Reference, manifest: bytes) -> str:
        with client.request("PUT", f"/v2/{client.repository}/manifests/{ref.tag}",
                            {"Content-Type": mt.OCI_MANIFEST}, manifest, ok=(201, 200)) as answer:
            returned = answer.headers.get("Docker-Content-Digest")
        digest = sha256_digest(manifest)
        if returned and returned != digest:
            raise RegistryError(f"the registry stored the manifest as {returned}, expected {digest}", 502, [])
        return digest
