"""Start a container under its shim: ``spawn(spec)`` then ``Spawned.go()``.

Process tree (``docs/architecture.md``)::

    daemon ─ fork ─ P0: setsid, stderr -> shim.log, unshare(CLONE_NEWPID) ─ fork ─ P2 (PID 1 inside)
                     └─ execve(dockyard-shim)          P2: unshare(mnt, uts, ipc[, net]), rootfs,
                                                           pivot_root, user, cwd, stdio;
                                                           "ready"; waits for "go"; execve

Terms: *P0* is the process that becomes the shim: the caller's direct child, so ``Spawned.shim_pid``
**must be reaped by the caller** (``reap(shim_pid)``, or its own child watcher), or it stays a zombie
after the container exits — unless the caller started the *spawner* (``spawner.py``, as the daemon
does), whose child P0 then is (the spawner reaps it; ``reap`` finds no child and returns None). *P2* is the container's init; its host pid is
``Spawned.pid``; its parent is the shim. The *status pipe* carries one-line messages from P0/P2 to
the daemon (``P<pid>``, ``R`` ready, ``F<text>`` failure, ``E<code>:<text>`` exec failure) and
reaches EOF once P2 has exec'd. The *go pipe* releases P2: one byte ``G``; EOF without it means abort.

``spawn`` blocks (up to ``timeout`` seconds); call it from a worker thread in an asyncio daemon.
It first removes a stale ``exit`` record and ``attach.sock`` from the state dir. If the daemon dies
between ``spawn`` and ``go``, the init sees EOF on the go pipe and exits 1 (the shim records it).
The forked children only run code already imported, take no locks, close every fd they do not
own (another thread may be spawning another container) and end with ``os._exit``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import socket
import stat
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from dockyard.errors import DockyardError, InvalidParameter
from dockyard.runtime import security, spawner
from dockyard.runtime import syscalls as sc
from dockyard.runtime.loopback import loopback_up
from dockyard.runtime.rootfs import setup_rootfs
from dockyard.runtime.shim import EXIT_NAME, SOCKET_NAME, shim_binary
from dockyard.runtime.spec import ContainerSpec, ProcessSpec, container_env
from dockyard.runtime.users import ResolvedUser, resolve_user

TIOCSCTTY = 0x540E
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TTY_GID = 5
SPAWN_TIMEOUT = 30.0


def _wait_readable(fds: list[int], timeout: float) -> list[int]:
    """The fds among ``fds`` that are readable (or hung up) within ``timeout`` seconds."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return [fd for fd, _ in poller.poll(max(0, int(timeout * 1000)))]


@dataclass
class _Channel:
    """The daemon's ends of the pipes to one starting container, and what it said so far.
    ``pidfd`` refers to the init (P2) as soon as its pid is known."""

    status_r: int
    go_w: int
    buffer: bytes = b""
    messages: list[str] = field(default_factory=list)
    pidfd: int = -1

    def feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace")
            if not line:
                continue
            self.messages.append(line)
            if line.startswith("P") and self.pidfd < 0:
                try:
                    self.pidfd = sc.pidfd_open(int(line[1:]))
                except (OSError, ValueError):
                    pass

    def init_pid(self) -> int | None:
        return next((int(m[1:]) for m in self.messages if m.startswith("P")), None)

    def read_messages(self, deadline: float, until: str | None) -> bool:
        """Read status messages until one starting with ``until`` arrives (True), or EOF (False)."""
        while True:
            if until is not None and any(m.startswith(until) for m in self.messages):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out waiting for the container to start")
            if not _wait_readable([self.status_r], remaining):
                continue
            chunk = os.read(self.status_r, 4096)
            if not chunk:
                if self.buffer:
                    self.feed(b"\n")
                return False
            self.feed(chunk)

    def failure(self) -> str | None:
        for m in self.messages:
            if m[:1] in ("F", "E"):
                return m
        return None

    def kill_init(self) -> None:
        """SIGKILL the init through its pidfd (it is the shim's child, not ours)."""
        if self.pidfd >= 0:
            try:
                sc.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        for fd in (self.status_r, self.go_w, self.pidfd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.status_r = self.go_w = self.pidfd = -1


def _exec_error(message: str) -> DockyardError:
    """The exception for a status message ``E<code>:<text>`` or ``F<text>``."""
    if message.startswith("E"):
        code, _, text = message[1:].partition(":")
        return InvalidParameter(text, exit_code=int(code))
    return DockyardError(message[1:])


class Spawned:
    """A container whose init is set up and waiting for :meth:`go`.

    ``shim_pid``: the shim (a child of the calling process; reap it). ``pid``: the container's
    init as the host sees it (the daemon opens its own pidfd to watch the container).
    """

    def __init__(self, shim_pid: int, pid: int, channel: _Channel, state_dir: Path) -> None:
        self.shim_pid = shim_pid
        self.pid = pid
        self._channel = channel
        self._state_dir = state_dir
        self._done = False

    def go(self, timeout: float = SPAWN_TIMEOUT) -> None:
        """Let the container exec its process. Raises :class:`InvalidParameter` with Docker's
        message and ``exit_code`` (127 not found, 126 cannot execute) when the exec fails; the
        container then exits with that code and the shim records it."""
        if self._done:
            raise DockyardError("container already started or aborted")
        self._done = True
        try:
            os.write(self._channel.go_w, b"G")
            os.close(self._channel.go_w)
            self._channel.go_w = -1
            self._channel.read_messages(time.monotonic() + timeout, until=None)
            failure = self._channel.failure()
            if failure is not None:
                raise _exec_error(failure)
        except TimeoutError as err:
            raise DockyardError(f"container {self.pid} did not exec within {timeout}s") from err
        except BrokenPipeError as err:  # killed while held (its pid namespace's init died, a kill)
            raise DockyardError(f"process {self.pid} ended before it could exec") from err
        finally:
            self._channel.close()

    def abort(self, timeout: float = SPAWN_TIMEOUT) -> None:
        """Kill the container before it ran; wait for (and reap) the shim; remove its exit record
        and socket. Leaves no process behind."""
        if self._done:
            return
        self._done = True
        try:
            self._channel.kill_init()
        finally:
            self._channel.close()
        _wait_child(self.shim_pid, timeout)
        _remove_state(self._state_dir)


def reap(shim_pid: int) -> int | None:
    """Reap ``shim_pid`` if it has exited: its wait status, or None (still running, or not our
    child: after a daemon restart the shims are not the daemon's children, ECHILD is ignored)."""
    try:
        pid, status = os.waitpid(shim_pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return status if pid == shim_pid else None


def _wait_child(pid: int, timeout: float) -> None:
    """Wait for our child ``pid`` to exit, SIGKILL it after ``timeout``; ignores ECHILD."""
    try:
        pidfd = sc.pidfd_open(pid)
    except ProcessLookupError:
        pidfd = -1
    try:
        if pidfd >= 0 and not _wait_readable([pidfd], timeout):
            sc.pidfd_send_signal(pidfd, signal.SIGKILL)
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _remove_state(state_dir: Path) -> None:
    for name in (EXIT_NAME, SOCKET_NAME, EXIT_NAME + ".tmp"):
        try:
            os.unlink(state_dir / name)
        except FileNotFoundError:
            pass


def _validate(spec: ContainerSpec) -> None:
    if not spec.process.args:
        raise InvalidParameter("no command specified")
    if not spec.lowerdirs:
        raise InvalidParameter("a container needs at least one image layer")
    if spec.network not in ("none", "host") and not spec.network.startswith("/"):
        raise InvalidParameter(f"network mode {spec.network!r} is not supported by the runtime")
    problem = security.check_ulimits(spec.security.ulimits)
    if problem:
        raise InvalidParameter(problem)


def spawn(spec: ContainerSpec, timeout: float = SPAWN_TIMEOUT,
          on_init: Callable[[int], None] | None = None) -> Spawned:
    """Create the container's namespaces, rootfs and shim; return once the init waits for
    :meth:`Spawned.go` and the shim's attach socket listens. Raises :class:`DockyardError`
    (nothing left running) when set-up fails.

    ``on_init(pid)`` runs as soon as the init's host pid is known (and its ``oom_score_adj`` set),
    while the init still builds its rootfs: joining the cgroups there overlaps the kernel's RCU wait of the first
    ``cgroup.procs`` write (~6 ms here) with the rootfs set-up. An error it raises aborts."""
    _validate(spec)
    shim = shim_binary()
    security.prepare(spec.security)  # compiles seccomp, finds --init's binary
    hostname = spec.hostname or (socket.gethostname() if spec.network == "host" else spec.id[:12])
    state_dir = Path(spec.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    _remove_state(state_dir)

    status_r, status_w = os.pipe()
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    channel = _Channel(status_r, go_w)
    try:
        p0 = _fork_p0(spec, hostname, shim, (status_w, go_r, ready_w))
    except OSError:
        for fd in (status_r, status_w, go_r, go_w, ready_r, ready_w):
            os.close(fd)
        raise
    for fd in (status_w, go_r, ready_w):
        os.close(fd)

    def init_known(pid: int) -> None:
        _set_oom_score_adj(pid, spec.oom_score_adj)
        if on_init is not None:
            on_init(pid)

    deadline = time.monotonic() + timeout
    try:
        try:
            _wait_ready(channel, ready_r, deadline, init_known)
        finally:
            os.close(ready_r)
        pid2 = channel.init_pid()
        if pid2 is None or channel.pidfd < 0:
            raise DockyardError("the container init exited during set-up")
    except (DockyardError, TimeoutError, OSError) as err:
        channel.kill_init()  # a no-op when it already exited by itself
        channel.close()  # EOF on the go pipe also makes a waiting init exit
        _wait_child(p0, 5.0)
        _remove_state(state_dir)
        if isinstance(err, DockyardError):
            raise
        if isinstance(err, TimeoutError):
            raise DockyardError(f"container {spec.id[:12]} did not start within {timeout}s") from err
        raise DockyardError(f"starting container {spec.id[:12]}: {err}") from err
    return Spawned(shim_pid=p0, pid=pid2, channel=channel, state_dir=state_dir)


def _fork_p0(spec: ContainerSpec, hostname: str, shim: Path, fds: tuple[int, int, int]) -> int:
    """Fork P0 (``fds``: its status, go and ready pipe ends), from the spawner when it runs (see
    ``spawner.py``: a fork of the small spawner is cheaper than one of the daemon), else from here."""
    p0 = spawner.default.fork_p0((spec, hostname, shim), fds)
    if p0 is not None:
        return p0
    p0 = os.fork()
    if p0 == 0:
        run_p0(spec, hostname, shim, *fds)
    return p0


def run_p0(spec: ContainerSpec, hostname: str, shim: Path, status_w: int, go_r: int, ready_w: int) -> NoReturn:
    """The body of a freshly forked P0 (from the daemon or the spawner): never returns."""
    code = 1
    try:
        _p0(spec, hostname, shim, status_w, go_r, ready_w)
    except BaseException as err:  # noqa: B036 - nothing may escape a forked child
        _report(status_w, "F" + _describe(err))
    finally:
        os._exit(code)


def _set_oom_score_adj(pid: int, value: int) -> None:
    """Write the init's OOM score adjustment before it runs anything (Docker writes it even when 0,
    so that a container never inherits the daemon's own)."""
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(value))
    except PermissionError:
        raise DockyardError(f"cannot set the OOM score adjustment of the container to {value}: lowering it "
                            "needs CAP_SYS_RESOURCE, which the daemon lacks") from None


def _wait_ready(channel: _Channel, ready_r: int, deadline: float,
                on_init: Callable[[int], None] | None = None) -> None:
    """Wait for both the init's ``R`` and the shim's ready byte; raise on any failure."""
    shim_ready = False
    init_ready = False
    init_seen = on_init is None
    while not (shim_ready and init_ready):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        fds = ([] if init_ready else [channel.status_r]) + ([] if shim_ready else [ready_r])
        readable = _wait_readable(fds, remaining)
        if ready_r in readable:
            if not os.read(ready_r, 1):
                failure = _drain_failure(channel)
                raise DockyardError(failure or "the shim exited before it was ready (see shim.log)")
            shim_ready = True
        if channel.status_r in readable:
            chunk = os.read(channel.status_r, 4096)
            if not chunk:
                failure = _drain_failure(channel)
                raise DockyardError(failure or "the container init exited during set-up")
            channel.feed(chunk)
            failure = channel.failure()
            if failure is not None:
                raise _exec_error(failure)
            if not init_seen and (pid := channel.init_pid()) is not None:
                init_seen = True
                assert on_init is not None
                try:
                    on_init(pid)
                except (OSError, DockyardError):
                    # The init may have failed (and exited) first: its reason is the one to report.
                    try:
                        channel.read_messages(time.monotonic() + 1.0, until="F")
                    except (TimeoutError, OSError):
                        pass
                    reason = channel.failure()
                    if reason is not None:
                        raise _exec_error(reason) from None
                    raise
            # P2's "R" can come before P0's "P<pid>" (they write the pipe concurrently): wait for both.
            init_ready = "R" in channel.messages and channel.init_pid() is not None


def _drain_failure(channel: _Channel) -> str | None:
    """Read whatever status is left (briefly) and return the failure text, if any."""
    try:
        channel.read_messages(time.monotonic() + 1.0, until="F")
    except (TimeoutError, OSError):
        pass
    failure = channel.failure()
    return failure[1:] if failure else None


# ---- inside the forked children (no threads, no locks, no logging) ------------------------------

def _describe(err: BaseException) -> str:
    """A one-line text for an error raised in a child."""
    if isinstance(err, DockyardError):
        return err.message
    if isinstance(err, OSError) and err.strerror:
        text = err.strerror
        if err.filename:
            text = f"{err.filename}: {text}"
        return text
    return f"{type(err).__name__}: {err}"


def _report(fd: int, message: str) -> None:
    """Write one status line (atomic: under PIPE_BUF); never raises."""
    line = message.replace("\n", " ").encode(errors="replace")[:3000] + b"\n"
    try:
        os.write(fd, line)
    except OSError:
        pass


def _place_fds(targets: dict[int, int]) -> None:
    """dup2 each source fd to its target number (inheritable), whatever the current numbering:
    first every source is copied above 64, so no dup2 clobbers a source still needed."""
    high = {target: fcntl.fcntl(src, fcntl.F_DUPFD_CLOEXEC, 64) for target, src in targets.items()}
    for target, fd in high.items():
        os.dup2(fd, target, inheritable=True)
    for fd in high.values():
        os.close(fd)


def _close_fds_except(keep: set[int]) -> None:
    """Close every fd but 0-2 and ``keep``: fds another thread of the daemon opened for *another*
    container must not live on in this one's processes (a copy of its status pipe would delay
    its ``go()`` until this container execs)."""
    low = 3
    for fd in sorted(keep):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, max(os.sysconf("SC_OPEN_MAX"), 1024))


def become_shim_parent(state_dir: Path, process: ProcessSpec, shim_argv: list[str], status_w: int, go_r: int,
                       ready_w: int, enter: Callable[[], None],
                       child: Callable[[int, int, int, socket.socket | None], None],
                       also_close: tuple[int, ...] = ()) -> None:
    """The body of P0, for a container and for an exec: stdio to ``shim.log``, ``enter()`` (what P2
    must inherit, e.g. a pid namespace), the pipes or tty socket, the fork of P2 (which runs
    ``child(out_w, err_w, in_r, tty_socket)``), then ``execve`` of the shim with P2 as its child.
    ``shim_argv`` lacks ``--pid``/``--tty``/``--stdin``, added here; ``also_close`` are fds only P2
    needs. Never returns."""
    os.setsid()
    devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    log = os.open(state_dir / "shim.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)
    enter()

    tty_parent = tty_child = None
    out_r = out_w = err_r = err_w = in_r = in_w = -1
    if process.tty:
        tty_parent, tty_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if process.open_stdin:
            in_r, in_w = os.pipe()

    pid2 = os.fork()
    if pid2 == 0:
        try:
            os.close(ready_w)
            for fd in (out_r, err_r, in_w):
                if fd >= 0:
                    os.close(fd)
            if tty_parent is not None:
                tty_parent.close()
            child(out_w, err_w, in_r, tty_child)
        except BaseException as err:  # noqa: B036 - nothing may escape a forked child
            _report(status_w, "F" + _describe(err))
        finally:
            os._exit(1)

    os.close(go_r)
    for fd in (*also_close, out_w, err_w, in_r):
        if fd >= 0:
            os.close(fd)
    _report(status_w, f"P{pid2}")
    try:
        if tty_parent is not None:
            assert tty_child is not None
            tty_child.close()
            _, fds, _, _ = socket.recv_fds(tty_parent, 16, 1)
            tty_parent.close()
            if not fds:  # P2 failed before its tty existed; it reported why
                os.waitpid(pid2, 0)
                os._exit(1)
            targets = {3: fds[0], 6: ready_w}
        else:
            targets = {3: out_r, 4: err_r, 6: ready_w}
            if in_w >= 0:
                targets[5] = in_w
        _place_fds(targets)
        argv = [*shim_argv, "--pid", str(pid2)]
        if process.tty:
            argv.append("--tty")
        if process.open_stdin:
            argv.append("--stdin")
        os.execv(argv[0], argv)
    except BaseException as err:  # noqa: B036
        _report(status_w, f"Fexec {shim_argv[0]}: {_describe(err)}")
        try:
            os.kill(pid2, signal.SIGKILL)
            os.waitpid(pid2, 0)
        except OSError:
            pass
        os._exit(1)


def _p0(spec: ContainerSpec, hostname: str, shim: Path, status_w: int, go_r: int, ready_w: int) -> None:
    """P0: the daemon's child. Forks the container init into a new pid ns, then becomes the shim."""
    _close_fds_except({status_w, go_r, ready_w})

    def enter() -> None:
        if spec.security.pid != "host":  # --pid=host: the init stays in the host's pid ns
            sc.unshare(sc.CLONE_NEWPID)

    def child(out_w: int, err_w: int, in_r: int, tty: socket.socket | None) -> None:
        _p2(spec, hostname, status_w, go_r, out_w, err_w, in_r, tty)

    argv = [str(shim), "--id", spec.id, "--dir", str(Path(spec.state_dir).absolute()),
            "--log-path", str(Path(spec.log_path).absolute()),
            "--log-max-size", str(spec.log_max_size), "--log-max-file", str(spec.log_max_file)]
    if spec.log_compress:
        argv.append("--log-compress")
    become_shim_parent(Path(spec.state_dir), spec.process, argv, status_w, go_r, ready_w, enter, child)


def stdio_then_wait_for_go(user: ResolvedUser, tty_sock: socket.socket | None, in_r: int, out_w: int,
                           err_w: int, status_w: int, go_r: int) -> None:
    """In P2, for a container or an exec: a new session; stdio from the tty (made in the container's
    devpts, its master sent to P0 over ``tty_sock``) or the pipes (stdin /dev/null without -i);
    then "ready" to the daemon, and block until it says "go" (EOF: aborted, exit)."""
    os.setsid()
    if tty_sock is not None:
        master, slave = _open_tty(user)
        fcntl.ioctl(slave, TIOCSCTTY, 0)
        socket.send_fds(tty_sock, [b"m"], [master])
        os.close(master)
        tty_sock.close()
        for target in (0, 1, 2):
            os.dup2(slave, target)
        if slave > 2:
            os.close(slave)
    else:
        if in_r < 0:
            in_r = os.open("/dev/null", os.O_RDONLY)
        os.dup2(in_r, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in {in_r, out_w, err_w}:
            if fd > 2:
                os.close(fd)

    _report(status_w, "R")
    if os.read(go_r, 1) != b"G":
        os._exit(1)  # aborted
    os.close(go_r)


def _open_tty(user: ResolvedUser) -> tuple[int, int]:
    """Open a pty pair on the container's devpts; returns (master, slave)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
    slave = os.open(f"/dev/pts/{number}", os.O_RDWR | os.O_NOCTTY)
    os.fchown(slave, user.uid, TTY_GID)
    return master, slave


def _make_cwd(cwd: str, user: ResolvedUser) -> None:
    """chdir to the working dir, creating missing components owned by the user (as Docker does)."""
    path = "/"
    for part in [p for p in cwd.split("/") if p]:
        path = os.path.join(path, part)
        try:
            os.mkdir(path, 0o755)
            os.chown(path, user.uid, user.gid)
        except FileExistsError:
            pass
    os.chdir(cwd)


def _lookup(arg0: str, env: list[str]) -> str:
    """Find the executable like Go's exec.LookPath with the container's PATH; raise
    InvalidParameter with Docker's message and exit code."""

    def executable(path: str) -> int:
        st = os.stat(path)  # FileNotFoundError propagates
        if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
            return errno.EACCES
        return 0

    if "/" in arg0:
        try:
            err = executable(arg0)
        except OSError as exc:
            code = 127 if exc.errno in (errno.ENOENT, errno.ENOTDIR) else 126
            raise InvalidParameter(f'exec: "{arg0}": stat {arg0}: {os.strerror(exc.errno or 0).lower()}',
                                   exit_code=code) from None
        if err:
            raise InvalidParameter(f'exec: "{arg0}": permission denied', exit_code=126)
        return arg0
    path_var = next((e[5:] for e in reversed(env) if e.startswith("PATH=")), "")
    for directory in path_var.split(":"):
        candidate = os.path.join(directory or ".", arg0)
        try:
            if executable(candidate) == 0:
                return candidate
        except OSError:
            continue
    raise InvalidParameter(f'exec: "{arg0}": executable file not found in $PATH', exit_code=127)


def _join_netns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(fd, sc.CLONE_NEWNET)
    finally:
        os.close(fd)


def _p2(spec: ContainerSpec, hostname: str, status_w: int, go_r: int, out_w: int, err_w: int,
        in_r: int, tty_sock: socket.socket | None) -> None:
    """P2: the container's init (PID 1 of the new pid ns) up to its execve."""
    proc = spec.process
    os.umask(0o022)
    flags = sc.CLONE_NEWNS | security.unshare_flags(spec.security)
    if spec.network.startswith("/"):
        _join_netns(spec.network)  # a namespace the network service prepared (or another container's)
    elif spec.network == "none":
        flags |= sc.CLONE_NEWNET
    sc.unshare(flags)
    if spec.network == "none":
        loopback_up()
    setup_rootfs(spec, hostname)
    user = resolve_user(proc.user, Path("/"))
    env = container_env(proc, hostname, user.home)
    _make_cwd(proc.cwd or "/", user)
    sgids = [*user.sgids, *security.extra_gids(spec.security.group_add)]
    security.finish_root(spec.security)  # --read-only
    args = [security.INIT_PATH, "--", *proc.args] if spec.security.init else proc.args

    stdio_then_wait_for_go(user, tty_sock, in_r, out_w, err_w, status_w, go_r)

    pending = security.confine_process(spec.security, user.uid, user.gid, sgids)  # ids, caps, seccomp
    try:
        path = _lookup(args[0], env)
    except InvalidParameter as err:
        _report(status_w, f"E{err.exit_code}:{err.message}")
        os._exit(err.exit_code or 127)
    sc.reset_signals()
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    _close_fds_except({status_w})
    security.last_step(spec.security, pending)  # no_new_privs, then a seccomp filter that waited for it
    try:
        os.execve(path, args, dict(e.partition("=")[::2] for e in env))
    except OSError as err:
        code = 127 if err.errno == errno.ENOENT else 126
        _report(status_w, f'E{code}:exec: "{proc.args[0]}": {os.strerror(err.errno or 0).lower()}')
        os._exit(code)
