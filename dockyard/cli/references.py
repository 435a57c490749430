"""Image references the way Docker's CLI splits them: ``[registry[:port]/]path[:tag][@digest]``.

*Familiar* form is how Docker prints them: ``busybox:latest``, not ``docker.io/library/busybox:latest``.
"""

from __future__ import annotations

DEFAULT_TAG = "latest"


def split_reference(reference: str) -> tuple[str, str, str]:
    """``(repository, tag, digest)``; a tag's colon is one after the last slash."""
    name, _, digest = reference.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = ""
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    return name, tag, digest


def with_default_tag(reference: str) -> str:
    """``busybox`` → ``busybox:latest``; references with a tag or digest are kept."""
    name, tag, digest = split_reference(reference)
    if digest:
        return reference
    return f"{name}:{tag or DEFAULT_TAG}"


def short_id(image_or_container_id: str) -> str:
    """Docker's ``TruncateID``: drop a ``sha256:`` prefix, keep 12 hex digits."""
    text = image_or_container_id
    if ":" in text:
        text = text.split(":", 1)[1]
    return text[:12]
