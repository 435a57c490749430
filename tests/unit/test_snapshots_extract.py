"""Layer unpacking: chain IDs, compression, and hostile tars that need no root to check."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import sys
import tarfile
from pathlib import Path

import pytest

from dockyard.errors import CorruptContent, InvalidParameter
from dockyard.snapshots import SnapshotStore, chain_ids, next_chain_id
from dockyard.snapshots.extract import LayerExtractor, clean_name


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_tar(*entries: tuple[str, str, object]) -> bytes:
    """entries: (kind, name, arg) with kind file (arg=bytes), dir, symlink/hardlink (arg=target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, arg in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if kind == "file":
                data = arg if isinstance(arg, bytes) else b""
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
                continue
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, str(arg)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, str(arg)
            tar.addfile(info)
    return buf.getvalue()


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(tmp_path / "snapshots")


def layer_dirs(store: SnapshotStore) -> list[str]:
    return sorted(os.listdir(store.root / "layers"))


def assert_nothing_left(store: SnapshotStore) -> None:
    assert layer_dirs(store) == []
    assert os.listdir(store.root / "tmp") == []


# -- chain IDs ------------------------------------------------------------------------------------

def test_chain_ids_follow_the_oci_spec() -> None:
    a, b, c = sha(b"a"), sha(b"b"), sha(b"c")
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert chain_ids([a, b, c]) == [a, ab, abc]
    assert next_chain_id(None, a) == a and next_chain_id(ab, c) == abc
    assert chain_ids([]) == []
    with pytest.raises(InvalidParameter):
        next_chain_id(None, "sha256:nope")


# -- unpacking ------------------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress], ids=["plain", "gzip"])
def test_unpack_computes_diff_id_over_the_uncompressed_tar(store: SnapshotStore, compress) -> None:  # type: ignore[no-untyped-def]
    raw = make_tar(("dir", "etc", None), ("file", "etc/hosts", b"127.0.0.1 localhost\n"),
                   ("symlink", "etc/link", "hosts"), ("hardlink", "etc/hard", "etc/hosts"))
    diff_id = store.unpack(None, io.BytesIO(compress(raw)))
    assert diff_id == sha(raw)
    assert store.has(diff_id)
    diff = store.diff_dir(diff_id)
    assert (diff / "etc/hosts").read_bytes() == b"127.0.0.1 localhost\n"
    assert os.readlink(diff / "etc/link") == "hosts"
    assert os.stat(diff / "etc/hard").st_ino == os.stat(diff / "etc/hosts").st_ino
    assert (diff / "etc/hosts").stat().st_mtime == 1_600_000_000
    info = store.layer(diff_id)
    assert (info.diff_id, info.parent, info.size) == (diff_id, None, 20)
    assert store.lowerdirs([diff_id]) == [diff]


def test_unpack_on_a_parent_and_lowerdirs_order(store: SnapshotStore) -> None:
    base = store.unpack(None, io.BytesIO(make_tar(("file", "a", b"1"))))
    top_tar = make_tar(("file", "b", b"2"))
    diff = store.unpack(None, io.BytesIO(top_tar), parent=base)
    top = next_chain_id(base, diff)
    assert store.has(top) and store.layer(top).parent == base
    assert store.lowerdirs([base, top]) == [store.diff_dir(top), store.diff_dir(base)]
    # a given chain id is checked against parent + diff id
    with pytest.raises(CorruptContent):
        store.unpack(sha(b"wrong"), io.BytesIO(top_tar), parent=base)


def test_unpack_twice_keeps_one_copy(store: SnapshotStore) -> None:
    raw = make_tar(("file", "a", b"1"))
    assert store.unpack(None, io.BytesIO(raw)) == store.unpack(sha(raw), io.BytesIO(raw))
    assert layer_dirs(store) == [sha(raw)[7:]]
    assert store.remove_layer(sha(raw)) and not store.has(sha(raw))


def test_expected_chain_id_mismatch_leaves_nothing(store: SnapshotStore) -> None:
    with pytest.raises(CorruptContent, match="digest mismatch"):
        store.unpack(sha(b"other"), io.BytesIO(make_tar(("file", "a", b"1"))))
    assert_nothing_left(store)


def test_empty_stream_is_an_empty_layer(store: SnapshotStore) -> None:
    assert store.unpack(None, io.BytesIO(b"")) == sha(b"")


def test_duplicate_entries_the_later_wins(store: SnapshotStore) -> None:
    raw = make_tar(("file", "x", b"first"), ("symlink", "y", "/etc/passwd"), ("file", "x", b"second"),
                   ("file", "y", b"not through the link"), ("dir", "z", None), ("file", "z/in", b"."),
                   ("file", "z", b"file now"))
    diff = store.diff_dir(store.unpack(None, io.BytesIO(raw)))
    assert (diff / "x").read_bytes() == b"second"
    assert not (diff / "y").is_symlink() and (diff / "y").read_bytes() == b"not through the link"
    assert (diff / "z").read_bytes() == b"file now"


# -- hostile tars ---------------------------------------------------------------------------------

def test_clean_name() -> None:
    assert clean_name("/etc/passwd") == ["etc", "passwd"]
    assert clean_name("./a//b/./c/../d") == ["a", "b", "d"]
    assert clean_name("./") == []
    for bad in ("..", "../x", "a/../../x", "/../x"):
        with pytest.raises(CorruptContent):
            clean_name(bad)


def test_absolute_names_are_neutralised(store: SnapshotStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside-abs"
    diff = store.diff_dir(store.unpack(None, io.BytesIO(make_tar(("file", str(outside), b"x")))))
    assert not outside.exists()
    assert (diff / str(outside).lstrip("/")).read_bytes() == b"x"


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "../../../../../../tmp/escape"])
def test_dotdot_is_refused(store: SnapshotStore, tmp_path: Path, name: str) -> None:
    with pytest.raises(CorruptContent, match="outside of the layer"):
        store.unpack(None, io.BytesIO(make_tar(("file", name, b"x"))))
    assert_nothing_left(store)


def test_symlink_escaping_relative_is_refused(store: SnapshotStore) -> None:
    with pytest.raises(CorruptContent, match="invalid symlink"):
        store.unpack(None, io.BytesIO(make_tar(("symlink", "a/evil", "../../../../etc"))))
    assert_nothing_left(store)


def test_symlink_planted_then_written_through(store: SnapshotStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    # absolute target: taken relative to the layer, so the write lands inside it
    raw = make_tar(("symlink", "evil", str(outside)), ("file", "evil/pwned", b"x"))
    diff = store.diff_dir(store.unpack(None, io.BytesIO(raw)))
    assert list(outside.iterdir()) == []
    assert (diff / str(outside).lstrip("/") / "pwned").read_bytes() == b"x"


def test_symlink_chain_climbing_out_is_refused(store: SnapshotStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside2"
    outside.mkdir()
    # each link is harmless alone (stays inside lexically); followed together they climb out
    raw = make_tar(("dir", "a", None), ("dir", "a/b", None), ("symlink", "a/b/up", ".."),
                   ("symlink", "a/up2", "b/up/../.."), ("file", "a/up2/x", b"x"))
    with pytest.raises(CorruptContent):
        store.unpack(None, io.BytesIO(raw))
    assert_nothing_left(store)
    assert list(outside.iterdir()) == []


def test_extractor_refuses_a_preexisting_symlink_pointing_out(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    outside = tmp_path / "outside3"
    outside.mkdir()
    os.symlink("../outside3", target / "link")  # planted by someone else, relative, climbing out
    tar = tarfile.open(fileobj=io.BytesIO(make_tar(("file", "link/x", b"x"))))
    with pytest.raises(CorruptContent, match="outside of the layer"):
        for member in tar:
            LayerExtractor(target, privileged=False).apply(tar, member)
    assert list(outside.iterdir()) == []


def test_hardlink_escape_is_refused(store: SnapshotStore, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("secret")
    for link in ("../../../../../../" + str(secret).lstrip("/"), str(secret)):
        with pytest.raises(CorruptContent):
            store.unpack(None, io.BytesIO(make_tar(("hardlink", "h", link))))
    assert_nothing_left(store)


def test_hardlink_through_a_symlink_out_is_refused(store: SnapshotStore, tmp_path: Path) -> None:
    (tmp_path / "outdir").mkdir()
    (tmp_path / "outdir" / "secret").write_text("s")
    raw = make_tar(("symlink", "l", str(tmp_path / "outdir")), ("hardlink", "h", "l/secret"))
    with pytest.raises(CorruptContent):
        store.unpack(None, io.BytesIO(raw))
    assert_nothing_left(store)


@pytest.mark.parametrize("cut", [700, 1024 + 100, 512 + 3])
def test_truncated_tar_leaves_no_layer(store: SnapshotStore, cut: int) -> None:
    raw = make_tar(("file", "a", b"x" * 600), ("file", "b", b"y" * 10))
    with pytest.raises(CorruptContent):
        store.unpack(None, io.BytesIO(raw[:cut]))
    assert_nothing_left(store)


def test_truncated_gzip_leaves_no_layer(store: SnapshotStore) -> None:
    blob = gzip.compress(make_tar(("file", "a", os.urandom(5000))))
    with pytest.raises(CorruptContent):
        store.unpack(None, io.BytesIO(blob[: len(blob) // 2]))
    assert_nothing_left(store)


def test_garbage_is_not_a_tar(store: SnapshotStore) -> None:
    with pytest.raises(CorruptContent):
        store.unpack(None, io.BytesIO(b"this is not a tar archive" * 40))
    assert_nothing_left(store)


def test_zstd_without_module_is_a_clear_error(store: SnapshotStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # zstandard is a dependency; hidden here, so the error path runs whatever is installed.
    monkeypatch.setitem(sys.modules, "zstandard", None)  # makes `import zstandard` raise ImportError
    with pytest.raises(InvalidParameter, match="zstandard"):
        store.unpack(None, io.BytesIO(b"\x28\xb5\x2f\xfd" + b"\0" * 100))
    assert_nothing_left(store)


# -- container layers -----------------------------------------------------------------------------

def test_prepare_and_remove_container(store: SnapshotStore) -> None:
    layer = store.prepare("c" * 64)
    assert layer.upper.is_dir() and layer.work.is_dir() and layer.rootfs.is_dir()
    (layer.upper / "d").mkdir()
    (layer.upper / "d" / "f").write_text("x")
    os.chmod(layer.upper / "d", 0o500)  # no write permission: removal must cope
    os.symlink("/etc", layer.upper / "etc-link")
    assert store.remove_container("c" * 64) is True
    assert not (store.root / "containers" / ("c" * 64)).exists()
    assert os.path.isdir("/etc")
    assert store.remove_container("c" * 64) is False
    with pytest.raises(InvalidParameter):
        store.prepare("../evil")
