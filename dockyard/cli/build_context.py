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

import _socket
import os
import sys
import time

from dockyard.cli.failure import CliFailure
from dockyard.cli.ignore_patterns import IgnoreMatcher, parse_ignore_file
from dockyard.cli.tar_headers import BLOCKSIZE, REGULAR, Entry, EntryMaker, header

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, BinaryIO

PREPARE = "unable to prepare context: "
PIECE = 1 << 20
_END = bytes(2 * BLOCKSIZE)  # the archive's end, without Python's record padding (as Go)
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


class FileSlice:
    """``size`` bytes of the open file ``fd`` from ``offset``, as a piece of the body: the request
    sends it with ``sendfile(2)`` (:meth:`send_to`) instead of reading it into the process."""

    __slots__ = ("fd", "offset", "size")

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self.fd, self.offset, self.size = fd, offset, size

    def read(self) -> bytes:
        data = os.pread(self.fd, self.size, self.offset)
        if len(data) != self.size:
            raise CliFailure("error checking context: unexpected end of data", 1)
        return data

    def send_to(self, sock: Any) -> None:
        """Write the bytes to ``sock``: by ``sendfile`` to a plain socket, else (TLS) read and sent."""
        if not _plain_socket(sock):
            sock.sendall(self.read())
            return
        offset, left = self.offset, self.size
        while left > 0:
            sent = os.sendfile(sock.fileno(), self.fd, offset, left)
            if sent == 0:
                raise CliFailure("error checking context: unexpected end of data", 1)
            offset += sent
            left -= sent


def _plain_socket(sock: object) -> bool:
    """Whether ``sock`` is a socket without TLS on it (the client makes ``_socket.socket`` objects;
    ``socket.socket`` is checked only when that module is loaded anyway: importing it costs ~4 ms)."""
    kind = type(sock)
    if kind is _socket.socket:
        return True
    std = sys.modules.get("socket")
    return std is not None and kind is std.socket


class BuildContext:
    """A context ready to send: :meth:`chunks` yields its tar once, made by ``produce()`` as the
    request sends it (the tar is never spooled): header and small-file bytes gathered in pieces of
    up to ``PIECE`` bytes, a large file's content as a :class:`FileSlice`; ``size`` counts the bytes
    yielded; ``dockerfile`` is the ``dockerfile`` query parameter's value ("" to let the daemon choose)."""

    def __init__(self, produce: Callable[[], Iterator[bytes | FileSlice]], dockerfile: str) -> None:
        self.produce = produce
        self.dockerfile = dockerfile
        self.size = 0

    def chunks(self) -> Iterator[bytes | FileSlice]:
        for piece in self.produce():
            self.size += len(piece) if isinstance(piece, bytes) else piece.size
            yield piece

    def read_all(self) -> bytes:
        return b"".join(p if isinstance(p, bytes) else p.read() for p in self.chunks())


class _Pieces:
    """Bytes gathered until a piece of ``PIECE`` bytes is full (:meth:`take`)."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def add(self, data: bytes) -> None:
        self.buffer += data

    def take(self, force: bool = False) -> bytes | None:
        if self.buffer and (force or len(self.buffer) >= PIECE):
            data = bytes(self.buffer)
            self.buffer.clear()
            return data
        return None


def _padding(size: int) -> bytes:
    return bytes(-size % BLOCKSIZE)


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


def _header(maker: EntryMaker, path: str, name: str) -> Entry | None:
    """The entry of ``path``, None for a socket (Docker's archiver skips them)."""
    return maker.of(path, name)


def _entry_bytes(entry: Entry, data: bytes = b"") -> bytes:
    """A whole entry: header, ``data`` (``entry.size`` bytes) and its padding."""
    return header(entry) + data + _padding(len(data))


def _bytes_entry(name: str, data: bytes, mode: int = 0o600) -> Entry:
    return Entry(name, REGULAR, mode, len(data), int(time.time()))


def tar_directory(context: str, matcher: IgnoreMatcher,
                  extra_dockerfile: tuple[str, bytes] | None = None) -> Iterator[bytes | FileSlice]:
    """The context's tar in pieces; ``extra_dockerfile`` (name, text) is added and ignored."""
    maker = EntryMaker()
    out = _Pieces()
    held: list[tuple[Entry, bytes]] = []
    yield from _add_tree(maker, out, context, matcher, held if extra_dockerfile is not None else None)
    if extra_dockerfile is not None:
        name, text = extra_dockerfile
        out.add(_entry_bytes(_bytes_entry(name, text), text))
        amended = (held[0][1] if held else b"") + b"\n" + name.encode() + b"\n"
        if not held:
            out.add(_entry_bytes(_bytes_entry(".dockerignore", amended), amended))
        else:  # the context's own, with its header
            held[0][0].size = len(amended)
            out.add(_entry_bytes(held[0][0], amended))
    out.add(_END)
    last = out.take(force=True)
    if last:
        yield last


def _add_tree(maker: EntryMaker, out: _Pieces, context: str, matcher: IgnoreMatcher,
              held: list[tuple[Entry, bytes]] | None) -> Iterator[bytes | FileSlice]:
    """The entries of what the context holds and ``matcher`` keeps; with ``held`` the context's
    ``.dockerignore`` is not added but put there with its header (to be written last, amended).
    A file of ``PIECE`` bytes or more is yielded as a :class:`FileSlice` of the open file."""
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
                info = _header(maker, full, rel)
                if info is None:
                    continue
                if held is not None and rel == ".dockerignore" and info.isreg():
                    with open(full, "rb") as f:
                        held.append((info, f.read()))
                elif info.isreg():
                    fd = os.open(full, os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        out.add(header(info))
                        if info.size < PIECE:
                            out.add(FileSlice(fd, 0, info.size).read() + _padding(info.size))
                        else:
                            ready = out.take(force=True)
                            if ready:
                                yield ready
                            yield FileSlice(fd, 0, info.size)  # sent before this generator goes on
                            out.add(_padding(info.size))
                    finally:
                        os.close(fd)
                else:
                    out.add(header(info))
            except OSError as error:
                raise CliFailure(f"error checking context: {error}", 1) from None
            ready = out.take()
            if ready:
                yield ready
        dirs[:] = sorted(descend)


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
    return BuildContext(lambda: tar_directory(context, matcher, extra), extra[0] if extra else (rel or ""))


def from_stdin(stream: BinaryIO, dockerfile: str = "") -> BuildContext:
    """``build -``: a tar (plain or compressed) sent as it is, or a Dockerfile as the whole context."""
    head = stream.read(512)
    while 0 < len(head) < 512:
        more = stream.read(512 - len(head))
        if not more:
            break
        head += more
    if is_archive(head):
        def copy() -> Iterator[bytes | FileSlice]:
            yield head
            while piece := stream.read(PIECE):
                yield piece

        return BuildContext(copy, dockerfile)
    text = head + stream.read()

    def pack() -> Iterator[bytes | FileSlice]:
        # Docker's CLI writes it to a temporary context dir
        yield _entry_bytes(_bytes_entry("Dockerfile", text, 0o644), text) + _END

    return BuildContext(pack, "Dockerfile")


def is_archive(head: bytes) -> bool:
    """Whether the first bytes of a stream are a (compressed) tar, as Docker's ``IsArchive`` tests."""
    if head.startswith(_COMPRESSED_MAGIC):
        return True
    if len(head) < 512:
        return False
    import tarfile  # only for a context read from stdin

    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    except tarfile.TarError:
        return False
    return True

