"""The one place where the exception tree becomes HTTP: Docker's ``{"message": ...}`` format."""

from __future__ import annotations

import logging

from dockyard.api.http import BytesResponse, JSONResponse
from dockyard.errors import DockyardError

log = logging.getLogger("dockyard.api")


def error_response(exc: BaseException) -> BytesResponse:
    """Map any exception to Docker's error answer; unexpected ones are logged and become 500s."""
    if isinstance(exc, DockyardError):
        if exc.status == 304:
            return BytesResponse(status=304, content_type="")
        return JSONResponse({"message": exc.message}, status=exc.status)
    log.exception("internal error", exc_info=exc)
    return JSONResponse({"message": f"internal error: {exc}"}, status=500)
