"""The build context: the tar a ``POST /build`` body carries, unpacked into a directory.

What Docker's daemon does with it (moby ``builder/remotecontext``: ``FromArchive``,
``withDockerfileFromContext``, ``removeDockerfile``):

- The body is a tar, plain or compressed (gzip, bzip2, xz, zstd: recognised by its first bytes).
  It is unpacked as :mod:`dockyard.build.archives` says (names cleaned, nothing written outside
  the directory, symlinks never followed out of it but kept as they are, as Docker's chrooted
  untar keeps them; ``.wh.*`` names are ordinary files; bounded by the layer limits). Ours,
  stricter than Docker: device nodes are skipped and the tar's owners are not applied (COPY sets
  owners itself).
- The Dockerfile is found at the path given (inside the context; the default ``Dockerfile`` falls
  back to ``dockerfile``); none there: ``Cannot locate specified Dockerfile: <name>``. It is read
  before anything is removed.
- The client already left out what ``.dockerignore`` excludes. The daemon then removes
  ``.dockerignore`` itself and the Dockerfile when the patterns exclude them (the client always
  sends both), so ``COPY . /`` does not copy them. A ``<Dockerfile>.dockerignore`` in the context
  (BuildKit's per-Dockerfile file) is used instead of ``.dockerignore`` when present.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO

from dockyard.build.archives import extract_tar
from dockyard.build.dockerignore import PatternMatcher, go_clean, read_ignore_file
from dockyard.build.known_digests import KnownDigests
from dockyard.build.scope import resolve_in_scope
from dockyard.errors import DockyardError, InvalidParameter

DEFAULT_DOCKERFILE = "Dockerfile"
MAX_DOCKERFILE = 64 << 20
MAX_IGNORE_FILE = 16 << 20


def unpack_context(tar_stream: BinaryIO, into: Path, dockerfile: str = DEFAULT_DOCKERFILE,
                   digests: KnownDigests | None = None) -> bytes:
    """Unpack the context tar ``tar_stream`` into the directory ``into`` (created if missing) and
    apply the daemon's ``.dockerignore`` rule; returns the Dockerfile's bytes (read before that
    rule may delete it from ``into``). ``digests`` gets the content digest of every file written."""
    into.mkdir(parents=True, exist_ok=True)
    extract_tar(tar_stream, into, privileged=False, digests=digests)
    name = dockerfile or DEFAULT_DOCKERFILE
    found = _dockerfile_path(into, name)
    if found is None:
        raise DockyardError(f"Cannot locate specified Dockerfile: {name}")
    name, path = found
    content = _read_regular(path, MAX_DOCKERFILE)
    if content is None:
        raise DockyardError(f"Cannot locate specified Dockerfile: {name}")
    _remove_ignored(into, name)
    return content


def _dockerfile_path(root: Path, name: str) -> tuple[str, str] | None:
    """The Dockerfile's name and host path, as moby finds it (``Dockerfile``, then ``dockerfile``)."""
    candidates = [name] + (["dockerfile"] if name == DEFAULT_DOCKERFILE else [])
    for candidate in candidates:
        path = resolve_in_scope(str(root), candidate)
        if os.path.isfile(path):
            return candidate, path
    return None


def context_ignore_patterns(root: Path, dockerfile: str = DEFAULT_DOCKERFILE) -> tuple[str, list[str]] | None:
    """The ignore file of an unpacked context (``<Dockerfile>.dockerignore``, else ``.dockerignore``)
    as its context-relative name and patterns, or None when there is none."""
    for name in (go_clean(dockerfile) + ".dockerignore", ".dockerignore"):
        data = _read_regular(resolve_in_scope(str(root), name), MAX_IGNORE_FILE)
        if data is not None:
            return name, read_ignore_file(data.decode(errors="replace"))
    return None


def _remove_ignored(root: Path, dockerfile: str) -> None:
    found = context_ignore_patterns(root, dockerfile)
    if found is None:
        return
    ignore_name, patterns = found
    try:
        matcher = PatternMatcher(patterns)
    except InvalidParameter as e:
        raise InvalidParameter(f"error reading .dockerignore: {e.message}") from None
    for name in (ignore_name, dockerfile):
        if matcher.matches(go_clean(name)):
            _remove(resolve_in_scope(str(root), name, follow_final=False))


def _remove(path: str) -> None:
    """Remove what is at ``path`` (a symlink itself, never its target)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _read_regular(path: str, limit: int) -> bytes | None:
    """The bytes of the regular file at ``path`` (at most ``limit``), or None if there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > limit:
                raise InvalidParameter(f"{os.path.basename(path)} is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
