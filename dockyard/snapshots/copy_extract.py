"""Extracting a ``docker cp`` tar into a directory: :class:`LayerExtractor`'s safety, Docker's
``archive.Untar`` rules.

Differences from unpacking a layer:
- ``.wh.*`` names are ordinary files (a copied tar holds no whiteouts);
- *no-overwrite-dir-non-dir*: when set, replacing an existing directory by a non-directory, or
  the reverse, is an error (``cannot overwrite directory "…" with non-directory "…"``);
- *chown*: when an owner is given, every entry gets it instead of the tar's uid/gid.
"""

from __future__ import annotations

import os
import stat
import tarfile
from dataclasses import dataclass

from dockyard.errors import InvalidParameter
from dockyard.snapshots.extract import LayerExtractor


@dataclass
class CopyExtractor(LayerExtractor):
    """A :class:`LayerExtractor` for ``PUT /containers/{id}/archive``."""

    no_overwrite_dir_non_dir: bool = False
    owner: tuple[int, int] | None = None

    def apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = self.check_entry(member)
        if not parts:
            self._skip_data(tar, member)
            return
        if self.owner is not None:
            member.uid, member.gid = self.owner
        parent = self.resolve_dir(parts[:-1], create=True)
        path = os.path.join(parent, parts[-1])
        self._clear_for(path, member)
        handler = self._handlers.get(member.type, self._make_file)
        if member.isreg():
            handler = self._make_file
        handler(tar, member, path)

    def _clear_for(self, path: str, member: tarfile.TarInfo) -> None:
        if self.no_overwrite_dir_non_dir:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                st = None
            if st is not None:
                shown = "/" + os.path.relpath(path, self._root).lstrip("./")
                if stat.S_ISDIR(st.st_mode) and not member.isdir():
                    raise InvalidParameter(f'cannot overwrite directory "{shown}" with non-directory "{member.name}"')
                if not stat.S_ISDIR(st.st_mode) and member.isdir():
                    raise InvalidParameter(f'cannot overwrite non-directory "{shown}" with directory "{member.name}"')
        super()._clear_for(path, member)


@dataclass
class CommittedLayerExtractor(LayerExtractor):
    """A :class:`LayerExtractor` for layers we made from a container's upper dir (``commit``).

    A container may hold relative symlinks that climb above its root (``../../etc/passwd``);
    inside the container they simply stop at ``/``, and Docker applies such layers chrooted, so
    they are kept here too. Creating a symlink is harmless: following one while extracting is
    still confined by :meth:`LayerExtractor.resolve_dir`.
    """

    def _make_symlink(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        os.symlink(member.linkname, path)
        self._set_metadata(path, member)
