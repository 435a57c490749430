"""User spec resolution against passwd/group text, as Docker (runc's GetExecUser) does it."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.errors import DockyardError
from dockyard.images.busybox_rootfs import GROUP, PASSWD
from dockyard.runtime.users import ResolvedUser, parse_group, parse_passwd, resolve_user, resolve_user_text

EXTRA_GROUP = GROUP + "audio:x:29:nobody,www-data\nvideo:x:44:nobody\n"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", ResolvedUser(0, 0, [10], "/root", "root")),
        ("root", ResolvedUser(0, 0, [10], "/root", "root")),
        ("0", ResolvedUser(0, 0, [10], "/root", "root")),
        ("nobody", ResolvedUser(65534, 65534, [29, 44], "/home", "nobody")),
        ("65534", ResolvedUser(65534, 65534, [29, 44], "/home", "nobody")),
        ("1234", ResolvedUser(1234, 0, [], "/", "")),
        ("1234:5678", ResolvedUser(1234, 5678, [], "/", "")),
        ("1234:mail", ResolvedUser(1234, 8, [], "/", "")),
        ("nobody:tty", ResolvedUser(65534, 5, [], "/home", "nobody")),
        ("nobody:44", ResolvedUser(65534, 44, [], "/home", "nobody")),
        ("www-data", ResolvedUser(33, 33, [29], "/var/www", "www-data")),
        (":mail", ResolvedUser(0, 8, [], "/root", "root")),
    ],
)
def test_resolve(spec: str, expected: ResolvedUser) -> None:
    assert resolve_user_text(spec, PASSWD, EXTRA_GROUP) == expected


def test_unknown_user_is_dockers_error() -> None:
    with pytest.raises(DockyardError) as info:
        resolve_user_text("ghost", PASSWD, GROUP)
    assert info.value.message == "unable to find user ghost: no matching entries in passwd file"


def test_unknown_group_is_an_error() -> None:
    with pytest.raises(DockyardError, match="unable to find group ghosts: no matching entries in group file"):
        resolve_user_text("nobody:ghosts", PASSWD, GROUP)


def test_without_passwd_file_numeric_is_allowed_names_are_not() -> None:
    assert resolve_user_text("", None, None) == ResolvedUser(0, 0, [], "/", "")
    assert resolve_user_text("42:42", None, None) == ResolvedUser(42, 42, [], "/", "")
    with pytest.raises(DockyardError, match="unable to find user root"):
        resolve_user_text("root", None, None)


def test_name_wins_over_numeric_uid() -> None:
    passwd = "100:x:5:5::/h5:/bin/sh\nother:x:100:7::/h7:/bin/sh\n"
    assert resolve_user_text("100", passwd, "").home == "/h5"


def test_parsers_skip_comments_and_junk() -> None:
    assert [u.name for u in parse_passwd("# c\n\nbad\nx:x:notnum:1::/:/bin/sh\nok:x:1:2::/o:/s\n")] == ["ok"]
    groups = parse_group("g:x:3:a,,b\nbad:x\n")
    assert [(g.name, g.gid, g.members) for g in groups] == [("g", 3, ("a", "b"))]


def test_resolve_user_reads_rootfs(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(PASSWD)
    (tmp_path / "etc" / "group").write_text(GROUP)
    assert resolve_user("nobody", tmp_path).uid == 65534
    assert resolve_user("7", tmp_path / "missing") == ResolvedUser(7, 0, [], "/", "")
