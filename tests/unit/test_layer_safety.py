"""Layer safety against hostile tars, each case its own crafted tar, through the real entry points:
``ImageService.import_tarball`` (import), ``load_archive`` of a Docker archive (load, layers
stacked), and ``SnapshotStore.unpack``. Cases that need root (device nodes, whiteouts, trusted
xattrs, a full disk) are in ``tests/integration/test_layer_safety_root.py``.

Every failing case also checks that nothing is left: no layer, no temp dir, the store as before.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.errors import CorruptContent, DockyardError, InvalidParameter
from dockyard.images.archive_load import load_archive
from dockyard.images.reference import parse_normalized
from dockyard.images.service import ImageService
from dockyard.snapshots import SnapshotStore
from dockyard.snapshots.bounds import ENV_MAX_BYTES, ENV_MAX_RATIO, ENV_RATIO_FLOOR, LayerLimits
from dockyard.snapshots.copy_extract import CommittedLayerExtractor
from dockyard.snapshots.entry_rules import symlink_escapes, xattrs_to_set
from dockyard.snapshots.extract import LayerExtractor

MTIME = 1_600_000_000


# -- crafting tars ---------------------------------------------------------------------------------

def entry(name: str, kind: str = "file", data: bytes = b"", link: str = "", mode: int | None = None,
          pax: dict[str, str] | None = None, uid: int = 0, gid: int = 0) -> tuple[tarfile.TarInfo, bytes]:
    """A tar entry: kind is file, dir, symlink, hardlink, fifo, chr, blk, or a raw type byte."""
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid = MTIME, uid, gid
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE}
    info.type = types.get(kind, kind.encode())
    info.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    info.linkname = link
    if kind == "file":
        info.size = len(data)
    if pax:
        info.pax_headers = dict(pax)
    return info, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def docker_archive(layers: list[bytes], tag: str = "hostile:latest", diff_ids: list[str] | None = None) -> bytes:
    """A Docker archive (``manifest.json``) of one image stacking ``layers`` (tar bytes, maybe compressed)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "created": "2024-01-01T00:00:00Z",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids or [sha(raw) for raw in layers]}}).encode()
    files = {f"{sha(config)[7:]}.json": config}
    names = []
    for i, raw in enumerate(layers):
        files[f"l{i}/layer.tar"] = raw
        names.append(f"l{i}/layer.tar")
    files["manifest.json"] = json.dumps([{"Config": f"{sha(config)[7:]}.json", "RepoTags": [tag],
                                          "Layers": names}]).encode()
    return make_tar(*(entry(name, data=data) for name, data in files.items()))


# -- fixtures and checks -----------------------------------------------------------------------------

@pytest.fixture
def svc(tmp_path: Path) -> ImageService:
    return ImageService(tmp_path / "root")


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(tmp_path / "snapshots")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A host directory that hostile layers aim at; it must stay empty."""
    path = tmp_path / "host-outside"
    path.mkdir()
    return path


@pytest.fixture
def host_file(tmp_path: Path) -> Iterator[Path]:
    """A host file hostile layers aim at; its content and link count must not change."""
    path = tmp_path / "host-secret"
    path.write_bytes(b"secret")
    yield path
    assert path.read_bytes() == b"secret" and path.stat().st_nlink == 1


def load(svc: ImageService, data: bytes) -> list[str]:
    (svc.root / "tmp").mkdir(exist_ok=True)
    return load_archive(svc, io.BytesIO(data), svc.root / "tmp")


def do_import(svc: ImageService, data: bytes) -> Path:
    """Import ``data`` as an image; returns its single layer's unpacked directory."""
    image_id = svc.import_tarball(io.BytesIO(data), "imported:latest")
    return layer_paths(svc, image_id)[-1]


def layer_paths(svc: ImageService, image_id: str) -> list[Path]:
    record = svc.store.get(image_id)
    return [svc.snapshots.diff_dir(layer.chain_id) for layer in record.layers]


def state(svc: ImageService) -> tuple[Any, ...]:
    return (svc.content.list(), svc.snapshots.list_layers(), svc.store.ids(), svc.store.all_references())


def assert_no_temp(store: SnapshotStore) -> None:
    assert os.listdir(store.root / "tmp") == []
    assert all(os.path.isdir(store.root / "layers" / d / "diff") for d in os.listdir(store.root / "layers"))


@pytest.fixture
def baseline(svc: ImageService) -> Iterator[tuple[Any, ...]]:
    """An image already stored; every failing case below must leave it (and only it) intact."""
    svc.import_tarball(io.BytesIO(make_tar(entry("keep.txt", data=b"kept"))), "existing:latest")
    before = state(svc)
    yield before
    assert svc.store.lookup(parse_normalized("existing:latest")) == before[2][0]


def refused(svc: ImageService, before: tuple[Any, ...], exc: type[Exception], match: str, data: bytes,
            how: str = "load") -> None:
    """``data`` (a layer for import, an archive for load) is refused and the store is as before."""
    with pytest.raises(exc, match=match):
        if how == "load":
            load(svc, data)
        else:
            svc.import_tarball(io.BytesIO(data), "hostile:latest")
    assert state(svc) == before
    assert_no_temp(svc.snapshots)
    existing = svc.store.get(before[2][0])
    assert (svc.snapshots.diff_dir(existing.layers[0].chain_id) / "keep.txt").read_bytes() == b"kept"


# -- names ---------------------------------------------------------------------------------------------

def test_absolute_names_land_inside_the_layer(svc: ImageService, outside: Path) -> None:
    diff = do_import(svc, make_tar(entry(f"{outside}/planted", data=b"x")))
    assert os.listdir(outside) == []
    assert (diff / str(outside).lstrip("/") / "planted").read_bytes() == b"x"


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "./../../../../../../tmp/escape"])
def test_dotdot_above_the_root_is_refused(svc: ImageService, baseline: tuple[Any, ...], name: str) -> None:
    refused(svc, baseline, CorruptContent, "outside of the layer", docker_archive([make_tar(entry(name, data=b"x"))]))


def test_dotdot_that_stays_inside_is_cleaned(store: SnapshotStore) -> None:
    diff_id = store.unpack(None, io.BytesIO(make_tar(entry("a/b/../c", data=b"x"))))
    assert (store.diff_dir(diff_id) / "a/c").read_bytes() == b"x"


def test_nul_in_a_pax_path_is_refused(svc: ImageService, baseline: tuple[Any, ...]) -> None:
    info, data = entry("plain", data=b"x", pax={"path": "a\x00b"})
    refused(svc, baseline, CorruptContent, "NUL byte", make_tar((info, data)), how="import")


def test_nul_in_a_link_name_is_refused(store: SnapshotStore) -> None:
    with pytest.raises(CorruptContent, match="NUL byte in its link name"):
        store.unpack(None, io.BytesIO(make_tar(entry("l", "symlink", link="x", pax={"linkpath": "a\x00/etc"}))))
    assert_no_temp(store)


def test_an_overlong_component_is_refused(store: SnapshotStore) -> None:
    with pytest.raises(CorruptContent, match="file name too long"):
        store.unpack(None, io.BytesIO(make_tar(entry("d/" + "n" * 300, data=b"x"))))
    assert_no_temp(store)


def test_an_overlong_path_is_refused_cleanly(store: SnapshotStore) -> None:
    deep = "/".join(["d" * 200] * 25)  # 5,000 bytes: past PATH_MAX, each component fine
    with pytest.raises(CorruptContent, match="file name too long"):
        store.unpack(None, io.BytesIO(make_tar(entry(deep + "/f", data=b"x"))))
    assert_no_temp(store)


def test_non_utf8_names_are_kept_byte_for_byte(store: SnapshotStore) -> None:
    raw = bytearray(make_tar(entry("caf_-name", data=b"x"), fmt=tarfile.USTAR_FORMAT))
    raw[3] = 0xE9  # latin-1 "é": not UTF-8; the header checksum is fixed below
    raw[148:156] = b" " * 8
    raw[148:156] = b"%06o\x00 " % sum(raw[:512])
    diff_id = store.unpack(None, io.BytesIO(bytes(raw)))
    assert os.listdir(os.fsencode(store.diff_dir(diff_id))) == [b"caf\xe9-name"]


# -- symlinks -------------------------------------------------------------------------------------------

def test_absolute_symlink_out_then_a_write_through_it_stays_inside(svc: ImageService, outside: Path) -> None:
    diff = do_import(svc, make_tar(entry("evil", "symlink", link=str(outside)), entry("evil/pwned", data=b"x")))
    assert os.listdir(outside) == []
    assert os.readlink(diff / "evil") == str(outside)
    assert (diff / str(outside).lstrip("/") / "pwned").read_bytes() == b"x"  # as chrooted


def test_relative_symlink_out_is_refused(svc: ImageService, baseline: tuple[Any, ...]) -> None:
    refused(svc, baseline, CorruptContent, "invalid symlink",
            make_tar(entry("a/evil", "symlink", link="../../../../../../../etc")), how="import")


def test_symlink_loop_is_refused(store: SnapshotStore) -> None:
    tar = make_tar(entry("a", "symlink", link="b"), entry("b", "symlink", link="a"), entry("a/x", data=b"x"))
    with pytest.raises(CorruptContent, match="too many levels of symbolic links"):
        store.unpack(None, io.BytesIO(tar))
    assert_no_temp(store)


def test_symlink_planted_by_an_earlier_layer_cannot_redirect_a_later_one(svc: ImageService, outside: Path) -> None:
    lower = make_tar(entry("evil", "symlink", link=str(outside)), entry("deep/up", "symlink", link=".."))
    upper = make_tar(entry("evil/pwned", data=b"x"), entry("deep/up/also", data=b"y"))
    load(svc, docker_archive([lower, upper]))
    image_id = svc.store.lookup(parse_normalized("hostile:latest"))
    assert image_id is not None
    low, up = layer_paths(svc, image_id)
    assert os.listdir(outside) == []
    assert os.path.islink(low / "evil")  # the lower layer keeps its symlink...
    assert (up / "evil").is_dir() and not (up / "evil").is_symlink()  # ...the upper one hides it with a dir
    assert (up / "evil/pwned").read_bytes() == b"x"
    assert (up / "deep/up/also").read_bytes() == b"y"


def test_symlink_then_file_replaces_the_link_never_writes_through(svc: ImageService, host_file: Path) -> None:
    diff = do_import(svc, make_tar(entry("f", "symlink", link=str(host_file)), entry("f", data=b"mine")))
    assert not (diff / "f").is_symlink() and (diff / "f").read_bytes() == b"mine"


def test_dir_that_later_becomes_a_symlink_does_not_redirect_its_children(store: SnapshotStore, outside: Path) -> None:
    tar = make_tar(entry("d", "dir"), entry("d/child", data=b"x"), entry("d", "symlink", link=str(outside)))
    diff = store.diff_dir(store.unpack(None, io.BytesIO(tar)))
    assert os.listdir(outside) == []
    assert os.readlink(diff / "d") == str(outside)


def test_commit_layers_keep_climbing_symlinks_but_never_follow_them_out(store: SnapshotStore, outside: Path) -> None:
    tar = make_tar(entry("up", "symlink", link="../../../.." + str(outside)))
    diff = store.diff_dir(store.unpack(None, io.BytesIO(tar), extractor=CommittedLayerExtractor))
    assert os.readlink(diff / "up") == "../../../.." + str(outside)
    with pytest.raises(CorruptContent, match="outside of the layer"):
        store.unpack(None, io.BytesIO(make_tar(entry("up", "symlink", link="../../../.." + str(outside)),
                                               entry("up/x", data=b"x"))), extractor=CommittedLayerExtractor)
    assert os.listdir(outside) == []
    assert_no_temp(store)


# -- hard links ------------------------------------------------------------------------------------------

def test_hardlink_climbing_out_is_refused(svc: ImageService, baseline: tuple[Any, ...], host_file: Path) -> None:
    tar = make_tar(entry("h", "hardlink", link="../../../../../../../.." + str(host_file)))
    refused(svc, baseline, CorruptContent, "outside of the layer", docker_archive([tar]))


def test_absolute_hardlink_names_a_file_of_the_layer_not_of_the_host(svc: ImageService, baseline: tuple[Any, ...],
                                                                      host_file: Path) -> None:
    tar = make_tar(entry("h", "hardlink", link=str(host_file)))
    refused(svc, baseline, CorruptContent, "no such file in the layer", tar, how="import")


def test_hardlink_to_a_symlink_pointing_out_links_the_symlink_itself(svc: ImageService, host_file: Path) -> None:
    tar = make_tar(entry("s", "symlink", link=str(host_file)), entry("h", "hardlink", link="s"),
                   entry("h2", "hardlink", link="s"), entry("h2", data=b"replaced"))
    diff = do_import(svc, tar)
    assert os.readlink(diff / "h") == str(host_file)
    assert os.lstat(diff / "h").st_ino == os.lstat(diff / "s").st_ino
    assert (diff / "h2").read_bytes() == b"replaced" and not (diff / "h2").is_symlink()


def test_hardlink_to_a_file_of_a_lower_layer_is_refused(svc: ImageService, baseline: tuple[Any, ...]) -> None:
    # moby applies a layer into its own empty directory: a link's source must be in the same layer
    lower = make_tar(entry("etc/passwd", data=b"root:x:0:0"))
    upper = make_tar(entry("link", "hardlink", link="etc/passwd"))
    refused(svc, baseline, CorruptContent, "no such file in the layer", docker_archive([lower, upper]))


def test_hardlink_to_a_directory_is_refused(store: SnapshotStore) -> None:
    with pytest.raises(CorruptContent, match="a directory"):
        store.unpack(None, io.BytesIO(make_tar(entry("d", "dir"), entry("h", "hardlink", link="d"))))
    assert_no_temp(store)


# -- special files, modes, xattrs ----------------------------------------------------------------------

def test_fifos_are_created_and_never_opened(store: SnapshotStore) -> None:
    diff = store.diff_dir(store.unpack(None, io.BytesIO(make_tar(entry("p", "fifo", mode=0o640)))))
    st = os.lstat(diff / "p")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640


class _Unprivileged(LayerExtractor):
    """The extractor as it runs without root (in a user namespace): no chown, no mknod."""

    def __post_init__(self) -> None:
        self.privileged = False
        super().__post_init__()


def test_device_nodes_are_skipped_without_root(store: SnapshotStore) -> None:
    tar = make_tar(entry("dev/sda", "blk"), entry("dev/mem", "chr"), entry("after", data=b"x"))
    diff = store.diff_dir(store.unpack(None, io.BytesIO(tar), extractor=_Unprivileged))
    assert not os.path.lexists(diff / "dev/sda") and not os.path.lexists(diff / "dev/mem")
    assert (diff / "after").read_bytes() == b"x"


@pytest.mark.parametrize("kind", ["Z", "V", "M"])
def test_entry_types_docker_does_not_apply_are_refused(svc: ImageService, baseline: tuple[Any, ...], kind: str) -> None:
    refused(svc, baseline, CorruptContent, f"unhandled tar header type {ord(kind)}",
            make_tar(entry("odd", kind)), how="import")


def test_setuid_setgid_and_sticky_bits_are_kept(svc: ImageService) -> None:
    tar = make_tar(entry("bin/su", data=b"#!", mode=0o4755), entry("bin/wall", data=b"#!", mode=0o2755),
                   entry("tmp", "dir", mode=0o1777), entry("srv", "dir", mode=0o3775))
    diff = do_import(svc, tar)
    modes = {name: stat.S_IMODE(os.lstat(diff / name).st_mode) for name in ("bin/su", "bin/wall", "tmp", "srv")}
    assert modes == {"bin/su": 0o4755, "bin/wall": 0o2755, "tmp": 0o1777, "srv": 0o3775}
    # the unpacked layer is out of reach of the host's other users
    assert stat.S_IMODE(os.stat(diff.parent).st_mode) == 0o700


def test_overlay_private_xattrs_are_never_taken_from_a_tar() -> None:
    info, _ = entry("d", "dir", pax={"SCHILY.xattr.trusted.overlay.redirect": "/etc",
                                     "SCHILY.xattr.trusted.overlay.opaque": "y",
                                     "SCHILY.xattr.security.capability": "\x01", "SCHILY.xattr.user.a": "b"})
    assert dict(xattrs_to_set(info)) == {"security.capability": b"\x01", "user.a": b"b"}


def test_user_xattrs_are_kept_and_overlay_ones_dropped(store: SnapshotStore) -> None:
    tar = make_tar(entry("f", data=b"x", pax={"SCHILY.xattr.user.origin": "crafted",
                                               "SCHILY.xattr.trusted.overlay.metacopy": ""}))
    diff = store.diff_dir(store.unpack(None, io.BytesIO(tar)))
    assert os.getxattr(diff / "f", "user.origin") == b"crafted"
    assert "trusted.overlay.metacopy" not in os.listxattr(diff / "f")


def test_an_xattr_value_too_large_for_the_filesystem_is_refused(store: SnapshotStore) -> None:
    tar = make_tar(entry("f", data=b"x", pax={"SCHILY.xattr.user.big": "v" * 200_000}))
    with pytest.raises(CorruptContent, match="too large"):
        store.unpack(None, io.BytesIO(tar))
    assert_no_temp(store)


def _special_record(kind: bytes, declared: int) -> bytes:
    """A tar whose first entry is a PAX (``x``) or GNU long-name (``L``) record declaring ``declared`` bytes."""
    info = tarfile.TarInfo("././@LongLink" if kind == b"L" else "./PaxHeaders/f")
    info.type, info.size = kind, declared
    return info.tobuf(format=tarfile.GNU_FORMAT) + b"path=x\n".ljust(512, b"\0") + b"\0" * 1024


@pytest.mark.parametrize("kind", [b"x", b"L"], ids=["pax", "gnu-longname"])
def test_huge_pax_and_long_name_records_are_refused_before_reading(store: SnapshotStore, kind: bytes) -> None:
    # 1 GiB declared, 512 bytes present: reading it first would say "unexpected end" (or eat the memory)
    with pytest.raises(CorruptContent, match="header field too long"):
        store.unpack(None, io.BytesIO(_special_record(kind, 1 << 30)))
    assert_no_temp(store)


def test_absurd_owner_and_mtime_from_pax(store: SnapshotStore) -> None:
    with pytest.raises(CorruptContent, match="out of range"):
        store.unpack(None, io.BytesIO(make_tar(entry("f", data=b"x", pax={"uid": "99999999999"}))))
    diff = store.diff_dir(store.unpack(None, io.BytesIO(make_tar(entry("g", data=b"x", pax={"mtime": "1e30"})))))
    assert os.lstat(diff / "g").st_mtime == 0  # moby's boundTime: out of range is the epoch
    assert_no_temp(store)


# -- whiteouts that need no root -----------------------------------------------------------------------

def test_whiteout_of_dotdot_is_refused(store: SnapshotStore) -> None:
    with pytest.raises(CorruptContent, match="invalid whiteout"):
        store.unpack(None, io.BytesIO(make_tar(entry("d/.wh..", data=b""))))
    assert_no_temp(store)


def test_aufs_metadata_entries_are_skipped(store: SnapshotStore) -> None:
    tar = make_tar(entry(".wh..wh.plnk", "dir"), entry(".wh..wh.plnk/1234.5678", data=b"x"),
                   entry(".wh..wh.aufs", data=b"y"), entry("d/.wh..wh.orph", "dir"), entry("kept", data=b"z"))
    diff = store.diff_dir(store.unpack(None, io.BytesIO(tar)))
    assert sorted(os.listdir(diff)) == ["kept"]


# -- duplicates ---------------------------------------------------------------------------------------------

def test_file_then_dir_and_dir_then_file(store: SnapshotStore) -> None:
    tar = make_tar(entry("a", data=b"x"), entry("a", "dir"), entry("a/in", data=b"1"),
                   entry("b", "dir"), entry("b/in", data=b"2"), entry("b", data=b"file"))
    diff = store.diff_dir(store.unpack(None, io.BytesIO(tar)))
    assert (diff / "a/in").read_bytes() == b"1"
    assert (diff / "b").is_file() and (diff / "b").read_bytes() == b"file"


# -- truncated and malformed ------------------------------------------------------------------------------

@pytest.mark.parametrize("cut", [100, 512 + 1000, 512 + 3072 + 200], ids=["in-header", "in-body", "in-2nd-header"])
def test_truncated_tars_are_refused(svc: ImageService, baseline: tuple[Any, ...], cut: int) -> None:
    raw = make_tar(entry("big", data=b"z" * 3000), entry("second", data=b"s"), fmt=tarfile.USTAR_FORMAT)
    refused(svc, baseline, CorruptContent, "invalid tar|unexpected end", raw[:cut], how="import")


def test_declared_size_larger_than_the_data_is_refused(svc: ImageService, baseline: tuple[Any, ...]) -> None:
    raw = bytearray(make_tar(entry("f", data=b"abc"), fmt=tarfile.USTAR_FORMAT))
    raw[124:136] = b"%011o\x00" % 10_000_000  # size field: 10 MB, and only one block follows
    raw[148:156] = b" " * 8
    raw[148:156] = b"%06o\x00 " % sum(raw[:512])
    refused(svc, baseline, CorruptContent, "invalid tar|unexpected end", docker_archive([bytes(raw)]))


def test_missing_end_blocks_are_accepted_as_go_does(store: SnapshotStore) -> None:
    raw = make_tar(entry("f", data=b"abc"), fmt=tarfile.USTAR_FORMAT)
    cut = raw[:1024]  # header + one data block, no end-of-archive blocks
    diff = store.diff_dir(store.unpack(None, io.BytesIO(cut)))
    assert (diff / "f").read_bytes() == b"abc"


# -- bombs and size caps --------------------------------------------------------------------------------

def _zeros_layer(megabytes: int) -> bytes:
    return make_tar(entry("zeros", data=bytes(megabytes << 20)))


@pytest.fixture
def tight(monkeypatch: pytest.MonkeyPatch) -> None:
    """Limits small enough to test: ratio 100:1 past 1 MiB, at most 4 MiB per layer."""
    monkeypatch.setenv(ENV_MAX_RATIO, "100")
    monkeypatch.setenv(ENV_RATIO_FLOOR, str(1 << 20))
    monkeypatch.setenv(ENV_MAX_BYTES, str(4 << 20))


def test_limits_come_from_the_environment(tight: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert LayerLimits.from_env() == LayerLimits(4 << 20, 100, 1 << 20)
    monkeypatch.setenv(ENV_MAX_BYTES, "lots")
    with pytest.raises(InvalidParameter, match="not an integer"):
        LayerLimits.from_env()


@pytest.mark.parametrize("how", ["import", "load"])
def test_decompression_bomb_is_refused(svc: ImageService, baseline: tuple[Any, ...], tight: None, how: str) -> None:
    bomb = lzma.compress(_zeros_layer(3))  # 3 MiB of zeros in ~1 KB: far above 100:1
    assert len(bomb) * 100 < 3 << 20
    data = bomb if how == "import" else docker_archive([bomb], diff_ids=[sha(_zeros_layer(3))])
    refused(svc, baseline, CorruptContent, "decompression bomb", data, how=how)


def test_a_repetitive_layer_below_the_ratio_floor_is_fine(svc: ImageService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_MAX_RATIO, "100")
    diff = do_import(svc, gzip.compress(make_tar(entry("zeros", data=bytes(512 << 10)))))
    assert (diff / "zeros").stat().st_size == 512 << 10


@pytest.mark.parametrize("how", ["import", "load"])
def test_a_layer_over_the_size_cap_is_refused(svc: ImageService, baseline: tuple[Any, ...], tight: None,
                                             how: str) -> None:
    big = os.urandom(5 << 20)  # incompressible: the ratio is fine, the size is not
    layer = make_tar(entry("big", data=big))
    data = gzip.compress(layer, compresslevel=1) if how == "import" else docker_archive([layer])
    refused(svc, baseline, InvalidParameter, "layer too large", data, how=how)


def test_a_sparse_entry_cannot_expand_past_the_cap(store: SnapshotStore, tmp_path: Path, tight: None) -> None:
    src = tmp_path / "sparse-src"
    src.mkdir()
    with open(src / "holes", "wb") as f:
        f.truncate(1 << 30)  # 1 GiB of holes: a few bytes in a GNU sparse tar
    archive = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", "--format=gnu", "-cf", str(archive), "-C", str(src), "holes"], check=True)
    assert archive.stat().st_size < 1 << 20
    with pytest.raises(InvalidParameter, match="layer too large"):
        store.unpack(None, io.BytesIO(archive.read_bytes()))
    assert_no_temp(store)


def test_symlink_escape_rule_is_lexical() -> None:
    assert symlink_escapes([], "..") and symlink_escapes(["a"], "../..") and symlink_escapes(["a", "b"], "x/../../../../y")
    assert not symlink_escapes(["a", "b"], "../..") and not symlink_escapes([], "/etc") and not symlink_escapes([], "x")


def test_a_failure_midway_keeps_other_images_intact(svc: ImageService, baseline: tuple[Any, ...]) -> None:
    good = make_tar(entry("fine", data=b"1"))
    bad = make_tar(entry("x", data=b"2"), entry("../../out", data=b"3"))
    refused(svc, baseline, CorruptContent, "outside of the layer", docker_archive([good, bad]))


def test_generic_os_errors_stay_dockyard_errors(store: SnapshotStore) -> None:
    # a FIFO where a directory is needed: resolving its child fails cleanly, not with a raw OSError
    with pytest.raises(DockyardError):
        store.unpack(None, io.BytesIO(make_tar(entry("p", "fifo"), entry("p/x", data=b"x"))))
    assert_no_temp(store)


def test_sockets_never_reach_a_layer_commit_skips_them(store: SnapshotStore, tmp_path: Path) -> None:
    # a tar has no socket type: the writer behind commit (like Docker's archiver) leaves them out
    import socket

    from dockyard.snapshots.tarwriter import TreeTarWriter

    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "file").write_bytes(b"f")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(upper / "app.sock"))
        buf = io.BytesIO()
        writer = TreeTarWriter.to_stream(buf, overlay_whiteouts=True)
        fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY)
        try:
            writer.add_dir(fd, "", include_self=False)
        finally:
            os.close(fd)
        writer.close()
    finally:
        sock.close()
    diff = store.diff_dir(store.unpack(None, io.BytesIO(buf.getvalue()), extractor=CommittedLayerExtractor))
    assert os.listdir(diff) == ["file"]
