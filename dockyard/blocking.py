"""The daemon's pool for blocking filesystem work, so that it never runs on the event loop.

Terms:
- *blocking work*: a call that may wait on the disk for long: ``rmtree``, ``fsync``, a durable
  SQLite commit, reading or writing a tar stream, unpacking a layer.
- *the pool*: one :class:`~concurrent.futures.ThreadPoolExecutor` of :data:`WORKERS` threads for
  short jobs (:func:`run`), and one of :data:`STREAM_WORKERS` for jobs that live as long as a client
  streams (:func:`run_stream`: ``docker save``/``load``/``export``/``cp``, ``commit``). Two pools,
  so a few slow clients never hold up a ``rm``. Both are bounded: under load, work queues instead
  of piling threads onto a small machine.

- *the record writer*: one thread that writes records (a container's row in the metadata database,
  an exec's ``exec.json``) in the order they were queued, with :func:`write_soon` (the loop goes on at
  once), :func:`write` (the loop awaits it) or :func:`write_queued` (queued now, awaited later). One thread, so a record written later never lands
  before one written earlier; and no SQLite commit or file write runs on the event loop.

A job must never wait for another job of the same pool (that could deadlock a full pool); it may
wait for the event loop (the byte channels of ``api/byte_pipes.py`` do).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

WORKERS = 4
STREAM_WORKERS = 8

P = ParamSpec("P")
T = TypeVar("T")

_short: ThreadPoolExecutor | None = None
_streams: ThreadPoolExecutor | None = None
_records: ThreadPoolExecutor | None = None

log = logging.getLogger("dockyard.blocking")


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


def submit(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """``fn(*args, **kwargs)`` on the filesystem pool, started now; a thread may wait for its
    ``result()`` (never a job of this pool: see above), the loop through ``asyncio.wrap_future``."""
    return _pool(False).submit(functools.partial(contextvars.copy_context().run, fn, *args, **kwargs))


async def run_stream(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Like :func:`run`, on the pool for jobs that last as long as a client's stream."""
    return await _submit(True, fn, *args, **kwargs)


def _writer() -> ThreadPoolExecutor:
    global _records
    if _records is None:
        _records = ThreadPoolExecutor(1, thread_name_prefix="dockyard-records")
    return _records


def _log_failure(what: str, future: Future[object]) -> None:
    error = future.exception()
    if isinstance(error, FileNotFoundError):
        log.debug("%s: not written, its directory is gone: %s", what, error)
    elif error is not None:
        log.error("%s: cannot write the record: %s", what, error)


def write_soon(what: str, fn: Callable[P, object], *args: P.args, **kwargs: P.kwargs) -> None:
    """Queue ``fn(*args, **kwargs)`` on the record writer and go on; a failure is logged under
    ``what`` (a record whose directory was removed meanwhile is not written, as intended)."""
    future = _writer().submit(functools.partial(contextvars.copy_context().run, fn, *args, **kwargs))
    future.add_done_callback(functools.partial(_log_failure, what))


async def write(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on the record writer, after every write queued before it."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_writer(), call)


def write_queued(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
    """``fn(*args, **kwargs)`` queued on the record writer at once (before anything queued after
    this call returns), for the loop to await later: it goes on meanwhile."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return asyncio.get_running_loop().run_in_executor(_writer(), call)


async def drain_records() -> None:
    """Wait until every record queued so far is written (the daemon's shutdown)."""
    await write(lambda: None)
