"""Digests as the registry takes them, and where it keeps the blobs of each algorithm.

A *registry digest* is ``sha256:<64 hex>`` or ``sha512:<128 hex>`` (the two algorithms the OCI
image spec registers; lowercase hex). sha256 blobs live in the engine's content store
(``content/blobs/sha256/``); sha512 blobs, which only the registry takes, in
``content/blobs/sha512/`` beside them, written the same way (hashed before, then hard-linked,
fsynced and renamed into place, read-only).

A *link name* is the hex part of a digest: the registry's ``_layers``, ``revisions`` and
``_referrers`` files are named by it, and its length (64 or 128) tells the algorithm back.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from dockyard.content import ContentStore
from dockyard.content.descriptor import BlobInfo
from dockyard.content.store import CHUNK, place_file
from dockyard.errors import InvalidParameter, NotFound

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
_LENGTHS = {64: "sha256", 128: "sha512"}


def is_registry_digest(value: object) -> bool:
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def _checked(digest: str) -> str:
    if not is_registry_digest(digest):
        raise InvalidParameter(f"invalid digest: {digest[:140]!r}")
    return digest


def link_name(digest: str) -> str:
    """The hex part of a (valid) registry digest."""
    return _checked(digest).partition(":")[2]


def from_link_name(name: str) -> str:
    """The digest a link name stands for."""
    algorithm = _LENGTHS.get(len(name))
    if algorithm is None:
        raise InvalidParameter(f"invalid digest: {name[:140]!r}")
    return _checked(f"{algorithm}:{name}")


def digest_bytes(data: bytes, algorithm: str = "sha256") -> str:
    """The ``algorithm`` digest of ``data``."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def file_digest(path: Path, algorithm: str = "sha256") -> tuple[str, int]:
    """The ``algorithm`` digest and the size of the file at ``path``."""
    h = hashlib.new(algorithm)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return f"{algorithm}:{h.hexdigest()}", size


class RegistryContent:
    """The registry's blobs: sha256 ones in a :class:`ContentStore` at ``root``, sha512 ones in
    ``root/blobs/sha512`` (see the module docstring). Methods take either kind of digest."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.store = ContentStore(self.root)
        self._sha512 = self.root / "blobs" / "sha512"
        self._sha512.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _is_sha256(digest: str) -> bool:
        return _checked(digest).startswith("sha256:")

    def path(self, digest: str) -> Path:
        return self.store.path(digest) if self._is_sha256(digest) else self._sha512 / link_name(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def read_bytes(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def adopt(self, path: Path, digest: str) -> BlobInfo:
        """Store the file ``path``, already hashed to ``digest``, as that blob (a hard link)."""
        if self._is_sha256(digest):
            return self.store.adopt(path, digest)
        return BlobInfo(digest, place_file(path, self.root / "ingest", self.path(digest)))

    def put_bytes(self, data: bytes, algorithm: str = "sha256") -> str:
        """Store ``data``; returns its ``algorithm`` digest."""
        if algorithm == "sha256":
            return self.store.put_bytes(data)
        digest = digest_bytes(data, algorithm)
        tmp = self.root / "ingest" / secrets.token_hex(16)
        try:
            with open(tmp, "xb") as f:
                f.write(data)
            self.adopt(tmp, digest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return digest

    def list(self) -> list[str]:
        """Every stored blob's digest, sorted."""
        found = self.store.list()
        for entry in os.scandir(self._sha512):
            with contextlib.suppress(InvalidParameter):
                found.append(from_link_name(entry.name))
        return sorted(found)

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def delete(self, digest: str) -> bool:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            return False
        return True
