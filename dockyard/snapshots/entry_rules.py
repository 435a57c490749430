"""The rules a layer tar's entries must follow, one small function each, as moby's ``pkg/archive``.

These are the checks that need only the tar header; the ones that need the filesystem (symlinks
met while resolving a parent, a hard link's source) live in
:class:`dockyard.snapshots.extract.LayerExtractor`. Terms:

- *components*: an entry's name split on ``/``, cleaned lexically (see :func:`clean_name`).
- *AUFS metadata*: names whose component starts with ``.wh..wh.`` (``.wh..wh.plnk``,
  ``.wh..wh.aufs``); only ``.wh..wh..opq`` (an opaque directory) means anything to overlayfs.
- *whiteout*: ``dir/.wh.NAME`` deletes ``NAME`` of the lower layers.
"""

from __future__ import annotations

import math
import posixpath
import tarfile

from dockyard.errors import CorruptContent

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
XATTR_PAX_PREFIX = "SCHILY.xattr."
NAME_MAX = 255  # bytes in one path component (Linux)
MAX_SPECIAL_SIZE = 1 << 20  # PAX and GNU long-name records: Go's archive/tar maxSpecialFileSize
MAX_ID = (1 << 32) - 2  # the largest uid/gid; 2**32-1 is (uid_t)-1, "no change" to chown
MAX_MTIME_NS = (1 << 63) - 1

# Entry types we apply; Python's tarfile already folds PAX and GNU long-name records into the
# entries they describe, and reads the sparse and contiguous kinds as regular files.
REGULAR_TYPES = frozenset(tarfile.REGULAR_TYPES)
KNOWN_TYPES = REGULAR_TYPES | {tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
                               tarfile.BLKTYPE, tarfile.FIFOTYPE}


def clean_name(name: str) -> list[str]:
    """The components of an entry name, cleaned lexically; raises if it climbs out of the layer.

    A leading ``/`` is dropped (an absolute name is taken inside the layer, as Docker joins it
    to the layer's root); ``.`` and empty components go; ``..`` pops one; a ``..`` above the
    layer's root is a breakout and refused (moby: ``"…" is outside of "…"``).
    """
    parts: list[str] = []
    for comp in name.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                raise CorruptContent(f"invalid tar entry {name!r}: path is outside of the layer")
            parts.pop()
        else:
            parts.append(comp)
    return parts


def check_type(member: tarfile.TarInfo) -> None:
    """Refuse entry types Docker does not apply (moby: ``unhandled tar header type``).

    There is no tar type for sockets: writers (ours and Docker's) skip them, so none arrives.
    """
    if member.type not in KNOWN_TYPES:
        raise CorruptContent(f"unhandled tar header type {member.type[0] if member.type else 0} "
                             f"in entry {member.name!r}")


def check_names(member: tarfile.TarInfo) -> None:
    """Refuse a NUL byte in a name or link name, and components longer than NAME_MAX bytes.

    A NUL cannot be in a Unix path (Go's reader refuses such PAX records too); an over-long
    component would fail later with ENAMETOOLONG, so it is refused up front with a clear error.
    """
    for label, value in (("name", member.name), ("link name", member.linkname)):
        if "\x00" in value:
            raise CorruptContent(f"invalid tar entry {member.name!r}: NUL byte in its {label}")
    for comp in member.name.split("/"):
        if len(comp.encode("utf-8", "surrogateescape")) > NAME_MAX:
            raise CorruptContent(f"invalid tar entry {member.name[:80]!r}...: file name too long")


def check_owner(member: tarfile.TarInfo) -> None:
    """Refuse uids and gids that no file can have (PAX records can say anything)."""
    if not (0 <= member.uid <= MAX_ID and 0 <= member.gid <= MAX_ID):
        raise CorruptContent(f"invalid tar entry {member.name!r}: uid/gid {member.uid}/{member.gid} out of range")


def check_special_size(member: tarfile.TarInfo) -> None:
    """Refuse a PAX header or GNU long name larger than Go's limit before it is read into memory."""
    if member.size > MAX_SPECIAL_SIZE:
        raise CorruptContent("invalid tar header: archive/tar: header field too long "
                             f"({member.size} bytes in a {member.type!r} record)")


def is_aufs_metadata(parts: list[str]) -> bool:
    """Whether an entry is AUFS metadata (any ``.wh..wh.*`` component other than a final opq).

    moby's UnpackLayer skips these (``.wh..wh.plnk`` and what it holds); they are not part of
    the filesystem.
    """
    for i, comp in enumerate(parts):
        if comp.startswith(WHITEOUT_META_PREFIX) and not (comp == WHITEOUT_OPAQUE and i == len(parts) - 1):
            return True
    return False


def is_whiteout(base: str) -> bool:
    """Whether a last component is a whiteout or the opaque marker."""
    return base.startswith(WHITEOUT_PREFIX)


def whiteout_target(entry_name: str, base: str) -> str:
    """The name a whiteout ``.wh.NAME`` hides; ``.wh.``, ``.wh..`` and ``.wh...`` are refused."""
    name = base[len(WHITEOUT_PREFIX):]
    if name in ("", ".", ".."):
        raise CorruptContent(f"invalid whiteout {entry_name!r}")
    return name


def symlink_escapes(dir_parts: list[str], link: str) -> bool:
    """Whether a relative symlink in directory ``dir_parts`` climbs above the layer's root.

    moby refuses those (``invalid symlink``); an absolute target is fine: it is resolved inside
    the container's root.
    """
    if link.startswith("/"):
        return False
    rel = posixpath.normpath(posixpath.join("/".join(dir_parts) or ".", link))
    return rel == ".." or rel.startswith("../")


def kept_mode(member: tarfile.TarInfo) -> int:
    """Permission bits kept: all of 07777, setuid, setgid and sticky included, as Docker keeps them.

    (They are applied after chown, which clears setuid/setgid. The unpacked layer lives under a
    0700 directory, so a setuid binary there is out of reach of the host's unprivileged users.)
    """
    return member.mode & 0o7777


def mtime_ns(member: tarfile.TarInfo) -> int:
    """The entry's mtime in ns; out of range or not a number gives the epoch (moby's boundTime)."""
    value = float(member.mtime)
    if not math.isfinite(value) or value < 0:
        return 0
    ns = int(round(value * 1_000_000_000))
    return ns if ns <= MAX_MTIME_NS else 0


def xattrs_to_set(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    """The extended attributes (``SCHILY.xattr.*`` PAX records) to set on an entry.

    As moby: every one, ``security.capability`` (file capabilities) and ``security.*`` and
    ``trusted.*`` included (they need root; without it they are dropped, as moby drops EPERM).
    One exception, ours: ``trusted.overlay.*`` is overlayfs's private metadata (redirects,
    metacopy, origin file handles); a layer must not forge it, so it is dropped. The opaque
    marker comes only from a ``.wh..wh..opq`` entry.
    """
    out = []
    for key, value in member.pax_headers.items():
        if not key.startswith(XATTR_PAX_PREFIX):
            continue
        name = key[len(XATTR_PAX_PREFIX):]
        if name.startswith("trusted.overlay.") or not name or "\x00" in name:
            continue
        out.append((name, value.encode("utf-8", "surrogateescape")))
    return out
