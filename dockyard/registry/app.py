"""The distribution spec's endpoints (OCI distribution v1.1) over :class:`RegistryStorage`.

Routes (``<name>`` may contain ``/``; the reference is the last component)::

    GET  /v2/                                   the API version check
    GET  /v2/_catalog?n=&last=                  repositories, paginated with a ``Link`` header
    GET  /v2/<name>/tags/list?n=&last=          tags, likewise
    GET|HEAD|PUT|DELETE /v2/<name>/manifests/<tag or digest>
    GET|HEAD|DELETE     /v2/<name>/blobs/<digest>   (GET honours ``Range``)
    POST /v2/<name>/blobs/uploads/[?digest=|?mount=[&from=]] start (or do at once, or mount) an upload;
                                                without ``from``, a mount finds the blob in any repository
                                                the client may pull
    PUT  /v2/<name>/manifests/<digest>?tag=&tag=  a push by digest may tag too (``OCI-Tag`` answers)
    GET|PATCH|PUT|DELETE /v2/<name>/blobs/uploads/<uuid>     status, a chunk, finish (``?digest=``), cancel
    GET  /v2/<name>/referrers/<digest>[?artifactType=]       the manifests whose ``subject`` is the digest

    GET  /token?service=&scope=[&offline_token=] a Bearer token (token auth only; see ``auth.py``)
    POST /token                                  the same by an OAuth2 password or refresh_token grant

*Read-only*: every write answers 405 UNSUPPORTED.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlencode

from dockyard import blocking
from dockyard.content import mediatypes as mt
from dockyard.errors import DockyardError
from dockyard.registry.auth import Authorizer, Need
from dockyard.registry.digests import digest_bytes, is_registry_digest
from dockyard.registry.errors import SpecError, spec_error_of
from dockyard.registry.http_server import Exchange, Reply
from dockyard.registry.limits import Limiter
from dockyard.registry.names import check_name, is_tag
from dockyard.registry.negotiation import check_accepted
from dockyard.registry.storage import RegistryStorage, RunningHashes, Upload

MAX_MANIFEST = 4 << 20
MAX_FORM = 64 << 10  # a POST /token form
MAX_TAG_PARAMS = 100  # ``tag`` parameters of one manifest push by digest
API_HEADERS = [("Docker-Distribution-API-Version", "registry/2.0")]
_ROUTES = [
    (re.compile(r"/v2/(?P<name>.+)/blobs/uploads/(?P<uuid>[^/]*)"), "upload"),
    (re.compile(r"/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)"), "blob"),
    (re.compile(r"/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)"), "manifest"),
    (re.compile(r"/v2/(?P<name>.+)/tags/list"), "tags"),
    (re.compile(r"/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)"), "referrers"),
]
_WRITES = {"POST", "PUT", "PATCH", "DELETE"}
_ACTIONS = {"GET": ("pull",), "HEAD": ("pull",), "POST": ("pull", "push"), "PUT": ("pull", "push"),
            "PATCH": ("pull", "push"), "DELETE": ("delete",)}


def _json(obj: Any, status: int = 200, content_type: str = "application/json",
          headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(status, [("Content-Type", content_type), *(headers or [])], json.dumps(obj).encode())


def _page(items: list[str], ex: Exchange, path: str) -> tuple[list[str], list[tuple[str, str]]]:
    """``items`` (sorted) after ``last``, at most ``n`` of them, and the ``Link`` to the next page."""
    last, n_arg = ex.arg("last"), ex.arg("n")
    if last:
        items = [i for i in items if i > last]
    if n_arg is None or n_arg == "":
        return items, []
    if not n_arg.isdigit():
        raise SpecError("UNSUPPORTED", f"invalid n: {n_arg[:20]!r}", status=400)
    n = int(n_arg)
    if n == 0 or len(items) <= n:
        return items[:n], []
    page = items[:n]
    link = f'<{path}?{urlencode({"n": n, "last": page[-1]})}>; rel="next"'
    return page, [("Link", link)]


def _upload_headers(name: str, upload: Upload) -> list[tuple[str, str]]:
    size = upload.size
    return [("Location", f"/v2/{name}/blobs/uploads/{upload.uuid}"), ("Docker-Upload-UUID", upload.uuid),
            ("Range", f"0-{size - 1}" if size else "0-0")]


def _digest_arg(value: str | None) -> str:
    if value is None or not is_registry_digest(value):
        raise SpecError("DIGEST_INVALID", "invalid digest", detail={"digest": (value or "")[:100]})
    return value


def _content_range(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"(?:bytes[ =])?(\d+)-(\d+)", value.strip())
    if m is None:
        raise SpecError("BLOB_UPLOAD_INVALID", f"invalid Content-Range: {value[:50]!r}", status=416)
    return int(m.group(1)), int(m.group(2))


class RegistryApp:
    """The handlers. ``read_only`` refuses every write."""

    def __init__(self, storage: RegistryStorage, *, read_only: bool = False,
                 authorizer: Authorizer | None = None, chunk_min_length: int = 0,
                 limiter: Limiter | None = None) -> None:
        self.storage = storage
        self.read_only = read_only
        self.authorizer = authorizer
        self.chunk_min_length = chunk_min_length
        self.limiter = limiter
        self.hashes = RunningHashes()

    async def __call__(self, ex: Exchange) -> Reply:
        try:
            if self.limiter is None:
                reply = await self._route(ex)
            else:
                self.limiter.admit(ex.peer)
                try:
                    reply = await self._route(ex)
                finally:
                    self.limiter.release(ex.peer)
        except DockyardError as exc:
            err = spec_error_of(exc)
            reply = Reply(err.status, [("Content-Type", "application/json"), *err.headers], err.body())
        reply.headers = [*API_HEADERS, *reply.headers]
        return reply

    def _authorize(self, ex: Exchange, needs: list[Need]) -> None:
        if self.authorizer is not None:
            self.authorizer.check(ex.headers, needs)

    async def _route(self, ex: Exchange) -> Reply:
        if ex.path == "/token" and self.authorizer is not None and self.authorizer.serves_tokens:
            if ex.method == "POST":
                form = await ex.read_all(MAX_FORM)
                if form is None:
                    raise SpecError("UNSUPPORTED", "token request too large", status=413)
                return _json(self.authorizer.grant(parse_qs(form.decode("latin-1"), keep_blank_values=True)))
            if ex.method not in ("GET", "HEAD"):
                raise SpecError("UNSUPPORTED", "the token endpoint answers GET and POST")
            return _json(self.authorizer.issue(ex.headers, ex.query.get("scope", []), ex.arg("service") or "",
                                               offline=ex.arg("offline_token") == "true"))
        if ex.path in ("/v2", "/v2/"):
            self._authorize(ex, [])
            return _json({})
        if ex.path == "/v2/_catalog":
            self._authorize(ex, [Need("registry", "catalog", ("*",))])
            return self._catalog(ex)
        for pattern, kind in _ROUTES:
            m = pattern.fullmatch(ex.path)
            if m is None:
                continue
            params = m.groupdict()
            name = check_name(params.pop("name"))
            needs = [Need("repository", name, _ACTIONS.get(ex.method, ("push",)))]
            source = ex.arg("from")
            if kind == "upload" and ex.arg("mount") and source:
                needs.append(Need("repository", check_name(source), ("pull",)))
            self._authorize(ex, needs)
            if self.read_only and ex.method in _WRITES:
                raise SpecError("UNSUPPORTED", "the registry is read-only")
            handler = getattr(self, f"_{kind}_{ex.method.lower()}", None)
            if handler is None:
                raise SpecError("UNSUPPORTED", f"{ex.method} is not allowed here")
            result: Reply = await handler(ex, name, *params.values())
            return result
        raise SpecError("NAME_UNKNOWN", "no such endpoint", status=404)

    def _catalog(self, ex: Exchange) -> Reply:
        repos, headers = _page(self.storage.catalog(), ex, "/v2/_catalog")
        return _json({"repositories": repos}, headers=headers)

    # -- tags and referrers --------------------------------------------------------------------

    async def _tags_get(self, ex: Exchange, name: str) -> Reply:
        if not self.storage.repository_exists(name):
            raise SpecError("NAME_UNKNOWN", detail={"name": name})
        tags, headers = _page(self.storage.tags(name), ex, f"/v2/{name}/tags/list")
        return _json({"name": name, "tags": tags}, headers=headers)

    async def _referrers_get(self, ex: Exchange, name: str, digest: str) -> Reply:
        _digest_arg(digest)
        wanted = ex.arg("artifactType")
        found = [json.loads(raw) for raw in self.storage.referrers(name, digest)] \
            if self.storage.repository_exists(name) else []
        headers = []
        if wanted:
            found = [d for d in found if d.get("artifactType") == wanted]
            headers.append(("OCI-Filters-Applied", "artifactType"))
        index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": found}
        return _json(index, content_type=mt.OCI_INDEX, headers=headers)

    # -- blobs ---------------------------------------------------------------------------------

    def _known_blob(self, name: str, digest: str) -> int:
        _digest_arg(digest)
        if not self.storage.blob_in_repo(name, digest):
            raise SpecError("BLOB_UNKNOWN", detail={"digest": digest})
        return self.storage.content.size(digest)

    async def _blob_head(self, ex: Exchange, name: str, digest: str) -> Reply:
        size = self._known_blob(name, digest)
        return Reply(200, [("Content-Length", str(size)), ("Docker-Content-Digest", digest),
                           ("Content-Type", mt.OCTET_STREAM), ("Accept-Ranges", "bytes")])

    async def _blob_get(self, ex: Exchange, name: str, digest: str) -> Reply:
        size = self._known_blob(name, digest)
        headers = [("Docker-Content-Digest", digest), ("Content-Type", mt.OCTET_STREAM), ("Accept-Ranges", "bytes")]
        path = self.storage.content.path(digest)
        wanted = ex.headers.get("range")
        if not wanted:
            return Reply(200, headers, file=path, length=size)
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted.strip())
        if m is None or (m.group(1) == "" and m.group(2) == ""):
            raise SpecError("RANGE_INVALID", f"invalid Range: {wanted[:50]!r}")
        if m.group(1) == "":  # the last N bytes
            start, end = max(0, size - int(m.group(2))), size - 1
        else:
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        if start >= size or start > end:
            return Reply(416, [("Content-Range", f"bytes */{size}"), ("Content-Type", "application/json")],
                         SpecError("RANGE_INVALID").body())
        headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
        return Reply(206, headers, file=path, offset=start, length=end - start + 1)

    async def _blob_delete(self, ex: Exchange, name: str, digest: str) -> Reply:
        _digest_arg(digest)
        if not self.storage.unlink_blob(name, digest):
            raise SpecError("BLOB_UNKNOWN", detail={"digest": digest})
        return Reply(202, [("Docker-Content-Digest", digest)])

    # -- uploads -------------------------------------------------------------------------------

    async def _append(self, ex: Exchange, upload: Upload) -> int:
        """Append the request's body to the session; returns its length. A body cut short (the client
        went away) leaves the session as it was."""
        before = size = upload.size
        running = self.hashes.resume(upload, size)  # the sha256 so far, fed as the bytes arrive
        try:
            with open(upload.data, "ab") as f:
                async for piece in ex.body():
                    f.write(piece)
                    size += len(piece)
                    if running is not None:
                        running.update(piece)
        except BaseException:
            with open(upload.data, "r+b") as f:
                f.truncate(before)
            raise
        if running is not None:
            self.hashes.keep(upload, running, size)
        return upload.size - before

    async def _chunk(self, ex: Exchange, upload: Upload) -> None:
        """Append a chunk (a PATCH's or a closing PUT's body) under the chunk rules:

        - with ``Content-Range: <first>-<last>``, ``first`` must be where the session is (else 416
          ``BLOB_UPLOAD_INVALID``) and the body ``last - first + 1`` bytes long (else 416
          ``SIZE_INVALID``); a refused chunk leaves the session as it was;
        - with a chunk minimum (``OCI-Chunk-Min-Length``), only the last chunk may be shorter: a
          non-empty chunk after a short one is refused with 416 ``BLOB_UPLOAD_INVALID``.
        """
        given = ex.headers.get("content-range")
        before = upload.size
        first = last = 0
        if given is not None:
            first, last = _content_range(given)
            if first != before or last < first:
                raise SpecError("BLOB_UPLOAD_INVALID", f"Content-Range {given} does not continue at {before}",
                                status=416)
        length = await self._append(ex, upload)
        refusal = None
        if given is not None and length != last - first + 1:
            refusal = SpecError("SIZE_INVALID", f"Content-Range {given} announces {last - first + 1} bytes, "
                                                f"the body has {length}", status=416)
        elif length and upload.short_chunk:
            refusal = SpecError("BLOB_UPLOAD_INVALID", f"a chunk shorter than {self.chunk_min_length} bytes "
                                                       "(OCI-Chunk-Min-Length) was not the last", status=416)
        if refusal is not None:
            self.hashes.drop(upload)
            with open(upload.data, "r+b") as f:
                f.truncate(before)
            raise refusal
        if 0 < length < self.chunk_min_length:
            upload.short_chunk = True

    async def _finish(self, ex: Exchange, name: str, upload: Upload, digest: str) -> Reply:
        """Close the session: verify against ``digest`` and store (a mismatch drops the session)."""
        try:
            await blocking.run(self.storage.finish_upload, name, upload, digest, self.hashes)
        except SpecError:
            self.storage.cancel_upload(upload)
            raise
        return Reply(201, [("Location", f"/v2/{name}/blobs/{digest}"), ("Docker-Content-Digest", digest)])

    async def _upload_post(self, ex: Exchange, name: str, uuid: str) -> Reply:
        if uuid:
            raise SpecError("UNSUPPORTED", "POST to an upload session")
        mount, source = ex.arg("mount"), ex.arg("from")
        if mount is not None and is_registry_digest(mount) and self._mountable(ex, mount, source):
            self.storage.link_blob(name, mount)
            return Reply(201, [("Location", f"/v2/{name}/blobs/{mount}"), ("Docker-Content-Digest", mount)])
        digest = ex.arg("digest")
        if digest is not None:
            _digest_arg(digest)
        upload = self.storage.start_upload(name)
        if digest is not None:  # a monolithic upload: the whole blob in this request
            try:
                await self._append(ex, upload)
            except BaseException:
                self.storage.cancel_upload(upload)
                raise
            return await self._finish(ex, name, upload, digest)
        headers = _upload_headers(name, upload)
        if self.chunk_min_length:
            headers.append(("OCI-Chunk-Min-Length", str(self.chunk_min_length)))
        return Reply(202, headers)

    def _mountable(self, ex: Exchange, digest: str, source: str | None) -> bool:
        """Whether the blob can be mounted: from ``source`` (whose pull access the route checked), or,
        without ``from`` (*automatic mount*), from any repository holding it that the client may pull."""
        if source:
            return self.storage.repository_exists(check_name(source)) and self.storage.blob_in_repo(source, digest)
        if not self.storage.content.exists(digest):
            return False
        return any(self.authorizer is None or self.authorizer.grants(ex.headers, Need("repository", repo, ("pull",)))
                   for repo in self.storage.repositories_with(digest))

    async def _upload_get(self, ex: Exchange, name: str, uuid: str) -> Reply:
        upload = self.storage.upload(name, uuid)
        return Reply(204, _upload_headers(name, upload))

    async def _upload_patch(self, ex: Exchange, name: str, uuid: str) -> Reply:
        upload = self.storage.upload(name, uuid)
        await self._chunk(ex, upload)
        return Reply(202, _upload_headers(name, upload))

    async def _upload_put(self, ex: Exchange, name: str, uuid: str) -> Reply:
        upload = self.storage.upload(name, uuid)
        digest = _digest_arg(ex.arg("digest"))
        await self._chunk(ex, upload)
        return await self._finish(ex, name, upload, digest)

    async def _upload_delete(self, ex: Exchange, name: str, uuid: str) -> Reply:
        upload = self.storage.upload(name, uuid)
        self.hashes.drop(upload)
        self.storage.cancel_upload(upload)
        return Reply(204)

    # -- manifests -----------------------------------------------------------------------------

    def _resolve(self, name: str, reference: str) -> str:
        if is_registry_digest(reference):
            digest: str | None = reference
        elif is_tag(reference):
            digest = self.storage.resolve_tag(name, reference)
        else:  # no manifest can have it: unknown, as distribution answers (its routes never match it)
            digest = None
        if digest is None or self.storage.manifest_media_type(name, digest) is None:
            raise SpecError("MANIFEST_UNKNOWN", detail={"name": name, "reference": reference})
        return digest

    def _negotiated(self, ex: Exchange, name: str, reference: str) -> tuple[str, str]:
        """The digest and media type of the manifest, if the client's ``Accept`` takes it."""
        digest = self._resolve(name, reference)
        media_type = self.storage.manifest_media_type(name, digest) or mt.OCI_MANIFEST
        check_accepted(ex.headers.get("accept"), media_type, {"name": name, "reference": reference})
        return digest, media_type

    async def _manifest_head(self, ex: Exchange, name: str, reference: str) -> Reply:
        digest, media_type = self._negotiated(ex, name, reference)
        return Reply(200, [("Content-Type", media_type), ("Docker-Content-Digest", digest),
                           ("Content-Length", str(self.storage.content.size(digest)))])

    async def _manifest_get(self, ex: Exchange, name: str, reference: str) -> Reply:
        digest, media_type = self._negotiated(ex, name, reference)
        return Reply(200, [("Content-Type", media_type), ("Docker-Content-Digest", digest)],
                     self.storage.content.read_bytes(digest))

    async def _manifest_put(self, ex: Exchange, name: str, reference: str) -> Reply:
        data = await ex.read_all(MAX_MANIFEST)
        if data is None:
            raise SpecError("SIZE_INVALID", "manifest too large", status=413)
        if not (is_registry_digest(reference) or is_tag(reference)):
            raise SpecError("MANIFEST_INVALID", f"invalid reference: {reference[:150]!r}")
        tags = ex.query.get("tag", []) if is_registry_digest(reference) else []
        if len(tags) > MAX_TAG_PARAMS:
            raise SpecError("MANIFEST_INVALID", f"more than {MAX_TAG_PARAMS} tags", status=414)
        bad = [t for t in tags if not is_tag(t)]
        if bad:
            raise SpecError("MANIFEST_INVALID", f"invalid tag: {bad[0][:150]!r}")
        manifest, media_type = self._parse_manifest(data, ex.headers.get("content-type", ""))
        self._check_references(name, manifest, media_type)
        algorithm = reference.partition(":")[0] if is_registry_digest(reference) else "sha256"
        digest = digest_bytes(data, algorithm)
        if is_registry_digest(reference) and reference != digest:
            raise SpecError("DIGEST_INVALID", detail={"expected": reference, "actual": digest})
        subject = manifest.get("subject")
        referrer = None
        if isinstance(subject, dict):
            referrer = subject["digest"], json.dumps(_referrer_descriptor(manifest, media_type, digest, len(data)))
        await blocking.run(self._store_manifest, name, reference, data, media_type, referrer, algorithm, tags)
        headers = [("Location", f"/v2/{name}/manifests/{digest}"), ("Docker-Content-Digest", digest)]
        headers += [("OCI-Tag", tag) for tag in dict.fromkeys(tags)]
        if referrer is not None:
            headers.append(("OCI-Subject", referrer[0]))
        return Reply(201, headers)

    def _store_manifest(self, name: str, reference: str, data: bytes, media_type: str,
                        referrer: tuple[str, str] | None, algorithm: str, tags: list[str]) -> None:
        """The manifest's blob and revision, then its referrer entry, then the tags: the reference if
        it is one, and the ``tag`` parameters of a push by digest (blocking: fsyncs)."""
        digest = self.storage.put_manifest(name, data, media_type, algorithm)
        if referrer is not None:
            self.storage.add_referrer(name, referrer[0], digest, referrer[1].encode())
        for tag in dict.fromkeys([reference, *tags] if is_tag(reference) else tags):
            self.storage.tag(name, tag, digest)

    def _parse_manifest(self, data: bytes, content_type: str) -> tuple[dict[str, Any], str]:
        try:
            manifest = json.loads(data)
        except ValueError as exc:
            raise SpecError("MANIFEST_INVALID", f"manifest is not JSON: {exc}") from None
        if not isinstance(manifest, dict):
            raise SpecError("MANIFEST_INVALID", "manifest is not a JSON object")
        declared = manifest.get("mediaType")
        media_type = content_type.split(";")[0].strip()
        if media_type not in mt.MANIFEST_TYPES | mt.INDEX_TYPES:
            media_type = declared if isinstance(declared, str) else (
                mt.OCI_INDEX if "manifests" in manifest else mt.OCI_MANIFEST)
        if media_type not in mt.MANIFEST_TYPES | mt.INDEX_TYPES:
            raise SpecError("MANIFEST_INVALID", f"unsupported manifest media type {media_type[:100]!r}")
        if declared is not None and declared != media_type:
            raise SpecError("MANIFEST_INVALID", f"mediaType {declared!r} does not match Content-Type {media_type!r}")
        if manifest.get("schemaVersion") != 2:
            raise SpecError("MANIFEST_INVALID", "schemaVersion must be 2")
        for desc in _descriptors(manifest, media_type) + ([manifest["subject"]] if "subject" in manifest else []):
            if not (isinstance(desc, dict) and isinstance(desc.get("digest"), str) and is_registry_digest(desc["digest"])
                    and isinstance(desc.get("size"), int) and isinstance(desc.get("mediaType"), str)):
                raise SpecError("MANIFEST_INVALID", "invalid descriptor", detail={"descriptor": desc})
        return manifest, media_type

    def _check_references(self, name: str, manifest: dict[str, Any], media_type: str) -> None:
        """Every blob an image manifest names, and every manifest an index names, must be in the repository
        (a layer with ``urls`` may be elsewhere), with the size its descriptor gives (else SIZE_INVALID)."""
        for desc in _descriptors(manifest, media_type):
            digest = desc["digest"]
            if media_type in mt.INDEX_TYPES:
                known = self.storage.manifest_media_type(name, digest) is not None
            else:
                known = self.storage.blob_in_repo(name, digest)
                if not known and desc.get("urls"):
                    continue
            if not known:
                raise SpecError("MANIFEST_BLOB_UNKNOWN", detail={"digest": digest})
            size = self.storage.content.size(digest)
            if size != desc["size"]:
                raise SpecError("SIZE_INVALID", f"descriptor of {digest} says {desc['size']} bytes, the blob has {size}",
                                detail={"digest": digest, "size": desc["size"], "actual": size})

    async def _manifest_delete(self, ex: Exchange, name: str, reference: str) -> Reply:
        if is_tag(reference):
            if not self.storage.delete_tag(name, reference):
                raise SpecError("MANIFEST_UNKNOWN", detail={"name": name, "reference": reference})
            return Reply(202)
        digest = self._resolve(name, reference)
        subject = None
        try:
            parsed = json.loads(self.storage.content.read_bytes(digest))
            if isinstance(parsed, dict) and isinstance(parsed.get("subject"), dict):
                subject = parsed["subject"].get("digest")
        except (ValueError, DockyardError):
            pass
        if not self.storage.delete_manifest(name, digest, subject if isinstance(subject, str) and is_registry_digest(subject)
                                            else None):
            raise SpecError("MANIFEST_UNKNOWN", detail={"name": name, "reference": reference})
        return Reply(202)


def _descriptors(manifest: dict[str, Any], media_type: str) -> list[Any]:
    """The descriptors a manifest points at: an index's manifests, an image's config and layers."""
    if media_type in mt.INDEX_TYPES:
        found = manifest.get("manifests")
        if not isinstance(found, list):
            raise SpecError("MANIFEST_INVALID", "an index needs a manifests list")
        return found
    config, layers = manifest.get("config"), manifest.get("layers")
    if not isinstance(layers, list):
        raise SpecError("MANIFEST_INVALID", "a manifest needs a layers list")
    return [config, *layers]


def _referrer_descriptor(manifest: dict[str, Any], media_type: str, digest: str, size: int) -> dict[str, Any]:
    """A referrer's entry in the referrers index: its descriptor, ``artifactType`` and annotations."""
    desc: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    artifact_type = manifest.get("artifactType")
    if artifact_type is None and media_type == mt.OCI_MANIFEST:
        artifact_type = (manifest.get("config") or {}).get("mediaType")
    if isinstance(artifact_type, str):
        desc["artifactType"] = artifact_type
    if isinstance(manifest.get("annotations"), dict):
        desc["annotations"] = manifest["annotations"]
    return desc

