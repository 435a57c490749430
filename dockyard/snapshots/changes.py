"""A container's changes against its image (``docker diff``), read from its overlay upper dir.

Kinds are Docker's: 0 *modified*, 1 *added*, 2 *deleted*. Following moby's overlay ``changes``:
- a whiteout (0/0 character device) or an opaque directory is *deleted*;
- otherwise a path that exists in some lower layer is *modified* (a directory whose size, mode
  and mtime equal the lower one is not reported), else *added*;
- the parent of an added or deleted path is reported *modified* once, before it, unless already
  reported;
- order is the walk's: parents first, siblings in byte order of their names.

The upper dir may be written by a running container, so the walk uses directory fds and never
follows a symlink; a lower path "exists" only if each of its parents is a real directory there.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dockyard.snapshots.tarwriter import is_opaque, is_whiteout, open_dir

MODIFIED, ADDED, DELETED = 0, 1, 2

# What the runtime creates in a container's root as mount points for its own files. Docker keeps
# them in a separate "init" layer, so they are never part of a container's changes or commits.
INIT_PATHS = frozenset({"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/.dockerenv", "/etc/mtab",
                        "/dev", "/dev/console", "/dev/pts", "/dev/shm", "/proc", "/sys"})


def is_init_placeholder(path: str, st: os.stat_result) -> bool:
    """Whether ``path`` (absolute in the container) with upper-dir stat ``st`` is a mount point the
    runtime made: an init path that is an empty file or a directory (bind mounts cover them, so
    what the container writes there never lands in the upper dir)."""
    if path not in INIT_PATHS:
        return False
    return stat.S_ISDIR(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_size == 0)


def _lower_stat(lower: Path, parts: list[str]) -> os.stat_result | None:
    """``lstat`` of ``parts`` in ``lower`` when every parent is a real directory there, else None."""
    path = str(lower)
    for i, comp in enumerate(parts):
        path = os.path.join(path, comp)
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            return None
    return st


def path_in(dir_fd: int, name: str) -> str:
    """A path naming ``name`` in the directory open at ``dir_fd`` (through ``/proc/self/fd``)."""
    return f"/proc/self/fd/{dir_fd}/{name}"


def container_changes(upper: Path, lowers: list[Path]) -> list[tuple[str, int]]:
    """The changes recorded in ``upper`` over ``lowers`` (top-most first), as (path, kind)."""
    changes: list[tuple[str, int]] = []
    changed_dirs: set[str] = set()

    def visit(dir_fd: int, parts: list[str]) -> bool:
        """Record the directory's children; False when it holds placeholders and nothing else."""
        meaningful = skipped = False
        for name in sorted(os.listdir(dir_fd)):
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            child = [*parts, name]
            path = "/" + "/".join(child)
            is_dir = stat.S_ISDIR(st.st_mode)
            if is_init_placeholder(path, st) and not (is_dir and os.listdir(path_in(dir_fd, name))):
                skipped = True
                continue
            meaningful = True
            child_fd = open_dir(name, dir_fd) if is_dir else -1
            try:
                mark = len(changes)
                recorded = record(st, child, path, is_dir, child_fd)
                if is_dir and not visit(child_fd, child) and recorded == MODIFIED and len(changes) == mark + 1:
                    # copied up only to hold the runtime's mount points: not a change
                    changes.pop()
                    changed_dirs.discard(path)
            finally:
                if child_fd >= 0:
                    os.close(child_fd)
        return meaningful or not skipped

    def record(st: os.stat_result, parts: list[str], path: str, is_dir: bool, fd: int) -> int | None:
        if is_whiteout(st) or (is_dir and is_opaque(fd)):
            kind = DELETED
        else:
            kind = ADDED
            for lower in lowers:
                lst = _lower_stat(lower, parts)
                if lst is None:
                    continue
                if is_dir and stat.S_ISDIR(lst.st_mode) and lst.st_size == st.st_size \
                        and lst.st_mode == st.st_mode and lst.st_mtime_ns == st.st_mtime_ns:
                    return None  # the same directory: not a change
                kind = MODIFIED
                break
        if is_dir:
            changed_dirs.add(path)
        if kind in (ADDED, DELETED):
            parent = os.path.dirname(path)
            if parent != "/" and parent not in changed_dirs:
                changes.append((parent, MODIFIED))
                changed_dirs.add(parent)
        changes.append((path, kind))
        return kind

    root = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        visit(root, [])
    finally:
        os.close(root)
    return changes
