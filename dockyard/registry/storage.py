"""The registry's storage: blobs in a content store, repositories as folders of small link files.

On disk (under ``root``)::

    content/blobs/sha256/<hex>                        every blob and manifest, verified (``content/``)
    content/blobs/sha512/<hex>                        likewise for sha512 digests (``digests.py``)
    content/ingest/                                   blobs being written
    uploads/<uuid>/data, uploads/<uuid>/repo          an upload session: the bytes so far, its repository
    repositories/<name>/_layers/<hex>                 the blob <hex> belongs to the repository (empty)
    repositories/<name>/_manifests/revisions/<hex>    the manifest <hex> is in the repository; holds its media type
    repositories/<name>/_manifests/tags/<tag>         the tag; holds its manifest's digest
    repositories/<name>/_referrers/<subject hex>/<hex>   manifest <hex> names <subject> as its ``subject``;
                                                      holds its descriptor (JSON) for the referrers index

Every link is written to a ``.tmp-`` file and renamed into place, so a reader sees the old or the
new link, never half of one. Blobs enter only through the content store, which hashes what it is
given and refuses a mismatch; an upload is hashed when it is finished and adopted (hard-linked) into
the store, so concurrent uploads of the same blob each verify and land on the same file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dockyard.content.store import fsync_dir
from dockyard.registry.digests import (
    RegistryContent,
    file_digest,
    from_link_name,
    is_registry_digest,
    link_name,
)
from dockyard.registry.errors import SpecError
from dockyard.registry.names import check_name, is_tag


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` by a rename, so readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{secrets.token_hex(8)}"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(path.parent)


def _unlink(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


class RunningHashes:
    """The sha256 of each upload's bytes so far, fed as they arrive, so that finishing an upload
    need not read it back: an entry holds the hash and the size it covers, and counts only while
    the upload's file still has that size (a truncated chunk, another process's append or a
    restart make the finish hash the file instead). At most ``limit`` entries (abandoned uploads
    drop out oldest first)."""

    def __init__(self, limit: int = 1024) -> None:
        self._entries: dict[str, tuple[Any, int]] = {}
        self._limit = limit

    def resume(self, upload: Upload, size: int) -> Any | None:
        """The hash to go on feeding for ``upload``, whose file has ``size`` bytes; None: cannot."""
        entry = self._entries.pop(upload.uuid, None)
        if entry is not None and entry[1] == size:
            return entry[0]
        return hashlib.sha256() if size == 0 else None

    def keep(self, upload: Upload, running: Any, size: int) -> None:
        self._entries[upload.uuid] = (running, size)
        while len(self._entries) > self._limit:
            self._entries.pop(next(iter(self._entries)))

    def take(self, upload: Upload, size: int) -> str | None:
        """The digest of the upload's ``size`` bytes, when fed all along; the entry goes."""
        entry = self._entries.pop(upload.uuid, None)
        if entry is None or entry[1] != size:
            return None
        return "sha256:" + entry[0].hexdigest()

    def drop(self, upload: Upload) -> None:
        self._entries.pop(upload.uuid, None)


class Upload:
    """One upload session: its ``uuid``, its repository and the file holding the bytes received."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.uuid = folder.name
        self.data = folder / "data"

    @property
    def size(self) -> int:
        return self.data.stat().st_size

    @property
    def short_chunk(self) -> bool:
        """Whether a chunk shorter than the chunk minimum was received (only the last may be)."""
        return (self.folder / "short").exists()

    @short_chunk.setter
    def short_chunk(self, value: bool) -> None:
        if value:
            (self.folder / "short").touch()


class RegistryStorage:
    """Repositories, tags, manifests, uploads and referrers under ``root`` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.content = RegistryContent(self.root / "content")
        self.repositories = self.root / "repositories"
        self.uploads = self.root / "uploads"
        self.repositories.mkdir(parents=True, exist_ok=True)
        self.uploads.mkdir(parents=True, exist_ok=True)

    def _repo(self, name: str) -> Path:
        return self.repositories / check_name(name)

    def repository_exists(self, name: str) -> bool:
        return self._repo(name).is_dir()

    def catalog(self) -> list[str]:
        """Every repository holding a manifest or a blob, sorted."""
        found = []
        for dirpath, dirnames, _files in os.walk(self.repositories):
            if "_manifests" in dirnames or "_layers" in dirnames:
                found.append(os.path.relpath(dirpath, self.repositories))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return sorted(found)

    # -- blobs ---------------------------------------------------------------------------------

    def blob_in_repo(self, name: str, digest: str) -> bool:
        """Whether the repository holds the blob (a layer link or a manifest) and the store has it."""
        repo = self._repo(name)
        hexpart = link_name(digest)
        linked = (repo / "_layers" / hexpart).exists() or (repo / "_manifests" / "revisions" / hexpart).exists()
        return linked and self.content.exists(digest)

    def repositories_with(self, digest: str) -> Iterator[str]:
        """The repositories holding the blob (a scan of every repository: for mounts without ``from``)."""
        return (name for name in self.catalog() if self.blob_in_repo(name, digest))

    def link_blob(self, name: str, digest: str) -> None:
        path = self._repo(name) / "_layers" / link_name(digest)
        if not path.exists():
            write_atomically(path, b"")

    def unlink_blob(self, name: str, digest: str) -> bool:
        return _unlink(self._repo(name) / "_layers" / link_name(digest))

    def linked_blobs(self, name: str) -> list[str]:
        folder = self._repo(name) / "_layers"
        return [from_link_name(e) for e in _names(folder)]

    # -- uploads -------------------------------------------------------------------------------

    def start_upload(self, name: str) -> Upload:
        check_name(name)
        folder = self.uploads / secrets.token_hex(16)
        folder.mkdir()
        (folder / "data").touch()
        (folder / "repo").write_text(name)
        return Upload(folder)

    def upload(self, name: str, uuid: str) -> Upload:
        """The open session ``uuid`` of repository ``name``; BLOB_UPLOAD_UNKNOWN otherwise."""
        folder = self.uploads / uuid
        if not uuid.isalnum() or not folder.is_dir():
            raise SpecError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": uuid[:100]})
        with contextlib.suppress(FileNotFoundError):
            if (folder / "repo").read_text() == name:
                return Upload(folder)
        raise SpecError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": uuid})

    def finish_upload(self, name: str, upload: Upload, digest: str, hashes: RunningHashes | None = None) -> int:
        """Verify the upload against ``digest``, store and link it; returns its size. Blocking (hashes
        the file, unless ``hashes`` has its sha256)."""
        size = upload.size
        known = hashes.take(upload, size) if hashes is not None else None
        if known is not None and digest.startswith("sha256:"):
            actual = known
        else:
            actual, size = file_digest(upload.data, digest.partition(":")[0])
        if actual != digest:
            raise SpecError("DIGEST_INVALID", detail={"expected": digest, "actual": actual})
        self.content.adopt(upload.data, digest)
        self.link_blob(name, digest)
        self.cancel_upload(upload)
        return size

    def cancel_upload(self, upload: Upload) -> None:
        shutil.rmtree(upload.folder, ignore_errors=True)

    # -- manifests and tags --------------------------------------------------------------------

    def put_manifest(self, name: str, data: bytes, media_type: str, algorithm: str = "sha256") -> str:
        """Store manifest bytes and link them as a revision of the repository; returns the digest."""
        digest = self.content.put_bytes(data, algorithm)
        write_atomically(self._repo(name) / "_manifests" / "revisions" / link_name(digest), media_type.encode())
        return digest

    def manifest_media_type(self, name: str, digest: str) -> str | None:
        """The media type the revision was pushed with, or None when the repository lacks it."""
        try:
            return (self._repo(name) / "_manifests" / "revisions" / link_name(digest)).read_text()
        except FileNotFoundError:
            return None

    def revisions(self, name: str) -> list[str]:
        return [from_link_name(e) for e in _names(self._repo(name) / "_manifests" / "revisions")]

    def tag(self, name: str, tag: str, digest: str) -> None:
        write_atomically(self._repo(name) / "_manifests" / "tags" / tag, digest.encode())

    def resolve_tag(self, name: str, tag: str) -> str | None:
        if not is_tag(tag):
            return None
        try:
            value = (self._repo(name) / "_manifests" / "tags" / tag).read_text()
        except FileNotFoundError:
            return None
        return value if is_registry_digest(value) else None

    def tags(self, name: str) -> list[str]:
        return sorted(_names(self._repo(name) / "_manifests" / "tags"))

    def delete_tag(self, name: str, tag: str) -> bool:
        return is_tag(tag) and _unlink(self._repo(name) / "_manifests" / "tags" / tag)

    def delete_manifest(self, name: str, digest: str, subject: str | None) -> bool:
        """Drop the revision, every tag naming it and its referrer entry; the blob stays until gc."""
        repo = self._repo(name)
        if not _unlink(repo / "_manifests" / "revisions" / link_name(digest)):
            return False
        for tag in self.tags(name):
            if self.resolve_tag(name, tag) == digest:
                self.delete_tag(name, tag)
        if subject is not None:
            _unlink(repo / "_referrers" / link_name(subject) / link_name(digest))
        return True

    # -- referrers -----------------------------------------------------------------------------

    def add_referrer(self, name: str, subject: str, digest: str, descriptor: bytes) -> None:
        write_atomically(self._repo(name) / "_referrers" / link_name(subject) / link_name(digest), descriptor)

    def referrers(self, name: str, subject: str) -> Iterator[bytes]:
        """The stored descriptors of the manifests whose subject is ``subject`` and that still exist."""
        folder = self._repo(name) / "_referrers" / link_name(subject)
        for entry in sorted(_names(folder)):
            if self.manifest_media_type(name, from_link_name(entry)) is None:
                continue
            with contextlib.suppress(FileNotFoundError):
                yield (folder / entry).read_bytes()


def _names(folder: Path) -> list[str]:
    """The entries of ``folder`` that are not temporary files (none when it does not exist)."""
    try:
        return [e for e in os.listdir(folder) if not e.startswith(".")]
    except FileNotFoundError:
        return []
