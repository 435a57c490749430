"""Tar headers for the build context, byte for byte as Python's ``tarfile`` writes them in PAX format,
without importing ``tarfile`` for the common entry (it and what it imports cost ~4 ms of start-up).

Terms:
- *entry*: what one header describes (:class:`Entry`): a name, a type flag (``b"0"`` file, ``b"1"``
  hard link, ``b"2"`` symlink, ``b"3"``/``b"4"`` character/block device, ``b"5"`` directory, ``b"6"``
  FIFO), a mode, a size, an mtime in whole seconds, a link target, device numbers. Owners are
  always 0:0 without names (as Docker's CLI sends the context).
- *plain* entry: one a ustar header holds as it is: ASCII name (a directory's with its ``/``) and
  link target of at most 100 bytes, size and mtime below 8**11. Anything else (a long or non-ASCII
  name, a huge file) is made by ``tarfile`` itself (a PAX extended header first), imported then.
"""

from __future__ import annotations

import os
import stat

REGULAR, HARDLINK, SYMLINK, CHAR, BLOCK, DIRECTORY, FIFO = b"0", b"1", b"2", b"3", b"4", b"5", b"6"
BLOCKSIZE = 512
_MAGIC = b"ustar\x0000"
_LIMIT = 8 ** 11


class Entry:
    """One header's fields (see the module docstring)."""

    __slots__ = ("name", "type", "mode", "size", "mtime", "linkname", "devmajor", "devminor")

    def __init__(self, name: str, type: bytes, mode: int, size: int = 0, mtime: int = 0, linkname: str = "",
                 devmajor: int = 0, devminor: int = 0) -> None:
        self.name, self.type, self.mode, self.size, self.mtime = name, type, mode, size, mtime
        self.linkname, self.devmajor, self.devminor = linkname, devmajor, devminor

    def isreg(self) -> bool:
        return self.type == REGULAR


class EntryMaker:
    """Entries of host paths, as ``TarFile.gettarinfo`` makes them; a file seen again through another
    name (a hard link) becomes a link to the first name."""

    def __init__(self) -> None:
        self._inodes: dict[tuple[int, int], str] = {}

    def of(self, path: str, name: str) -> Entry | None:
        """The entry of ``path`` (not followed) archived as ``name``; None for a socket."""
        st = os.lstat(path)
        mode = st.st_mode
        linkname = ""
        size = 0
        if stat.S_ISREG(mode):
            inode = (st.st_ino, st.st_dev)
            if st.st_nlink > 1 and inode in self._inodes and name != self._inodes[inode]:
                kind, linkname = HARDLINK, self._inodes[inode]
            else:
                kind, size = REGULAR, st.st_size
                if inode[0]:
                    self._inodes[inode] = name
        elif stat.S_ISDIR(mode):
            kind = DIRECTORY
        elif stat.S_ISFIFO(mode):
            kind = FIFO
        elif stat.S_ISLNK(mode):
            kind, linkname = SYMLINK, os.readlink(path)
        elif stat.S_ISCHR(mode):
            kind = CHAR
        elif stat.S_ISBLK(mode):
            kind = BLOCK
        else:
            return None
        entry = Entry(name.replace(os.sep, "/").lstrip("/"), kind, mode, size, int(st.st_mtime), linkname)
        if kind in (CHAR, BLOCK):
            entry.devmajor, entry.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        return entry


def _number(value: int, digits: int) -> bytes:
    return b"%0*o\0" % (digits - 1, value)


def _text(value: str, length: int) -> bytes:
    data = value.encode("ascii")
    return data[:length] + bytes(length - len(data))


def header(entry: Entry) -> bytes:
    """The header block(s) of ``entry``."""
    name = entry.name + "/" if entry.type == DIRECTORY and not entry.name.endswith("/") else entry.name
    if not (name.isascii() and len(name) <= 100 and entry.linkname.isascii() and len(entry.linkname) <= 100
            and 0 <= entry.size < _LIMIT and 0 <= entry.mtime < _LIMIT):
        return _by_tarfile(entry)
    devices = entry.type in (CHAR, BLOCK)
    block = b"".join([
        _text(name, 100), _number(entry.mode & 0o7777, 8), _number(0, 8), _number(0, 8),
        _number(entry.size, 12), _number(entry.mtime, 12), b"        ", entry.type, _text(entry.linkname, 100),
        _MAGIC, bytes(64),
        _number(entry.devmajor, 8) if devices else bytes(8), _number(entry.devminor, 8) if devices else bytes(8),
        bytes(155),
    ])
    block += bytes(BLOCKSIZE - len(block))
    checksum = 256 + sum(block[:148]) + sum(block[156:])
    return block[:148] + b"%06o\0" % checksum + block[155:]


def _by_tarfile(entry: Entry) -> bytes:
    """The header(s) tarfile makes for an entry a ustar header cannot hold (PAX records first)."""
    import tarfile

    info = tarfile.TarInfo(entry.name)
    info.type, info.mode, info.size, info.mtime = entry.type, entry.mode, entry.size, entry.mtime
    info.linkname, info.devmajor, info.devminor = entry.linkname, entry.devmajor, entry.devminor
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
