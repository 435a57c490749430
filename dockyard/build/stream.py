"""The classic builder's JSON message stream (what ``POST /build`` answers, one object a line).

Messages: ``{"stream": text}`` (step headers, `` ---> <id12>``, RUN output), ``{"aux": {"ID": id}}``
(the final image) and, on failure, ``{"errorDetail": {"code": n, "message": m}, "error": m}``.
*Quiet* (``q=1``): only the aux message, the final ``sha256:…`` line and errors go out.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

_END = object()


class BuildStream:
    """Messages from the builder (on the event loop) to the response's chunks."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()

    def text(self, text: str) -> None:
        """Step output (dropped when quiet)."""
        if not self.quiet and text:
            self._queue.put_nowait({"stream": text})

    def raw(self, message: dict[str, Any]) -> None:
        """A message as it is (a pull's progress); may be called from any thread."""
        if not self.quiet:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, message)

    def always(self, text: str) -> None:
        self._queue.put_nowait({"stream": text})

    def aux(self, image_id: str) -> None:
        self._queue.put_nowait({"aux": {"ID": image_id}})

    def error(self, message: str, code: int | None = None) -> None:
        detail: dict[str, Any] = {"message": message}
        if code is not None:
            detail = {"code": code, "message": message}
        self._queue.put_nowait({"errorDetail": detail, "error": message})

    def close(self) -> None:
        self._queue.put_nowait(_END)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The messages, one JSON object a line; the messages already queued together go out as one
        chunk (a cached step's three lines, one write instead of three)."""
        while True:
            item = await self._queue.get()
            lines: list[str] = []
            while item is not _END:
                lines.append(json.dumps(item) + "\n")
                if self._queue.empty():
                    break
                item = self._queue.get_nowait()
            if lines:
                yield "".join(lines).encode()
            if item is _END:
                return


def frames_to_text(buffer: bytearray) -> bytes:
    """Take whole stdout/stderr frames (8-byte header: stream, 0, 0, 0, big-endian size) from
    ``buffer``; returns their payloads, leaving an incomplete frame in the buffer."""
    out = bytearray()
    while len(buffer) >= 8:
        size = int.from_bytes(buffer[4:8], "big")
        if len(buffer) < 8 + size:
            break
        out += buffer[8:8 + size]
        del buffer[:8 + size]
    return bytes(out)
