"""An image archive (the outer tar of ``docker load``) unpacked into a private spool directory.

The outer tar's members arrive in any order (Docker writes ``manifest.json`` last), so the
archive is spooled to disk before it is read. Only regular files and directories are written;
names are cleaned lexically and may not leave the spool. Symbolic links (old ``docker save``
links a repeated ``<id>/layer.tar`` to the first copy) are not created on disk: they are
remembered and followed lexically, inside the archive only, when a path is opened.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
from pathlib import Path
from typing import BinaryIO

from dockyard.errors import CorruptContent, InvalidParameter, NotFound
from dockyard.snapshots.streams import decompressed

_MAX_LINK_HOPS = 16
_COPY = 1 << 20


def clean_member_name(name: str) -> str:
    """``name`` normalised inside the archive (no leading ``/``, no ``..`` escaping it); '' if none."""
    cleaned = posixpath.normpath("/" + name).lstrip("/")
    return "" if cleaned in ("", ".") else cleaned


class SpooledArchive:
    """The outer tar unpacked under ``root``: open members by their archive path."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.links: dict[str, str] = {}  # archive path -> archive path it points at
        self.files: set[str] = set()

    @classmethod
    def unpack(cls, stream: BinaryIO, root: Path) -> SpooledArchive:
        """Read the (optionally gzip/bzip2/xz/zstd compressed) tar ``stream`` into ``root``."""
        archive = cls(root)
        try:
            with tarfile.open(fileobj=decompressed(stream), mode="r|") as tar:
                for member in tar:
                    archive._take(tar, member)
        except (tarfile.TarError, EOFError) as e:
            raise InvalidParameter(f"invalid archive: {e}") from None
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as e:
            # a file and a directory of the same name: not an archive anyone wrote
            raise InvalidParameter(f"invalid archive: conflicting entries: {e.filename}") from None
        return archive

    def _take(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = clean_member_name(member.name)
        if not name:
            return
        if member.issym() or member.islnk():
            base = posixpath.dirname(name) if member.issym() else ""
            self.links[name] = clean_member_name(posixpath.join(base, member.linkname))
            return
        if member.isdir():
            (self.root / name).mkdir(parents=True, exist_ok=True)
            return
        if not member.isfile():
            return  # devices, fifos: nothing an image archive needs
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.is_dir():
            raise InvalidParameter(f"invalid archive: {member.name} is not a regular file")
        source = tar.extractfile(member)
        assert source is not None
        with open(path, "wb") as out:
            shutil.copyfileobj(source, out, _COPY)
        self.files.add(name)

    def resolve(self, name: str) -> str:
        """The archive path of the file ``name`` names, links followed; NotFound if none."""
        current = clean_member_name(name)
        for _ in range(_MAX_LINK_HOPS):
            if current in self.files:
                return current
            target = self.links.get(current)
            if target is None:
                break
            current = target
        raise NotFound(f"invalid archive: {name} is missing")

    def exists(self, name: str) -> bool:
        try:
            self.resolve(name)
        except NotFound:
            return False
        return True

    def path(self, name: str) -> Path:
        return self.root / self.resolve(name)

    def open(self, name: str) -> BinaryIO:
        return open(self.path(name), "rb")  # noqa: SIM115 - the caller closes it

    def read_bytes(self, name: str, limit: int = 64 << 20) -> bytes:
        path = self.path(name)
        if os.path.getsize(path) > limit:
            raise CorruptContent(f"invalid archive: {name} is too large")
        return path.read_bytes()
