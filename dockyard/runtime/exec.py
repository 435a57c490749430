"""Run one more process inside a running container: ``spawn_exec(spec)`` then ``Spawned.go()``.

Process tree::

    daemon ─ fork ─ P0: setsid, stderr -> shim.log, setns(pid of the init) ─ fork ─ P2 (in the container's pid ns)
                     └─ execve(dockyard-shim --log-path "")   P2: join the init's cgroups; setns(uts, ipc,
                                                                  net, mnt); root = the init's root; user,
                                                                  cwd, env, stdio; "ready"; waits for "go"; execve

Terms: the *init* is the container's first process (``ExecSpec.init_pid``, as the host sees it).
*Joining* a namespace is ``setns`` on ``/proc/<init>/ns/<kind>``; only namespaces that differ from
the daemon's are joined (a ``--network host`` container shares the host's net ns). ``setns(pid)``
only affects children, which is why P0 joins it and P2 is forked afterwards. P2 joins the mount
namespace itself: P0 must still see the host's filesystem to exec the shim.

The shim is the same ``dockyard-shim`` as for a container, with its own state dir
(``containers/<id>/exec/<exec id>/``: ``attach.sock``, ``exit``, ``shim.log``) and no json-file log.
Status and go pipes, ``Spawned``, 126/127 errors: exactly as in :mod:`dockyard.runtime.spawn`.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.errors import Conflict, DockyardError, InvalidParameter
from dockyard.runtime import security as confinement
from dockyard.runtime import spawn as sp
from dockyard.runtime import syscalls as sc
from dockyard.runtime.shim import shim_binary
from dockyard.runtime.spec import ProcessSpec, container_env
from dockyard.runtime.users import resolve_user

NAMESPACES = (("uts", sc.CLONE_NEWUTS), ("ipc", sc.CLONE_NEWIPC), ("net", sc.CLONE_NEWNET),
              ("mnt", sc.CLONE_NEWNS))
"""The namespaces P2 joins, in order (mnt last: after it the host's /proc and /sys are gone)."""


@dataclass
class ExecSpec:
    """One exec: the container it enters, the process, and where its shim keeps state."""

    container_id: str
    exec_id: str
    init_pid: int        # the container's init as the host sees it
    state_dir: Path      # containers/<id>/exec/<exec id>/
    process: ProcessSpec  # env: the container's Env then the exec's; user/cwd resolved inside the container
    hostname: str = ""
    cgroup_procs: list[Path] = field(default_factory=list)  # cgroup.procs files the daemon moves P2 into
    # The container's confinement (caps, seccomp, no_new_privs, rlimits, group_add); None: only the
    # user's ids are set. Its mount-time parts (masks, read-only /) are already in the mount ns.
    security: confinement.SecuritySpec | None = None


def init_cgroups(init_pid: int, cgroup_root: Path = Path("/sys/fs/cgroup")) -> list[Path]:
    """The ``cgroup.procs`` files of the init's cgroups that differ from ours (v1 and v2).

    Reading ``/proc/<pid>/cgroup`` keeps this independent of how the container's cgroups were
    made: an exec simply goes wherever its init is."""

    def parse(pid: str) -> dict[str, str]:
        out: dict[str, str] = {}
        try:
            text = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            return out
        for line in text.splitlines():
            _, controllers, path = line.split(":", 2)
            out[controllers] = path
        return out

    theirs, ours = parse(str(init_pid)), parse("self")
    found: list[Path] = []
    for controllers, path in theirs.items():
        if ours.get(controllers) == path:
            continue
        if controllers == "":
            bases = [cgroup_root / "unified", cgroup_root]
        else:
            name = controllers.removeprefix("name=")
            bases = [cgroup_root / controllers, cgroup_root / name]
        for base in bases:
            procs = base / path.lstrip("/") / "cgroup.procs"
            if procs.exists():
                found.append(procs)
                break
    return found


def _open_namespaces(init_pid: int) -> tuple[dict[str, int], int, int]:
    """fds of the init's namespaces that differ from ours, its pid ns (-1 if shared) and its root."""
    opened: dict[str, int] = {}
    proc = os.open(f"/proc/{init_pid}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for kind in [k for k, _ in NAMESPACES] + ["pid"]:
            if os.readlink(f"/proc/{init_pid}/ns/{kind}") == os.readlink(f"/proc/self/ns/{kind}"):
                continue
            opened[kind] = os.open(f"ns/{kind}", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
        root = os.open("root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc)
    except OSError:
        for fd in opened.values():
            os.close(fd)
        raise
    finally:
        os.close(proc)
    pid_ns = opened.pop("pid", -1)
    return opened, pid_ns, root


def spawn_exec(spec: ExecSpec, timeout: float = sp.SPAWN_TIMEOUT) -> sp.Spawned:
    """Start the exec's shim and process, held before its execve; raise :class:`Conflict` when the
    container's init is gone, :class:`DockyardError` when set-up fails (nothing left running)."""
    if not spec.process.args:
        raise InvalidParameter("No exec command specified")
    shim = shim_binary()
    if spec.security is not None:
        spec.security.init = False  # an exec runs its own command, never docker-init
        confinement.prepare(spec.security)  # compiles seccomp before the fork
    state_dir = Path(spec.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    sp._remove_state(state_dir)
    try:
        ns_fds, pid_ns, root_fd = _open_namespaces(spec.init_pid)
    except OSError as err:
        raise Conflict(f"Container {spec.container_id} is not running") from err

    status_r, status_w = os.pipe()
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    channel = sp._Channel(status_r, go_w)
    owned = [*ns_fds.values(), pid_ns, root_fd]
    try:
        p0 = os.fork()
    except OSError:
        for fd in (status_r, status_w, go_r, go_w, ready_r, ready_w, *owned):
            if fd >= 0:
                os.close(fd)
        raise
    if p0 == 0:
        try:
            _p0(spec, shim, status_w, go_r, ready_w, ns_fds, pid_ns, root_fd)
        except BaseException as err:  # noqa: B036 - nothing may escape a forked child
            sp._report(status_w, "F" + sp._describe(err))
        finally:
            os._exit(1)
    for fd in (status_w, go_r, ready_w, *owned):
        if fd >= 0:
            os.close(fd)

    deadline = time.monotonic() + timeout
    try:
        try:
            sp._wait_ready(channel, ready_r, deadline, on_init=lambda pid: _join_cgroups(spec.cgroup_procs, pid))
        finally:
            os.close(ready_r)
        pid2 = channel.init_pid()
        if pid2 is None or channel.pidfd < 0:
            raise DockyardError("the exec process exited during set-up")
    except (DockyardError, TimeoutError, OSError) as err:
        channel.kill_init()
        channel.close()
        sp._wait_child(p0, 5.0)
        sp._remove_state(state_dir)
        if isinstance(err, DockyardError):
            raise
        if isinstance(err, TimeoutError):
            raise DockyardError(f"exec {spec.exec_id[:12]} did not start within {timeout}s") from err
        raise DockyardError(f"starting exec {spec.exec_id[:12]}: {err}") from err
    return sp.Spawned(shim_pid=p0, pid=pid2, channel=channel, state_dir=state_dir)


def _join_cgroups(procs_files: list[Path], pid: int) -> None:
    """Move the exec's process into the container's cgroups, from the daemon while the process
    joins the namespaces (the first write waits for an RCU grace period: overlapped)."""
    for procs in procs_files:
        try:
            with open(procs, "w") as f:
                f.write(str(pid))
        except FileNotFoundError:
            pass  # the container's cgroup went away with it; the exec fails to start anyway


# ---- inside the forked children (no threads, no locks, no logging) ------------------------------

def _p0(spec: ExecSpec, shim: Path, status_w: int, go_r: int, ready_w: int, ns_fds: dict[str, int],
        pid_ns: int, root_fd: int) -> None:
    """P0: joins the container's pid ns (for its children), forks P2, becomes the shim."""
    keep = {status_w, go_r, ready_w, root_fd, *ns_fds.values()}
    if pid_ns >= 0:
        keep.add(pid_ns)
    sp._close_fds_except(keep)

    def enter() -> None:
        if pid_ns >= 0:
            sc.setns(pid_ns, sc.CLONE_NEWPID)
            os.close(pid_ns)

    def child(out_w: int, err_w: int, in_r: int, tty: socket.socket | None) -> None:
        _p2(spec, status_w, go_r, out_w, err_w, in_r, tty, ns_fds, root_fd)

    argv = [str(shim), "--id", spec.container_id, "--dir", str(Path(spec.state_dir).absolute()), "--log-path", ""]
    sp.become_shim_parent(Path(spec.state_dir), spec.process, argv, status_w, go_r, ready_w, enter, child,
                          also_close=(root_fd, *ns_fds.values()))


def _p2(spec: ExecSpec, status_w: int, go_r: int, out_w: int, err_w: int, in_r: int,
        tty_sock: socket.socket | None, ns_fds: dict[str, int], root_fd: int) -> None:
    """P2: the exec process, inside the container's pid ns, up to its execve."""
    proc = spec.process
    os.umask(0o022)
    for kind, nstype in NAMESPACES:
        fd = ns_fds.get(kind)
        if fd is not None:
            sc.setns(fd, nstype)
            os.close(fd)
    # The init's root (its pivot_root'ed overlay); after setns(mnt) "/" is already it, this
    # makes sure even if the namespace's root mount differs.
    os.fchdir(root_fd)
    os.chroot(".")
    os.close(root_fd)
    os.chdir("/")
    user = resolve_user(proc.user, Path("/"))
    env = container_env(proc, spec.hostname, user.home)
    cwd = proc.cwd or "/"
    try:
        os.chdir(cwd)
    except OSError as err:
        reason = os.strerror(err.errno or 0).lower()
        raise InvalidParameter(f'chdir to cwd ("{cwd}") set in config.json failed: {reason}') from None

    sp.stdio_then_wait_for_go(user, tty_sock, in_r, out_w, err_w, status_w, go_r)

    pending = None
    if spec.security is None:
        os.setgroups(user.sgids)
        os.setgid(user.gid)
        os.setuid(user.uid)
    else:
        sgids = [*user.sgids, *confinement.extra_gids(spec.security.group_add)]
        pending = confinement.confine_process(spec.security, user.uid, user.gid, sgids)  # ids, caps, seccomp
    try:
        path = sp._lookup(proc.args[0], env)
    except InvalidParameter as err:
        sp._report(status_w, f"E{err.exit_code}:{err.message}")
        os._exit(err.exit_code or 127)
    sc.reset_signals()
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    sp._close_fds_except({status_w})
    if spec.security is not None:
        confinement.last_step(spec.security, pending)  # no_new_privs, then a seccomp filter that waited for it
    try:
        os.execve(path, proc.args, dict(e.partition("=")[::2] for e in env))
    except OSError as err:
        code = 127 if err.errno == 2 else 126
        sp._report(status_w, f'E{code}:exec: "{proc.args[0]}": {os.strerror(err.errno or 0).lower()}')
        os._exit(code)
