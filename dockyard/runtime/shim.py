"""The C shim (``shim.c``): finding or building its binary, and its wire protocol.

The *shim* is the small per-container process that P0 becomes (``execve``) after forking the
container init; it owns the container's stdio, writes the json-file log, serves
``STATE_DIR/attach.sock`` and writes ``STATE_DIR/exit`` when the container is gone. A *frame* is
Docker's stdcopy unit: an 8-byte header ``[kind:u8][0,0,0][length:u32 BE]`` then ``length`` bytes.
Shim -> client kinds: 1 stdout, 2 stderr, 3 resized (empty: the answer to that client's resize,
once the terminal has the size). Client -> shim kinds: 0 stdin bytes, 1 close stdin, 2 resize
(payload rows u16 BE, cols u16 BE).

``python -m dockyard.runtime.shim --build`` compiles the binary (``install.sh`` calls it).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import DockyardError
from dockyard.runtime.cprograms import CProgram

SOURCE = Path(__file__).with_name("shim.c")
BINARY_NAME = "dockyard-shim"

FRAME = struct.Struct(">BxxxI")
"""The frame header: kind, three zero bytes, payload length (big-endian)."""

STDOUT, STDERR, RESIZED = 1, 2, 3  # shim -> client kinds (RESIZED: to a resize's sender, once set)
STDIN, CLOSE_STDIN, RESIZE = 0, 1, 2  # client -> shim kinds
RESIZE_PAYLOAD = struct.Struct(">HH")

SOCKET_NAME = "attach.sock"
EXIT_NAME = "exit"


def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    """One frame: header + payload."""
    return FRAME.pack(kind, len(payload)) + payload


def decode_frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split ``data`` into complete frames; returns them and the incomplete rest."""
    frames = []
    offset = 0
    while len(data) - offset >= FRAME.size:
        kind, length = FRAME.unpack_from(data, offset)
        end = offset + FRAME.size + length
        if end > len(data):
            break
        frames.append((kind, data[offset + FRAME.size:end]))
        offset = end
    return frames, data[offset:]


# ---- the binary ----------------------------------------------------------------------------------

# Linked statically: a static shim stays at ~1.0 MB resident, a dynamic one at ~1.6 MB (ld.so and
# libc pages), and one runs per container; dynamic when static libraries are missing. zlib: --log-compress.
PROGRAM = CProgram(SOURCE, BINARY_NAME, "DOCKYARD_SHIM",
                   variants=(("-O2", "-Wall", "-static"), ("-O2", "-Wall")), libraries=("-lz",))


def shim_binary() -> Path:
    """The shim executable: ``$DOCKYARD_SHIM`` if set; else ``dockyard-shim`` next to ``shim.c``
    when it is newer than the source; else built there (or, when that directory is read-only,
    under ``$XDG_CACHE_HOME/dockyard`` or ``/var/cache/dockyard``)."""
    return PROGRAM.binary()


# ---- the exit record -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ExitRecord:
    """What the shim wrote to ``STATE_DIR/exit``: the exit code (128+signal when killed), the
    signal (0 when the process exited by itself) and when (RFC 3339 with nanoseconds, UTC)."""

    exit_code: int
    signal: int
    finished_at: str


def read_exit_record(state_dir: Path) -> ExitRecord | None:
    """The exit record of the container whose shim state lives in ``state_dir``; None while the
    container has not exited (the file is written atomically, so it is whole or absent)."""
    try:
        raw = (Path(state_dir) / EXIT_NAME).read_text()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
        return ExitRecord(int(data["exit_code"]), int(data["signal"]), str(data["finished_at"]))
    except (ValueError, KeyError, TypeError) as err:
        raise DockyardError(f"corrupt exit record in {state_dir}: {raw!r}") from err


# ---- a blocking client ---------------------------------------------------------------------------

def connect_attach(state_dir: Path, timeout: float | None = None) -> socket.socket:
    """A connected socket to ``STATE_DIR/attach.sock``. Long paths (over ``sun_path``'s 108
    bytes) are reached through ``/proc/self/fd/N`` of the opened directory."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    path = os.path.join(os.fspath(state_dir), SOCKET_NAME)
    if len(os.fsencode(path)) < 100:
        try:
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        return sock
    dfd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.connect(f"/proc/self/fd/{dfd}/{SOCKET_NAME}")
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(dfd)
    return sock


class AttachClient:
    """A blocking client of a shim's attach socket, for tests and simple callers."""

    def __init__(self, state_dir: Path, timeout: float | None = 30.0) -> None:
        self.sock = connect_attach(state_dir, timeout)
        self._rest = b""
        self._decoded: list[tuple[int, bytes]] = []  # frames read, not yet returned
        self._early: list[tuple[int, bytes]] = []  # frames read while waiting for a "resized"

    def send_stdin(self, data: bytes) -> None:
        """Queue ``data`` for the container's stdin."""
        self.sock.sendall(encode_frame(STDIN, data))

    def close_stdin(self) -> None:
        """Close the container's stdin (ignored by the shim for a tty)."""
        self.sock.sendall(encode_frame(CLOSE_STDIN))

    def resize(self, rows: int, cols: int) -> None:
        """Set the container's tty size; returns once the shim has set it (output frames that
        came first are kept for :meth:`iter_frames`)."""
        self.sock.sendall(encode_frame(RESIZE, RESIZE_PAYLOAD.pack(rows, cols)))
        while (frame := self._next_frame()) is not None and frame[0] != RESIZED:
            self._early.append(frame)

    def iter_frames(self) -> Iterator[tuple[int, bytes]]:
        """(kind, payload) of each frame the shim sends, until it closes the connection."""
        while self._early:
            yield self._early.pop(0)
        while (frame := self._next_frame()) is not None:
            yield frame

    def _next_frame(self) -> tuple[int, bytes] | None:
        while not self._decoded:
            frames, self._rest = decode_frames(self._rest)
            if frames:
                self._decoded.extend(frames)
                break
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self._rest += chunk
        return self._decoded.pop(0)

    def read_until_closed(self) -> dict[int, bytes]:
        """Everything the shim sends until it closes, concatenated per kind."""
        out: dict[int, bytes] = {STDOUT: b"", STDERR: b""}
        for kind, payload in self.iter_frames():
            out[kind] = out.get(kind, b"") + payload
        return out

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> AttachClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dockyard.runtime.shim")
    parser.add_argument("--build", action="store_true", help="compile the shim if it is stale")
    args = parser.parse_args(argv)
    if args.build:
        print(shim_binary())
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
