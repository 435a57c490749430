"""Descriptors: the OCI spec's typed pointer to a blob (media type, digest, size)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dockyard.content.digests import validate_digest
from dockyard.errors import InvalidParameter


@dataclass(frozen=True)
class BlobInfo:
    """What the content store knows of a stored blob: its digest and its size in bytes."""

    digest: str
    size: int


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: ``mediaType``, ``digest``, ``size`` and optional ``annotations``."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The descriptor as the OCI spec writes it in JSON."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, data: Any) -> Descriptor:
        """Parse a JSON descriptor, validating its digest and size."""
        if not isinstance(data, dict):
            raise InvalidParameter("invalid descriptor: not an object")
        media_type, digest, size = data.get("mediaType"), data.get("digest"), data.get("size")
        if not isinstance(media_type, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidParameter("invalid descriptor: bad mediaType or size")
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise InvalidParameter("invalid descriptor: bad annotations")
        return cls(media_type, validate_digest(digest), size, dict(annotations))
