"""Docker's multiplexed stream (named after Docker's ``stdcopy`` package).

Without a TTY, attach and logs interleave stdout and stderr as *frames*: an 8-byte header
``[stream:u8][0][0][0][length:u32 big-endian]`` then ``length`` bytes of payload. Stream 0 is
stdin (echoed), 1 stdout, 2 stderr; 3 is the daemon's own error message ("systemerr").
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

HEADER_SIZE = 8
STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3


class StreamFormatError(ValueError):
    """A frame header with an unknown stream number: the bytes are not a multiplexed stream."""


def frame(stream: int, payload: bytes) -> bytes:
    """One frame carrying ``payload`` on ``stream``."""
    return bytes((stream, 0, 0, 0)) + len(payload).to_bytes(4, "big") + payload


class Demuxer:
    """Feed it bytes as they arrive; it yields ``(stream, payload)`` for each complete frame."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        self._buf += data
        while len(self._buf) >= HEADER_SIZE:
            stream = self._buf[0]
            if stream > SYSTEMERR:
                raise StreamFormatError(f"Unrecognized input header: {stream}")
            length = int.from_bytes(self._buf[4:8], "big")
            if len(self._buf) < HEADER_SIZE + length:
                return
            payload = bytes(self._buf[HEADER_SIZE:HEADER_SIZE + length])
            del self._buf[:HEADER_SIZE + length]
            yield stream, payload

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)
