"""COPY/ADD ownership on disk (needs root to chown and mknod): ``--chown``, the owners of created
parents, ``COPY --from`` keeping owners, ADD archives keeping the tar's owners, device nodes and
file capabilities. The rest of the rules are in tests/unit/test_build_copying.py."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard.build.copying import CopyPlan, plan_copy, resolve_chown
from tests.unit.test_build_copying import put, write_ids

pytestmark = pytest.mark.root


def owner(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid


def copy(src: Path, rootfs: Path, sources: list[str], dest: str, **kw: object) -> CopyPlan:
    args: dict[str, object] = {"workdir": "/", "is_add": False, "chown": None, "chmod": None} | kw
    plan = plan_copy(src, sources, dest, **args)  # type: ignore[arg-type]
    plan.apply(rootfs)
    return plan


@pytest.fixture()
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    put(root, "f", "F", 0o4755)
    put(root, "d/sub/g", "G")
    os.symlink("g", root / "d/sub/l")
    for path in (root / "f", root / "d", root / "d/sub", root / "d/sub/g"):
        os.chown(path, 4321, 4321)
    os.lchown(root / "d/sub/l", 4321, 4321)
    (root / "f").chmod(0o4755)  # chown cleared the setuid bit
    return root


@pytest.fixture()
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    write_ids(root)
    (root / "existing").mkdir()
    os.chown(root / "existing", 5, 5)
    return root


def test_default_owner_is_root(ctx: Path, rootfs: Path) -> None:
    copy(ctx, rootfs, ["f", "d"], "/new/")
    for rel in ("new", "new/f", "new/sub", "new/sub/g", "new/sub/l"):
        assert owner(rootfs / rel) == (0, 0), rel
    assert stat.S_IMODE(os.stat(rootfs / "new/f").st_mode) == 0o755  # Docker's chown to 0:0 cleared setuid
    copy(ctx, rootfs, ["f"], "/kept/", from_rootfs=True)
    assert stat.S_IMODE(os.stat(rootfs / "kept/f").st_mode) == 0o4755  # not chowned: kept
    copy(ctx, rootfs, ["f"], "/chmod/", chmod=0o6755)
    assert stat.S_IMODE(os.stat(rootfs / "chmod/f").st_mode) == 0o6755


def test_chown_file_owns_the_parents_it_created(ctx: Path, rootfs: Path) -> None:
    ids = resolve_chown("bob", rootfs)
    copy(ctx, rootfs, ["f"], "/existing/a/b/", chown=ids)
    assert owner(rootfs / "existing") == (5, 5)
    assert owner(rootfs / "existing/a") == (1000, 1000)
    assert owner(rootfs / "existing/a/b") == (1000, 1000)
    assert owner(rootfs / "existing/a/b/f") == (1000, 1000)
    assert stat.S_IMODE(os.stat(rootfs / "existing/a/b/f").st_mode) == 0o755


def test_chown_tree_owns_the_dest_only_when_created(ctx: Path, rootfs: Path) -> None:
    ids = resolve_chown("bob:staff", rootfs)
    copy(ctx, rootfs, ["d"], "/existing", chown=ids)
    assert owner(rootfs / "existing") == (5, 5)
    assert owner(rootfs / "existing/sub") == (1000, 50)
    assert owner(rootfs / "existing/sub/l") == (1000, 50)
    copy(ctx, rootfs, ["d"], "/p/q/", chown=ids)
    assert owner(rootfs / "p") == (0, 0)  # the tree's missing parents are root's
    assert owner(rootfs / "p/q") == (1000, 50)
    assert owner(rootfs / "p/q/sub/g") == (1000, 50)


def test_copy_from_a_rootfs_keeps_owners_unless_chown(ctx: Path, rootfs: Path) -> None:
    copy(ctx, rootfs, ["d"], "/kept/", from_rootfs=True)
    assert owner(rootfs / "kept") == (0, 0)
    assert owner(rootfs / "kept/sub/g") == (4321, 4321)
    assert owner(rootfs / "kept/sub/l") == (4321, 4321)
    copy(ctx, rootfs, ["d"], "/changed/", from_rootfs=True, chown=(7, 7))
    assert owner(rootfs / "changed/sub/g") == (7, 7)


def test_heredoc_and_url_owners(ctx: Path, rootfs: Path, tmp_path: Path) -> None:
    put(tmp_path, "dl/file", "D")
    copy(ctx, rootfs, [], "/h/", heredocs={"EOF": "x"}, chown=(3, 4))
    copy(ctx, rootfs, ["http://example.com/file"], "/u/", is_add=True, chown=(3, 4),
         fetch_url=lambda url: tmp_path / "dl/file")
    assert owner(rootfs / "h/EOF") == (3, 4) and owner(rootfs / "u/file") == (3, 4)


def test_add_archive_keeps_the_tar_owners(ctx: Path, rootfs: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("owned")
        info.uid, info.gid, info.size = 77, 88, 1
        tar.addfile(info, io.BytesIO(b"x"))
    (ctx / "a.tar").write_bytes(buf.getvalue())
    copy(ctx, rootfs, ["a.tar"], "/x/", is_add=True, chown=(1, 1))
    assert owner(rootfs / "x/owned") == (77, 88)
    assert owner(rootfs / "x") == (0, 0)


def test_device_nodes_and_capabilities_from_a_rootfs(tmp_path: Path, rootfs: Path) -> None:
    src = tmp_path / "stage"
    (src / "dev").mkdir(parents=True)
    os.mknod(src / "dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chmod(src / "dev/null", 0o666)
    put(src, "bin/ping", "ELF")
    cap = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_raw, effective
    os.setxattr(src / "bin/ping", "security.capability", cap)
    copy(src, rootfs, ["."], "/", from_rootfs=True)
    st = os.lstat(rootfs / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(st.st_mode) == 0o666
    assert os.getxattr(rootfs / "bin/ping", "security.capability") == cap
