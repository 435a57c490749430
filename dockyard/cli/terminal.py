"""The local terminal: raw mode for ``run -it``, its size, and writing every byte to a descriptor.

*Raw mode* turns off the local line discipline (echo, line buffering, Ctrl-C → SIGINT) so each
keystroke goes to the container's own TTY, which does that job instead.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is out (pipes take partial writes)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def window_size(fd: int) -> tuple[int, int] | None:
    """``(rows, columns)`` of the terminal on ``fd``, or ``None`` if it is not one."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


class RawMode:
    """Context manager: put ``fd`` in raw mode, restore its settings on exit."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._saved: Any = None

    def __enter__(self) -> RawMode:
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setraw(self.fd, termios.TCSANOW)
        return self

    def __exit__(self, *exc: object) -> None:
        import termios

        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
