"""Writing a directory tree as a tar stream without ever following a symlink.

Terms:
- *dirfd walk*: every directory is opened relative to its parent's file descriptor with
  ``O_NOFOLLOW | O_DIRECTORY`` and every file with ``O_NOFOLLOW``, so a symlink planted in the tree
  (even one swapped in while we walk) is archived as a symlink and never leads outside the tree.
- *overlay whiteouts*: in an overlayfs upper dir a deleted path is a 0/0 character device and a
  directory whose lower contents are hidden carries ``trusted.overlay.opaque=y``. In a layer tar
  (the OCI/AUFS form) they become an empty ``.wh.<name>`` file and a ``<dir>/.wh..wh..opq`` entry.
  :class:`TreeTarWriter` converts them when ``overlay_whiteouts`` is set (for ``commit``).

Entry names follow Go's ``archive/tar`` as Docker writes them: no leading ``./`` or ``/``, and
directories end with ``/``. Children are written in byte order of their names, parents first.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

WHITEOUT_PREFIX = ".wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
# Docker's tar writer keeps only this xattr (file capabilities); overlay's own are internal.
KEPT_XATTRS = ("security.capability",)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
CHUNK = 1 << 20


def is_whiteout(st: os.stat_result) -> bool:
    """Whether ``st`` is an overlayfs whiteout: a character device numbered 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(dir_fd: int) -> bool:
    """Whether the directory open at ``dir_fd`` is an overlayfs opaque directory."""
    try:
        return os.getxattr(dir_fd, OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def open_dir(name: str, dir_fd: int | None) -> int:
    """Open directory ``name`` (relative to ``dir_fd``) without following a symlink."""
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


@dataclass
class TreeTarWriter:
    """Writes entries into ``tar`` (opened in stream mode ``w|``) from dirfd walks."""

    tar: tarfile.TarFile
    overlay_whiteouts: bool = False
    # skip(path, stat): leave out this entry (path absolute in the tree, e.g. "/etc/hosts")
    skip: Callable[[str, os.stat_result], bool] | None = None
    entries: int = 0
    _links: dict[tuple[int, int], str] = field(default_factory=dict)

    @classmethod
    def to_stream(cls, out: BinaryIO, overlay_whiteouts: bool = False) -> TreeTarWriter:
        return cls(tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT), overlay_whiteouts)

    @classmethod
    def to_file(cls, out: BinaryIO, overlay_whiteouts: bool = False) -> TreeTarWriter:
        """Into a file that can ``tell`` (a spool file): the same bytes as :meth:`to_stream`, with file
        contents copied a megabyte at a time (the stream mode re-slices everything into 10 KB
        records in Python)."""
        return cls(tarfile.TarFile(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK),
                   overlay_whiteouts)

    def close(self) -> None:
        self.tar.close()

    def add(self, dir_fd: int, name: str, arcname: str) -> None:
        """Archive ``name`` (relative to ``dir_fd``, not followed) as ``arcname``, recursively."""
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if self.skip is not None and self.skip("/" + arcname.strip("/"), st):
            return
        if stat.S_ISDIR(st.st_mode):
            fd = open_dir(name, dir_fd)
            try:
                self.add_dir(fd, arcname, include_self=True, st=st)
            finally:
                os.close(fd)
            return
        self._add_leaf(dir_fd, name, arcname, st)

    def add_dir(self, fd: int, arcname: str, *, include_self: bool, st: os.stat_result | None = None) -> None:
        """Archive the directory open at ``fd``: itself (as ``arcname/``) when ``include_self``, then
        its children below ``arcname`` (at the archive's top when ``arcname`` is empty)."""
        if include_self:
            info = self._info(arcname.rstrip("/") + "/", st or os.fstat(fd), fd)
            info.type = tarfile.DIRTYPE
            self._emit(info)
            if self.overlay_whiteouts and is_opaque(fd):
                self._emit(self._marker(_join(arcname, WHITEOUT_OPAQUE), info))
        for child in sorted(os.listdir(fd)):
            self.add(fd, child, _join(arcname, child))

    def _add_leaf(self, dir_fd: int, name: str, arcname: str, st: os.stat_result) -> None:
        if self.overlay_whiteouts and is_whiteout(st):
            parent, _, base = arcname.rpartition("/")
            self._emit(self._marker(_join(parent, WHITEOUT_PREFIX + base), self._info(arcname, st, None)))
            return
        info = self._info(arcname, st, None)
        if stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self._links:
                info.type, info.linkname, info.size = tarfile.LNKTYPE, self._links[key], 0
                self._emit(info)
                return
            if st.st_nlink > 1:
                self._links[key] = arcname
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            with os.fdopen(fd, "rb", buffering=CHUNK) as f:
                info.size = st.st_size
                self._emit(info, f)
            return
        if stat.S_ISLNK(st.st_mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=dir_fd)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(st.st_mode):
            info.type = tarfile.FIFOTYPE
        else:
            return  # sockets: Docker's archiver skips them too
        self._emit(info)

    def _info(self, arcname: str, st: os.stat_result, fd: int | None) -> tarfile.TarInfo:
        info = tarfile.TarInfo(arcname)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = int(st.st_mtime)
        info.size = 0
        if fd is not None:
            pax: dict[str, str] = {}
            for key in KEPT_XATTRS:
                try:
                    value = os.getxattr(fd, key)
                except OSError:
                    continue
                pax["SCHILY.xattr." + key] = value.decode("utf-8", "surrogateescape")
            if pax:
                info.pax_headers = pax
        return info

    @staticmethod
    def _marker(arcname: str, like: tarfile.TarInfo) -> tarfile.TarInfo:
        """An empty regular file entry (a whiteout) with ``like``'s owner and times."""
        info = tarfile.TarInfo(arcname)
        info.mode = like.mode & 0o777
        info.uid, info.gid, info.mtime = like.uid, like.gid, like.mtime
        info.uname = info.gname = ""
        return info

    def _emit(self, info: tarfile.TarInfo, data: BinaryIO | None = None) -> None:
        self.tar.addfile(info, data)
        self.entries += 1


def _join(parent: str, name: str) -> str:
    if parent == "/":
        return "/" + name  # Docker names the entries of a copy of "/" from the root: "/bin/sh"
    parent = parent.rstrip("/")
    return f"{parent}/{name}" if parent else name
