"""A reader that shows every chunk to a hook on its way through.

A *pass-through reader* wraps a binary stream: each ``read`` takes from ``raw``, adds to ``count``,
calls :meth:`PassThroughReader.seen` with the chunk (to hash it, copy it, or refuse to go on), and
hands the same bytes to the caller. The size and ratio guards and the hashing reader are such readers.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO


class PassThroughReader(io.RawIOBase):
    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._raw.read(len(view))
        if not data:
            return 0
        self.count += len(data)
        self.seen(data)
        view[: len(data)] = data
        return len(data)

    def seen(self, data: bytes) -> None:
        """Called with each chunk after ``count`` includes it; raise to stop the stream."""
