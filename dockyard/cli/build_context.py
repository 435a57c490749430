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
import queue
import tarfile
import threading
import time

from dockyard.cli.failure import CliFailure
from dockyard.cli.ignore_patterns import IgnoreMatcher, parse_ignore_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import BinaryIO

PREPARE = "unable to prepare context: "
PIECE = 1 << 20
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


class BuildContext:
    """A context ready to send: :meth:`chunks` yields its tar once, made by ``produce(write)`` in a
    thread as the request sends it (the tar is never spooled); ``size`` counts the bytes yielded;
    ``dockerfile`` is the ``dockerfile`` query parameter's value ("" to let the daemon choose)."""

    def __init__(self, produce: Callable[[Callable[[bytes], object]], None], dockerfile: str) -> None:
        self.produce = produce
        self.dockerfile = dockerfile
        self.size = 0

    def chunks(self) -> Iterator[bytes]:
        pieces: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        failure: list[BaseException] = []
        stop = threading.Event()

        def put(piece: bytes | None) -> None:
            while not stop.is_set():
                try:
                    pieces.put(piece, timeout=0.1)
                    return
                except queue.Full:
                    continue
            raise _Abandoned

        def run() -> None:
            try:
                self.produce(put)
            except _Abandoned:
                return
            except BaseException as error:
                failure.append(error)
            try:
                put(None)
            except _Abandoned:
                pass

        worker = threading.Thread(target=run, name="build-context", daemon=True)
        worker.start()
        try:
            while (piece := pieces.get()) is not None:
                self.size += len(piece)
                yield piece
        finally:
            stop.set()
            worker.join()
        if failure:
            raise failure[0]

    def read_all(self) -> bytes:
        return b"".join(self.chunks())


class _Abandoned(Exception):
    """The consumer went away: the producer stops."""


class _Sink:
    """What ``tarfile`` writes into: pieces of ``PIECE`` bytes handed to ``put``; with ``limit`` set,
    bytes past it are dropped (Python's record padding, which Go's tar writer does not write)."""

    def __init__(self, put: Callable[[bytes], object]) -> None:
        self.put = put
        self.pos = 0
        self.limit: int | None = None
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        if self.limit is not None:
            data = data[:max(0, self.limit - self.pos)]
        self.buffer += data
        self.pos += len(data)
        if len(self.buffer) >= PIECE:
            self.flush()
        return len(data)

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        if self.buffer:
            self.put(bytes(self.buffer))
            self.buffer.clear()


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


def _writer(out: _Sink) -> tarfile.TarFile:
    """A PAX tar writer into ``out`` (typeshed wants a readable, seekable file; mode "w" only writes
    and tells)."""
    return tarfile.TarFile(fileobj=out, mode="w", format=tarfile.PAX_FORMAT,  # type: ignore[arg-type]
                           copybufsize=PIECE)


def _finish(tar: tarfile.TarFile, out: _Sink) -> None:
    """Close ``tar`` without Python's record padding: the archive ends with its two zero blocks, as
    Go's tar writer (so Docker's CLI) ends it."""
    out.limit = tar.offset + 2 * tarfile.BLOCKSIZE
    tar.close()
    out.flush()


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


def tar_directory(context: str, matcher: IgnoreMatcher, put: Callable[[bytes], object],
                  extra_dockerfile: tuple[str, bytes] | None = None) -> None:
    """Write the context's tar in pieces to ``put``; ``extra_dockerfile`` (name, text) is added and
    ignored."""
    out = _Sink(put)
    tar = _writer(out)
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
        extra = (".dockerfile." + os.urandom(10).hex(), dockerfile_text or b"")
        rel = None
    matcher = IgnoreMatcher(_keep_build_files(patterns, rel))
    return BuildContext(lambda put: tar_directory(context, matcher, put, extra),
                        extra[0] if extra else (rel or ""))


def from_stdin(stream: BinaryIO, dockerfile: str = "") -> BuildContext:
    """``build -``: a tar (plain or compressed) sent as it is, or a Dockerfile as the whole context."""
    head = stream.read(512)
    while 0 < len(head) < 512:
        more = stream.read(512 - len(head))
        if not more:
            break
        head += more
    if is_archive(head):
        def copy(put: Callable[[bytes], object]) -> None:
            put(head)
            while piece := stream.read(PIECE):
                put(piece)

        return BuildContext(copy, dockerfile)
    text = head + stream.read()

    def pack(put: Callable[[bytes], object]) -> None:
        out = _Sink(put)
        tar = _writer(out)
        _add_bytes(tar, "Dockerfile", text, 0o644)  # Docker's CLI writes it to a temporary context dir
        _finish(tar, out)

    return BuildContext(pack, "Dockerfile")


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

