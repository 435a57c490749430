"""TreeTarWriter's two outputs (dockyard.snapshots.tarwriter): a spool file written with ``to_file``
holds exactly the bytes ``to_stream`` writes (a layer's diff ID must not depend on which was used)."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from dockyard.snapshots.tarwriter import TreeTarWriter


def tree(root: Path) -> None:
    (root / "d" / "e").mkdir(parents=True)
    (root / "big").write_bytes(os.urandom((3 << 20) + 123))
    (root / "d" / "small").write_bytes(b"x" * 700)
    (root / "d" / "e" / "empty").write_bytes(b"")
    os.link(root / "d" / "small", root / "hard")
    os.symlink("../big", root / "d" / "link")
    (root / "d" / ("long-" * 30)).write_bytes(b"long name")
    for path in [root / "big", root / "d", root / "hard"]:
        os.utime(path, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))


def tar_of(root: Path, to_file: bool) -> bytes:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if to_file:
            with tempfile.TemporaryFile() as f:
                writer = TreeTarWriter.to_file(f, overlay_whiteouts=True)
                writer.add_dir(fd, "", include_self=False)
                writer.close()
                f.seek(0)
                return f.read()
        out = io.BytesIO()
        writer = TreeTarWriter.to_stream(out, overlay_whiteouts=True)
        writer.add_dir(fd, "", include_self=False)
        writer.close()
        return out.getvalue()
    finally:
        os.close(fd)


def test_a_spool_file_holds_the_bytes_of_the_stream(tmp_path: Path) -> None:
    tree(tmp_path)
    streamed = tar_of(tmp_path, to_file=False)
    assert len(streamed) > 3 << 20
    assert tar_of(tmp_path, to_file=True) == streamed
