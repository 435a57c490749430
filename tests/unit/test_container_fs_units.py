"""Pure parts of the container filesystem verbs: Go file modes and times, Docker's path rules,
``cp`` argument splitting, the commit config merge, and (as root) changes/whiteouts from an
overlay-style upper dir."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard.cli.verbs.cp import split_arg
from dockyard.containers.archive import MODE_DIR, MODE_SYMLINK, go_file_mode
from dockyard.images.commit import merge_config
from dockyard.runtime.rootfs_helper import absolute, base_name
from dockyard.snapshots.changes import container_changes
from dockyard.snapshots.tarwriter import OPAQUE_XATTR, TreeTarWriter

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts need mknod and trusted.* xattrs")


def test_go_file_mode() -> None:
    assert go_file_mode(stat.S_IFREG | 0o644) == 0o644
    assert go_file_mode(stat.S_IFDIR | 0o755) == MODE_DIR | 0o755
    assert go_file_mode(stat.S_IFLNK | 0o777) == MODE_SYMLINK | 0o777
    assert go_file_mode(stat.S_IFCHR | 0o666) == (1 << 26) | (1 << 21) | 0o666
    assert go_file_mode(stat.S_IFREG | stat.S_ISUID | 0o755) == (1 << 23) | 0o755
    assert go_file_mode(stat.S_IFDIR | stat.S_ISVTX | 0o777) == MODE_DIR | (1 << 20) | 0o777


@pytest.mark.parametrize(("given", "expected"), [
    ("/a/b", "/a/b"), ("a/b", "/a/b"), ("/a/b/", "/a/b/"), ("/a/b/.", "/a/b/."), ("/../../etc", "/etc"),
    ("/a/../../b", "/b"), ("/", "/"), (".", "/."), ("//x//y", "/x/y"),
])
def test_absolute_keeps_trailing_dot_or_slash(given: str, expected: str) -> None:
    assert absolute(given) == expected


def test_base_name_is_gos() -> None:
    assert [base_name(p) for p in ("/a/b", "/a/b/", "/a/b/.", "/")] == ["b", "b", ".", "/"]


@pytest.mark.parametrize(("arg", "expected"), [
    ("c1:/tmp", ("c1", "/tmp")), ("/local:file", ("", "/local:file")), ("./x:y", ("", "./x:y")),
    ("plain", ("", "plain")), ("c1:", ("c1", "")), ("-", ("", "-")),
])
def test_split_cp_arg(arg: str, expected: tuple[str, str]) -> None:
    assert split_arg(arg) == expected


def test_commit_merge_fills_unset_fields_from_the_container() -> None:
    container = {"User": "nobody", "Env": ["A=1", "B=2"], "Cmd": ["sh"], "Entrypoint": None,
                 "WorkingDir": "/w", "Labels": {"x": "1"}}
    merged = merge_config({"Env": ["B=3"], "Cmd": ["echo"], "Labels": {"y": "2"}}, container)
    assert merged["Env"] == ["B=3", "A=1"] and merged["Cmd"] == ["echo"] and merged["User"] == "nobody"
    assert merged["WorkingDir"] == "/w" and merged["Labels"] == {"x": "1", "y": "2"}
    assert merge_config({}, container)["Cmd"] == ["sh"]


@as_root
def test_changes_and_layer_tar_from_an_upper_dir(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in ("bin", "etc", "opq", "same"):
        (lower / d).mkdir(parents=True)
    (lower / "bin" / "ls").write_text("ls")
    (lower / "etc" / "passwd").write_text("root")
    (lower / "opq" / "old").write_text("old")
    (upper / "bin").mkdir(parents=True)
    os.mknod(upper / "bin" / "ls", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "etc").mkdir()
    (upper / "etc" / "passwd").write_text("root\nme")
    (upper / "etc" / "hosts").write_text("")  # the runtime's mount point: not a change
    (upper / "opq").mkdir()
    os.setxattr(upper / "opq", OPAQUE_XATTR, b"y")
    (upper / "opq" / "new").write_text("new")
    (upper / "added").mkdir()
    (upper / "added" / "f").write_text("f")
    st = os.stat(lower / "same")
    (upper / "same").mkdir()
    os.utime(upper / "same", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert container_changes(upper, [lower]) == [
        ("/added", 1), ("/added/f", 1), ("/bin", 0), ("/bin/ls", 2), ("/etc", 0), ("/etc/passwd", 0),
        ("/opq", 2), ("/opq/new", 1)]

    buf = io.BytesIO()
    writer = TreeTarWriter.to_stream(buf, overlay_whiteouts=True)
    fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY)
    try:
        writer.add_dir(fd, "", include_self=False)
    finally:
        os.close(fd)
    writer.close()
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        names = tar.getnames()
    assert "bin/.wh.ls" in names and "opq/.wh..wh..opq" in names and "bin/ls" not in names
    assert names.index("opq") < names.index("opq/.wh..wh..opq") < names.index("opq/new")
