"""Starting the daemon when nothing answers on the default socket.

The daemon is started *detached*: double-forked so it is not our child (no zombie, no wait),
in its own session (``setsid``) so a Ctrl-C in this terminal does not reach it, with stdin on
``/dev/null`` and stdout/stderr appended to the log file. Then we poll the socket until ``/_ping``
answers or the deadline passes.
"""

from __future__ import annotations

import os
import sys
import time

from dockyard.cli import client
from dockyard.cli.failure import CliFailure

LOG_PATH = "/var/log/dockyard.log"
START_TIMEOUT = 10.0


def daemon_argv() -> list[str]:
    """The command that runs the daemon: this Python, the CLI module, verb ``daemon``."""
    return [sys.executable, "-m", "dockyard.cli.main", "daemon"]


def spawn_detached(argv: list[str], log_path: str) -> None:
    """Run ``argv`` as a grandchild in a new session, output appended to ``log_path``."""
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the forked child
            try:
                os.setsid()
                if os.fork() != 0:
                    os._exit(0)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(log_fd, 1)
                os.dup2(log_fd, 2)
                os.closerange(3, 65536)
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
        os.waitpid(child, 0)
    finally:
        os.close(log_fd)


def ping(address: client.Address) -> bool:
    """Whether ``GET /_ping`` answers 200 at ``address``."""
    try:
        response = client.request(address, "GET", "/_ping")
        response.read()
        return response.status == 200
    except OSError:
        return False


def start_daemon(address: client.Address, log_path: str = LOG_PATH, timeout: float = START_TIMEOUT) -> None:
    """Start the daemon, tell the user on stderr, and wait until it answers at ``address``."""
    spawn_detached(daemon_argv(), log_path)
    sys.stderr.write(f"dockyard: started the daemon (log: {log_path})\n")
    sys.stderr.flush()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping(address):
            return
        time.sleep(0.05)
    raise CliFailure(f"dockyard: the daemon did not answer at {address.text} within {timeout:g} s "
                     f"(see {log_path})", 1)
