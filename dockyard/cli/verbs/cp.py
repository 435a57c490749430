"""``dockyard cp``: copy between a container and the local filesystem, with Docker's rules.

- ``CONTAINER:SRC DEST|-``: ``GET /containers/{id}/archive?path=SRC`` gives a tar whose top entry
  is SRC's base name (``.`` when SRC ends in ``/.``); it is extracted so that DEST becomes the copy
  (DEST missing), or the copy lands inside DEST (an existing directory), or replaces DEST (an
  existing file); ``SRC/.`` copies a directory's contents. ``-`` writes the tar to stdout.
- ``SRC|- CONTAINER:DEST``: DEST is looked at with ``HEAD …/archive`` (following a symlink); the
  local tar is built with its top entry already renamed as the rule above wants, and sent with
  ``PUT …/archive?path=<directory to extract into>``. ``-`` sends stdin's tar as is.

The local extraction never writes through a symlink that the tar itself (or anything else below
the destination) planted: every parent of an entry is checked with ``lstat``.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import tarfile
import tempfile

from dockyard.cli import units
from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import Flag, FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, BinaryIO

    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("archive", "a", "bool", "Archive mode (copy all uid/gid information)"),
    Flag("follow-link", "L", "bool", "Always follow symbol link in SRC_PATH"),
    Flag("quiet", "q", "bool", "Suppress progress output during copy. Progress output is automatically "
         "suppressed if no terminal is attached"),
])
PIECE = 1 << 20
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_TYPE = 0xFFF00000 & ~((1 << 23) | (1 << 22) | (1 << 20))  # type bits, not setuid/setgid/sticky


def split_arg(arg: str) -> tuple[str, str]:
    """Docker's ``splitCpArg``: ``(container, path)``; container is empty for a local path."""
    if arg.startswith("/") or arg.startswith("."):
        return "", arg  # an absolute or explicitly relative local path, even with a colon
    container, sep, path = arg.partition(":")
    if not sep:
        return "", arg
    return container, path


def contents_only(path: str) -> bool:
    return path == "." or path.endswith("/.")


def base_name(path: str) -> str:
    stripped = path.rstrip("/")
    return stripped.rsplit("/", 1)[-1] if stripped else "/"


def dir_name(path: str) -> str:
    stripped = path.rstrip("/")
    head, sep, _ = stripped.rpartition("/")
    if not sep:
        return "."
    return head or "/"


def decode_stat(header: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(base64.b64decode(header))
        return data
    except ValueError:
        return {}


def _progress(parsed: Parsed, size: int, where: str) -> None:
    if not parsed["quiet"] and sys.stderr.isatty():
        sys.stderr.write(f"Successfully copied {units.human_size(size)} to {where}\n")


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    src, dst = parsed.args
    src_container, src_path = split_arg(src)
    dst_container, dst_path = split_arg(dst)
    if src_container and dst_container:
        raise CliFailure("copying between containers is not supported", 1)
    if not src_container and not dst_container:
        raise CliFailure("must specify at least one container source", 1)
    if (src_container and not src_path) or (dst_container and not dst_path):
        raise CliFailure("filepath cannot be empty", 1)
    if src_container:
        return copy_from(invocation, parsed, src_container, src_path, dst_path)
    return copy_to(invocation, parsed, src_path, dst_container, dst_path)


# -- from the container ------------------------------------------------------------------------

def _stat(invocation: Invocation, container: str, path: str) -> dict[str, Any] | None:
    response = invocation.api.request("HEAD", f"/containers/{container}/archive", [("path", path)], check=False)
    response.read()
    if not response.ok:
        return None
    return decode_stat(response.headers.get("x-docker-container-path-stat", ""))


class _ChunkReader:
    """A file-like reader over a response's chunks (for ``tarfile`` in stream mode)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""
        self.total = 0

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buf += chunk
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        self.total += len(out)
        return out


def copy_from(invocation: Invocation, parsed: Parsed, container: str, src_path: str, dst_path: str) -> int:
    rebase = ""
    if parsed["follow-link"]:
        st = _stat(invocation, container, src_path)
        if st is not None and st.get("mode", 0) & GO_MODE_SYMLINK:
            target = st.get("linkTarget") or ""
            if not target.startswith("/"):
                target = dir_name(src_path).rstrip("/") + "/" + target
            rebase = base_name(src_path)
            if contents_only(src_path) and not contents_only(target):
                target += "/."
            src_path = target
    response = invocation.api.request("GET", f"/containers/{container}/archive", [("path", src_path)])
    st = decode_stat(response.headers.get("x-docker-container-path-stat", ""))
    if dst_path == "-":
        out = sys.stdout.buffer
        for chunk in response.chunks():
            out.write(chunk)
        out.flush()
        return 0
    src_is_dir = bool(st.get("mode", 0) & GO_MODE_DIR)
    reader = _ChunkReader(response.chunks())
    target = _local_target(dst_path, src_is_dir, contents_only(src_path), rebase or str(st.get("name") or ""))
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
            _extract(tar, target, keep_owner=bool(parsed["archive"]) and os.geteuid() == 0)
    except OSError as error:
        raise CliFailure(str(error), 1) from None
    except tarfile.TarError as error:
        raise CliFailure(f"invalid archive from the daemon: {error}", 1) from None
    _progress(parsed, reader.total, dst_path)
    return 0


def _local_target(dst: str, src_is_dir: bool, contents: bool, name: str) -> str:
    """Where the archive's top entry goes on the local side (Docker's ``CopyTo`` rules)."""
    if os.path.isdir(dst):
        if src_is_dir and contents:
            return dst
        return os.path.join(dst, name)
    if os.path.lexists(dst):
        if src_is_dir:
            raise CliFailure(f'cannot overwrite non-directory "{dst}" with directory "{name}"', 1)
        return dst
    if dst.endswith("/") and not src_is_dir:
        raise CliFailure("no such directory", 1)  # Docker's ErrDirNotExists
    parent = os.path.dirname(dst.rstrip("/")) or "."
    if not os.path.isdir(parent):
        raise CliFailure(f"lstat {parent}: no such file or directory", 1)
    return dst.rstrip("/") or dst


def _extract(tar: tarfile.TarFile, target: str, keep_owner: bool) -> None:
    """Extract entries, the top one renamed to ``target``; never through a symlink."""
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    for member in tar:
        parts = [p for p in member.name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise CliFailure(f"invalid archive entry {member.name!r}", 1)
        # the top entry is the source's base name, except for "SRC/." ("./…") and "/" ("/…")
        relative = member.name.startswith(("./", "/")) or member.name == "."
        rest = parts if relative else parts[1:]
        path = os.path.join(target, *rest) if rest else target
        _check_parents(target, rest)
        if member.isdir():
            if os.path.lexists(path) and not os.path.isdir(path) or os.path.islink(path):
                os.unlink(path)
            os.makedirs(path, exist_ok=True)
            dirs.append((path, member))
            continue
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            os.unlink(path)
        elif os.path.isdir(path):
            raise CliFailure(f'cannot overwrite directory "{path}" with non-directory', 1)
        if member.issym():
            # Docker's client refuses relative links that climb out of where it extracts
            bound = os.path.abspath(os.path.dirname(target.rstrip("/")) or ".")
            resolved = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), member.linkname))
            if not member.linkname.startswith("/") and not (resolved + "/").startswith(bound.rstrip("/") + "/"):
                raise CliFailure(f'invalid symlink "{path}" -> "{member.linkname}"', 1)
            os.symlink(member.linkname, path)
        elif member.islnk():
            lparts = [p for p in member.linkname.split("/") if p not in ("", ".")]
            if ".." in lparts:
                raise CliFailure(f"invalid hardlink {member.linkname!r}", 1)
            lrest = lparts if member.linkname.startswith(("./", "/")) else lparts[1:]
            source = os.path.join(target, *lrest) if lrest else target
            _check_parents(target, lrest)
            os.link(source, path, follow_symlinks=False)
            continue
        elif member.isreg():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                data = tar.extractfile(member)
                while data is not None and (piece := data.read(PIECE)):
                    f.write(piece)
        elif member.isfifo():
            os.mkfifo(path)
        elif member.ischr() or member.isblk():
            if os.geteuid() != 0:
                continue
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        _set_meta(path, member, keep_owner)
    for path, member in reversed(dirs):
        _set_meta(path, member, keep_owner)


def _check_parents(target: str, rest: list[str]) -> None:
    path = target
    for comp in rest[:-1]:
        path = os.path.join(path, comp)
        if os.path.islink(path):
            raise CliFailure(f"refusing to write through the symbolic link {path}", 1)


def _set_meta(path: str, member: tarfile.TarInfo, keep_owner: bool) -> None:
    if keep_owner:
        os.lchown(path, member.uid, member.gid)
    if not member.issym():
        os.chmod(path, member.mode & 0o7777)
    os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)


# -- into the container ---------------------------------------------------------------------------

def copy_to(invocation: Invocation, parsed: Parsed, src_path: str, container: str, dst_path: str) -> int:
    dst_exists = dst_is_dir = False
    st = _stat(invocation, container, dst_path)
    resolved_dst = dst_path
    if st is not None and st.get("mode", 0) & GO_MODE_SYMLINK:
        target = st.get("linkTarget") or ""
        if not target.startswith("/"):
            target = dir_name(dst_path).rstrip("/") + "/" + target
        resolved_dst = target
        st = _stat(invocation, container, target)
    if st is not None:
        mode = int(st.get("mode", 0))
        if mode & GO_MODE_TYPE and not mode & GO_MODE_DIR:
            raise CliFailure(f'destination "{container}:{dst_path}" must be a directory or a regular file', 1)
        dst_exists, dst_is_dir = True, bool(mode & GO_MODE_DIR)
    params = [("noOverwriteDirNonDir", "true")]
    if parsed["archive"]:
        params.append(("copyUIDGID", "true"))
    if src_path == "-":
        return _put(invocation, container, resolved_dst, params, _pieces(sys.stdin.buffer), parsed, dst_path)
    follow = bool(parsed["follow-link"])
    try:
        local = os.stat(src_path) if follow else os.lstat(src_path)
    except OSError as error:
        raise CliFailure(f"{'stat' if follow else 'lstat'} {src_path}: {(error.strerror or '').lower()}", 1) from None
    src_is_dir = stat.S_ISDIR(local.st_mode)
    if dst_exists and dst_is_dir:
        extract_dir, top = resolved_dst, "" if (src_is_dir and contents_only(src_path)) else base_name(src_path)
    elif dst_exists:
        if src_is_dir:
            raise CliFailure("cannot copy directory", 1)
        extract_dir, top = dir_name(resolved_dst), base_name(resolved_dst)
    else:
        if not src_is_dir and resolved_dst.endswith("/"):
            raise CliFailure("no such directory", 1)
        extract_dir, top = dir_name(resolved_dst), base_name(resolved_dst)
    with tempfile.TemporaryFile() as spool:
        with tarfile.open(fileobj=spool, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            source = os.path.realpath(src_path) if follow else src_path.rstrip("/") or "/"
            if top:
                tar.add(source, arcname=top, recursive=True)
            else:
                for child in sorted(os.listdir(source)):
                    tar.add(os.path.join(source, child), arcname=child, recursive=True)
        size = spool.tell()
        spool.seek(0)
        _put(invocation, container, extract_dir, params, _pieces(spool), parsed, dst_path, size)
    return 0


def _pieces(f: BinaryIO) -> Iterator[bytes]:
    while piece := f.read(PIECE):
        yield piece


def _put(invocation: Invocation, container: str, directory: str, params: list[tuple[str, str]],
         body: Iterator[bytes], parsed: Parsed, shown: str, size: int = 0) -> int:
    invocation.api.request("PUT", f"/containers/{container}/archive", [("path", directory), *params],
                           raw_body=body, headers={"Content-Type": "application/x-tar"}).read()
    _progress(parsed, size, f"{container}:{shown}")
    return 0
