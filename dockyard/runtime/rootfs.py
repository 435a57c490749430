"""The container's filesystem view, built by the container init inside its own mount namespace.

:func:`setup_rootfs` runs in P2 (see ``docs/architecture.md``) after ``unshare(CLONE_NEWNS)``:
it makes every inherited mount private (nothing propagates back to the host), mounts the overlay
(the image layers plus the container's writable upper dir) on ``spec.rootfs``, fills in ``/proc``,
``/dev``, ``/sys`` and the bind-mounted ``/etc`` files, sets the hostname, and finally pivots into
the overlay and detaches the host's root. Afterwards the process sees only the container's mounts.

*Inside the rootfs* means: paths are resolved by :func:`resolve_in_root`, which follows symlinks
as if the rootfs were ``/``, so an image's symlink can never make us create or mount something on
the host. The code runs in a forked child: no threads, no logging, errors are raised as OSError.
"""

from __future__ import annotations

import errno
import os
import stat

from dockyard.runtime import security
from dockyard.runtime import syscalls as sc
from dockyard.runtime.devices import create_nodes
from dockyard.runtime.mounts import apply_mounts
from dockyard.runtime.spec import ContainerSpec

MAX_SYMLINKS = 40

DEVICES = {  # name -> (major, minor); all mode 0666
    "null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0),
}
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx", "core": "/proc/kcore"}


def resolve_in_root(root: str, path: str) -> str:
    """The host path of ``path`` inside ``root``, resolving symlinks with ``root`` as ``/``.

    Components that do not exist are kept as they are (the caller may create them); ``..`` never
    climbs above ``root``.
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, f"too many levels of symbolic links resolving {path} in {root}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _mkdir_in_root(root: str, path: str, mode: int = 0o755) -> str:
    """Create directory ``path`` inside ``root`` (and its parents); returns its host path."""
    host = resolve_in_root(root, path)
    os.makedirs(host, mode=mode, exist_ok=True)
    return host


def _file_in_root(root: str, path: str) -> str:
    """Make sure a file (a bind-mount target) exists at ``path`` inside ``root``."""
    host = resolve_in_root(root, path)
    os.makedirs(os.path.dirname(host), mode=0o755, exist_ok=True)
    if not os.path.lexists(host):
        os.close(os.open(host, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644))
    return host


def overlay_options(spec: ContainerSpec) -> tuple[str, str | None]:
    """The overlay mount data, and a directory to chdir to first when the absolute form would
    exceed the kernel's one-page limit (the layer paths are then given relative to it)."""
    lower = ":".join(str(p) for p in spec.lowerdirs)
    data = f"lowerdir={lower},upperdir={spec.upperdir},workdir={spec.workdir}"
    if len(data) < 4000:
        return data, None
    base = os.path.commonpath([str(p) for p in [*spec.lowerdirs, spec.upperdir, spec.workdir]])
    rel = [os.path.relpath(p, base) for p in spec.lowerdirs]
    data = (f"lowerdir={':'.join(rel)},upperdir={os.path.relpath(spec.upperdir, base)},"
            f"workdir={os.path.relpath(spec.workdir, base)}")
    return data, base


def mount_overlay(spec: ContainerSpec) -> None:
    """Mount the image layers + the writable layer on ``spec.rootfs``."""
    if not spec.lowerdirs:
        raise OSError(errno.EINVAL, "a container needs at least one image layer")
    data, base = overlay_options(spec)
    if base is not None:
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        os.chdir(base)
        try:
            sc.mount("overlay", spec.rootfs, "overlay", 0, data)
        finally:
            os.fchdir(cwd)
            os.close(cwd)
    else:
        sc.mount("overlay", spec.rootfs, "overlay", 0, data)


def setup_dev(root: str, ipc: str = "private") -> None:
    """A tmpfs ``/dev`` with the usual devices, a private devpts instance, shm and mqueue."""
    dev = _mkdir_in_root(root, "/dev")
    sc.mount("tmpfs", dev, "tmpfs", sc.MS_NOSUID | sc.MS_STRICTATIME, "mode=755,size=65536k")
    for name, (major, minor) in DEVICES.items():
        path = os.path.join(dev, name)
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            os.chmod(path, 0o666)
        except PermissionError:  # no mknod (e.g. in a user namespace): bind the host's device
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666))
            sc.mount(f"/dev/{name}", path, None, sc.MS_BIND)
    pts = os.path.join(dev, "pts")
    os.mkdir(pts, 0o755)
    sc.mount("devpts", pts, "devpts", sc.MS_NOSUID | sc.MS_NOEXEC,
             "newinstance,ptmxmode=0666,mode=0620,gid=5")
    shm = os.path.join(dev, "shm")
    os.mkdir(shm, 0o1777)
    if ipc == "private":  # "host" binds the host's later; "none" has no /dev/shm mount
        sc.mount("shm", shm, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "mode=1777,size=65536k")
    mqueue = os.path.join(dev, "mqueue")
    os.mkdir(mqueue, 0o755)
    sc.mount("mqueue", mqueue, "mqueue", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    for name, target in DEV_LINKS.items():
        os.symlink(target, os.path.join(dev, name))


def setup_rootfs(spec: ContainerSpec, hostname: str) -> None:
    """Everything between ``unshare(CLONE_NEWNS|...)`` and the container's ``chdir``; ends with
    the process's root being the container's overlay."""
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    mount_overlay(spec)
    root = str(spec.rootfs)

    proc = _mkdir_in_root(root, "/proc")
    sc.mount("proc", proc, "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    sec = spec.security
    setup_dev(root, "private" if sec.ipc == "shareable" else sec.ipc)
    create_nodes(root, spec.devices, resolve_in_root)  # --device (runtime/devices.py)
    sys_dir = _mkdir_in_root(root, "/sys")
    sys_ro = 0 if sec.privileged else sc.MS_RDONLY  # privileged: /sys read-write, as Docker
    sc.mount("sysfs", sys_dir, "sysfs", sys_ro | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)

    for target, source in sorted(spec.etc_files.items()):
        host = _file_in_root(root, target)
        sc.mount(str(source), host, None, sc.MS_BIND)
    apply_mounts(root, spec.mounts, resolve_in_root)  # volumes, binds, tmpfs (runtime/mounts.py)
    security.before_pivot(sec, root, resolve_in_root(root, "/dev"))  # runtime/security.py

    if sec.uts != "host":
        sc.sethostname(hostname)
    enter_root(root)
    security.after_pivot(sec)  # masked and read-only paths


def enter_root(root: str) -> None:
    """pivot_root into ``root`` (a mount point) and detach the old root from the namespace."""
    old_root = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    new_root = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        sc.pivot_root(".", ".")  # the old root is now stacked on top of the new one
        os.fchdir(old_root)
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old_root)
        os.close(new_root)
