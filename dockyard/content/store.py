"""The content store: immutable blobs named by their sha256 digest.

On disk (under ``root``)::

    blobs/sha256/<hex>   one file per blob, read-only once written
    ingest/<random>      a blob while it is being written

A write streams into an ingest file while hashing it, fsyncs it, checks the digest (and size)
against what the caller promised, and only then renames it into ``blobs/`` and fsyncs that
directory. A mismatch raises :class:`CorruptContent` and leaves no file behind; a reader never
sees a partial blob.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from dockyard.content.descriptor import BlobInfo
from dockyard.content.digests import digest_from_hex, hex_of, validate_digest
from dockyard.content.writeback import start_writeback
from dockyard.errors import CorruptContent, NotFound

CHUNK = 1 << 20


def fsync_dir(path: Path) -> None:
    """fsync a directory, so that a rename or unlink inside it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IngestWriter:
    """A blob being written: ``write`` bytes, then ``commit`` (or ``abort``, or leave the ``with``).

    Leaving a ``with`` block without committing removes the ingest file. An *unhashed* writer
    (``hashed=False``) is for bytes whose digest the caller computes itself from the very bytes
    it writes (the unpack of a layer hashes the tar it hands on for its diff ID): its ``commit``
    needs ``expected`` and takes it as the blob's digest, so the bytes are not hashed twice.
    """

    def __init__(self, store: ContentStore, hashed: bool = True) -> None:
        self._store = store
        self._path = store.root / "ingest" / secrets.token_hex(16)
        self._file: BinaryIO | None = open(self._path, "xb")  # noqa: SIM115 - closed in commit/abort
        self._hash = hashlib.sha256() if hashed else None
        self._size = 0
        self._flushed = 0  # bytes whose writeback :meth:`flush` started
        self.committed: BlobInfo | None = None

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    @property
    def digest(self) -> str | None:
        """The digest of the bytes written so far (None for an unhashed writer)."""
        return digest_from_hex(self._hash.hexdigest()) if self._hash is not None else None

    @property
    def path(self) -> Path:
        """The ingest file (a reader may follow it while it grows; it is renamed away on commit)."""
        return self._path

    def flush(self) -> None:
        """Hand what was written to the file, for a reader of :attr:`path`, and start its writeback
        (see :mod:`dockyard.content.writeback`): the commit's fsync then finds little left to write."""
        if self._file is not None:
            self._file.flush()
            start_writeback(self._file.fileno(), self._flushed, self._size - self._flushed)
            self._flushed = self._size

    def write(self, data: bytes) -> int:
        if self._file is None:
            raise ValueError("write to a closed ingest")
        self._file.write(data)
        if self._hash is not None:
            self._hash.update(data)
        self._size += len(data)
        return len(data)

    def commit(self, expected: str | None = None, size: int | None = None) -> BlobInfo:
        """Verify digest and size, then move the blob into place. Returns its digest and size."""
        if self._file is None:
            raise ValueError("commit of a closed ingest")
        if expected is not None:
            validate_digest(expected)
        if self._hash is not None:
            actual = digest_from_hex(self._hash.hexdigest())
        elif expected is not None:
            actual = expected  # an unhashed writer: the caller hashed these bytes (see the class docstring)
        else:
            raise ValueError("commit of an unhashed ingest needs the digest its writer computed")
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()
            self._file = None
        try:
            if expected is not None and actual != expected:
                raise CorruptContent(f"digest mismatch: expected {expected}, got {actual}")
            if size is not None and self._size != size:
                raise CorruptContent(f"size mismatch: expected {size} bytes, got {self._size}")
            target = self._store.path(actual)
            os.chmod(self._path, 0o444)
            os.replace(self._path, target)  # same content either way if the blob already existed
            fsync_dir(target.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
        self.committed = BlobInfo(actual, self._size)
        return self.committed

    def abort(self) -> None:
        """Drop the ingest file (a no-op after commit)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)

    def __enter__(self) -> IngestWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.abort()


def place_file(path: Path, ingest: Path, target: Path) -> int:
    """Put the file ``path`` at ``target`` without copying it (a hard link through the ``ingest``
    dir; a copy across filesystems), read-only and durable: fsynced, renamed, its dir fsynced.
    Returns its size."""
    tmp = ingest / secrets.token_hex(16)
    try:
        try:
            os.link(path, tmp)
        except OSError:
            with open(path, "rb") as src, open(tmp, "xb") as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return size


class ContentStore:
    """Blobs addressed by digest under ``root`` (see the module docstring for the layout)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs" / "sha256"
        self._blobs.mkdir(parents=True, exist_ok=True)
        (self.root / "ingest").mkdir(parents=True, exist_ok=True)

    # -- writing -----------------------------------------------------------------------------

    def writer(self, *, hashed: bool = True) -> IngestWriter:
        """Start a streamed write; use it as a context manager and call ``commit``
        (``hashed=False``: see :class:`IngestWriter`)."""
        return IngestWriter(self, hashed)

    def ingest(self, stream: BinaryIO, expected: str | None = None, size: int | None = None) -> BlobInfo:
        """Copy ``stream`` to the end into a new blob, checking ``expected`` digest and ``size``."""
        if expected is not None:
            validate_digest(expected)
        with self.writer() as w:
            while chunk := stream.read(CHUNK):
                w.write(chunk)
                if size is not None and w.size > size:
                    raise CorruptContent(f"size mismatch: expected {size} bytes, got more")
            return w.commit(expected, size)

    def put_bytes(self, data: bytes, expected: str | None = None) -> str:
        """Store ``data`` as a blob; returns its digest."""
        with self.writer() as w:
            w.write(data)
            return w.commit(expected, len(data)).digest

    def adopt(self, path: Path, digest: str) -> BlobInfo:
        """Store the existing file ``path`` as blob ``digest`` without copying it (a hard link;
        a copy across filesystems). The caller has already hashed it: nothing is re-read."""
        validate_digest(digest)
        return BlobInfo(digest, place_file(path, self.root / "ingest", self.path(digest)))

    # -- reading -----------------------------------------------------------------------------

    def path(self, digest: str) -> Path:
        """Where the blob named ``digest`` lives (whether or not it exists)."""
        return self._blobs / hex_of(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def open(self, digest: str) -> BinaryIO:
        """Open the blob for reading; NotFound if absent."""
        try:
            return open(self.path(digest), "rb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def read_bytes(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def list(self) -> list[str]:
        """Digests of every stored blob, sorted."""
        out = []
        for entry in os.scandir(self._blobs):
            with contextlib.suppress(Exception):
                out.append(digest_from_hex(entry.name))
        return sorted(out)

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    # -- deleting ----------------------------------------------------------------------------

    def delete(self, digest: str) -> bool:
        """Remove a blob; returns whether it existed."""
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            return False
        fsync_dir(self._blobs)
        return True
