"""Reading a container's json-file log, as ``GET /containers/{id}/logs`` serves it.

Terms:
- *json-file log*: what the shim writes, one JSON object per line:
  ``{"log": "hello\\n", "stream": "stdout", "time": "2026-…Z"}``; rotated files are
  ``<log>.1`` (newest) … ``<log>.N`` (oldest).
- *multiplexed stream*: Docker's framing for non-TTY output: an 8-byte header
  ``[stream u8][0 0 0][length u32 BE]`` before each payload; stream 1 is stdout, 2 stderr.
  With a TTY the payloads go out raw.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import struct
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from dockyard import blocking
from dockyard.formats import timestamps

FRAME = struct.Struct(">BxxxI")
STREAMS = {"stdout": 1, "stderr": 2}


@dataclass(frozen=True)
class LogEntry:
    stream: str
    time: str
    data: bytes


@dataclass(frozen=True)
class LogOptions:
    stdout: bool = True
    stderr: bool = True
    follow: bool = False
    timestamps: bool = False
    tail: int = -1          # -1: all
    since: float = 0.0      # unix seconds; 0: from the start
    until: float = 0.0      # unix seconds; 0: no end


def frame(stream: int, payload: bytes) -> bytes:
    return FRAME.pack(stream, len(payload)) + payload


def parse_line(line: bytes) -> LogEntry | None:
    try:
        obj = json.loads(line.decode("utf-8", "replace"))
        return LogEntry(obj.get("stream", "stdout"), obj.get("time", ""), obj.get("log", "").encode("utf-8", "surrogateescape"))
    except (ValueError, AttributeError):
        return None  # a torn last line after a crash: skip it


def log_files(path: Path, max_files: int = 100) -> list[Path]:
    """Oldest first: ``log.N`` … ``log.1``, ``log``; a rotated file may be gzipped (``log.N.gz``)."""
    rotated: list[Path] = []
    for i in range(max_files, 0, -1):
        for name in (f"{path.name}.{i}.gz", f"{path.name}.{i}"):
            if path.with_name(name).exists():
                rotated.append(path.with_name(name))
    return rotated + ([path] if path.exists() else [])


def read_entries(path: Path) -> Iterator[LogEntry]:
    for file in log_files(path):
        yield from read_entries_of(file)


def read_entries_of(file: Path) -> Iterator[LogEntry]:
    """The entries of one file (plain, or gzipped when its name ends in ``.gz``)."""
    try:
        with (gzip.open(file, "rb") if file.name.endswith(".gz") else open(file, "rb")) as f:
            for line in f:
                if line.endswith(b"\n"):
                    entry = parse_line(line)
                    if entry is not None:
                        yield entry
    except FileNotFoundError:
        return  # rotated away while reading


def _rotated_after(path: Path, inode: int) -> list[Path]:
    """The rotated files newer than the one with ``inode`` (which a follower has read to its end).

    When that file is gone (deleted, or compressed into a new inode) nothing can be placed after
    it, and the follower simply goes on with the live file."""
    rotated = log_files(path)[:-1] if path.exists() else log_files(path)
    for i, file in enumerate(rotated):
        try:
            if os.stat(file).st_ino == inode:
                return rotated[i + 1:]
        except FileNotFoundError:
            continue
    return []


def select(entries: Iterator[LogEntry], opts: LogOptions) -> Iterator[LogEntry]:
    wanted = {s for s, on in (("stdout", opts.stdout), ("stderr", opts.stderr)) if on}
    chosen = (e for e in entries if e.stream in wanted and _in_window(e, opts))
    if opts.tail >= 0:
        return iter(deque(chosen, maxlen=opts.tail) if opts.tail else [])
    return chosen


def _in_window(entry: LogEntry, opts: LogOptions) -> bool:
    if not opts.since and not opts.until:
        return True
    t = timestamps.stored_seconds(entry.time)
    if opts.since and t < opts.since:
        return False
    return not (opts.until and t > opts.until)


def render(entry: LogEntry, opts: LogOptions, tty: bool) -> bytes:
    stamp = timestamps.format_ns_fixed(timestamps.stored_ns(entry.time)) if opts.timestamps else ""
    payload = (stamp.encode() + b" " + entry.data) if opts.timestamps else entry.data
    return payload if tty else frame(STREAMS.get(entry.stream, 1), payload)


class _Follower:
    """Reads the live log file through one descriptor, opened before anything is read: the lines
    sent as the backlog and the lines followed come from one read of that file, so no line falls
    between them and none is sent twice. Its methods block (they run on the pool)."""

    CHUNK = 1 << 20  # bytes read per call, so one busy container cannot hold a pool thread long

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "rb")
        self.inode = os.fstat(self.file.fileno()).st_ino
        self.partial = b""

    def close(self) -> None:
        self.file.close()

    def backlog(self) -> Iterator[LogEntry]:
        """Every entry so far: the rotated files older than the live one, then the live one."""
        for file in log_files(self.path)[:-1] if self.path.exists() else log_files(self.path):
            try:
                if os.stat(file).st_ino == self.inode:
                    break  # ours was rotated since it was opened: it is read through the descriptor
            except FileNotFoundError:
                continue
            yield from read_entries_of(file)
        while True:
            entries = self._read()
            if not entries:
                return
            yield from entries

    def _read(self) -> list[LogEntry]:
        chunk = self.file.read(self.CHUNK)
        if not chunk:
            return []
        *lines, self.partial = (self.partial + chunk).split(b"\n")
        return [e for e in (parse_line(line + b"\n") for line in lines) if e is not None]

    def advance(self) -> list[LogEntry]:
        """The entries written since the last call, across rotations (a new inode at ``path``)."""
        entries = self._read()
        if entries:
            return entries
        try:
            if os.stat(self.path).st_ino == self.inode:
                return []
        except FileNotFoundError:
            return []
        # Rotated: the old file may have grown between our last read and the rename.
        tail = self._read()
        if tail:
            return tail
        # Several rotations may have passed: first the complete files newer than ours.
        done = [e for file in _rotated_after(self.path, self.inode) for e in read_entries_of(file)]
        self.file.close()
        self.file = open(self.path, "rb")
        self.inode = os.fstat(self.file.fileno()).st_ino
        self.partial = b""
        return done + self._read()


async def _in_batches(make: Callable[[], Iterator[LogEntry]], size: int = 512) -> AsyncIterator[LogEntry]:
    """The entries of ``make()``, made and advanced on the pool ``size`` at a time (reading a log
    blocks on the disk; ``select`` with a tail reads it all at once)."""
    entries: Iterator[LogEntry] | None = None

    def step() -> list[LogEntry]:
        nonlocal entries
        if entries is None:
            entries = make()
        return list(islice(entries, size))

    while True:
        batch = await blocking.run(step)
        if not batch:
            return
        for entry in batch:
            yield entry


def read_log(path: Path, opts: LogOptions) -> AsyncIterator[LogEntry]:
    """The chosen entries of the log at ``path`` as it is now, read on the pool."""
    return _in_batches(lambda: select(read_entries(path), opts))


async def stream_logs(path: Path, opts: LogOptions, tty: bool, running: Callable[[], bool],
                      poll: float = 0.05, exited: asyncio.Future[Any] | None = None) -> AsyncIterator[bytes]:
    """The log as the API sends it; with ``follow``, keeps reading until the container stops.

    The file is read again every ``poll`` seconds while the container runs; ``exited``, a future
    resolved when its run ends, cuts that wait short, so the stream ends as soon as the container
    does (a build's RUN step waits for that end)."""
    follow = opts.follow and not (opts.until and opts.until <= time.time())
    try:
        follower = await blocking.run(_Follower, path) if follow else None
    except FileNotFoundError:
        follower = None
    if follower is None:
        async for entry in read_log(path, opts):
            yield render(entry, opts, tty)
        return
    try:
        async for entry in _in_batches(lambda: select(follower.backlog(), opts)):
            yield render(entry, opts, tty)
        wanted = {s for s, on in (("stdout", opts.stdout), ("stderr", opts.stderr)) if on}
        while True:
            # Asked before the read: what the shim wrote before its exit is in the file by then.
            stopped = not running()
            entries = await blocking.run(follower.advance)
            for entry in entries:
                if entry.stream in wanted and _in_window(entry, opts):
                    yield render(entry, opts, tty)
            if not entries:
                if stopped:
                    return
                if exited is not None and not exited.done():
                    await asyncio.wait([exited], timeout=poll)
                else:
                    await asyncio.sleep(poll)
    finally:
        follower.close()
