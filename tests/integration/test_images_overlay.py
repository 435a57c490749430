"""Unpacked layers under a real overlayfs: whiteouts, opaque dirs, and an imported busybox.

Every mount happens inside ``unshare --mount`` (a private mount namespace of a child process), so
it disappears with that process even when an assertion fails.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from dockyard.images.service import ImageService
from dockyard.snapshots import SnapshotStore, next_chain_id

pytestmark = pytest.mark.root


def make_tar(entries: list[tuple[str, str, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data or b""), 0o644
                tar.addfile(info, io.BytesIO(data or b""))
    return buf.getvalue()


def in_private_mounts(script: str, *args: str) -> str:
    """Run a shell script in a new, private mount namespace; returns its stdout."""
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-euc", script, "sh", *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def overlay_script(tail: str) -> str:
    return 'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4"\n' + tail


def test_whiteouts_and_opaque_dirs_hide_lower_files(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "snapshots")
    lower = make_tar([("file", "a", b"a"), ("file", "b", b"b"), ("dir", "d", None), ("file", "d/x", b"x"),
                      ("file", "d/y", b"y"), ("dir", "e", None), ("file", "e/keep", b"k")])
    upper = make_tar([("file", ".wh.a", None), ("dir", "d", None), ("file", "d/.wh..wh..opq", None),
                      ("file", "d/z", b"z"), ("file", "c", b"c"), ("file", "e/.wh.gone", None)])
    base = store.unpack(None, io.BytesIO(lower))
    top = next_chain_id(base, store.unpack(None, io.BytesIO(upper), parent=base))

    diff = store.diff_dir(top)
    st = os.lstat(diff / "a")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(diff / "d", "trusted.overlay.opaque") == b"y"
    assert not (diff / ".wh.a").exists() and not (diff / "d" / ".wh..wh..opq").exists()

    layer = store.prepare("c1")
    lowers = ":".join(str(p) for p in store.lowerdirs([base, top]))
    out = in_private_mounts(overlay_script('cd "$4"; find . | sort'),
                            lowers, str(layer.upper), str(layer.work), str(layer.rootfs))
    assert out.split() == [".", "./b", "./c", "./d", "./d/z", "./e", "./e/keep"]
    assert not os.path.ismount(layer.rootfs)
    assert store.remove_container("c1")


def test_imported_busybox_runs_from_its_overlay_rootfs(tmp_path: Path, busybox_tar: Path) -> None:
    svc = ImageService(tmp_path / "root")
    with busybox_tar.open("rb") as f:
        svc.import_tarball(f, "busybox", ['CMD ["sh"]'])
    lowers, upper, work, rootfs = svc.prepare_container("c2", "busybox")
    out = in_private_mounts(
        overlay_script('chroot "$4" /bin/sh -c "echo hello > /tmp/f; cat /etc/passwd | head -1; ls /tmp"'),
        ":".join(map(str, lowers)), str(upper), str(work), str(rootfs))
    assert out.split("\n")[:2] == ["root:x:0:0:root:/root:/bin/sh", "f"]
    assert (upper / "tmp" / "f").read_text() == "hello\n"  # the write went to the container layer
    assert not (lowers[0] / "tmp" / "f").exists()
    assert svc.remove_container_layer("c2")
    assert svc.remove("busybox")[-1]["Deleted"].startswith("sha256:")
    assert svc.snapshots.list_layers() == []


def test_remove_container_copes_with_immutable_files(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "snapshots")
    layer = store.prepare("c3")
    f = layer.upper / "locked"
    f.write_text("x")
    chattr = subprocess.run(["chattr", "+i", str(f)], capture_output=True)
    # The test's temp dir must be on a filesystem with the immutable flag (ext4, xfs, btrfs: not tmpfs).
    assert chattr.returncode == 0, f"chattr +i failed here ({chattr.stderr.decode().strip()}): run with --basetemp on ext4"
    try:
        assert store.remove_container("c3")
        assert not f.exists()
    finally:
        if f.exists():
            subprocess.run(["chattr", "-i", str(f)])
