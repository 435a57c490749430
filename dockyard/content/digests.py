"""Digest strings: parsing, validation, hashing.

A *digest* names content by its hash: ``sha256:`` followed by 64 lowercase hex characters, as
the OCI image spec writes it. Only sha256 is supported. Every digest that reaches a path on disk
goes through :func:`validate_digest` first, so a digest can never become a path traversal.
"""

from __future__ import annotations

import hashlib
import re

from dockyard.errors import InvalidParameter

ALGORITHM = "sha256"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]{64}")


def validate_digest(digest: object) -> str:
    """Return ``digest`` unchanged if it is ``sha256:<64 lowercase hex>``; else raise InvalidParameter."""
    if not isinstance(digest, str) or _DIGEST.fullmatch(digest) is None:
        raise InvalidParameter(f"invalid digest: {digest!r}" if isinstance(digest, str) else "invalid digest")
    return digest


def is_digest(value: str) -> bool:
    """Whether ``value`` is a well-formed sha256 digest string."""
    return _DIGEST.fullmatch(value) is not None


def hex_of(digest: str) -> str:
    """The 64 hex characters of a (validated) digest."""
    return validate_digest(digest)[len(ALGORITHM) + 1 :]


def digest_from_hex(hexpart: str) -> str:
    """``sha256:<hexpart>``, validated."""
    if _HEX.fullmatch(hexpart) is None:
        raise InvalidParameter(f"invalid digest: {hexpart!r}")
    return f"{ALGORITHM}:{hexpart}"


def sha256_digest(data: bytes) -> str:
    """The digest of ``data``."""
    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"
