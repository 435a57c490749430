"""COPY and ADD compared with Docker's classic builder: one Dockerfile built by a private dockerd
(``DOCKER_BUILDKIT=0``) and the same steps applied by :mod:`dockyard.build.copying` to the same
busybox rootfs; the paths they write must agree in kind, mode, owner, link target, content and
file mtime. Covers directory contents, symlinks in the context and in the image (a hostile
``/hostile -> ../../``), hard links, globs, ``--chown`` by name and number with the parents it
creates, and ADD's archive extraction.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from dockyard.build.copying import plan_copy, resolve_chown
from tests.integration.daemon_harness import DOCKER
from tests.integration.test_cli_against_dockerd import Dockerd, dockerd  # noqa: F401 - the fixture
from tests.unit.test_build_copying import put

pytestmark = [pytest.mark.root, pytest.mark.docker_cli]

# The image state the steps start from: made by RUN in the Dockerfile, by hand on our side.
SETUP = "mkdir -p /real /existing && ln -s /real /lnk && ln -s ../../ /hostile && chown 5:5 /existing"

# (sources, dest, chown, is_add)
STEPS: list[tuple[list[str], str, str, bool]] = [
    (["tree"], "/", "", False),
    (["a"], "/lnk", "", False),
    (["d"], "/p/q/", "1000:1000", False),
    (["a"], "/x/y/z", "daemon:staff", False),
    (["d"], "/existing", "1000", False),
    (["dlink"], "/dl/", "", False),
    (["alink"], "/al/", "", False),
    (["*.txt", "d/sub"], "/globbed/", "", False),
    (["d"], "/hostile/escaped/", "", False),
    (["a"], "/hostile/etc/", "", False),
    (["arch.tgz"], "/arch/", "", True),
    (["arch.tgz", "a"], "/arch2/", "1:1", True),
]
COMPARED = ["lnk", "real", "newtop", "p", "x", "existing", "dl", "al", "globbed", "escaped", "etc/a", "arch",
            "arch2"]


def make_context(root: Path) -> None:
    put(root, "a", "A\n", 0o640)
    put(root, "one.txt", "1", 0o600)
    put(root, "two.txt", "2", 0o4755)
    put(root, "d/f", "F", 0o755)
    put(root, "d/sub/g", "G", 0o644)
    (root / "d/sub").chmod(0o750)
    os.symlink("g", root / "d/sub/rel")
    os.symlink("/etc/passwd", root / "d/sub/abs")
    os.link(root / "d/f", root / "d/hard")
    put(root, "tree/lnk/file", "T")
    put(root, "tree/newtop/deep/file", "N", 0o700)
    os.symlink("d", root / "dlink")
    os.symlink("a", root / "alink")
    payload = root.parent / "payload"
    put(payload, "top/in.txt", "I", 0o604)
    os.symlink("in.txt", payload / "top/ln")
    for path in payload.rglob("*"):
        os.lchown(path, 77, 88)
    with tarfile.open(root / "arch.tgz", "w:gz") as tar:
        tar.add(payload / "top", "top")


def record(kind: str, st_mode: int, uid: int, gid: int, link: str, data: bytes | None, mtime: int) -> tuple[object, ...]:
    digest = hashlib.sha256(data).hexdigest()[:12] if data is not None else ""
    return (kind, oct(stat.S_IMODE(st_mode)) if kind != "symlink" else "", uid, gid, link, digest,
            mtime if kind == "file" else 0)


def exported(tar_path: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    with tarfile.open(tar_path) as tar:
        members = {m.name.rstrip("/"): m for m in tar.getmembers()}
        for name, m in members.items():
            if not any(name == top or name.startswith(top + "/") for top in COMPARED):
                continue
            target = members[m.linkname] if m.islnk() else m
            kind = "dir" if m.isdir() else "symlink" if m.issym() else "file"
            f = tar.extractfile(target) if kind == "file" else None
            out[name] = record(kind, target.mode, target.uid, target.gid, m.linkname if m.issym() else "",
                               f.read() if f else None, int(target.mtime))
    return out


def ours(rootfs: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for top in COMPARED:
        start = rootfs / top
        paths = [start] + sorted(start.rglob("*")) if start.is_dir() and not start.is_symlink() else [start]
        for path in paths:
            if not os.path.lexists(path):
                continue
            st = os.lstat(path)
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "file"
            out[str(path.relative_to(rootfs))] = record(
                kind, st.st_mode, st.st_uid, st.st_gid, os.readlink(path) if kind == "symlink" else "",
                path.read_bytes() if kind == "file" else None, int(st.st_mtime))
    return out


def test_copy_and_add_match_the_classic_builder(dockerd: Dockerd, busybox_rootfs: Path,  # noqa: F811
                                                tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    make_context(ctx)
    lines = ["FROM busybox", f"RUN {SETUP}"]
    for sources, dest, chown, is_add in STEPS:
        flag = f"--chown={chown} " if chown else ""
        lines.append(f"{'ADD' if is_add else 'COPY'} {flag}{' '.join(sources)} {dest}")
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    built = subprocess.run([DOCKER, "-H", dockerd.host, "build", "-q", "-t", "copytest", str(ctx)],
                           capture_output=True, text=True, env=env, timeout=120)
    assert built.returncode == 0, built.stdout + built.stderr
    created = dockerd.docker("create", "copytest", "true")
    assert created.returncode == 0, created.stderr
    export = tmp_path / "export.tar"
    try:
        done = subprocess.run([DOCKER, "-H", dockerd.host, "export", "-o", str(export), created.stdout.strip()],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    finally:
        dockerd.docker("rm", "-f", created.stdout.strip())
        dockerd.docker("rmi", "copytest")
    (ctx / "Dockerfile").unlink()

    rootfs = tmp_path / "rootfs"
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    (rootfs / "real").mkdir()
    (rootfs / "existing").mkdir()
    os.symlink("/real", rootfs / "lnk")
    os.symlink("../../", rootfs / "hostile")
    os.chown(rootfs / "existing", 5, 5)
    for sources, dest, chown, is_add in STEPS:
        ids = resolve_chown(chown, rootfs) if chown else None
        plan_copy(ctx, sources, dest, workdir="/", is_add=is_add, chown=ids, chmod=None).apply(rootfs)

    theirs = exported(export)
    mine = ours(rootfs)
    assert "escaped/sub/g" in theirs and "arch/top/in.txt" in theirs and "newtop/deep/file" in theirs
    assert mine == theirs
