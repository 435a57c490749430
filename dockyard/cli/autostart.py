"""Starting the daemon when nothing answers on the default socket.

The daemon is started *detached*: double-forked so it is not our child (no zombie, no wait),
in its own session (``setsid``) so a Ctrl-C in this terminal does not reach it, with stdin on
``/dev/null`` and stdout/stderr appended to the log file. Then we poll the socket until ``/_ping``
answers or the deadline passes.

The daemon runs as root, so it must run *this* dockyard and nothing the caller's directory or
environment offers: Python starts isolated (``-I``: no current directory or script directory on
``sys.path``, no ``PYTHON*`` variables, no user site), imports dockyard from the directory this
module was loaded from, and runs in ``/``.
"""

from __future__ import annotations

import os
import sys
import time

from dockyard.cli import client
from dockyard.cli.failure import CliFailure

LOG_PATH = "/var/log/dockyard.log"
START_TIMEOUT = 10.0
# The directory holding the ``dockyard`` package this CLI runs from.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def daemon_argv(daemon_args: list[str] | None = None) -> list[str]:
    """The command that runs the daemon: this Python, isolated, this dockyard's verb ``daemon``."""
    code = (f"import sys; sys.path.insert(0, {PACKAGE_PARENT!r}); from dockyard.cli.main import main; "
            "sys.exit(main(['daemon', *sys.argv[1:]]))")
    return [sys.executable, "-I", "-c", code, *(daemon_args or [])]


def spawn_detached(argv: list[str], log_path: str) -> None:
    """Run ``argv`` in ``/`` as a grandchild in a new session, output appended to ``log_path``."""
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the forked child
            try:
                os.setsid()
                os.chdir("/")
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


def start_daemon(address: client.Address, log_path: str = LOG_PATH, timeout: float = START_TIMEOUT,
                 daemon_args: list[str] | None = None) -> None:
    """Start the daemon (with ``daemon_args``), tell the user on stderr, wait until it answers at ``address``."""
    spawn_detached(daemon_argv(daemon_args), log_path)
    sys.stderr.write(f"dockyard: started the daemon (log: {log_path})\n")
    sys.stderr.flush()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping(address):
            return
        time.sleep(0.05)
    raise CliFailure(f"dockyard: the daemon did not answer at {address.text} within {timeout:g} s "
                     f"(see {log_path})", 1)
