"""Byte streams between the event loop and a worker thread, with back-pressure.

- :class:`BodyPipe`: a request body, fed by the event loop, read by a thread with blocking
  ``read`` (``docker load`` unpacks the archive while it is still arriving).
- :class:`ResponsePipe`: written by a thread with blocking ``write``, drained by the event loop
  as a response's chunks (``docker save`` streams the tar while it is being made).

Both sit on a :class:`Channel`: a bounded FIFO whose thread side blocks on a condition variable
and whose loop side awaits a future the thread resolves with ``call_soon_threadsafe``. Neither
side polls, and the loop never lends a thread to wait for a thread.

Either side may give up (``abandon``): the other side then stops blocking, so a client that
goes away never leaves a thread stuck.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from dockyard import blocking

_DEPTH = 16
_EOF = object()


class Abandoned(Exception):
    """The other side of a pipe went away."""


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Channel:
    """A bounded FIFO from a thread to the loop or from the loop to a thread (made on the loop).

    Terms: the *thread side* calls the blocking ``put_blocking``/``get_blocking``; the *loop
    side* awaits ``put``/``get``. ``abandon`` (either side) ends it: the remaining items can still
    be taken, then every call raises :class:`Abandoned`."""

    def __init__(self, depth: int = _DEPTH) -> None:
        self._loop = asyncio.get_running_loop()
        self._items: deque[Any] = deque()
        self._depth = depth
        self._cond = threading.Condition()
        self._loop_waiter: asyncio.Future[None] | None = None
        self.abandoned = False

    def _changed(self) -> None:
        """Wake whoever waits on either side (called with the condition held)."""
        self._cond.notify_all()
        waiter, self._loop_waiter = self._loop_waiter, None
        if waiter is not None:
            self._loop.call_soon_threadsafe(_wake, waiter)

    def abandon(self) -> None:
        with self._cond:
            self.abandoned = True
            self._changed()

    # -- thread side --------------------------------------------------------------------------
    def put_blocking(self, item: Any) -> None:
        with self._cond:
            while len(self._items) >= self._depth and not self.abandoned:
                self._cond.wait()
            if self.abandoned:
                raise Abandoned()
            self._items.append(item)
            self._changed()

    def get_blocking(self) -> Any:
        with self._cond:
            while not self._items and not self.abandoned:
                self._cond.wait()
            if not self._items:
                raise Abandoned()
            item = self._items.popleft()
            self._changed()
            return item

    # -- loop side ----------------------------------------------------------------------------
    async def put(self, item: Any) -> None:
        while True:
            with self._cond:
                if self.abandoned:
                    raise Abandoned()
                if len(self._items) < self._depth:
                    self._items.append(item)
                    self._changed()
                    return
                waiter = self._loop_waiter = self._loop.create_future()
            await waiter

    async def get(self) -> Any:
        while True:
            with self._cond:
                if self._items:
                    item = self._items.popleft()
                    self._changed()
                    return item
                if self.abandoned:
                    raise Abandoned()
                waiter = self._loop_waiter = self._loop.create_future()
            await waiter


class BodyPipe:
    """A request body as a blocking, file-like ``read`` for a worker thread (made on the loop)."""

    def __init__(self) -> None:
        self._channel = Channel()
        self._pending = b""
        self._done = False

    def abandon(self) -> None:
        self._channel.abandon()

    async def feed(self, chunks: AsyncIterator[bytes]) -> None:
        """Pass the body's chunks on; once the reader has abandoned, drain the rest unread."""
        try:
            async for chunk in chunks:
                if self._channel.abandoned:
                    continue
                try:
                    await self._channel.put(bytes(chunk))
                except Abandoned:
                    continue
            await self._channel.put(_EOF)
        except Abandoned:
            pass
        except Exception as e:  # noqa: BLE001 - the reader reports the broken body
            try:
                await self._channel.put(e)
            except Abandoned:
                pass

    def read(self, n: int = -1) -> bytes:
        while not self._done and (n < 0 or len(self._pending) < n):
            if self._pending and n >= 0:
                break  # return what is there rather than wait for more
            item = self._channel.get_blocking()
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


class ResponsePipe:
    """A blocking ``write`` for a worker thread whose bytes become a response's chunks (made on
    the loop)."""

    _FLUSH = 1 << 20

    def __init__(self) -> None:
        self._channel = Channel()
        self._buffer = bytearray()

    def abandon(self) -> None:
        self._channel.abandon()

    def write(self, data: Any) -> int:
        self._buffer += data
        if len(self._buffer) >= self._FLUSH:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            self._channel.put_blocking(bytes(self._buffer))
            self._buffer.clear()

    def close(self, error: BaseException | None = None) -> None:
        """End the stream (after an error, the response is cut short)."""
        self.flush()
        self._channel.put_blocking(error if error is not None else _EOF)

    async def chunks(self, work: Callable[[ResponsePipe], None]) -> AsyncIterator[bytes]:
        """Run ``work(self)`` on the stream pool and yield what it writes; abandons it if the
        client leaves."""

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

        worker = asyncio.ensure_future(blocking.run_stream(run))
        try:
            while True:
                item = await self._channel.get()
                if item is _EOF:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.abandon()
            await worker
