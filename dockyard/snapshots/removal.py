"""Removing a directory tree that may fight back.

Container writable layers and unpacked layers may hold files owned by other users, directories
without write permission, or files marked immutable / append-only (``chattr +i``/``+a``).
:func:`remove_tree` clears those obstacles as it meets them and never follows a symlink: it
uses :func:`shutil.rmtree`, which walks with ``O_NOFOLLOW`` directory descriptors, and only ever
opens regular files and directories to change their flags.
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IMMUTABLE_FL = 0x00000010
FS_APPEND_FL = 0x00000020

ATTEMPTS = 4


def clear_inode_flags(path: str) -> None:
    """Drop the immutable and append-only flags of a regular file or directory (best effort)."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags, True)
        if flags[0] & (FS_IMMUTABLE_FL | FS_APPEND_FL):
            flags[0] &= ~(FS_IMMUTABLE_FL | FS_APPEND_FL)
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags, True)
    except OSError:
        pass
    finally:
        os.close(fd)


def _make_removable(path: str) -> None:
    """Clear flags on ``path`` and its parent, and give directories owner rwx."""
    parent = os.path.dirname(path)
    for p in (parent, path):
        clear_inode_flags(p)
        with contextlib.suppress(OSError):
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                os.chmod(p, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)


def remove_tree(path: Path | str) -> None:
    """Remove ``path`` and everything under it; a missing path is fine. A symlink is unlinked."""
    target = os.fspath(path)
    last: BaseException | None = None
    for _ in range(ATTEMPTS):
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            try:
                os.unlink(target)
                return
            except OSError as e:
                last = e
                _make_removable(target)
                continue

        def onexc(func: Any, failed: str, err: BaseException) -> None:
            nonlocal last
            if isinstance(err, FileNotFoundError):
                return
            last = err
            if isinstance(err, OSError) and err.errno in (errno.EPERM, errno.EACCES, errno.ENOTEMPTY):
                _make_removable(failed)
                if func in (os.unlink, os.rmdir, os.remove):
                    with contextlib.suppress(OSError):
                        func(failed)

        if sys.version_info >= (3, 12):
            shutil.rmtree(target, onexc=onexc)
        else:
            shutil.rmtree(target, onerror=lambda func, failed, info: onexc(func, failed, info[1]))
    if os.path.lexists(target):
        raise last if last is not None else OSError(errno.ENOTEMPTY, "could not remove", target)
