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
from pathlib import Path

from dockyard.containers.clock import parse_rfc3339

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
    t = parse_rfc3339(entry.time)
    if opts.since and t < opts.since:
        return False
    return not (opts.until and t > opts.until)


def render(entry: LogEntry, opts: LogOptions, tty: bool) -> bytes:
    payload = (entry.time.encode() + b" " + entry.data) if opts.timestamps else entry.data
    return payload if tty else frame(STREAMS.get(entry.stream, 1), payload)


async def stream_logs(path: Path, opts: LogOptions, tty: bool, running: Callable[[], bool],
                      poll: float = 0.05) -> AsyncIterator[bytes]:
    """The log as the API sends it; with ``follow``, keeps reading until the container stops."""
    for entry in select(read_entries(path), opts):
        yield render(entry, opts, tty)
    if not opts.follow or (opts.until and opts.until <= time.time()):
        return
    # Follow: continue from the end of the current file; a rotation shows as a new inode.
    wanted = {s for s, on in (("stdout", opts.stdout), ("stderr", opts.stderr)) if on}
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    try:
        f.seek(0, os.SEEK_END)
        inode = os.fstat(f.fileno()).st_ino
        partial = b""
        while True:
            chunk = f.read(65536)
            if chunk:
                partial += chunk
                *lines, partial = partial.split(b"\n")
                for line in lines:
                    parsed = parse_line(line + b"\n")
                    if parsed is not None and parsed.stream in wanted and _in_window(parsed, opts):
                        yield render(parsed, opts, tty)
                continue
            try:
                if os.stat(path).st_ino != inode:
                    # Rotated: the old file may have grown between our last read and the rename.
                    tail = f.read()
                    if tail:
                        f.seek(-len(tail), os.SEEK_CUR)
                        continue
                    # Several rotations may have passed: first the complete files newer than ours.
                    for done in _rotated_after(path, inode):
                        for entry in read_entries_of(done):
                            if entry.stream in wanted and _in_window(entry, opts):
                                yield render(entry, opts, tty)
                    f.close()
                    f = open(path, "rb")
                    inode = os.fstat(f.fileno()).st_ino
                    continue
            except FileNotFoundError:
                pass
            if not running():
                # One last read: the shim flushes before it records the exit.
                if not f.read(1):
                    return
                f.seek(-1, os.SEEK_CUR)
                continue
            await asyncio.sleep(poll)
    finally:
        f.close()
