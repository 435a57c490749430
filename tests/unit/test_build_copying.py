"""COPY and ADD (dockyard.build.copying), the build context (dockyard.build.context), Go globs and
paths in scope. Temp dirs stand for the context and the image rootfs; no root needed (ownership is
checked on the plan here, on disk in tests/integration/test_build_copying_root.py)."""

from __future__ import annotations

import bz2
import functools
import gzip
import http.server
import io
import lzma
import os
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard.build.archives import is_archive
from dockyard.build.context import unpack_context
from dockyard.build.copying import (
    CopyPlan,
    normalize_dest,
    parse_chmod,
    plan_copy,
    resolve_chown,
    url_file_name,
)
from dockyard.build.dockerignore import PatternMatcher
from dockyard.build.downloads import download
from dockyard.build.globs import contains_wildcards, go_match
from dockyard.build.scope import resolve_in_scope, scoped_components
from dockyard.errors import CorruptContent, DockyardError, InvalidParameter, NotFound

MTIME = 1_600_000_000


def put(root: Path, rel: str, data: str = "", mode: int = 0o644) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    path.chmod(mode)
    os.utime(path, (MTIME, MTIME))
    return path


@pytest.fixture()
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    root.mkdir()
    return root


@pytest.fixture()
def rootfs(tmp_path: Path) -> Path:
    """An image rootfs inside a box; ``box/outside`` is where an escape would land."""
    root = tmp_path / "box" / "rootfs"
    (root / "etc").mkdir(parents=True)
    (tmp_path / "box" / "outside").mkdir()
    return root


def copy(ctx: Path, rootfs: Path, sources: list[str], dest: str, *, workdir: str = "/", is_add: bool = False,
         chown: tuple[int, int] | None = None, chmod: int | None = None, **kw: object) -> CopyPlan:
    plan = plan_copy(ctx, sources, dest, workdir=workdir, is_add=is_add, chown=chown, chmod=chmod, **kw)  # type: ignore[arg-type]
    plan.apply(rootfs)
    return plan


def tree(root: Path) -> dict[str, str]:
    """Everything below ``root``: files as their text, dirs as ``/``, symlinks as ``-> target``."""
    out: dict[str, str] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_dir():
                out[rel] = "/"
            else:
                out[rel] = path.read_text()
    return out


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# -- paths, globs --------------------------------------------------------------------------------


def test_scoped_components_never_climb() -> None:
    assert scoped_components("../../x/./y/../z") == ["x", "z"]
    assert scoped_components("/a//b/") == ["a", "b"]


def test_resolve_in_scope_keeps_links_inside(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    os.symlink("/", tmp_path / "to_root")
    os.symlink("../../..", tmp_path / "dir" / "up")
    os.symlink("/dir", tmp_path / "abs_dir")
    os.symlink("loop", tmp_path / "loop")
    root = str(tmp_path)
    assert resolve_in_scope(root, "to_root/etc/passwd") == f"{root}/etc/passwd"
    assert resolve_in_scope(root, "dir/up/x") == f"{root}/x"
    assert resolve_in_scope(root, "abs_dir/new/file") == f"{root}/dir/new/file"
    assert resolve_in_scope(root, "abs_dir", follow_final=False) == f"{root}/abs_dir"
    with pytest.raises(InvalidParameter, match="too many links"):
        resolve_in_scope(root, "loop")


@pytest.mark.parametrize(("pattern", "name", "hit"), [
    ("*.txt", "a.txt", True), ("*.txt", "d/a.txt", False), ("*", "a/b", False), ("d/*", "d/x", True),
    ("?", "a", True), ("?", "/", False), ("[a-c]x", "bx", True), ("[^a-c]x", "bx", False),
    ("[^a-c]x", "zx", True), ("\\*", "*", True), ("\\*", "a", False), ("[\\]]", "]", True),
    ("[", "[", False), ("[]", "]", False), ("a\\", "a", False), ("[-a]", "-", False), ("[z-a]", "q", False),
    ("a.b", "axb", False), ("(x)", "(x)", True),
])
def test_go_match(pattern: str, name: str, hit: bool) -> None:
    assert go_match(pattern, name) is hit


def test_contains_wildcards() -> None:
    assert contains_wildcards("a*") and contains_wildcards("[x]") and contains_wildcards("a?")
    assert not contains_wildcards("a\\*b") and not contains_wildcards("plain/path")


def test_normalize_dest() -> None:
    assert normalize_dest("/app", "x") == "/app/x"
    assert normalize_dest("/app", "x/") == "/app/x/"
    assert normalize_dest("/app", ".") == "/app/"
    assert normalize_dest("/app", "/abs/../y") == "/y"
    assert normalize_dest("", "rel") == "/rel"
    assert normalize_dest("/app", "/") == "/"


# -- plain files and directories ---------------------------------------------------------------


def test_file_into_directory_keeps_mode_and_mtime(ctx: Path, rootfs: Path) -> None:
    put(ctx, "run.sh", "echo hi", 0o751)
    copy(ctx, rootfs, ["run.sh"], "/app/")
    out = rootfs / "app" / "run.sh"
    assert out.read_text() == "echo hi"
    assert mode(out) == 0o751
    assert out.stat().st_mtime == MTIME
    assert mode(rootfs / "app") == 0o755


def test_file_to_a_file_name_creates_parents(ctx: Path, rootfs: Path) -> None:
    put(ctx, "a.txt", "A")
    copy(ctx, rootfs, ["a.txt"], "/deep/er/b.txt")
    assert (rootfs / "deep/er/b.txt").read_text() == "A"
    assert mode(rootfs / "deep") == 0o755 and mode(rootfs / "deep/er") == 0o755


def test_file_into_existing_directory_without_slash(ctx: Path, rootfs: Path) -> None:
    put(ctx, "a.txt", "A")
    (rootfs / "srv").mkdir()
    copy(ctx, rootfs, ["a.txt"], "/srv")
    assert (rootfs / "srv/a.txt").read_text() == "A"


def test_file_replaces_existing_file_and_directory(ctx: Path, rootfs: Path) -> None:
    put(ctx, "a.txt", "new")
    put(rootfs, "etc/a.txt", "old")
    (rootfs / "opt" / "a.txt" / "sub").mkdir(parents=True)
    copy(ctx, rootfs, ["a.txt"], "/etc/")
    copy(ctx, rootfs, ["a.txt"], "/opt/")
    assert (rootfs / "etc/a.txt").read_text() == "new"
    assert (rootfs / "opt/a.txt").read_text() == "new"


def test_dest_relative_to_workdir(ctx: Path, rootfs: Path) -> None:
    put(ctx, "a.txt", "A")
    copy(ctx, rootfs, ["a.txt"], "sub/", workdir="/work")
    copy(ctx, rootfs, ["a.txt"], ".", workdir="/work")
    assert (rootfs / "work/sub/a.txt").read_text() == "A"
    assert (rootfs / "work/a.txt").read_text() == "A"


def test_directory_copies_its_contents(ctx: Path, rootfs: Path) -> None:
    put(ctx, "src/a.txt", "A")
    put(ctx, "src/sub/b.txt", "B", 0o600)
    (ctx / "src" / "sub").chmod(0o750)
    os.symlink("../a.txt", ctx / "src/sub/link")
    os.symlink("/etc/shadow", ctx / "src/abs")
    os.link(ctx / "src/a.txt", ctx / "src/hard")
    put(rootfs, "dst/keep", "K")
    copy(ctx, rootfs, ["src"], "/dst")
    assert tree(rootfs / "dst") == {"keep": "K", "a.txt": "A", "sub": "/", "sub/b.txt": "B",
                                    "sub/link": "-> ../a.txt", "abs": "-> /etc/shadow", "hard": "A"}
    assert mode(rootfs / "dst/sub") == 0o750 and mode(rootfs / "dst/sub/b.txt") == 0o600
    assert os.stat(rootfs / "dst/hard").st_ino == os.stat(rootfs / "dst/a.txt").st_ino


def test_whole_context_and_root_dest(ctx: Path, rootfs: Path) -> None:
    put(ctx, "x", "X")
    put(ctx, "d/y", "Y")
    copy(ctx, rootfs, ["."], "/")
    assert (rootfs / "x").read_text() == "X" and (rootfs / "d/y").read_text() == "Y"


def test_tree_replaces_symlinks_in_the_rootfs_instead_of_following_them(ctx: Path, rootfs: Path,
                                                                       tmp_path: Path) -> None:
    put(ctx, "src/etc/passwd", "mine")
    put(ctx, "src/lib", "file over link")
    os.symlink(str(tmp_path / "box" / "outside"), rootfs / "etc2")
    os.symlink("/", rootfs / "lib")
    (ctx / "src" / "etc").rename(ctx / "src" / "etc2")
    copy(ctx, rootfs, ["src"], "/")
    assert (rootfs / "etc2").is_dir() and not (rootfs / "etc2").is_symlink()
    assert (rootfs / "etc2/passwd").read_text() == "mine"
    assert (rootfs / "lib").read_text() == "file over link"
    assert list((tmp_path / "box" / "outside").iterdir()) == []


# -- sources: names, globs, symlinks, errors ----------------------------------------------------


def test_missing_source_error(ctx: Path, rootfs: Path) -> None:
    with pytest.raises(InvalidParameter) as err:
        copy(ctx, rootfs, ["./nope.txt"], "/")
    assert err.value.message == ("COPY failed: file not found in build context or excluded by .dockerignore: "
                                 "stat nope.txt: file does not exist")
    with pytest.raises(InvalidParameter) as err:
        copy(ctx, rootfs, ["nope"], "/", is_add=True, from_rootfs=True)
    assert err.value.message == "ADD failed: stat nope: file does not exist"


def test_parent_references_stay_in_the_context(ctx: Path, rootfs: Path, tmp_path: Path) -> None:
    put(tmp_path, "secret", "outside")
    put(ctx, "secret", "inside")
    copy(ctx, rootfs, ["../secret"], "/a")
    copy(ctx, rootfs, ["/../../secret"], "/b")
    assert (rootfs / "a").read_text() == "inside" and (rootfs / "b").read_text() == "inside"


def test_symlink_source_is_followed_inside_the_context(ctx: Path, rootfs: Path, tmp_path: Path) -> None:
    put(ctx, "real/target.txt", "T", 0o640)
    os.symlink("real/target.txt", ctx / "link")
    os.symlink("real", ctx / "dirlink")
    copy(ctx, rootfs, ["link"], "/out/")
    copy(ctx, rootfs, ["dirlink"], "/d/")
    assert (rootfs / "out/link").read_text() == "T" and not (rootfs / "out/link").is_symlink()
    assert mode(rootfs / "out/link") == 0o640
    assert tree(rootfs / "d") == {"target.txt": "T"}
    put(tmp_path, "host.txt", "host")
    os.symlink(str(tmp_path / "host.txt"), ctx / "escape_abs")
    os.symlink("../../../../../../host.txt", ctx / "escape_rel")
    for name in ("escape_abs", "escape_rel"):
        with pytest.raises(InvalidParameter, match=f"stat {name}: file does not exist"):
            copy(ctx, rootfs, [name], "/x")


def test_globs(ctx: Path, rootfs: Path) -> None:
    put(ctx, "a.txt", "A")
    put(ctx, "b.txt", "B")
    put(ctx, "c.md", "C")
    put(ctx, "sub/d.txt", "D")
    put(ctx, "pkg1/x", "X")
    put(ctx, "pkg2/y", "Y")
    copy(ctx, rootfs, ["*.txt"], "/t/")
    copy(ctx, rootfs, ["sub/*.txt"], "/s/")
    copy(ctx, rootfs, ["pkg[0-9]"], "/p/")
    assert tree(rootfs / "t") == {"a.txt": "A", "b.txt": "B"}
    assert tree(rootfs / "s") == {"d.txt": "D"}
    assert tree(rootfs / "p") == {"x": "X", "y": "Y"}  # a matched directory copies its contents


def test_glob_single_match_may_name_a_file(ctx: Path, rootfs: Path) -> None:
    put(ctx, "only.conf", "O")
    copy(ctx, rootfs, ["*.conf"], "/etc/app.conf")
    assert (rootfs / "etc/app.conf").read_text() == "O"


def test_glob_without_match_and_several_sources(ctx: Path, rootfs: Path) -> None:
    put(ctx, "a", "A")
    put(ctx, "b", "B")
    with pytest.raises(InvalidParameter) as err:
        copy(ctx, rootfs, ["*.none"], "/")
    assert err.value.message == "COPY failed: no source files were specified"
    with pytest.raises(InvalidParameter) as err:
        copy(ctx, rootfs, ["a", "b"], "/dir")
    assert err.value.message == ("When using COPY with more than one source file, the destination must be a "
                                 "directory and end with a /")
    with pytest.raises(InvalidParameter, match="When using ADD"):
        copy(ctx, rootfs, ["?"], "/dir", is_add=True)
    with pytest.raises(InvalidParameter, match="must be a directory and end with a /"):
        copy(ctx, rootfs, ["a", "b"], ".", workdir="/w")  # the classic builder wants the slash written
    copy(ctx, rootfs, ["a", "b"], "./", workdir="/w")
    assert tree(rootfs / "w") == {"a": "A", "b": "B"}


def test_chmod_applies_to_files_and_directories(ctx: Path, rootfs: Path) -> None:
    put(ctx, "d/sub/f", "F", 0o600)
    os.symlink("f", ctx / "d/sub/l")
    copy(ctx, rootfs, ["d"], "/x/", chmod=0o751)
    assert mode(rootfs / "x/sub") == 0o751 and mode(rootfs / "x/sub/f") == 0o751
    assert (rootfs / "x/sub/l").is_symlink()
    assert parse_chmod("4755") == 0o4755
    with pytest.raises(InvalidParameter, match="invalid chmod parameter: '999'"):
        parse_chmod("999")


def test_heredocs(ctx: Path, rootfs: Path) -> None:
    copy(ctx, rootfs, [], "/etc/", heredocs={"EOF": "hello\n", "conf": "x=1\n"})
    assert (rootfs / "etc/EOF").read_text() == "hello\n"
    assert mode(rootfs / "etc/conf") == 0o644
    copy(ctx, rootfs, [], "/script.sh", heredocs={"EOT": "#!/bin/sh\n"}, chmod=0o755)
    assert (rootfs / "script.sh").read_text() == "#!/bin/sh\n" and mode(rootfs / "script.sh") == 0o755


# -- .dockerignore ------------------------------------------------------------------------------


def test_excluded_paths_are_not_in_the_context(ctx: Path, rootfs: Path) -> None:
    put(ctx, "app/main.py", "M")
    put(ctx, "app/secret.key", "S")
    put(ctx, "logs/a.log", "L")
    put(ctx, "logs/keep.log", "K")
    put(ctx, "b.key", "B")
    matcher = PatternMatcher(["**/*.key", "logs", "!logs/keep.log"])
    with pytest.raises(InvalidParameter, match="excluded by .dockerignore: stat b.key: file does not exist"):
        copy(ctx, rootfs, ["b.key"], "/", excludes=matcher.matches)
    copy(ctx, rootfs, ["."], "/all/", excludes=matcher.matches)
    assert tree(rootfs / "all") == {"app": "/", "app/main.py": "M", "logs": "/", "logs/keep.log": "K"}
    copy(ctx, rootfs, ["logs/keep.log"], "/one/", excludes=matcher.matches)
    assert (rootfs / "one/keep.log").read_text() == "K"
    copy(ctx, rootfs, ["*"], "/glob/", excludes=matcher.matches)
    assert set(tree(rootfs / "glob")) == {"main.py", "keep.log"}


def test_symlink_to_an_excluded_file_is_not_found(ctx: Path, rootfs: Path) -> None:
    put(ctx, "secret", "S")
    os.symlink("secret", ctx / "link")
    with pytest.raises(InvalidParameter, match="stat link: file does not exist"):
        copy(ctx, rootfs, ["link"], "/", excludes=PatternMatcher(["secret"]).matches)


# -- hostile image rootfs -------------------------------------------------------------------------


@pytest.mark.parametrize("link", ["/", "../../", "../../outside", "/../../outside"])
def test_dest_symlinks_are_resolved_inside_the_rootfs(ctx: Path, rootfs: Path, tmp_path: Path, link: str) -> None:
    put(ctx, "payload", "P")
    put(ctx, "dir/inner", "I")
    os.symlink(link, rootfs / "target")
    copy(ctx, rootfs, ["payload"], "/target/")
    copy(ctx, rootfs, ["dir"], "/target/sub")
    copy(ctx, rootfs, ["payload"], "/target/x/y/renamed")
    assert list((tmp_path / "box" / "outside").iterdir()) == []
    assert not (tmp_path / "box" / "payload").exists()
    landed = Path(resolve_in_scope(str(rootfs), "target"))
    assert landed == rootfs or rootfs in landed.parents
    assert (landed / "payload").read_text() == "P"
    assert (landed / "sub/inner").read_text() == "I"
    assert (landed / "x/y/renamed").read_text() == "P"


def test_dest_symlink_to_file_is_followed_inside(ctx: Path, rootfs: Path, tmp_path: Path) -> None:
    put(ctx, "payload", "P")
    outside = put(tmp_path, "box/outside/victim", "V")
    os.symlink(str(outside), rootfs / "victim_link")
    copy(ctx, rootfs, ["payload"], "/victim_link")
    assert outside.read_text() == "V"
    assert (rootfs / str(outside).lstrip("/")).read_text() == "P"


def test_copy_onto_a_file_as_directory_fails(ctx: Path, rootfs: Path) -> None:
    put(ctx, "d/x", "X")
    put(rootfs, "file", "F")
    with pytest.raises(DockyardError, match="not a directory"):
        copy(ctx, rootfs, ["d"], "/file")
    with pytest.raises(DockyardError, match="not a directory"):
        copy(ctx, rootfs, ["d/x"], "/file/sub/")


# -- ownership on the plan -----------------------------------------------------------------------


def test_plan_ownership(ctx: Path, tmp_path: Path) -> None:
    put(ctx, "d/f", "F")
    plan = plan_copy(ctx, ["d"], "/x/", workdir="/", is_add=False, chown=None, chmod=None)
    assert {(e.uid, e.gid) for e in plan.items[0].entries} == {(0, 0)}
    plan = plan_copy(ctx, ["d"], "/x/", workdir="/", is_add=False, chown=(7, 8), chmod=None)
    assert {(e.uid, e.gid) for e in plan.items[0].entries} == {(7, 8)}
    st = os.stat(ctx / "d/f")
    plan = plan_copy(ctx, ["d"], "/x/", workdir="/", is_add=False, chown=None, chmod=None, from_rootfs=True)
    assert plan.preserve_ownership
    assert {(e.uid, e.gid) for e in plan.items[0].entries} == {(st.st_uid, st.st_gid)}


def write_ids(rootfs: Path) -> None:
    put(rootfs, "etc/passwd", "root:x:0:0::/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n"
                              "solo:x:1001:1001::/:/bin/sh\n")
    put(rootfs, "etc/group", "root:x:0:\nbob:x:1000:\nstaff:x:50:bob\n")


def test_resolve_chown(rootfs: Path) -> None:
    write_ids(rootfs)
    assert resolve_chown("bob", rootfs) == (1000, 1000)
    assert resolve_chown("bob:staff", rootfs) == (1000, 50)
    assert resolve_chown("1234", rootfs) == (1234, 1234)
    assert resolve_chown("1234:55", rootfs) == (1234, 55)
    assert resolve_chown("bob:55", rootfs) == (1000, 55)
    cases = {
        "nobody": "can't find uid for user nobody: no such user: nobody",
        "solo": "can't find gid for group solo: no such group: solo",  # a lone user is also the group's name
        "bob:nogroup": "can't find gid for group nogroup: no such group: nogroup",
        "a:b:c": "invalid chown string format: a:b:c",
    }
    for spec, detail in cases.items():
        with pytest.raises(InvalidParameter) as err:
            resolve_chown(spec, rootfs)
        assert err.value.message == f"unable to convert uid/gid chown string to host mapping: {detail}"


def test_resolve_chown_reads_inside_the_rootfs(rootfs: Path, tmp_path: Path) -> None:
    put(tmp_path, "box/outside/passwd", "evil:x:666:666::/:/bin/sh\n")
    os.symlink("../../outside/passwd", rootfs / "etc/passwd")
    with pytest.raises(InvalidParameter, match="no such file or directory"):
        resolve_chown("evil", rootfs)
    os.mkfifo(rootfs / "etc/group")
    with pytest.raises(InvalidParameter, match="open /etc/group: no such file"):
        resolve_chown("0:grp", rootfs)  # a FIFO is not read (it would block)


# -- checksum -----------------------------------------------------------------------------------


def checksum(ctx: Path, sources: list[str], **kw: object) -> str:
    args: dict[str, object] = {"workdir": "/", "is_add": False, "chown": None, "chmod": None} | kw
    return plan_copy(ctx, sources, "/dst/", **args).checksum  # type: ignore[arg-type]


def test_checksum_ignores_mtimes_and_sees_everything_else(ctx: Path) -> None:
    put(ctx, "d/a", "A")
    os.symlink("a", ctx / "d/l")
    base = checksum(ctx, ["d"])
    assert base.startswith("sha256:") and base == checksum(ctx, ["d"])
    os.utime(ctx / "d/a", (1, 1))
    os.utime(ctx / "d", (1, 1))
    assert checksum(ctx, ["d"]) == base
    changes: list[Callable[[], object]] = [
        lambda: (ctx / "d/a").write_text("B"),
        lambda: (ctx / "d/a").chmod(0o600),
        lambda: (os.unlink(ctx / "d/l"), os.symlink("b", ctx / "d/l")),
        lambda: put(ctx, "d/new", ""),
    ]
    seen = {base}
    for change in changes:
        change()
        now = checksum(ctx, ["d"])
        assert now not in seen
        seen.add(now)
    assert checksum(ctx, ["d"], chown=(1, 1)) not in seen
    assert checksum(ctx, ["d"], chmod=0o700) not in seen
    assert checksum(ctx, ["d"], is_add=True) not in seen


def test_source_hash_has_dockers_history_form(ctx: Path) -> None:
    put(ctx, "f", "F")
    put(ctx, "d/g", "G")
    plan = plan_copy(ctx, ["f"], "/x", workdir="/", is_add=False, chown=None, chmod=None)
    assert plan.source_hash.startswith("file:")
    assert plan_copy(ctx, ["d"], "/x", workdir="/", is_add=False, chown=None,
                     chmod=None).source_hash.startswith("dir:")
    assert plan_copy(ctx, ["f", "d"], "/x/", workdir="/", is_add=False, chown=None,
                     chmod=None).source_hash.startswith("multi:")


# -- ADD: archives and URLs -----------------------------------------------------------------------


def make_tar(entries: dict[str, str], compress: Callable[[bytes], bytes] = lambda b: b) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if name.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode, info.mtime = len(data), 0o640, MTIME
                tar.addfile(info, io.BytesIO(data.encode()))
    return compress(buf.getvalue())


COMPRESSIONS: dict[str, Callable[[bytes], bytes]] = {
    "plain": lambda b: b, "gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress,
}


@pytest.mark.parametrize("kind", sorted(COMPRESSIONS))
def test_add_extracts_local_archives_by_content(ctx: Path, rootfs: Path, kind: str) -> None:
    (ctx / "bundle.data").write_bytes(make_tar({"top/": "", "top/f.txt": "F", ".wh.x": "W"}, COMPRESSIONS[kind]))
    copy(ctx, rootfs, ["bundle.data"], "/opt/app", is_add=True)
    assert tree(rootfs / "opt/app") == {"top": "/", "top/f.txt": "F", ".wh.x": "W"}
    assert mode(rootfs / "opt/app/top/f.txt") == 0o640
    copy(ctx, rootfs, ["bundle.data"], "/copied/")
    assert (rootfs / "copied/bundle.data").read_bytes() == (ctx / "bundle.data").read_bytes()


def test_add_copies_what_is_not_a_tar(ctx: Path, rootfs: Path) -> None:
    (ctx / "fake.tar.gz").write_bytes(gzip.compress(b"not a tar at all" * 100))
    (ctx / "empty.tar").write_bytes(b"\0" * 1024)
    copy(ctx, rootfs, ["fake.tar.gz", "empty.tar"], "/x/", is_add=True)
    assert (rootfs / "x/fake.tar.gz").is_file() and (rootfs / "x/empty.tar").is_file()
    assert not is_archive(str(ctx / "fake.tar.gz"))


def test_add_archive_inside_a_directory_is_not_extracted(ctx: Path, rootfs: Path) -> None:
    (ctx / "d").mkdir()
    (ctx / "d/a.tar").write_bytes(make_tar({"f": "F"}))
    copy(ctx, rootfs, ["d"], "/x/", is_add=True)
    assert set(tree(rootfs / "x")) == {"a.tar"}


def test_add_hostile_archive_is_refused(ctx: Path, rootfs: Path, tmp_path: Path) -> None:
    (ctx / "evil.tar").write_bytes(make_tar({"../../outside/pwned": "P"}))
    with pytest.raises(CorruptContent):
        copy(ctx, rootfs, ["evil.tar"], "/x/", is_add=True)
    assert list((tmp_path / "box" / "outside").iterdir()) == []


def test_add_url(ctx: Path, rootfs: Path, tmp_path: Path) -> None:
    downloaded = tmp_path / "dl" / "__unnamed__"
    downloaded.parent.mkdir()
    downloaded.write_bytes(make_tar({"f": "F"}))
    os.utime(downloaded, (MTIME, MTIME))
    asked: list[str] = []

    def fetch(url: str) -> Path:
        asked.append(url)
        return downloaded

    copy(ctx, rootfs, ["https://example.com/files/pkg%20v1.tar"], "/dl/", is_add=True, fetch_url=fetch)
    out = rootfs / "dl/pkg v1.tar"
    assert out.read_bytes() == downloaded.read_bytes()  # never extracted
    assert mode(out) == 0o600 and out.stat().st_mtime == MTIME
    assert asked == ["https://example.com/files/pkg%20v1.tar"]
    copy(ctx, rootfs, ["http://example.com/"], "/named", is_add=True, fetch_url=fetch)
    assert (rootfs / "named").is_file()
    with pytest.raises(InvalidParameter) as err:
        copy(ctx, rootfs, ["http://example.com/"], "/dir/", is_add=True, fetch_url=fetch)
    assert err.value.message == "ADD failed: cannot determine filename for source http://example.com/"
    with pytest.raises(InvalidParameter) as err:
        copy(ctx, rootfs, ["http://example.com/x"], "/dir/", fetch_url=fetch)
    assert err.value.message == "COPY failed: source can't be a URL for COPY"


def test_url_file_name() -> None:
    assert url_file_name("https://h/a/b.tgz?x=1") == "b.tgz"
    assert url_file_name("https://h/a/") == ""
    assert url_file_name("https://h/", 'attachment; filename="r.zip"') == "r.zip"
    assert url_file_name("https://h", "attachment; filename=../../x") == "x"


# -- the build context ---------------------------------------------------------------------------


def context_tar(files: dict[str, str], compress: Callable[[bytes], bytes] = lambda b: b,
                extra: Callable[[tarfile.TarFile], None] | None = None) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data.encode()))
        if extra is not None:
            extra(tar)
    return io.BytesIO(compress(buf.getvalue()))


@pytest.mark.parametrize("kind", sorted(COMPRESSIONS))
def test_unpack_context(tmp_path: Path, kind: str) -> None:
    into = tmp_path / "c"
    body = context_tar({"Dockerfile": "FROM scratch\n", "src/a": "A"}, COMPRESSIONS[kind])
    assert unpack_context(body, into, "Dockerfile") == b"FROM scratch\n"
    assert tree(into) == {"Dockerfile": "FROM scratch\n", "src": "/", "src/a": "A"}


def test_unpack_context_removes_ignored_dockerfile_and_ignore_file(tmp_path: Path) -> None:
    into = tmp_path / "c"
    body = context_tar({"Dockerfile": "FROM x\n", ".dockerignore": "Dockerfile\n.dockerignore\n", "a": "A"})
    assert unpack_context(body, into, "Dockerfile") == b"FROM x\n"
    assert tree(into) == {"a": "A"}
    kept = tmp_path / "k"
    unpack_context(context_tar({"Dockerfile": "FROM x\n", ".dockerignore": "*.log\n", "a.log": "L"}), kept)
    assert set(tree(kept)) == {"Dockerfile", ".dockerignore", "a.log"}  # the client's exclusions stay its job


def test_unpack_context_per_dockerfile_ignore_file(tmp_path: Path) -> None:
    into = tmp_path / "c"
    body = context_tar({"app.Dockerfile": "FROM x\n", "app.Dockerfile.dockerignore": "app.Dockerfile\n",
                        ".dockerignore": "nothing\n"})
    assert unpack_context(body, into, "app.Dockerfile") == b"FROM x\n"
    assert set(tree(into)) == {"app.Dockerfile.dockerignore", ".dockerignore"}


def test_unpack_context_finds_the_dockerfile_as_docker_does(tmp_path: Path) -> None:
    assert unpack_context(context_tar({"dockerfile": "FROM y\n"}), tmp_path / "a") == b"FROM y\n"
    with pytest.raises(DockyardError) as err:
        unpack_context(context_tar({"a": "A"}), tmp_path / "b", "build/Dockerfile.dev")
    assert err.value.message == "Cannot locate specified Dockerfile: build/Dockerfile.dev"
    with pytest.raises(DockyardError, match="Cannot locate specified Dockerfile: Dockerfile"):
        unpack_context(io.BytesIO(b""), tmp_path / "c")


def test_unpack_context_is_safe(tmp_path: Path) -> None:
    def device(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("dev/null")
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        tar.addfile(info)

    into = tmp_path / "c"
    unpack_context(context_tar({"Dockerfile": "FROM x\n"}, extra=device), into)
    assert not (into / "dev/null").exists()

    def escape(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("up")
        info.type, info.linkname = tarfile.SYMTYPE, "../../outside"
        tar.addfile(info)
        info = tarfile.TarInfo("up/pwned")
        tar.addfile(info, io.BytesIO(b""))

    (tmp_path / "outside").mkdir()
    with pytest.raises(CorruptContent, match="outside of the layer"):
        unpack_context(context_tar({"Dockerfile": "FROM x\n"}, extra=escape), tmp_path / "d" / "ctx")
    assert os.readlink(tmp_path / "d/ctx/up") == "../../outside"  # kept, as Docker's chrooted untar keeps it
    assert list((tmp_path / "outside").iterdir()) == []
    with pytest.raises(CorruptContent):
        unpack_context(context_tar({"../evil": "E", "Dockerfile": "x"}), tmp_path / "e")
    assert not (tmp_path / "evil").exists()


# -- downloads ------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        routes = {
            "/files/a.bin": (200, {"Last-Modified": "Sun, 13 Sep 2020 12:26:40 GMT"}, b"payload"),
            "/dir/": (200, {"Content-Disposition": 'attachment; filename="report.txt"'}, b"R"),
            "/plain/": (200, {}, b"P"),
        }
        status, headers, body = routes.get(self.path, (404, {}, b"  no such thing\n"))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_download(server: str, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    path = download(f"{server}/files/a.bin", tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert path.name == "a.bin" and path.read_bytes() == b"payload"
    assert mode(path) == 0o600 and path.stat().st_mtime == MTIME
    assert seen[-1] == (7, 7)
    assert download(f"{server}/dir/", tmp_path).name == "report.txt"
    assert download(f"{server}/plain/", tmp_path).name == "__unnamed__"
    with pytest.raises(NotFound) as err:
        download(f"{server}/missing", tmp_path)
    assert err.value.message == f"failed to GET {server}/missing with status 404 Not Found: no such thing"


def test_add_url_through_download(server: str, ctx: Path, rootfs: Path, tmp_path: Path) -> None:
    fetch = functools.partial(download, into=tmp_path)
    copy(ctx, rootfs, [f"{server}/dir/"], "/in/", is_add=True, fetch_url=fetch)
    copy(ctx, rootfs, [f"{server}/plain/"], "/as_named", is_add=True, fetch_url=fetch)
    assert (rootfs / "in/report.txt").read_text() == "R" and (rootfs / "as_named").read_text() == "P"
    with pytest.raises(InvalidParameter, match="cannot determine filename"):
        copy(ctx, rootfs, [f"{server}/plain/"], "/in/", is_add=True, fetch_url=fetch)


def test_names_that_are_not_names_are_refused(ctx: Path, rootfs: Path) -> None:
    assert url_file_name("http://h/..") == "" and url_file_name("http://h/x", 'a; filename=".."') == "x"
    assert url_file_name("http://h/", 'a; filename=".."') == ""
    with pytest.raises(InvalidParameter, match="invalid heredoc name"):
        copy(ctx, rootfs, [], "/", heredocs={"..": "x"})


def test_unpack_context_and_add_are_bounded(tmp_path: Path, ctx: Path, rootfs: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_MAX_LAYER_BYTES", "1000")
    with pytest.raises(InvalidParameter):
        unpack_context(context_tar({"Dockerfile": "FROM x\n", "big": "x" * 5000}), tmp_path / "c")
    (ctx / "big.tar").write_bytes(make_tar({"big": "x" * 5000}))
    with pytest.raises(InvalidParameter):
        copy(ctx, rootfs, ["big.tar"], "/x/", is_add=True)


def test_apply_needs_a_rootfs(ctx: Path, tmp_path: Path) -> None:
    put(ctx, "a", "A")
    plan = plan_copy(ctx, ["a"], "/", workdir="/", is_add=False, chown=None, chmod=None)
    with pytest.raises(DockyardError, match="is not a directory"):
        plan.apply(tmp_path / "missing")


def remove_deep(top: Path) -> None:
    """Remove a tree too deep for shutil.rmtree and os.walk (so for pytest's own clean-up), bottom up."""
    stack = [str(top)]
    while stack:
        path = stack[-1]
        children = [os.path.join(path, name) for name in os.listdir(path)]
        subdirs = [c for c in children if os.path.isdir(c) and not os.path.islink(c)]
        for child in children:
            if child not in subdirs:
                os.unlink(child)
        if subdirs:
            stack.extend(subdirs)
        else:
            os.rmdir(stack.pop())


def test_deep_trees_need_no_recursion(ctx: Path, rootfs: Path) -> None:
    depth = 1100  # deeper than Python's recursion limit
    path = ctx / "top"
    path.mkdir()
    for _ in range(depth):
        path = path / "d"
        path.mkdir()
    (path / "leaf").write_text("L")
    try:
        copy(ctx, rootfs, ["top"], "/x/", excludes=PatternMatcher(["top/d/d", "!**/leaf"]).matches)
        assert (rootfs / "x" / "/".join(["d"] * depth) / "leaf").read_text() == "L"
    finally:
        remove_deep(ctx / "top")
        if (rootfs / "x").exists():
            remove_deep(rootfs / "x")
