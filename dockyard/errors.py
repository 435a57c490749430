"""The one exception tree of dockyard.

Every layer raises these; the API server maps them to HTTP statuses in one place
(``dockyard.api.errors``), and Docker's clients show ``message`` as
``Error response from daemon: <message>``.

    DockyardError                 500  anything unexpected inside the engine
    ├── InvalidParameter          400  a request or input that can never succeed as given
    │   └── CorruptContent        400  bytes whose digest, size or format is wrong
    ├── Unauthorized              401  credentials missing or refused (a registry login or pull)
    ├── Forbidden                 403  allowed in general, refused here (e.g. removing a running container)
    ├── NotFound                  404  no such container, image, volume, network, exec, route
    ├── Conflict                  409  a name already in use, an image in use by a container
    ├── NotModified               304  nothing to do (start a running container, stop a stopped one)
    ├── Unavailable               503  a feature that this daemon is not set up for (swarm)
    └── NotImplemented            501  a route that exists in Docker and not here yet

``message`` is the text Docker would print; ``exit_code`` is what the CLI should exit with when a
container fails to start (126: cannot execute, 127: not found), following Docker's CLI.
"""

from __future__ import annotations


class DockyardError(Exception):
    """Base of the tree: an error with a Docker-style message."""

    status = 500

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class InvalidParameter(DockyardError):
    status = 400


class CorruptContent(InvalidParameter):
    """Content whose digest, size or structure does not match what was promised."""


class Unauthorized(DockyardError):
    status = 401


class Forbidden(DockyardError):
    status = 403


class NotFound(DockyardError):
    status = 404


class Conflict(DockyardError):
    status = 409


class NotModified(DockyardError):
    status = 304


class Unavailable(DockyardError):
    status = 503


class NotImplementedYet(DockyardError):
    status = 501


__all__ = [
    "DockyardError",
    "InvalidParameter",
    "CorruptContent",
    "Forbidden",
    "NotFound",
    "Conflict",
    "NotModified",
    "Unavailable",
    "NotImplementedYet",
]
