"""Content digests of files learned while they were written, so that COPY need not read them again.

The build context's regular files are hashed (sha256) as they are unpacked (the bytes pass through
the daemon anyway); a COPY of them then plans its cache checksum from these digests instead of
re-reading every file. Terms:

- *identity* of a file: its ``(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)`` taken by
  ``lstat`` once the file is complete (after its mode, owner and mtime were set). A digest is
  answered only while the file's identity is the one recorded: writing, truncating, ``utime`` or
  ``chmod`` all change the change time, and a file put in its place is another inode.
- The builder also :meth:`KnownDigests.forget` s everything when a step could have written into the
  context (a ``RUN --mount=type=bind,rw`` of it), since a rewrite within one tick of the kernel's
  coarse clock keeps the change time.

Thread-safe enough for its use: recorded by one thread (the unpack), read afterwards.
"""

from __future__ import annotations

import os

_Identity = tuple[int, int, int, int, int]


def _identity(st: os.stat_result) -> _Identity:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class KnownDigests:
    """Host path -> (identity, sha256 hex) of files whose content was hashed while written."""

    def __init__(self) -> None:
        self._by_path: dict[str, tuple[_Identity, str]] = {}

    def record(self, path: str, hex_digest: str) -> None:
        """``path`` (complete now) holds bytes whose sha256 is ``hex_digest``."""
        self._by_path[os.path.normpath(path)] = (_identity(os.lstat(path)), hex_digest)

    def get(self, path: str, st: os.stat_result) -> str | None:
        """The digest recorded for ``path`` if ``st`` (its lstat now) shows the same file, else None."""
        known = self._by_path.get(os.path.normpath(path))
        if known is None or known[0] != _identity(st):
            return None
        return known[1]

    def forget(self) -> None:
        self._by_path.clear()

    def __len__(self) -> int:
        return len(self._by_path)
