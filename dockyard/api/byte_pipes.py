"""Byte streams between the event loop and a worker thread, with back-pressure.

- :class:`BodyPipe`: a request body, fed by the event loop, read by a thread with blocking
  ``read`` (``docker load`` unpacks the archive while it is still arriving).
- :class:`ResponsePipe`: written by a thread with blocking ``write``, drained by the event loop
  as a response's chunks (``docker save`` streams the tar while it is being made).

Either side may give up (``abandon``): the other side then stops blocking, so a client that
goes away never leaves a thread stuck.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Callable
from typing import Any

_DEPTH = 16
_POLL = 0.2
_EOF = object()


class Abandoned(Exception):
    """The other side of a pipe went away."""


class _Pipe:
    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(_DEPTH)
        self.abandoned = False

    def abandon(self) -> None:
        self.abandoned = True

    def _put(self, item: Any) -> None:
        """Blocking put that gives up once the pipe is abandoned."""
        while not self.abandoned:
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue
        raise Abandoned()

    def _get(self) -> Any:
        while True:
            try:
                return self._queue.get(timeout=_POLL)
            except queue.Empty:
                if self.abandoned:
                    raise Abandoned() from None


class BodyPipe(_Pipe):
    """A request body as a blocking, file-like ``read`` for a worker thread."""

    def __init__(self) -> None:
        super().__init__()
        self._pending = b""
        self._done = False

    async def feed(self, chunks: AsyncIterator[bytes]) -> None:
        """Pass the body's chunks on; once the reader has abandoned, drain the rest unread."""
        try:
            async for chunk in chunks:
                if self.abandoned:
                    continue
                try:
                    await asyncio.to_thread(self._put, bytes(chunk))
                except Abandoned:
                    continue
            if not self.abandoned:
                await asyncio.to_thread(self._put, _EOF)
        except Abandoned:
            pass
        except Exception as e:  # noqa: BLE001 - the reader reports the broken body
            if not self.abandoned:
                await asyncio.to_thread(self._put, e)

    def read(self, n: int = -1) -> bytes:
        while not self._done and (n < 0 or len(self._pending) < n):
            if self._pending and n >= 0:
                break  # return what is there rather than wait for more
            item = self._get()
            if item is _EOF:
                self._done = True
            elif isinstance(item, Exception):
                raise OSError(f"reading the request body: {item}")
            else:
                self._pending += item
        if n < 0:
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:n], self._pending[n:]
        return data

    def readable(self) -> bool:
        return True


class ResponsePipe(_Pipe):
    """A blocking ``write`` for a worker thread whose bytes become a response's chunks."""

    _FLUSH = 1 << 20

    def __init__(self) -> None:
        super().__init__()
        self._buffer = bytearray()

    def write(self, data: Any) -> int:
        self._buffer += data
        if len(self._buffer) >= self._FLUSH:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            self._put(bytes(self._buffer))
            self._buffer.clear()

    def close(self, error: BaseException | None = None) -> None:
        """End the stream (after an error, the response is cut short)."""
        self.flush()
        self._put(error if error is not None else _EOF)

    async def chunks(self, work: Callable[[ResponsePipe], None]) -> AsyncIterator[bytes]:
        """Run ``work(self)`` in a thread and yield what it writes; abandons it if the client leaves."""

        def run() -> None:
            try:
                work(self)
            except Abandoned:
                return
            except BaseException as e:  # noqa: BLE001 - handed to the event loop
                try:
                    self.close(e)
                except Abandoned:
                    pass
                return
            try:
                self.close()
            except Abandoned:
                pass

        worker = asyncio.create_task(asyncio.to_thread(run))
        try:
            while True:
                item = await asyncio.to_thread(self._get)
                if item is _EOF:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.abandon()
            await worker
