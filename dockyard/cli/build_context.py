"""The build context ``dockyard build`` sends: a tar of the context directory, as Docker's classic CLI makes it.

Terms:
- *context directory*: the ``PATH`` argument; the tar holds what is under it except what the
  ignore file excludes, with owners 0:0 (Docker's CLI sets them so), in lexical walk order.
- *ignore file*: ``<Dockerfile>.dockerignore`` beside the Dockerfile when it exists (BuildKit's
  rule), else ``.dockerignore`` at the context root (:mod:`dockyard.cli.ignore_patterns`). The
  ignore file itself and the Dockerfile are always sent, even when a pattern names them.
- *Dockerfile path*: ``-f`` (a relative path is taken from the working directory, as Docker's CLI
  takes it), else ``Dockerfile`` (or ``dockerfile``) in the context. A Dockerfile outside the
  context, or read from stdin (``-f -``), is added to the tar under a random name
  ``.dockerfile.<20 hex>`` that is also appended to the tar's ``.dockerignore`` (so no ``COPY .``
  picks it up); the ``dockerfile`` query parameter names it.
- *stdin context* (``PATH`` is ``-``): a tar (plain or compressed) is sent as it is; anything else
  is read as a Dockerfile and sent as the only file of the context.
"""

from __future__ import annotations

import io
import os
import secrets
import tarfile
import tempfile
import time
from dataclasses import dataclass

from dockyard.cli.failure import CliFailure
from dockyard.cli.ignore_patterns import IgnoreMatcher, parse_ignore_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

PREPARE = "unable to prepare context: "
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


@dataclass
class BuildContext:
    """A context ready to send: ``body`` (a file at offset 0) of ``size`` bytes, and the
    ``dockerfile`` query parameter's value ("" to let the daemon use ``Dockerfile``)."""

    body: BinaryIO
    size: int
    dockerfile: str


def _lstat_message(path: str, error: OSError) -> str:
    return f"lstat {path}: {(error.strerror or str(error)).lower()}"


def locate_dockerfile(context_dir: str, given: str) -> tuple[str, str]:
    """(absolute context directory, absolute Dockerfile path), both with symlinks resolved."""
    if not os.path.isdir(context_dir):
        raise CliFailure(f'{PREPARE}path "{context_dir}" not found', 1)
    context = os.path.realpath(os.path.abspath(context_dir))
    path = given
    if not path:
        path = os.path.join(context, "Dockerfile")
        if not os.path.lexists(path) and os.path.lexists(os.path.join(context, "dockerfile")):
            path = os.path.join(context, "dockerfile")
    if not os.path.isabs(path):
        path = os.path.abspath(path)  # a relative -f is taken from the working directory
    try:
        os.lstat(path)
    except OSError as error:
        raise CliFailure(f"{PREPARE}unable to evaluate symlinks in Dockerfile path: {_lstat_message(path, error)}",
                         1) from None
    path = os.path.realpath(path)
    if not os.path.exists(path):
        raise CliFailure(f'{PREPARE}Cannot locate Dockerfile: "{path}"', 1)
    return context, path


def ignore_patterns(context: str, dockerfile: str | None) -> list[str]:
    """The patterns of the ignore file that applies (see the module docstring)."""
    candidates = [os.path.join(context, ".dockerignore")]
    if dockerfile is not None:
        candidates.insert(0, dockerfile + ".dockerignore")
    for candidate in candidates:
        try:
            with open(candidate, encoding="utf-8", errors="surrogateescape") as f:
                return parse_ignore_file(f.read())
        except FileNotFoundError:
            continue
        except OSError as error:
            raise CliFailure(f"{PREPARE}{error}", 1) from None
    return []


def _keep_build_files(patterns: list[str], dockerfile_rel: str | None) -> list[str]:
    """Docker's ``TrimBuildFilesFromExcludes``: the ignore file and the Dockerfile are always sent."""
    out = list(patterns)
    if IgnoreMatcher(out).excluded(".dockerignore"):
        out.append("!.dockerignore")
    if dockerfile_rel is not None and IgnoreMatcher(out).excluded(dockerfile_rel):
        out.append("!" + dockerfile_rel)
    return out


def _finish(tar: tarfile.TarFile, out: BinaryIO) -> None:
    """Close ``tar`` and cut Python's record padding: the archive ends with its two zero blocks, as
    Go's tar writer (so Docker's CLI) ends it."""
    end = tar.offset + 2 * tarfile.BLOCKSIZE
    tar.close()
    out.truncate(end)
    out.seek(end)


def _header(tar: tarfile.TarFile, path: str, name: str) -> tarfile.TarInfo:
    info = tar.gettarinfo(path, arcname=name)
    info.mtime = int(info.mtime)  # whole seconds, as Docker's CLI writes them (no PAX time records)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o600) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def tar_directory(context: str, matcher: IgnoreMatcher, out: BinaryIO,
                  extra_dockerfile: tuple[str, bytes] | None = None) -> None:
    """Write the context's tar to ``out``; ``extra_dockerfile`` (name, text) is added and ignored."""
    tar = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)
    try:
        ignore_file = _add_tree(tar, context, matcher, extra_dockerfile is not None)
        if extra_dockerfile is not None:
            name, text = extra_dockerfile
            _add_bytes(tar, name, text)
            amended = (ignore_file[1] if ignore_file else b"") + b"\n" + name.encode() + b"\n"
            if ignore_file is None:
                _add_bytes(tar, ".dockerignore", amended)
            else:  # the context's own, with its header
                ignore_file[0].size = len(amended)
                tar.addfile(ignore_file[0], io.BytesIO(amended))
    except BaseException:
        tar.close()
        raise
    _finish(tar, out)


def _add_tree(tar: tarfile.TarFile, context: str, matcher: IgnoreMatcher,
              hold_ignore_file: bool) -> tuple[tarfile.TarInfo, bytes] | None:
    """Add what the context holds and ``matcher`` keeps; with ``hold_ignore_file`` the context's
    ``.dockerignore`` is not added but returned with its header (to be written last, amended)."""
    ignore_file: tuple[tarfile.TarInfo, bytes] | None = None
    for directory, dirs, files in os.walk(context):
        rel_dir = os.path.relpath(directory, context)
        descend = []
        for name in sorted(dirs + files):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            full = os.path.join(directory, name)
            is_dir = name in dirs and not os.path.islink(full)
            if matcher.excluded(rel):
                if is_dir and matcher.has_exceptions:
                    descend.append(name)  # an exception may re-include something below
                continue
            if is_dir:
                descend.append(name)
            try:
                info = _header(tar, full, rel)
                if hold_ignore_file and rel == ".dockerignore" and info.isreg():
                    with open(full, "rb") as f:
                        ignore_file = (info, f.read())
                elif info.isreg():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                elif info.type in (tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE,
                                   tarfile.CHRTYPE, tarfile.BLKTYPE):
                    tar.addfile(info)
            except OSError as error:
                raise CliFailure(f"error checking context: {error}", 1) from None
        dirs[:] = sorted(descend)
    return ignore_file


def from_directory(context_dir: str, dockerfile: str = "", dockerfile_text: bytes | None = None) -> BuildContext:
    """The context of a directory; ``dockerfile_text`` is a Dockerfile read from stdin (``-f -``)."""
    if dockerfile_text is not None:
        if not os.path.isdir(context_dir):
            raise CliFailure(f'{PREPARE}path "{context_dir}" not found', 1)
        context, dockerfile_path = os.path.realpath(os.path.abspath(context_dir)), None
    else:
        context, dockerfile_path = locate_dockerfile(context_dir, dockerfile)
    rel = os.path.relpath(dockerfile_path, context) if dockerfile_path is not None else None
    outside = rel is not None and (rel == ".." or rel.startswith("../"))
    patterns = ignore_patterns(context, dockerfile_path)
    extra: tuple[str, bytes] | None = None
    if dockerfile_text is not None or outside:
        if outside and dockerfile_path is not None:
            with open(dockerfile_path, "rb") as f:
                dockerfile_text = f.read()
        extra = (".dockerfile." + secrets.token_hex(10), dockerfile_text or b"")
        rel = None
    matcher = IgnoreMatcher(_keep_build_files(patterns, rel))
    body = tempfile.TemporaryFile(prefix="dockyard-build-context-")
    tar_directory(context, matcher, body, extra)
    size = body.tell()
    body.seek(0)
    return BuildContext(body, size, extra[0] if extra else (rel or ""))


def from_stdin(stream: BinaryIO, dockerfile: str = "") -> BuildContext:
    """``build -``: a tar (plain or compressed) sent as it is, or a Dockerfile as the whole context."""
    body = tempfile.TemporaryFile(prefix="dockyard-build-context-")
    while True:
        piece = stream.read(1 << 20)
        if not piece:
            break
        body.write(piece)
    size = body.tell()
    body.seek(0)
    head = body.read(512)
    body.seek(0)
    if is_archive(head):
        return BuildContext(body, size, dockerfile)
    text = body.read()
    body.close()
    packed = tempfile.TemporaryFile(prefix="dockyard-build-context-")
    tar = tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT)
    _add_bytes(tar, "Dockerfile", text, 0o644)  # Docker's CLI writes it to a temporary context dir
    _finish(tar, packed)
    size = packed.tell()
    packed.seek(0)
    return BuildContext(packed, size, "Dockerfile")


def is_archive(head: bytes) -> bool:
    """Whether the first bytes of a stream are a (compressed) tar, as Docker's ``IsArchive`` tests."""
    if head.startswith(_COMPRESSED_MAGIC):
        return True
    if len(head) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    except tarfile.TarError:
        return False
    return True

