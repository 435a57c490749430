"""How confined a container is (:class:`SecuritySpec`) and the steps of the container init that
confine it, in the order runc takes them.

Terms: a *masked path* is hidden (``/dev/null`` bound over a file, an empty read-only tmpfs over a
directory); a *read-only path* is bound onto itself read-only. ``ipc``/``pid``/``uts`` modes:
``"private"`` (a namespace of the container's own; also ``"shareable"`` for ipc) or ``"host"``
(the host's namespace); ipc ``"none"`` is a private namespace without ``/dev/shm``.

The steps, called from :mod:`dockyard.runtime.spawn` and :mod:`dockyard.runtime.rootfs` inside
the forked container init (no threads, errors raised as OSError):

- :func:`before_pivot`: sysctls, host devices (privileged), ``/sbin/docker-init``, host ``/dev/shm``;
- :func:`after_pivot`: masked and read-only paths;
- :func:`finish_root`: the read-only remount of ``/`` (after the working dir exists);
- :func:`confine_process`: rlimits, seccomp (unless no_new_privs), bounding set, uid/gids, caps;
- :func:`last_step`: no_new_privs and then seccomp, right before ``execve``.
"""

from __future__ import annotations

import os
import resource
import stat
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.errors import InvalidParameter
from dockyard.runtime import capabilities as caps
from dockyard.runtime import seccomp
from dockyard.runtime import syscalls as sc
from dockyard.runtime.seccomp import Program

DEFAULT_MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
"""Docker's default masked paths (``oci.DefaultSpec``)."""

DEFAULT_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)
"""Docker's default read-only paths."""

INIT_PATH = "/sbin/docker-init"
"""Where ``--init``'s binary appears inside the container, as in Docker."""

RLIMITS: dict[str, int] = {
    "as": resource.RLIMIT_AS, "core": resource.RLIMIT_CORE, "cpu": resource.RLIMIT_CPU,
    "data": resource.RLIMIT_DATA, "fsize": resource.RLIMIT_FSIZE, "locks": 10,  # RLIMIT_LOCKS
    "memlock": resource.RLIMIT_MEMLOCK, "msgqueue": resource.RLIMIT_MSGQUEUE,
    "nice": resource.RLIMIT_NICE, "nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC,
    "rss": resource.RLIMIT_RSS, "rtprio": resource.RLIMIT_RTPRIO, "rttime": resource.RLIMIT_RTTIME,
    "sigpending": resource.RLIMIT_SIGPENDING, "stack": resource.RLIMIT_STACK,
}
"""``--ulimit`` names (Docker's) -> the kernel's resource numbers."""


@dataclass
class Ulimit:
    """One ``--ulimit name=soft:hard``; -1 means unlimited."""

    name: str
    soft: int
    hard: int


@dataclass
class SecuritySpec:
    """The confinement of one container. The defaults are Docker's defaults."""

    capabilities: list[str] = field(default_factory=lambda: list(caps.DEFAULT_CAPABILITIES))
    privileged: bool = False          # all devices, /sys read-write (caps/seccomp/paths set by the caller)
    seccomp: str = ""                 # "" the default profile, "unconfined", or a JSON profile
    no_new_privileges: bool = False
    masked_paths: list[str] = field(default_factory=lambda: list(DEFAULT_MASKED_PATHS))
    readonly_paths: list[str] = field(default_factory=lambda: list(DEFAULT_READONLY_PATHS))
    readonly_rootfs: bool = False
    group_add: list[str] = field(default_factory=list)   # names (resolved in the image) or gids
    ulimits: list[Ulimit] = field(default_factory=list)
    ipc: str = "private"              # private | shareable | host | none
    pid: str = "private"              # private | host
    uts: str = "private"              # private | host
    sysctls: dict[str, str] = field(default_factory=dict)
    init: bool = False                # --init: run /sbin/docker-init as PID 1, the command as its child
    init_binary: str = ""             # its host path; prepare() finds (or builds) it when empty
    seccomp_filter: Program | None = None  # compiled and exported by prepare(), before the fork


def prepare(security: SecuritySpec) -> None:
    """In the daemon, before forking: compile the seccomp profile (so a bad profile fails the
    start cleanly and the init needs no host file) and locate the init binary."""
    missing = caps.unavailable(security.capabilities)
    if missing:
        raise InvalidParameter(f"cannot give the container {', '.join(missing)}: the engine does not hold "
                               "it itself (it is not in dockyard's bounding set)")
    if security.seccomp != seccomp.UNCONFINED:
        text = security.seccomp or seccomp.read_default()
        # the init installs the program after the fork
        security.seccomp_filter = Program(seccomp.export_bpf(seccomp.compile_profile(text, security.capabilities)))
    else:
        security.seccomp_filter = None
    if security.init and not security.init_binary:
        from dockyard.runtime.init_binary import init_binary

        security.init_binary = str(init_binary())


def unshare_flags(security: SecuritySpec) -> int:
    """The CLONE_NEW* flags for the uts and ipc namespaces (the mount ns is always new)."""
    flags = 0
    if security.uts != "host":
        flags |= sc.CLONE_NEWUTS
    if security.ipc != "host":
        flags |= sc.CLONE_NEWIPC
    return flags


def check_ulimits(ulimits: list[Ulimit]) -> str | None:
    """Why these limits cannot be set here (the engine has no CAP_SYS_RESOURCE, so no hard limit
    may exceed the daemon's own), or None."""
    for limit in ulimits:
        if limit.name not in RLIMITS:
            return f"invalid ulimit type: {limit.name}"
        _, current_hard = resource.getrlimit(RLIMITS[limit.name])
        wanted = resource.RLIM_INFINITY if limit.hard < 0 else limit.hard
        if current_hard != resource.RLIM_INFINITY and (wanted == resource.RLIM_INFINITY or wanted > current_hard):
            return (f"cannot set ulimit {limit.name} hard limit to {limit.hard}: above the engine's own hard "
                    f"limit {current_hard} (raising it needs CAP_SYS_RESOURCE, which dockyard does not have)")
    return None


# ---- inside the container init -------------------------------------------------------------------

def _write_sysctls(root: str, sysctls: dict[str, str]) -> None:
    for key, value in sorted(sysctls.items()):
        path = os.path.join(root, "proc/sys", *key.split("."))
        with open(path, "w") as handle:
            handle.write(value)


def _host_devices(dev: str) -> None:
    """Recreate every host device node under the container's ``dev`` (privileged)."""
    for directory, dirnames, filenames in os.walk("/dev"):
        rel = os.path.relpath(directory, "/dev")
        dirnames[:] = [d for d in dirnames if not (rel == "." and d in ("pts", "shm", "mqueue"))]
        for name in filenames:
            source = os.path.join(directory, name)
            st = os.lstat(source)
            if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
                continue
            if rel == "." and name in ("ptmx", "console"):
                continue
            target = os.path.normpath(os.path.join(dev, rel, name))
            if os.path.lexists(target):
                continue
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            os.mknod(target, stat.S_IMODE(st.st_mode) | stat.S_IFMT(st.st_mode), st.st_rdev)
            os.chown(target, st.st_uid, st.st_gid)


def before_pivot(security: SecuritySpec, root: str, dev: str) -> None:
    """Steps that need the host still visible: sysctls, devices, the init binary, host shm."""
    if security.sysctls:
        _write_sysctls(root, security.sysctls)
    if security.privileged:
        _host_devices(dev)
    if security.ipc == "host" and os.path.isdir("/dev/shm"):
        sc.mount("/dev/shm", os.path.join(dev, "shm"), None, sc.MS_BIND | sc.MS_REC)
    if security.init:
        from dockyard.runtime.rootfs import resolve_in_root

        target = resolve_in_root(root, INIT_PATH)
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if not os.path.lexists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o755))
        sc.mount(security.init_binary, target, None, sc.MS_BIND)
        sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)


def _readonly_bind(path: str) -> None:
    """Bind ``path`` onto itself and remount it read-only, keeping its nosuid/nodev/noexec."""
    sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
    flags = sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY
    vfs = os.statvfs(path)
    for bit in (sc.MS_NOSUID, sc.MS_NODEV, sc.MS_NOEXEC):
        if vfs.f_flag & bit:  # ST_* flags share MS_* values for these
            flags |= bit
    sc.mount(None, path, None, flags)


def after_pivot(security: SecuritySpec) -> None:
    """Mask and make read-only the configured paths (missing ones are skipped, as runc does)."""
    for path in security.readonly_paths:
        try:
            _readonly_bind(path)
        except FileNotFoundError:
            continue
    for path in security.masked_paths:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISDIR(st.st_mode):
            sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, "size=0k,mode=755")
        else:
            sc.mount("/dev/null", path, None, sc.MS_BIND)


def finish_root(security: SecuritySpec) -> None:
    """``--read-only``: remount the container's root read-only (its other mounts stay as they are)."""
    if security.readonly_rootfs:
        sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)


def _set_rlimits(ulimits: list[Ulimit]) -> None:
    for limit in ulimits:
        number = RLIMITS[limit.name]
        soft = resource.RLIM_INFINITY if limit.soft < 0 else limit.soft
        hard = resource.RLIM_INFINITY if limit.hard < 0 else limit.hard
        try:
            resource.setrlimit(number, (soft, hard))
        except (ValueError, OSError) as err:
            raise OSError(f"setting ulimit {limit.name}={limit.soft}:{limit.hard}: {err}") from None


def confine_process(security: SecuritySpec, uid: int, gid: int, sgids: list[int]) -> seccomp.Program | None:
    """After "go": rlimits, then (as runc) seccomp while the init still has CAP_SYS_ADMIN unless
    no_new_privs is wanted, the bounding set, the ids, and the final capability sets. Returns the
    filter still to load by :func:`last_step` (with no_new_privs), or None."""
    _set_rlimits(security.ulimits)
    compiled = security.seccomp_filter
    if compiled is not None and not security.no_new_privileges:
        seccomp.install(compiled, set_no_new_privs=False)
        compiled = None
    wanted = caps.mask(security.capabilities)
    caps.drop_bounding(wanted)
    caps.keep_caps_across_setuid()
    os.setgroups(sgids)
    os.setgid(gid)
    os.setuid(uid)
    caps.apply_final(security.capabilities)
    return compiled


def last_step(security: SecuritySpec, pending: seccomp.Program | None) -> None:
    """Right before execve: no_new_privs, then the filter that needed it."""
    if security.no_new_privileges:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    if pending is not None:
        seccomp.install(pending, set_no_new_privs=True)


def extra_gids(group_add: list[str], group_file: Path = Path("/etc/group")) -> list[int]:
    """``--group-add`` values as gids: numbers as they are, names looked up in the image's group file."""
    from dockyard.runtime.users import parse_group

    try:
        groups = parse_group(group_file.read_text(errors="replace"))
    except (FileNotFoundError, NotADirectoryError):
        groups = []
    gids = []
    for value in group_add:
        found = next((g.gid for g in groups if g.name == value), None)
        if found is None:
            if not value.isdigit():
                raise OSError(f"Unable to find group {value}: no matching entries in group file")
            found = int(value)
        gids.append(found)
    return gids
