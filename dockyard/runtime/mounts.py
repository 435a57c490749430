"""The container's own mounts (volumes, binds, tmpfs), made by its init between the overlay and pivot_root.

Runs in P2 (see ``docs/architecture.md``): a forked child inside the container's fresh mount
namespace, so nothing here appears in the host's mount table. Terms:

- *destination*: a path inside the container; it is resolved with the rootfs as ``/`` (the
  caller's ``resolve`` is ``rootfs.resolve_in_root``), so an image's symlink at or above it can
  never make a mount land on the host; it is created if missing, as a directory or as an empty
  file when the source is not a directory.
- *options*: mount(8) words; the flag words (``ro``, ``noexec``, ``nosuid``…) become mount flags,
  later words overriding earlier ones, the rest (``size=``, ``mode=``…) is the filesystem's data.
- *copy-up*: Docker fills a volume that is still empty with what the image holds at the
  destination (ownership, modes, times, symlinks as symlinks), once, before mounting it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from dockyard.runtime import syscalls as sc
from dockyard.runtime.spec import MountSpec

FLAG_WORDS: dict[str, tuple[int, bool]] = {  # word -> (flag, set it?)
    "ro": (sc.MS_RDONLY, True), "rw": (sc.MS_RDONLY, False),
    "noexec": (sc.MS_NOEXEC, True), "exec": (sc.MS_NOEXEC, False),
    "nosuid": (sc.MS_NOSUID, True), "suid": (sc.MS_NOSUID, False),
    "nodev": (sc.MS_NODEV, True), "dev": (sc.MS_NODEV, False),
    "sync": (sc.MS_SYNCHRONOUS, True), "async": (sc.MS_SYNCHRONOUS, False),
    "noatime": (sc.MS_NOATIME, True), "atime": (sc.MS_NOATIME, False),
    "nodiratime": (sc.MS_NODIRATIME, True), "diratime": (sc.MS_NODIRATIME, False),
    "relatime": (sc.MS_RELATIME, True), "norelatime": (sc.MS_RELATIME, False),
    "strictatime": (sc.MS_STRICTATIME, True), "nostrictatime": (sc.MS_STRICTATIME, False),
}
PROPAGATION = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE | sc.MS_REC,
}


def split_options(options: list[str]) -> tuple[int, str]:
    """Mount flags and the data string from mount(8)-style words."""
    flags = 0
    data = []
    for word in options:
        known = FLAG_WORDS.get(word)
        if known is None:
            if word:
                data.append(word)
            continue
        bit, on = known
        flags = flags | bit if on else flags & ~bit
    return flags, ",".join(data)


def copy_tree(src: str, dst: str) -> None:
    """Copy the contents of directory ``src`` into the existing directory ``dst`` without following
    symlinks, keeping owners, modes and times (what Docker's copy-up keeps)."""
    for entry in os.scandir(src):
        source = entry.path
        target = os.path.join(dst, entry.name)
        st = entry.stat(follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(target, 0o700)
            copy_tree(source, target)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(source), target)
        elif stat.S_ISREG(mode):
            fd_in = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                fd_out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                try:
                    while os.sendfile(fd_out, fd_in, None, 1 << 30) > 0:
                        pass
                finally:
                    os.close(fd_out)
            finally:
                os.close(fd_in)
        elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(target, mode, st.st_rdev)
        else:
            continue  # sockets are not content
        os.lchown(target, st.st_uid, st.st_gid)
        if not stat.S_ISLNK(mode):
            os.chmod(target, stat.S_IMODE(mode))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_up(root_path: str, source: str) -> None:
    """Fill the empty volume ``source`` from the image content at ``root_path`` (a host path in the rootfs)."""
    try:
        st = os.lstat(root_path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode) or os.listdir(source):
        return
    copy_tree(root_path, source)
    os.chown(source, st.st_uid, st.st_gid)
    os.chmod(source, stat.S_IMODE(st.st_mode))


def _make_destination(host: str, directory: bool) -> None:
    """Create the mount point: a directory, or an empty file for a file bind."""
    if os.path.lexists(host):
        return
    os.makedirs(os.path.dirname(host), mode=0o755, exist_ok=True)
    if directory:
        os.mkdir(host, 0o755)
    else:
        os.close(os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))


def open_beneath(base: str, subpath: str) -> int:
    """An ``O_PATH`` fd for ``base/subpath`` that cannot lie outside ``base``: ``base`` itself must
    not be a symlink, and no component of ``subpath`` may be one or be ``..`` leaving it
    (``openat2`` with ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS``). Binding the fd's
    ``/proc/self/fd`` link mounts exactly what was checked, as dockerd's ``safepath`` does."""
    base_fd = os.open(base, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return sc.openat2(base_fd, subpath, os.O_PATH | os.O_CLOEXEC,
                          sc.RESOLVE_BENEATH | sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_MAGICLINKS)
    except OSError as err:
        raise OSError(err.errno, f"cannot access path {os.path.join(base, subpath)}: "
                      f"{os.strerror(err.errno or 0).lower()}") from None
    finally:
        os.close(base_fd)


def apply_mounts(root: str, mounts: list[MountSpec], resolve: Callable[[str, str], str]) -> None:
    """Make ``mounts`` inside ``root`` in order (parents before children: the caller sorts them)."""
    for m in mounts:
        host = resolve(root, m.destination)
        flags, data = split_options(m.options)
        if m.readonly:
            flags |= sc.MS_RDONLY
        if m.type == "tmpfs":
            _make_destination(host, True)
            sc.mount("tmpfs", host, "tmpfs", flags, data or None)
        elif m.type == "bind":
            fd = open_beneath(m.source, m.subpath) if m.subpath else -1
            source = f"/proc/self/fd/{fd}" if fd >= 0 else m.source
            try:
                is_dir = stat.S_ISDIR(os.stat(source).st_mode)
                if m.copy_up and is_dir:
                    _copy_up(host, m.source)
                _make_destination(host, is_dir)
                sc.mount(source, host, None, sc.MS_BIND | sc.MS_REC)
            finally:
                if fd >= 0:
                    os.close(fd)
            extra = flags & (sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
            if extra:
                sc.mount(None, host, None, sc.MS_BIND | sc.MS_REMOUNT | extra)
        else:
            raise OSError(22, f"unknown mount type {m.type!r} for {m.destination}")
        propagation = PROPAGATION.get(m.propagation or "rprivate")
        if propagation is None:
            raise OSError(22, f"invalid propagation mode {m.propagation!r} for {m.destination}")
        sc.mount(None, host, None, propagation)
