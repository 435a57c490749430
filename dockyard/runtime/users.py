"""Resolve a Docker user spec against an image's ``/etc/passwd`` and ``/etc/group``.

A *user spec* is what ``docker run --user`` and the image's ``User`` take: ``""`` (root),
``"name"``, ``"uid"``, ``"uid:gid"``, ``"name:group"``, ``"uid:groupname"``. Rules follow Docker
(runc's ``GetExecUser``):

- the user part matches a passwd entry by name, or (when numeric) by uid; a numeric uid with no
  entry is allowed and gets gid 0 and home ``/``; an unknown name is an error;
- the group part, when given, matches a group entry by name or gid, sets the primary gid and no
  supplementary groups; a numeric gid with no entry is allowed; an unknown name is an error;
- without a group part, the *supplementary gids* are the groups whose member list names the user.

The functions are pure: they read files under a rootfs (never following symlinks out of it is
not a concern here, since the process doing the lookup already lives in the container's root).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.errors import DockyardError


@dataclass(frozen=True)
class ResolvedUser:
    """Who a container process runs as: ids, supplementary group ids, and ``$HOME``."""

    uid: int
    gid: int
    sgids: list[int] = field(default_factory=list)
    home: str = "/"
    name: str = ""


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


def _records(text: str, fields: int) -> Iterator[list[str]]:
    """The colon-separated lines of a passwd-style file with at least ``fields`` fields, comments
    and blank lines skipped."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            parts = line.split(":")
            if len(parts) >= fields:
                yield parts


def parse_passwd(text: str) -> list[PasswdEntry]:
    """Entries of a passwd file (``name:pw:uid:gid:gecos:home:shell``); bad lines are skipped."""
    out = []
    for parts in _records(text, 4):
        try:
            uid, gid = int(parts[2]), int(parts[3])
        except ValueError:
            continue
        out.append(PasswdEntry(parts[0], uid, gid, parts[5] if len(parts) > 5 else ""))
    return out


def parse_group(text: str) -> list[GroupEntry]:
    """Entries of a group file (``name:pw:gid:member,member``); bad lines are skipped."""
    out = []
    for parts in _records(text, 3):
        try:
            gid = int(parts[2])
        except ValueError:
            continue
        members = tuple(m for m in (parts[3].split(",") if len(parts) > 3 else []) if m)
        out.append(GroupEntry(parts[0], gid, members))
    return out


def _numeric(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def resolve_user_text(spec: str, passwd: str | None, group: str | None) -> ResolvedUser:
    """Resolve ``spec`` given the text of passwd and group (``None`` when the file is absent)."""
    user_arg, _, group_arg = spec.partition(":")
    users = parse_passwd(passwd or "")
    groups = parse_group(group or "")

    if not user_arg:
        user_arg = "0"  # "" and ":group" mean root
    uid_num = _numeric(user_arg)
    entry = next((u for u in users if u.name == user_arg), None)
    if entry is None and uid_num is not None:
        entry = next((u for u in users if u.uid == uid_num), None)
    if entry is not None:
        uid, gid, home, name = entry.uid, entry.gid, entry.home or "/", entry.name
    elif uid_num is not None:
        uid, gid, home, name = uid_num, 0, "/", ""
    else:
        raise DockyardError(f"unable to find user {user_arg}: no matching entries in passwd file")

    sgids: list[int] = []
    if group_arg:
        gid_num = _numeric(group_arg)
        found = next((g for g in groups if g.name == group_arg), None)
        if found is None and gid_num is not None:
            found = next((g for g in groups if g.gid == gid_num), None)
        if found is not None:
            gid = found.gid
        elif gid_num is not None:
            gid = gid_num
        else:
            raise DockyardError(f"unable to find group {group_arg}: no matching entries in group file")
    elif name:
        sgids = [g.gid for g in groups if name in g.members]
    return ResolvedUser(uid=uid, gid=gid, sgids=sgids, home=home, name=name)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return None


def resolve_user(spec: str, rootfs: Path) -> ResolvedUser:
    """Resolve ``spec`` against ``rootfs/etc/passwd`` and ``rootfs/etc/group``."""
    return resolve_user_text(spec, _read(rootfs / "etc" / "passwd"), _read(rootfs / "etc" / "group"))
