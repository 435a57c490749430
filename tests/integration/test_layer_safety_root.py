"""Layer safety cases that need root: whiteouts (0/0 device nodes, the opaque xattr), device nodes,
file capabilities and trusted xattrs, a full disk, and containers run from hostile images.

The unit half is ``tests/unit/test_layer_safety.py`` (same crafted-tar helpers).
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.errors import CorruptContent, DockyardError
from dockyard.snapshots import SnapshotStore
from tests.integration.daemon_harness import Daemon
from tests.unit.test_layer_safety import docker_archive, entry, make_tar, sha

pytestmark = pytest.mark.root

OPAQUE = "trusted.overlay.opaque"


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(tmp_path / "snapshots")


def unpack(store: SnapshotStore, *entries: tuple[object, bytes]) -> Path:
    return store.diff_dir(store.unpack(None, io.BytesIO(make_tar(*entries))))  # type: ignore[arg-type]


def is_whiteout(path: Path) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)


def assert_no_temp(store: SnapshotStore) -> None:
    assert os.listdir(store.root / "tmp") == []


# -- whiteouts ----------------------------------------------------------------------------------------

def test_whiteout_becomes_a_0_0_character_device_with_its_owner(store: SnapshotStore) -> None:
    diff = unpack(store, entry("etc/.wh.motd", uid=7, gid=8))
    assert is_whiteout(diff / "etc/motd") and not os.path.lexists(diff / "etc/.wh.motd")
    assert (os.lstat(diff / "etc/motd").st_uid, os.lstat(diff / "etc/motd").st_gid) == (7, 8)


def test_opaque_marker_becomes_the_opaque_xattr(store: SnapshotStore) -> None:
    diff = unpack(store, entry("var/cache", "dir"), entry("var/cache/.wh..wh..opq"), entry("var/cache/new", data=b"n"))
    assert os.getxattr(diff / "var/cache", OPAQUE) == b"y"
    assert sorted(os.listdir(diff / "var/cache")) == ["new"]


def test_whiteout_through_a_symlinked_parent_stays_inside(store: SnapshotStore, tmp_path: Path) -> None:
    outside = tmp_path / "host-outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"host")
    diff = unpack(store, entry("real", "dir"), entry("link", "symlink", link="real"), entry("link/.wh.gone"),
                  entry("evil", "symlink", link=str(outside)), entry("evil/.wh.victim"),
                  entry("evil/.wh..wh..opq"))
    assert is_whiteout(diff / "real/gone")
    assert is_whiteout(diff / str(outside).lstrip("/") / "victim")  # resolved as chrooted
    assert (outside / "victim").read_bytes() == b"host" and OPAQUE not in os.listxattr(outside)


def test_whiteout_with_a_body_drops_the_body_and_reads_on(store: SnapshotStore) -> None:
    diff = unpack(store, entry(".wh.old", data=b"ignored body " * 100), entry("after", data=b"a"))
    assert is_whiteout(diff / "old") and (diff / "after").read_bytes() == b"a"


def test_whiteout_of_a_file_of_the_same_layer_and_the_reverse(store: SnapshotStore) -> None:
    # a later entry wins, as containerd's applier does (moby's overlay converter fails on EEXIST)
    diff = unpack(store, entry("a", data=b"x"), entry(".wh.a"), entry(".wh.b"), entry("b", data=b"back"))
    assert is_whiteout(diff / "a")
    assert (diff / "b").read_bytes() == b"back"


def test_whiteout_of_dotdot_is_refused(store: SnapshotStore) -> None:
    with pytest.raises(CorruptContent, match="invalid whiteout"):
        unpack(store, entry("d", "dir"), entry("d/.wh.."))
    assert_no_temp(store)


# -- device nodes, capabilities, xattrs, modes --------------------------------------------------------

def test_device_nodes_are_created_as_docker_does_as_root(store: SnapshotStore) -> None:
    blk, _ = entry("dev/loop7", "blk", mode=0o660, gid=6)
    blk.devmajor, blk.devminor = 7, 7
    null, _ = entry("dev/null", "chr", mode=0o666)
    null.devmajor, null.devminor = 1, 3
    diff = unpack(store, (blk, b""), (null, b""))
    st_blk, st_null = os.lstat(diff / "dev/loop7"), os.lstat(diff / "dev/null")
    assert stat.S_ISBLK(st_blk.st_mode) and st_blk.st_rdev == os.makedev(7, 7) and st_blk.st_gid == 6
    assert stat.S_IMODE(st_blk.st_mode) == 0o660
    assert stat.S_ISCHR(st_null.st_mode) and st_null.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(st_null.st_mode) == 0o666


def _file_caps(permitted: int) -> str:
    """A VFS_CAP_REVISION_2 ``security.capability`` value with the effective bit set."""
    raw = struct.pack("<IIIII", 0x02000001, permitted, 0, 0, 0)
    return raw.decode("utf-8", "surrogateescape")


def test_file_capabilities_and_trusted_xattrs_are_kept(store: SnapshotStore) -> None:
    pax = {"SCHILY.xattr.security.capability": _file_caps(1 << 10),  # cap_net_bind_service
           "SCHILY.xattr.trusted.app": "kept", "SCHILY.xattr.trusted.overlay.redirect": "/etc"}
    diff = unpack(store, entry("bin/server", data=b"\x7fELF", mode=0o755, pax=pax))
    assert os.getxattr(diff / "bin/server", "security.capability") == struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)
    assert os.getxattr(diff / "bin/server", "trusted.app") == b"kept"
    assert "trusted.overlay.redirect" not in os.listxattr(diff / "bin/server")


def test_setuid_survives_chown_to_another_owner(store: SnapshotStore) -> None:
    diff = unpack(store, entry("bin/tool", data=b"#!", mode=0o6755, uid=1000, gid=1000))
    st = os.lstat(diff / "bin/tool")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o6755)


# -- a full disk ------------------------------------------------------------------------------------------

@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs, unmounted afterwards whatever happens."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_layer_larger_than_the_free_space_fails_cleanly(small_fs: Path) -> None:
    store = SnapshotStore(small_fs / "snapshots")
    kept = store.unpack(None, io.BytesIO(make_tar(entry("keep/me", data=b"safe" * 1000))))
    with pytest.raises(DockyardError, match="no space left on device") as info:
        store.unpack(None, io.BytesIO(make_tar(entry("big", data=os.urandom(40 << 20)))))
    assert not isinstance(info.value, CorruptContent)
    assert_no_temp(store)
    assert store.list_layers() == [kept]
    assert (store.diff_dir(kept) / "keep/me").read_bytes() == b"safe" * 1000
    # the space came back: the next layer unpacks
    again = store.unpack(None, io.BytesIO(make_tar(entry("next", data=b"n"))))
    assert sorted(store.list_layers()) == sorted([kept, again])


def test_a_daemon_with_a_full_disk_refuses_the_load_and_still_runs_its_images(
        small_fs: Path, busybox_tar: Path, tmp_path: Path) -> None:
    daemon = Daemon(small_fs / "daemon")
    try:
        daemon.import_busybox(busybox_tar)
        zeros = make_tar(entry("zeros", data=bytes(48 << 20)))  # 48 MiB of zeros: ~50 KB gzipped
        archive = tmp_path / "huge.tar"
        archive.write_bytes(docker_archive([gzip.compress(zeros)], tag="huge:latest", diff_ids=[sha(zeros)]))
        result = daemon.cli("load", "-i", str(archive), timeout=120)
        assert result.returncode != 0 and "no space left on device" in result.stderr
        images = daemon.cli("images", "--format", "{{.Repository}}", check=True).stdout.split()
        assert images == ["busybox"]
        assert os.listdir(small_fs / "daemon/data/snapshots/tmp") == []
        out = daemon.cli("run", "--rm", "busybox", "echo", "still-runs", check=True, timeout=60).stdout
        assert out.strip() == "still-runs"
    finally:
        daemon.close()


# -- hostile images through a running daemon -------------------------------------------------------------

def _load(daemon: Daemon, tmp_path: Path, data: bytes, name: str) -> tuple[int, str]:
    path = tmp_path / f"{name}.tar"
    path.write_bytes(data)
    result = daemon.cli("load", "-i", str(path), timeout=120)
    return result.returncode, result.stdout + result.stderr


def test_overlay_sees_whiteouts_and_opaque_dirs_of_a_loaded_image(daemon: Daemon, busybox_tar: Path,
                                                                  tmp_path: Path) -> None:
    base = busybox_tar.read_bytes()
    middle = make_tar(entry("data/a", data=b"a"), entry("data/b", data=b"b"), entry("keep/old", data=b"o"))
    top = make_tar(entry("data/.wh.a"), entry("keep/.wh..wh..opq"), entry("keep/new", data=b"n"))
    code, out = _load(daemon, tmp_path, docker_archive([base, middle, top], tag="layered:safety"), "layered")
    assert code == 0, out
    try:
        listing = daemon.cli("run", "--rm", "layered:safety", "sh", "-c", "ls /data; echo --; ls /keep",
                             check=True, timeout=60).stdout.split()
        assert listing == ["b", "--", "new"]
    finally:
        daemon.cli("rmi", "-f", "layered:safety")


def test_device_nodes_in_a_layer_give_no_access_to_host_devices(daemon: Daemon, busybox_tar: Path,
                                                                tmp_path: Path) -> None:
    blk, _ = entry("hostdisk", "blk", mode=0o666)
    blk.devmajor, blk.devminor = 7, 0  # loop0 on the host
    mem, _ = entry("hostmem", "chr", mode=0o666)
    mem.devmajor, mem.devminor = 1, 1  # /dev/mem on the host
    layer = make_tar((blk, b""), (mem, b""))
    code, out = _load(daemon, tmp_path, docker_archive([busybox_tar.read_bytes(), layer], tag="devices:safety"), "dev")
    assert code == 0, out
    try:
        result = daemon.cli("run", "--rm", "devices:safety", "sh", "-c",
                            "ls -l /hostdisk /hostmem; head -c1 /hostdisk >/dev/null; echo disk=$?; "
                            "head -c1 /hostmem >/dev/null; echo mem=$?", timeout=60)
        assert result.returncode == 0, result.stderr
        # the nodes exist (as Docker creates them), but the devices cgroup refuses to open them
        assert "disk=1" in result.stdout and "mem=1" in result.stdout
        assert result.stderr.count("Operation not permitted") == 2, result.stderr
    finally:
        daemon.cli("rmi", "-f", "devices:safety")


def test_refused_archives_leave_the_daemon_and_its_images_intact(daemon: Daemon, tmp_path: Path) -> None:
    before = daemon.cli("images", "-q", "--no-trunc", check=True).stdout.split()
    hostile = {
        "dotdot": docker_archive([make_tar(entry("../../etc/evil", data=b"x"))]),
        "lower-hardlink": docker_archive([make_tar(entry("f", data=b"1")), make_tar(entry("h", "hardlink", link="f"))]),
        "truncated": docker_archive([make_tar(entry("f", data=b"z" * 5000))[:1500]]),
        "odd-type": docker_archive([make_tar(entry("x", "Z"))]),
    }
    for name, data in hostile.items():
        code, out = _load(daemon, tmp_path, data, name)
        assert code == 1 and out.strip() and "Loaded image" not in out, (name, out)  # the stream's error
    assert daemon.cli("images", "-q", "--no-trunc", check=True).stdout.split() == before
    tmp = Path(daemon.root) / "data/snapshots/tmp"
    assert os.listdir(tmp) == []
    assert daemon.cli("run", "--rm", "busybox", "echo", "ok", check=True, timeout=60).stdout.strip() == "ok"


def test_import_through_the_api_confines_a_symlink_write_and_refuses_breakout(daemon: Daemon, tmp_path: Path) -> None:
    import docker

    outside = tmp_path / "host-outside"
    outside.mkdir()
    api = docker.APIClient(base_url=daemon.host, version="auto", timeout=60)
    try:
        planted = make_tar(entry("evil", "symlink", link=str(outside)), entry("evil/pwned", data=b"x"))
        api.import_image_from_data(planted, repository="planted", tag="safety")
        try:
            assert os.listdir(outside) == []
            with pytest.raises(docker.errors.APIError, match="outside of the layer") as info:
                api.import_image_from_data(make_tar(entry("a/../../out", data=b"x")), repository="out", tag="x")
            assert info.value.status_code == 400
        finally:
            api.remove_image("planted:safety", force=True)
    finally:
        api.close()
    assert os.listdir(Path(daemon.root) / "data/snapshots/tmp") == []
