"""Tars a build unpacks: the build context, and local archives ADD extracts.

Docker unpacks both with ``chrootarchive.Untar``: chrooted into the destination, so a relative
symlink that climbs above it (``link -> ../../../etc/passwd``) is accepted and simply stops at
the destination's root when followed. :class:`BuildTarExtractor` keeps such links likewise (creating
one is harmless: everything that follows a link, here and in :mod:`dockyard.build.copying`, resolves
it inside its scope) and otherwise applies the rules of ``docker cp`` tars
(:class:`dockyard.snapshots.copy_extract.CopyExtractor`: names cleaned and kept inside, parents
resolved inside, the last component replaced and never followed, ``.wh.*`` names ordinary files,
bytes written bounded).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from dockyard.build.known_digests import KnownDigests
from dockyard.snapshots.copy_extract import CopyExtractor
from dockyard.snapshots.extract import StrictTarInfo
from dockyard.snapshots.streams import decompressed


class _HashedMember:
    """A member's data as the extractor reads it, fed to ``digest`` on the way."""

    def __init__(self, raw: Any, digest: Any) -> None:
        self._raw, self._digest = raw, digest

    def read(self, n: int = -1) -> bytes:
        data: bytes = self._raw.read(n)
        self._digest.update(data)
        return data


class _HashingTar:
    """The tar as :meth:`LayerExtractor._make_file` uses it, with the member's data hashed."""

    def __init__(self, tar: tarfile.TarFile, digest: Any) -> None:
        self._tar, self._digest = tar, digest

    def extractfile(self, member: tarfile.TarInfo) -> _HashedMember | None:
        raw = self._tar.extractfile(member)
        return None if raw is None else _HashedMember(raw, self._digest)


@dataclass
class BuildTarExtractor(CopyExtractor):
    """A :class:`CopyExtractor` that keeps relative symlinks climbing above the destination; with
    ``digests``, every regular file's sha256 is recorded there as it is written."""

    digests: KnownDigests | None = None

    def _make_symlink(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        os.symlink(member.linkname, path)
        self._set_metadata(path, member)

    def _make_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        if self.digests is None:
            super()._make_file(tar, member, path)
            return
        digest = hashlib.sha256()
        super()._make_file(_HashingTar(tar, digest), member, path)  # type: ignore[arg-type]
        self.digests.record(path, digest.hexdigest())


def extract_tar(stream: BinaryIO, into: Path, *, privileged: bool, digests: KnownDigests | None = None) -> None:
    """Unpack the tar in ``stream`` (plain, gzip, bzip2, xz or zstd) into the directory ``into``.

    ``privileged``: keep the tar's owners and create device nodes (else both are skipped);
    ``digests``: where the regular files' content digests are recorded."""
    BuildTarExtractor(into, privileged=privileged, digests=digests).extract_stream(decompressed(stream))


def is_archive(path: str) -> bool:
    """Whether the file at ``path`` is a tar, plain or compressed (moby's ``IsArchivePath``: the
    first header of the decompressed content parses); decided by content, never by name."""
    try:
        with open(path, "rb") as f:
            tar = tarfile.open(fileobj=decompressed(f), mode="r|", tarinfo=StrictTarInfo)
            with tar:
                return tar.next() is not None
    except Exception:  # any failure to read a first header: not an archive
        return False
