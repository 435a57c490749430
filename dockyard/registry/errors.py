"""The distribution spec's error codes, each with its HTTP status.

A *spec error* is what a registry answers when a request fails: an HTTP status and the body
``{"errors": [{"code": CODE, "message": ..., "detail": ...}]}``. :class:`SpecError` belongs to
dockyard's one exception tree; the server turns it (and any other :class:`DockyardError`) into that body.
"""

from __future__ import annotations

import json
from typing import Any

from dockyard.errors import DockyardError

# code -> (HTTP status, the spec's message)
CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "manifest references a manifest or blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown to registry"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "the operation is unsupported"),
    "TOOMANYREQUESTS": (429, "too many requests"),
    "RANGE_INVALID": (416, "requested range not satisfiable"),
}


class SpecError(DockyardError):
    """A failed registry request: ``code`` is one of :data:`CODES`; ``status`` may override its default;
    ``headers`` go out with the answer (an auth challenge)."""

    def __init__(self, code: str, message: str = "", detail: Any = None, status: int | None = None) -> None:
        default_status, default_message = CODES[code]
        super().__init__(message or default_message)
        self.code = code
        self.status = status or default_status
        self.detail = detail
        self.headers: list[tuple[str, str]] = []

    def body(self) -> bytes:
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return json.dumps({"errors": [entry]}).encode()


def spec_error_of(exc: DockyardError) -> SpecError:
    """Any dockyard error as a spec error (a storage fault is a 500 with no spec code of its own)."""
    if isinstance(exc, SpecError):
        return exc
    code = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NAME_UNKNOWN"}.get(exc.status, "UNSUPPORTED")
    return SpecError(code, exc.message, status=exc.status)
