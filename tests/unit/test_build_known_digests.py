"""The context files' digests taken while they are unpacked (dockyard.build.known_digests), and COPY
planning from them: the same checksum as reading the files, and never a stale digest."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

from dockyard.build.context import unpack_context
from dockyard.build.copying import plan_copy
from dockyard.build.known_digests import KnownDigests


def context_tar(files: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "big"
        tar.addfile(link)
    buf.seek(0)
    return buf


def plan(context: Path, digests: KnownDigests | None, *sources: str) -> str:
    return plan_copy(context, list(sources), "/dest/", workdir="/", is_add=False, chown=None, chmod=None,
                     known_digests=digests).checksum


def test_unpacking_records_every_regular_files_digest(tmp_path: Path) -> None:
    files = {"Dockerfile": b"FROM scratch\n", "big": os.urandom(3 << 20), "dir/small": b"x" * 1000, "empty": b""}
    digests = KnownDigests()
    unpack_context(context_tar(files), tmp_path, digests=digests)
    assert len(digests) == len(files)
    for name, data in files.items():
        path = str(tmp_path / name)
        assert digests.get(path, os.lstat(path)) == hashlib.sha256(data).hexdigest()
    assert digests.get(str(tmp_path / "link"), os.lstat(tmp_path / "link")) is None


def test_a_copy_planned_from_known_digests_has_the_checksum_of_the_files(tmp_path: Path) -> None:
    files = {"Dockerfile": b"FROM scratch\n", "big": os.urandom(1 << 20), "dir/a": b"a", "dir/b": b"bb"}
    digests = KnownDigests()
    unpack_context(context_tar(files), tmp_path, digests=digests)
    for sources in (("big",), ("dir",), (".",), ("d*", "link")):
        assert plan(tmp_path, digests, *sources) == plan(tmp_path, None, *sources)


def test_a_file_changed_after_it_was_recorded_is_read_again(tmp_path: Path) -> None:
    files = {"Dockerfile": b"FROM scratch\n", "f": b"one", "g": b"two"}
    digests = KnownDigests()
    unpack_context(context_tar(files), tmp_path, digests=digests)
    before = plan(tmp_path, digests, "f", "g")
    (tmp_path / "f").write_bytes(b"ONE")  # same size: the times tell
    os.utime(tmp_path / "f", ns=(1_700_000_000 * 10**9, 1_700_000_000 * 10**9))
    (tmp_path / "g.new").write_bytes(b"TWO")
    os.replace(tmp_path / "g.new", tmp_path / "g")  # another inode in its place
    os.utime(tmp_path / "g", ns=(1_600_000_000 * 10**9, 1_600_000_000 * 10**9))
    after = plan(tmp_path, digests, "f", "g")
    assert after != before
    assert after == plan(tmp_path, None, "f", "g")
    digests.forget()
    assert len(digests) == 0
