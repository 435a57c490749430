"""Routes: (method, path pattern) -> handler, with Docker's version prefix and fallbacks.

A *path pattern* is a Docker path with ``{name}`` parameters, e.g. ``/containers/{id}/json``;
a parameter matches one path segment, except a trailing ``{name:path}`` that matches the rest
(image names contain slashes: ``/images/localhost:5000/app/json``).
The path is percent-decoded once, before matching, as Go's ``URL.Path`` is for dockerd's router:
docker-py sends ``/images/busybox%40sha256:…/json`` for a digest reference, and an encoded ``/``
(``%2F``) becomes a slash, so it may end up in a ``{name:path}`` parameter.
Paths may carry a version prefix (``/v1.45/containers/json``): the version is checked against
the supported range and stored on the request; an unversioned path means the current version.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from urllib.parse import unquote

from dockyard.api.errors import error_response
from dockyard.api.http import Handler, JSONResponse, Request, Response
from dockyard.errors import InvalidParameter, NotFound, Unavailable

API_VERSION = "1.47"
MIN_API_VERSION = "1.24"

_VERSION_PREFIX = re.compile(r"^/v([0-9]+\.[0-9]+)(/.*)$")

SWARM_PREFIXES = ("/swarm", "/nodes", "/services", "/tasks", "/secrets", "/configs")
SWARM_MESSAGE = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
                 "to connect this node to swarm and try again.")


def version_tuple(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor or 0)


def decode_path(path: str) -> str:
    """``path`` with its percent-escapes decoded as UTF-8, once; InvalidParameter if they are not UTF-8."""
    try:
        return unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise InvalidParameter(f"invalid URL path {path!r}: percent-escapes are not UTF-8") from None


class Router:
    """Dispatches requests to handlers and turns every error into Docker's error format."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = "^"
        for part in re.split(r"(\{[a-z_]+(?::path)?\})", pattern):
            if part.startswith("{"):
                name, _, kind = part[1:-1].partition(":")
                regex += f"(?P<{name}>.+)" if kind == "path" else f"(?P<{name}>[^/]+)"
            else:
                regex += re.escape(part)
        self._routes.append((method, re.compile(regex + "$"), handler))

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add(method, pattern, handler)
            return handler

        return register

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._dispatch(request)
        except BaseException as exc:  # noqa: BLE001 - every error becomes an HTTP answer
            if isinstance(exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)):
                raise  # a cancelled request (the daemon stopping) is no error to answer
            return error_response(exc)

    async def _dispatch(self, request: Request) -> Response:
        path = decode_path(request.path)
        match = _VERSION_PREFIX.match(path)
        if match:
            version, path = match.group(1), match.group(2)
            if version_tuple(version) > version_tuple(API_VERSION):
                raise InvalidParameter(f"client version {version} is too new. Maximum supported API version is {API_VERSION}")
            if version_tuple(version) < version_tuple(MIN_API_VERSION):
                raise InvalidParameter(
                    f"client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, "
                    "please upgrade your client to a newer version")
            request.api_version = version
        else:
            request.api_version = API_VERSION
        if len(path) > 1:
            path = path.rstrip("/")
        matched = [(route_method, m, handler) for route_method, regex, handler in self._routes
                   if (m := regex.match(path))]
        wanted = [request.method] + (["GET"] if request.method == "HEAD" else [])
        for method in wanted:
            for route_method, m, handler in matched:
                if route_method == method:
                    request.params = m.groupdict()  # decoded with the whole path (decode_path)
                    return await handler(request)
        if matched:
            return JSONResponse({"message": "method not allowed"}, status=405)
        if path.startswith(SWARM_PREFIXES):
            raise Unavailable(SWARM_MESSAGE)
        raise NotFound("page not found")
