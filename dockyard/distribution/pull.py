"""``docker pull``: an image out of a registry into the image store, verified, all or nothing.

The steps, as dockerd takes them:

1. *resolve* (:meth:`Puller.resolve`): for each endpoint of the reference's registry (mirrors first
   for ``docker.io``), fetch the manifest by tag or digest with the Accept list of every manifest
   type we read; an index (OCI) or manifest list (Docker) picks the entry for the wanted platform
   (default: the host's) and fetches that manifest by digest; then the image config. Every
   document is checked against the digest that named it. Errors here happen before any progress
   is streamed, so the API answers them with an HTTP status, as dockerd does.
2. *download* (:meth:`Puller.pull`): the layers not already stored (by chain ID and diff ID) are
   downloaded in parallel (at most ``max-concurrent-downloads``) into the content store, each
   verified against its digest while it streams; a connection dropped mid-blob is resumed with
   ``Range``, retried with back-off.
3. *unpack and record*: meanwhile each downloaded blob goes, bottom layer first and as soon as it is
   here, through the same code as ``docker load`` (:class:`~dockyard.images.archive_load.ArchiveLoader`):
   safe extraction, diff-ID check (as dockerd, a layer is unpacked from its downloaded file, not
   from the wire); then one transaction writes the image record, the tag and the *repo digest*
   (``busybox@sha256:<manifest digest>``). The downloaded blob *is* the stored layer, compressed
   as the registry serves it (as containerd keeps it; its diff ID is in the image config), so a
   pull writes no uncompressed copy of a layer; ``save`` decompresses it, ``push`` sends it as it is.

The whole pull holds a lease; a pull that fails removes what it created, and one that is killed
leaves only unreferenced files, which the collector clears. Progress goes to a callback as
Docker's JSON messages (``Pulling fs layer``, ``Downloading`` with ``progressDetail``, …).
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from dockyard.content import Descriptor, IngestWriter, sha256_digest
from dockyard.content import mediatypes as mt
from dockyard.content.writeback import drop_cached
from dockyard.distribution.auth import Credentials, TokenCache
from dockyard.distribution.client import RETRIES, RegistryError, RepositoryClient, Unreachable
from dockyard.distribution.endpoints import RegistrySettings
from dockyard.errors import CorruptContent, DockyardError, InvalidParameter, NotFound
from dockyard.images.archive_load import ArchiveLoader, LayerSource, LoadPlan, platform_matches
from dockyard.images.reference import Reference
from dockyard.images.service import ImageService, parse_platform, short_id
from dockyard.metadata import current_lease, leases
from dockyard.snapshots import chain_ids

ACCEPT = ", ".join([mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST])
_MAX_MANIFEST = 4 << 20
_MAX_CONFIG = 8 << 20
_MAX_TAG_PAGES = 100
_CHUNK = 1 << 20  # read, hashed and written 1 MiB at a time: fewer hand-offs of the GIL to the unpack
_DROP_BEHIND = 4 << 20  # a follower keeps this much behind it cached (a tar header may be read again)
_PROGRESS_EVERY = 512 << 10
_PROGRESS_INTERVAL = 0.1
_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v1+prettyjws")

Progress = Callable[[dict[str, Any]], None]
_T = TypeVar("_T")


class ProgressReporter:
    """Sends Docker's JSON progress messages to ``progress`` (one at a time: layers report from threads)."""

    def __init__(self, progress: Progress | None = None) -> None:
        self.progress: Progress = progress or (lambda message: None)
        self._progress_lock = threading.Lock()

    def emit(self, status: str, id: str = "", **extra: Any) -> None:
        message: dict[str, Any] = {"status": status, **extra}
        if id:
            message["id"] = id
        with self._progress_lock:
            self.progress(message)


class ProgressThrottle:
    """When a transfer's byte count is worth a progress message, as dockerd's progress reader
    decides: after at least 512 KiB more (1% of ``total`` when that is less), at most once every
    100 ms, and always at the end. Each message is a round trip through the API's event loop, so
    a message per 512 KiB of a fast transfer holds the transfer up."""

    def __init__(self, total: int, start: int = 0) -> None:
        self.total = total
        self._every = min(_PROGRESS_EVERY, max(total // 100, 1))
        self._reported = start
        self._next = 0.0

    def due(self, current: int) -> bool:
        """Whether to report ``current`` now (the caller then reports it)."""
        if current == self.total or (current - self._reported >= self._every and time.monotonic() >= self._next):
            self._reported = current
            self._next = time.monotonic() + _PROGRESS_INTERVAL
            return True
        return False


@dataclass
class Resolved:
    """What step 1 found: where, which manifest (and its digest), the config and the layers."""

    reference: Reference
    client: RepositoryClient
    manifest_digest: str  # the digest the reference resolves to (an index's, for a multi-platform image)
    config: bytes
    layers: list[Descriptor] = field(default_factory=list)


class Arriving:
    """A blob this pull is downloading, for the unpack to read while it arrives.

    The download (:meth:`Puller._fetch`) *attaches* its ingest file, reports each chunk it has
    flushed there (``grew``), and ends with ``finish`` once the blob is verified and committed, or
    ``fail``. A :class:`_Follower` reads the file up to what has arrived, waiting for more; it
    sees the end of the blob only after ``finish``, which comes once the digest is checked (and
    before the blob is fsynced and renamed into the store), so an unpack never completes on
    bytes that failed their digest. A download that never attaches (the blob was there already, or another
    pull downloaded it) ends with ``settle`` when its future does; the blob is then read from
    the content store."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.file: BinaryIO | None = None
        self.size = 0
        self.done = False
        self.settled = False
        self.error: BaseException | None = None

    def attach(self, path: Path) -> None:
        with self._cond:
            self.file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the follower or close()
            self._cond.notify_all()

    def grew(self, size: int) -> None:
        with self._cond:
            self.size = size
            self._cond.notify_all()

    def finish(self) -> None:
        with self._cond:
            self.done = True
            self._cond.notify_all()

    def fail(self, error: BaseException) -> None:
        with self._cond:
            self.error = error
            self._cond.notify_all()

    def settle(self) -> None:
        with self._cond:
            self.settled = True
            self._cond.notify_all()

    def wait_attached(self) -> bool:
        """Wait until the download attached its file (True) or ended without one (False)."""
        with self._cond:
            while self.file is None and not self.settled:
                self._cond.wait()
            return self.file is not None

    def wait_for(self, offset: int) -> bool:
        """Wait until more than ``offset`` bytes arrived (True) or the verified end is there (False)."""
        with self._cond:
            while True:
                if self.error is not None:
                    raise self.error
                if self.size > offset:
                    return True
                if self.done:
                    return False
                if self.settled:  # the download ended without finishing: its future holds why
                    raise InvalidParameter("pull cancelled: the download of a layer stopped")
                self._cond.wait()

    def close(self) -> None:
        with self._cond:
            if self.file is not None:
                self.file.close()


class _Follower(io.RawIOBase):
    """Reads an :class:`Arriving` blob from its start, as far as it has arrived.

    Each byte is read once: the cached pages well behind the reader are dropped as it goes (see
    :func:`~dockyard.content.writeback.drop_cached`; the download started their writeback), so
    the unpack's files reuse them."""

    def __init__(self, arriving: Arriving) -> None:
        self._arriving = arriving
        self._offset = 0
        self._dropped = 0  # the cached pages of the bytes before this offset were let go

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._arriving.wait_for(self._offset):
            return 0
        assert self._arriving.file is not None
        n = self._arriving.file.readinto(memoryview(buffer)[:self._arriving.size - self._offset])  # type: ignore[attr-defined]
        self._offset += n or 0
        if self._offset - self._dropped >= 2 * _DROP_BEHIND:
            self._dropped = self._offset - _DROP_BEHIND
            drop_cached(self._arriving.file.fileno(), self._dropped)
        return n or 0

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._offset

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0:
            raise io.UnsupportedOperation("only absolute seeks")
        assert self._arriving.file is not None
        self._offset = self._arriving.file.seek(offset)
        return self._offset

    def close(self) -> None:
        self._arriving.close()
        super().close()


class _Downloads:
    """The layers of a pull as the files of a load plan (names are digests): opening one follows
    its download as it arrives (or opens the stored blob), so each layer is unpacked while it
    downloads, once the layers beneath it are unpacked, while the layers above still download.
    Opening a layer reports the one before it complete."""

    def __init__(self, puller: Puller, futures: dict[str, Future[str | None]],
                 arriving: dict[str, Arriving]) -> None:
        self._puller = puller
        self._content = puller.images.content
        self._futures = futures
        self._arriving = arriving
        self._previous: str | None = None

    def open(self, name: str) -> BinaryIO:
        future = self._futures.get(name)
        arriving = self._arriving.get(name)
        self.finished()
        self._previous = name if future is not None else None
        if arriving is not None and arriving.wait_attached():
            return io.BufferedReader(_Follower(arriving), buffer_size=1 << 16)  # type: ignore[return-value]
        if future is not None:
            future.result()  # its download's error, if it failed
        return self._content.open(name)

    def path(self, name: str) -> Path:
        """The stored blob (its download committed: it ends after the unpack can, see ``Arriving``)."""
        future = self._futures.get(name)
        if future is not None:
            future.result()
        return self._content.path(name)

    def finished(self) -> None:
        """Report the layer opened last as complete (it has been unpacked)."""
        if self._previous is not None:
            self._puller.emit("Pull complete", short_id(self._previous), progressDetail={})
            self._previous = None


class SharedBlobs:
    """The blobs the daemon's pulls are downloading or using right now.

    A pull *uses* each blob it still needs from the start to the end of the pull. A blob is
    *downloaded* by one pull at a time: another pull of it waits for that download instead of
    fetching the same bytes again (as Docker's pulls share their downloads), and fetches it itself
    only if that download failed. A downloaded compressed blob is unpacked and then deleted, by the
    last pull that uses it (it is kept while another pull still needs it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._downloading: dict[str, threading.Event] = {}
        self._users: dict[str, int] = {}
        self._fetched: set[str] = set()

    def use(self, digest: str) -> None:
        with self._lock:
            self._users[digest] = self._users.get(digest, 0) + 1

    def release(self, digest: str) -> bool:
        """The end of a pull's use of ``digest``; True when it was the last use of a blob a pull
        fetched (the caller then deletes it unless a record names it)."""
        with self._lock:
            left = self._users.get(digest, 1) - 1
            if left > 0:
                self._users[digest] = left
                return False
            self._users.pop(digest, None)
            fetched = digest in self._fetched
            self._fetched.discard(digest)
            return fetched

    def start(self, digest: str) -> threading.Event | None:
        """None: the caller downloads ``digest`` now (and calls :meth:`finish`); else the event set
        when the pull downloading it finishes, one way or the other."""
        with self._lock:
            running = self._downloading.get(digest)
            if running is None:
                self._downloading[digest] = threading.Event()
            return running

    def finish(self, digest: str, fetched: bool) -> None:
        with self._lock:
            if fetched:
                self._fetched.add(digest)
            event = self._downloading.pop(digest)
        event.set()


SHARED = SharedBlobs()


class RegistryWork(ProgressReporter):
    """A pull or a push: the image service, the daemon's registry ``settings`` and its shared token
    cache, with progress messages."""

    def __init__(self, images: ImageService, settings: RegistrySettings, tokens: TokenCache,
                 progress: Progress | None = None) -> None:
        super().__init__(progress)
        self.images = images
        self.settings = settings
        self.tokens = tokens


class Puller(RegistryWork):
    """Pulls into ``images`` with the daemon's registry ``settings`` and a shared token cache."""

    # -- 1. resolve ----------------------------------------------------------------------

    def resolve(self, ref: Reference, credentials: Credentials, platform: str = "") -> Resolved:
        """Find the manifest and config ``ref`` names (see the module docstring)."""
        want = parse_platform(platform)
        return self._at_endpoints(ref, credentials,
                                  lambda client: self._resolve_at(client, ref, want, explicit=bool(platform)))

    def _at_endpoints(self, ref: Reference, credentials: Credentials,
                      action: Callable[[RepositoryClient], _T]) -> _T:
        """``action`` at the first endpoint of ``ref``'s registry that answers it (see ``resolve``)."""
        failures: list[DockyardError] = []
        for endpoint in self.settings.endpoints(ref.domain):
            client = RepositoryClient(endpoint, ref.path, credentials, self.tokens)
            try:
                return action(client)
            except Unreachable as e:  # the next endpoint: HTTP after HTTPS for an insecure registry
                failures.append(e)
            except RegistryError as e:  # a mirror that lacks the image hands over, as in dockerd
                failures.append(e)
                if not endpoint.mirror:
                    break
        raise self._pull_error(ref, failures[-1])

    def distribution_info(self, ref: Reference, credentials: Credentials) -> dict[str, Any]:
        """``GET /distribution/{name}/json``: the descriptor ``ref`` resolves to and its platforms."""
        return self._at_endpoints(ref, credentials, lambda client: self._distribution_info_at(client, ref))

    def _distribution_info_at(self, client: RepositoryClient, ref: Reference) -> dict[str, Any]:
        data, media_type = self._manifest(client, ref.digest or ref.tag or "latest", ref.digest)
        doc = _json_object(data, "manifest")
        platforms: list[dict[str, Any]] = []
        if media_type in mt.INDEX_TYPES or "manifests" in doc:
            for entry in doc.get("manifests") or []:
                if isinstance(entry, dict) and isinstance(entry.get("platform"), dict):
                    platforms.append(entry["platform"])
        else:
            config_desc = Descriptor.from_json(doc.get("config"))
            with client.request("GET", f"/v2/{client.repository}/blobs/{config_desc.digest}") as response:
                config = _json_object(response.read_limited(_MAX_CONFIG), "image config")
            platform = {"architecture": config.get("architecture", ""), "os": config.get("os", "")}
            if config.get("variant"):
                platform["variant"] = config["variant"]
            platforms.append(platform)
        return {"Descriptor": {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data)},
                "Platforms": platforms}

    def tags(self, ref: Reference, credentials: Credentials) -> list[str]:
        """Every tag of ``ref``'s repository (``GET /v2/<name>/tags/list``, following ``Link`` pages)."""
        return self._at_endpoints(ref, credentials, self._tags_at)

    def _tags_at(self, client: RepositoryClient) -> list[str]:
        tags: list[str] = []
        path: str | None = f"/v2/{client.repository}/tags/list"
        for _ in range(_MAX_TAG_PAGES):
            if path is None:
                break
            with client.request("GET", path) as response:
                doc = _json_object(response.read_limited(_MAX_MANIFEST), "tag list")
                link = response.headers.get("Link") or ""
            tags.extend(t for t in doc.get("tags") or [] if isinstance(t, str) and t not in tags)
            path = link.split(";", 1)[0].strip().strip("<>") or None if 'rel="next"' in link else None
        return tags

    def _pull_error(self, ref: Reference, error: DockyardError) -> DockyardError:
        """dockerd's wording for a failed resolve."""
        if isinstance(error, RegistryError):
            if error.http_status in (401, 403) or {"NAME_UNKNOWN", "UNAUTHORIZED", "DENIED"} & set(error.codes):
                return NotFound(f"pull access denied for {ref.familiar_name()}, repository does not exist or may "
                                f"require 'docker login': {error.message}")
            if error.http_status == 404:
                return NotFound(f"manifest for {ref.familiar()} not found: {error.message}")
        return error

    def _resolve_at(self, client: RepositoryClient, ref: Reference, want: tuple[str, str, str],
                    explicit: bool) -> Resolved:
        target = ref.digest or ref.tag or "latest"
        data, media_type = self._manifest(client, target, ref.digest)
        manifest_digest = sha256_digest(data)
        doc = _json_object(data, "manifest")
        if media_type in mt.INDEX_TYPES or (media_type not in mt.MANIFEST_TYPES and "manifests" in doc):
            child = _choose(doc, want, ref)
            data, media_type = self._manifest(client, child.digest, child.digest)
            doc = _json_object(data, "manifest")
        if media_type in _SCHEMA1 or doc.get("schemaVersion") == 1:
            raise InvalidParameter(f"{ref.familiar()}: Docker image manifest schema 1 is not supported "
                                   "(the registry should serve schema 2 or OCI)")
        if media_type not in mt.MANIFEST_TYPES and "config" not in doc:
            raise InvalidParameter(f"{ref.familiar()}: unsupported manifest media type {media_type!r}")
        config_desc = Descriptor.from_json(doc.get("config"))
        if config_desc.size > _MAX_CONFIG:
            raise InvalidParameter(f"image config {config_desc.digest} is too large ({config_desc.size} bytes)")
        layers = [Descriptor.from_json(raw) for raw in doc.get("layers") or []]
        for layer in layers:
            if layer.media_type not in mt.LAYER_TYPES:
                raise InvalidParameter(f"unsupported layer media type {layer.media_type} in {ref.familiar()}")
        with client.request("GET", f"/v2/{client.repository}/blobs/{config_desc.digest}") as response:
            config = response.read_limited(config_desc.size)
        if sha256_digest(config) != config_desc.digest:
            raise CorruptContent(f"image config verification failed for digest {config_desc.digest}")
        if explicit:
            _check_platform(config, want, ref)
        return Resolved(ref, client, manifest_digest, config, layers)

    def _manifest(self, client: RepositoryClient, target: str, digest: str | None) -> tuple[bytes, str]:
        with client.request("GET", f"/v2/{client.repository}/manifests/{target}",
                            {"Accept": ACCEPT}) as response:
            media_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
            data = response.read_limited(_MAX_MANIFEST)
        if digest is not None and sha256_digest(data) != digest:
            raise CorruptContent(f"manifest verification failed for digest {digest}")
        try:
            declared = json.loads(data).get("mediaType")
        except (ValueError, AttributeError):
            declared = None
        return data, declared if isinstance(declared, str) and declared else media_type

    # -- 2 and 3. download, unpack, record -----------------------------------------------

    def pull(self, resolved: Resolved, tag_ref: Reference | None) -> str:
        """Download, unpack and record ``resolved``; tag it ``tag_ref`` (None when pulled by digest).
        Returns the image ID; progress goes to the callback."""
        ref = resolved.reference
        self.emit(f"Pulling from {ref.path}", ref.tag or ref.digest or "latest")
        before = self.images.store.lookup(tag_ref or _digest_ref(resolved))
        with leases.hold(self.images.metadata, "pull"):
            image_id = self._pull(resolved, tag_ref)
        self.emit(f"Digest: {resolved.manifest_digest}")
        shown = (tag_ref or _digest_ref(resolved)).familiar()
        if before == image_id:
            self.emit(f"Status: Image is up to date for {shown}")
        else:
            self.emit(f"Status: Downloaded newer image for {shown}")
        return image_id

    def _pull(self, resolved: Resolved, tag_ref: Reference | None) -> str:
        content, snapshots = self.images.content, self.images.snapshots
        plan = LoadPlan(resolved.config, [LayerSource(d.digest, d.digest, d.size, verified=True, media_type=d.media_type)
                                          for d in resolved.layers])
        diff_ids = plan.diff_ids()
        lease = current_lease()
        loader = ArchiveLoader(self.images)
        missing: list[Descriptor] = []
        for desc, source, diff_id, chain_id in zip(resolved.layers, plan.layers, diff_ids, chain_ids(diff_ids),
                                                   strict=True):
            if lease is not None:
                lease.add("layer", chain_id)
                lease.add("blob", diff_id)
                lease.add("blob", desc.digest)
            if snapshots.has(chain_id) and loader.stored_blob(source, diff_id) is not None:
                self.emit("Already exists", short_id(desc.digest), progressDetail={})
            elif desc not in missing:
                missing.append(desc)
                self.emit("Pulling fs layer", short_id(desc.digest), progressDetail={})
        failed = threading.Event()
        done = False
        workers = max(1, min(self.settings.max_concurrent_downloads, len(missing)))
        for desc in missing[workers:]:  # queued behind the ones downloading, as Docker shows them
            self.emit("Waiting", short_id(desc.digest), progressDetail={})
        for desc in missing:
            SHARED.use(desc.digest)
        try:
            arriving = {desc.digest: Arriving() for desc in missing}
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pull") as pool:
                futures = {desc.digest: pool.submit(self._download, resolved.client, desc, failed,
                                                    arriving[desc.digest])
                           for desc in missing}
                for digest, future in futures.items():
                    future.add_done_callback(_settles(arriving[digest]))
                try:
                    files = _Downloads(self, futures, arriving)
                    stored = loader.store_layers(files, plan)
                    files.finished()
                    for future in futures.values():  # the unpack may end before its blob is committed
                        future.result()  # (see Arriving): a record names only blobs in place, durable
                    plan.refs = [r for r in (tag_ref, _digest_ref(resolved)) if r is not None]
                    loader.record([(plan, stored)])
                    done = True
                except BaseException:
                    failed.set()  # the downloads still running stop
                    loader.roll_back()
                    raise
                finally:
                    for future in futures.values():  # every download has ended before the blobs go
                        with contextlib.suppress(BaseException):
                            future.result()
                    for one in arriving.values():
                        one.close()
        finally:  # the downloads: kept only when a record names them (as a layer's blob)
            for desc in missing:
                digest = desc.digest
                if (SHARED.release(digest) and not (done and digest in diff_ids) and content.exists(digest)
                        and not self._recorded(digest)):
                    content.delete(digest)
        return plan.image_id

    def _recorded(self, digest: str) -> bool:
        return self.images.metadata.one("SELECT 1 FROM blobs WHERE digest = ?", (digest,)) is not None

    def _download(self, client: RepositoryClient, desc: Descriptor, failed: threading.Event,
                  arriving: Arriving | None = None) -> str | None:
        """Download one blob into the content store, verified; returns its digest (None if it was there)."""
        content = self.images.content
        layer_id = short_id(desc.digest)
        while True:
            if content.exists(desc.digest):
                self.emit("Download complete", layer_id, progressDetail={})
                return None
            running = SHARED.start(desc.digest)
            if running is None:
                break
            while not running.wait(0.1):  # another pull downloads it: wait for that download
                if failed.is_set():
                    raise InvalidParameter("pull cancelled: another layer failed")
        fetched = False
        try:
            fetched = self._fetch(client, desc, failed, arriving) is not None
        finally:
            SHARED.finish(desc.digest, fetched)
        return desc.digest

    def _fetch(self, client: RepositoryClient, desc: Descriptor, failed: threading.Event,
               arriving: Arriving | None = None) -> str | None:
        """The download itself (see :meth:`_download`); ``arriving`` follows it (see :class:`Arriving`).

        A registry that answers a resumed request (``Range``) with the whole blob: the bytes
        already here are skipped, so the file only grows (the digest checks the result)."""
        content = self.images.content
        layer_id = short_id(desc.digest)
        writer: IngestWriter = content.writer()
        if arriving is not None:
            arriving.attach(writer.path)
        try:
            delay = 0.25
            for attempt in range(RETRIES + 1):
                if failed.is_set():
                    raise InvalidParameter("pull cancelled: another layer failed")
                headers = {"Range": f"bytes={writer.size}-"} if writer.size else {}
                try:
                    with client.request("GET", f"/v2/{client.repository}/blobs/{desc.digest}", headers,
                                        ok=(200, 206)) as response:
                        skip = writer.size if response.status != 206 else 0  # no resume: from the start
                        self._stream(response, writer, desc, layer_id, failed, skip, arriving)
                    break
                except Unreachable:
                    if attempt == RETRIES:
                        raise
                    time.sleep(delay)
                    delay *= 2
            self.emit("Verifying Checksum", layer_id, progressDetail={})
            if writer.size != desc.size:
                raise CorruptContent(f"filesystem layer verification failed for digest {desc.digest}: "
                                     f"expected {desc.size} bytes, got {writer.size}")
            if writer.digest != desc.digest:
                raise CorruptContent(f"filesystem layer verification failed for digest {desc.digest}")
            if arriving is not None:  # verified: the unpack may end while the blob is made durable
                arriving.finish()
            writer.commit(expected=desc.digest, size=desc.size)
            self.emit("Download complete", layer_id, progressDetail={})
            return desc.digest
        except BaseException as e:
            if arriving is not None:
                arriving.fail(e)
            raise
        finally:
            writer.abort()

    def _stream(self, response: Any, writer: IngestWriter, desc: Descriptor, layer_id: str,
                failed: threading.Event, skip: int = 0, arriving: Arriving | None = None) -> None:
        throttle = ProgressThrottle(desc.size, writer.size)
        while True:
            try:
                chunk = response.read(_CHUNK)
                while skip and chunk:  # bytes we have already (a resume the registry did not honour)
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                    if not chunk:
                        chunk = response.read(_CHUNK)
            except (OSError, ValueError) as e:
                raise Unreachable(f"reading blob {desc.digest}: {e}") from None
            except Exception as e:  # http.client.IncompleteRead and friends
                raise Unreachable(f"reading blob {desc.digest}: {type(e).__name__}") from None
            if not chunk:
                if writer.size < desc.size:
                    raise Unreachable(f"reading blob {desc.digest}: connection closed after {writer.size} bytes")
                return
            if failed.is_set():
                raise InvalidParameter("pull cancelled")
            writer.write(chunk)
            if writer.size > desc.size:
                raise CorruptContent(f"filesystem layer verification failed for digest {desc.digest}: "
                                     f"more than {desc.size} bytes")
            if arriving is not None:
                writer.flush()
                arriving.grew(writer.size)
            if throttle.due(writer.size):
                self.emit("Downloading", layer_id, progressDetail={"current": writer.size, "total": desc.size},
                          progress=progress_bar(writer.size, desc.size))


def _settles(arriving: Arriving) -> Callable[[Future[str | None]], None]:
    """A download future's done-callback: its :class:`Arriving` is settled."""
    return lambda _future: arriving.settle()


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise InvalidParameter(f"invalid {what}: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidParameter(f"invalid {what}: not a JSON object")
    return doc


def _choose(index: dict[str, Any], want: tuple[str, str, str], ref: Reference) -> Descriptor:
    """The index entry for platform ``want`` (os, architecture, variant)."""
    for raw in index.get("manifests") or []:
        if isinstance(raw, dict) and isinstance(raw.get("platform"), dict) and platform_matches(raw["platform"], *want):
            return Descriptor.from_json(raw)
    os_name, arch, variant = want
    raise NotFound(f"no matching manifest for {os_name}/{arch}{'/' + variant if variant else ''} "
                   f"in the manifest list entries: {ref.familiar()}")


def _check_platform(config: bytes, want: tuple[str, str, str], ref: Reference) -> None:
    doc = _json_object(config, "image config")
    platform = {"os": doc.get("os", ""), "architecture": doc.get("architecture", ""), "variant": doc.get("variant")}
    if not platform_matches(platform, *want):
        actual = f"{platform['os']}/{platform['architecture']}" + (f"/{platform['variant']}" if platform["variant"] else "")
        wanted = "/".join(p for p in want if p)
        raise NotFound(f"image with reference {ref.familiar()} was found but does not match the specified "
                       f"platform: wanted {wanted}, actual: {actual}")


def _digest_ref(resolved: Resolved) -> Reference:
    return Reference(resolved.reference.domain, resolved.reference.path, None, resolved.manifest_digest)


def progress_bar(current: int, total: int) -> str:
    """Docker's text progress bar: ``[=====>      ]  1.2MB/3.4MB``."""
    width = 50
    filled = width * current // total if total else width
    arrow = "=" * max(filled - 1, 0) + (">" if filled < width else "=") if filled else ""
    return f"[{arrow.ljust(width)}] {_size(current)}/{_size(total)}"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.3g}{unit}" if unit != "B" else f"{n}B"
        value /= 1000
    return f"{n}B"
