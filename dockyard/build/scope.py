"""Paths inside a *scope*: a directory taken as ``/`` (a build context or an image's rootfs).

:func:`resolve_in_scope` is moby's ``symlink.FollowSymlinkInScope``: every component of a path is
looked at inside the scope; a symlink met on the way is followed as if the process were chrooted
into the scope (an absolute target starts again at the scope's root, a relative one continues
from the link's directory), and ``..`` stops at the scope's root. So the result is always inside
the scope, whatever links a hostile image or context holds (``/target -> ../../``, ``/x -> /``).
Components that do not exist are kept as they are written (a path to be created).

The result is a host path; the caller must not create symlinks in it between resolving and using
it (nothing else writes into a build's rootfs while a step runs).
"""

from __future__ import annotations

import errno
import os
import stat

from dockyard.errors import InvalidParameter

MAX_LINKS = 255  # moby's maxIter


def scoped_components(path: str) -> list[str]:
    """``path`` cleaned as if rooted at the scope: ``../x``, ``/x`` and ``./x`` all give ``["x"]``."""
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts:
                parts.pop()
            continue
        parts.append(comp)
    return parts


def resolve_in_scope(root: str, path: str, *, follow_final: bool = True) -> str:
    """The host path of ``path`` (taken relative to the scope ``root``) with symlinks followed
    inside the scope. With ``follow_final`` False a symlink as the last component is kept."""
    root = os.path.abspath(root)
    todo = list(reversed(path.split("/")))
    resolved: list[str] = []
    links = 0
    while todo:
        comp = todo.pop()
        if comp in ("", "."):
            continue
        if comp == "..":
            if resolved:
                resolved.pop()
            continue
        full = os.path.join(root, *resolved, comp)
        if not todo and not follow_final:
            resolved.append(comp)
            break
        try:
            st = os.lstat(full)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise
            resolved.append(comp)  # missing (or under a non-directory): kept as written
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(comp)
            continue
        links += 1
        if links > MAX_LINKS:
            raise InvalidParameter(f"evalSymlinksInScope: too many links in {path}")
        target = os.readlink(full)
        if target.startswith("/"):
            resolved = []
        todo.extend(reversed(target.split("/")))
    return os.path.join(root, *resolved)


def relative_to_scope(root: str, host_path: str) -> str:
    """``host_path`` (inside ``root``) as a slash path relative to it; ``""`` for the root itself."""
    rel = os.path.relpath(host_path, os.path.abspath(root))
    return "" if rel == "." else rel
