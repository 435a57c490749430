"""The daemon's pool for blocking filesystem work, so that it never runs on the event loop.

Terms:
- *blocking work*: a call that may wait on the disk for long: ``rmtree``, ``fsync``, a durable
  SQLite commit, reading or writing a tar stream, unpacking a layer.
- *the pool*: one :class:`~concurrent.futures.ThreadPoolExecutor` of :data:`WORKERS` threads for
  short jobs (:func:`run`), and one of :data:`STREAM_WORKERS` for jobs that live as long as a client
  streams (:func:`run_stream`: ``docker save``/``load``/``export``/``cp``, ``commit``). Two pools,
  so a few slow clients never hold up a ``rm``. Both are bounded: under load, work queues instead
  of piling threads onto a small machine.

A job must never wait for another job of the same pool (that could deadlock a full pool); it may
wait for the event loop (the byte channels of ``api/byte_pipes.py`` do).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

WORKERS = 4
STREAM_WORKERS = 8

P = ParamSpec("P")
T = TypeVar("T")

_short: ThreadPoolExecutor | None = None
_streams: ThreadPoolExecutor | None = None


def _pool(streams: bool) -> ThreadPoolExecutor:
    global _short, _streams
    if streams:
        if _streams is None:
            _streams = ThreadPoolExecutor(STREAM_WORKERS, thread_name_prefix="dockyard-stream")
        return _streams
    if _short is None:
        _short = ThreadPoolExecutor(WORKERS, thread_name_prefix="dockyard-fs")
    return _short


async def _submit(streams: bool, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pool(streams), call)


async def run(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on the filesystem pool; its result (or exception) here."""
    return await _submit(False, fn, *args, **kwargs)


async def run_stream(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Like :func:`run`, on the pool for jobs that last as long as a client's stream."""
    return await _submit(True, fn, *args, **kwargs)
