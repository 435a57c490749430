"""Readers for layer streams: compression detected by magic bytes, hashing while reading, tee.

Layer blobs come gzip-compressed, zstd-compressed (when the ``zstandard`` module is
installed), bzip2 or xz, or as a plain tar; :func:`decompressed` looks at the first bytes and
returns a reader of the plain tar. gzip is read with ISA-L's igzip (the ``isal`` module, about
three times as fast as zlib) when it is installed, else with the standard library. Nothing here
holds a whole stream in memory.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import zlib
from typing import Any, BinaryIO, Protocol

from dockyard.errors import CorruptContent, DockyardError, InvalidParameter
from dockyard.snapshots.bounds import LayerLimits, RatioGuard
from dockyard.snapshots.readers import PassThroughReader

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"


class Writable(Protocol):
    def write(self, data: bytes, /) -> Any: ...


class PeekReader(io.RawIOBase):
    """Wraps a stream so that its first bytes can be looked at without consuming them."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._head = b""
        self.count = 0  # bytes handed out: the compressed bytes consumed, for the ratio guard

    def peek(self, n: int) -> bytes:
        while len(self._head) < n:
            chunk = self._raw.read(n - len(self._head))
            if not chunk:
                break
            self._head += chunk
        return self._head[:n]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            self.count += n
            return n
        data = self._raw.read(len(view))
        if not data:
            return 0
        view[: len(data)] = data
        self.count += len(data)
        return len(data)


class HashingReader(PassThroughReader):
    """Reads through ``raw`` while feeding every byte to a sha256; ``digest`` and ``count`` tell."""

    def __init__(self, raw: BinaryIO, tee: Writable | None = None) -> None:
        super().__init__(raw)
        self._hash = hashlib.sha256()
        self._tee = tee

    def seen(self, data: bytes) -> None:
        self._hash.update(data)
        if self._tee is not None:
            self._tee.write(data)

    def drain(self) -> None:
        """Read (and hash) whatever is left, e.g. the zero padding after a tar's end marker."""
        buf = bytearray(1 << 16)
        while self.readinto(buf) > 0:
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class CorruptionGuard(io.RawIOBase):
    """Turns a decompressor's complaints (bad or truncated data) into CorruptContent."""

    def __init__(self, raw: BinaryIO, kind: str) -> None:
        self._raw = raw
        self._kind = kind

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._raw.read(len(view))
        except DockyardError:
            raise
        except (EOFError, OSError, zlib.error, lzma.LZMAError, ValueError) as e:
            raise CorruptContent(f"invalid {self._kind} data: {e}") from None
        except Exception as e:  # zstandard.ZstdError and friends
            raise CorruptContent(f"invalid {self._kind} data: {e}") from None
        view[: len(data)] = data
        return len(data)


def compression_of(head: bytes) -> str:
    """``gzip``, ``zstd``, ``bzip2``, ``xz`` or ``none`` from a stream's first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(BZIP2_MAGIC):
        return "bzip2"
    if head.startswith(XZ_MAGIC):
        return "xz"
    return "none"


def _gzip_reader(raw: BinaryIO) -> BinaryIO:
    try:
        from isal import igzip
    except ImportError:
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return igzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]


def decompressed(stream: BinaryIO, limits: LayerLimits | None = None) -> BinaryIO:
    """A reader of the plain tar inside ``stream``, whatever of the known compressions it uses.

    A compressed stream is read through a :class:`RatioGuard`: one that expands more than
    ``limits.max_ratio`` times (``limits`` defaults to :meth:`LayerLimits.from_env`) is refused
    as a decompression bomb.
    """
    peek = PeekReader(stream)
    kind = compression_of(peek.peek(6))
    raw: BinaryIO = io.BufferedReader(peek, buffer_size=1 << 16)  # type: ignore[arg-type]
    inner: Any
    if kind == "none":
        return raw
    if kind == "gzip":
        inner = _gzip_reader(raw)
    elif kind == "bzip2":
        inner = bz2.BZ2File(raw, mode="rb")
    elif kind == "xz":
        inner = lzma.LZMAFile(raw, mode="rb")
    else:
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError:
            raise InvalidParameter(
                "zstd-compressed layers need the zstandard Python module, which is not installed"
            ) from None
        inner = zstandard.ZstdDecompressor().stream_reader(raw)
    guarded = RatioGuard(CorruptionGuard(inner, kind), peek, limits or LayerLimits.from_env())  # type: ignore[arg-type]
    return io.BufferedReader(guarded, buffer_size=1 << 16)  # type: ignore[return-value]
