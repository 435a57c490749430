"""The spawner: a small process, started once, that forks each container's first process (P0).

Why: forking the daemon itself costs a container's start milliseconds twice over. ``fork`` copies
the page tables of the whole daemon (tens of MB, eight threads' stacks), every page the child then
writes is copied, and the container's ``execve`` tears all of it down again — ~2 ms per fork and
~3 ms per exec here, on the start's critical path. The spawner is a fresh interpreter that imports
only the runtime (``python -I -S``, ~17 MB): forking and exec'ing from it costs a fraction of that.

Terms:

- *request*: one ``SOCK_SEQPACKET`` message from the daemon: the pickled arguments of
  :func:`dockyard.runtime.spawn.run_p0` (the spec, with the seccomp program the daemon compiled, the
  hostname, the shim's path), with the three pipe ends P0 needs passed as ``SCM_RIGHTS``; the
  answer is P0's pid, or ``!`` and an error text.
- P0 (and so the shim) is the spawner's child, not the daemon's: the spawner reaps it; the daemon
  watches it through a pidfd as it watches the shims of a previous daemon run. Only a process that
  opted in (:meth:`Spawner.start`, the daemon) forks through the spawner.

The spawner runs in a session of its own (a terminal's signals go to the daemon only) and ends when
the daemon's end of its socket closes. A daemon that cannot start or reach it forks P0 itself.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("dockyard.runtime")

MAX_REQUEST = 1 << 20
_SERVE = ("import sys; sys.path[:0] = [sys.argv[1]]; "
          "from dockyard.runtime.spawner import serve; serve(int(sys.argv[2]))")


class Spawner:
    """The daemon's end: :meth:`start` opts in (a process that never calls it forks its containers
    itself, each shim its own child); requests go one at a time (a request is a fork, well under a
    millisecond). A spawner that died is started again at the next request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._wanted = False
        self._failed = False

    def start(self) -> bool:
        """Start the spawner (if it is not running) and use it from now on; whether it runs."""
        with self._lock:
            self._wanted = True
            return self._ensure()

    def _ensure(self) -> bool:
        if self._sock is not None and self._proc is not None and self._proc.poll() is None:
            return True
        self._stop()
        if self._failed or not self._wanted:
            return False
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            package_root = str(Path(__file__).resolve().parents[2])
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _SERVE, package_root, str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                start_new_session=True, close_fds=True)
        except OSError as err:
            ours.close()
            self._failed = True
            log.warning("cannot start the spawner, containers are forked from the daemon: %s", err)
            return False
        finally:
            theirs.close()
        self._sock = ours
        return True

    def fork_p0(self, args: tuple[Any, ...], fds: tuple[int, int, int]) -> int | None:
        """Have the spawner fork P0 running ``spawn.run_p0(*args, *fds)``; P0's pid, or None when the
        spawner is not available (the caller forks P0 itself). Raises OSError when the fork failed."""
        try:
            payload = pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as err:  # a spec the spawner cannot get
            log.warning("forking this container from the daemon: its spec cannot be sent to the spawner: %s", err)
            return None
        if len(payload) > MAX_REQUEST:
            return None
        with self._lock:
            if not self._ensure():
                return None
            assert self._sock is not None
            try:
                socket.send_fds(self._sock, [payload], list(fds))
            except OSError as err:  # not sent: nothing was forked
                log.warning("the spawner went away (%s): starting it again", err)
                self._stop()
                return None
            try:
                answer = self._sock.recv(4096)
            except OSError:
                answer = b""
            if not answer:  # it may have forked P0 before it ended: never fork a second one
                self._stop()
                raise OSError("the spawner ended while forking the container")
        if answer.startswith(b"!"):
            raise OSError(answer[1:].decode(errors="replace"))
        return int(answer)

    def _stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(1)  # EOF on its socket ends it
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def close(self) -> None:
        """Stop the spawner (the shims it forked live on) and fork from this process again."""
        with self._lock:
            self._wanted = False
            self._stop()


default = Spawner()
"""The daemon's spawner (a process's forks share one)."""


# ---- the spawner process ------------------------------------------------------------------------

def _reap(signum: int, frame: object) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve(fd: int) -> None:
    """The spawner's loop: one request, one fork, one answer, until the daemon closes the socket."""
    from dockyard.runtime import spawn

    sock = socket.socket(fileno=fd)
    signal.signal(signal.SIGCHLD, _reap)
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_REQUEST, 3)
        except OSError:
            return
        if not data:
            return
        try:
            if len(fds) != 3:
                raise OSError(f"expected 3 descriptors, got {len(fds)}")
            for received in fds:  # close-on-exec, as the daemon's own pipe ends are
                os.set_inheritable(received, False)
            args = pickle.loads(data)
            pid = os.fork()
        except Exception as err:  # noqa: BLE001 - answered, the daemon raises it
            for extra in fds:
                os.close(extra)
            sock.send(b"!" + str(err).encode(errors="replace")[:4000])
            continue
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                sock.close()
                spawn.run_p0(*args, *fds)
            finally:
                os._exit(code)
        for extra in fds:
            os.close(extra)
        sock.send(str(pid).encode())
