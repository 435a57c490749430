"""Docker Engine API routes for volumes: a thin adapter over the volume service.

The volume service does not know containers; every call that must know which containers use a
volume passes ``containers.volume_users``.
"""

from __future__ import annotations

from typing import Any

from dockyard import filters as docker_filters
from dockyard.api.http import JSONResponse, NoContent, Request, Response
from dockyard.api.router import Router, version_tuple
from dockyard.containers.service import ContainerService
from dockyard.errors import InvalidParameter
from dockyard.volumes.service import VolumeService

_JSON_KINDS = {bool: "bool", int: "number", float: "number", str: "string", list: "array", dict: "object"}


def create_options(body: Any) -> tuple[str, str, dict[str, str] | None, dict[str, str] | None]:
    """Name, Driver, DriverOpts and Labels of a volume create body, typed as dockerd's decoder wants them."""
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: the volume create request must be an object")

    def wrong(key: str, value: Any, go_type: str) -> InvalidParameter:
        kind = _JSON_KINDS.get(type(value), "value")
        return InvalidParameter(f"json: cannot unmarshal {kind} into Go struct field CreateOptions.{key} of type {go_type}")

    texts = []
    for key in ("Name", "Driver"):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise wrong(key, value, "string")
        texts.append(value or "")
    maps: list[dict[str, str] | None] = []
    for key in ("DriverOpts", "Labels"):
        value = body.get(key)
        if value is not None and not isinstance(value, dict):
            raise wrong(key, value, "map[string]string")
        if value is not None and not all(isinstance(v, str) for v in value.values()):
            raise wrong(key, next(v for v in value.values() if not isinstance(v, str)), "string")
        maps.append(value)
    return texts[0], texts[1], maps[0], maps[1]


def filters_arg(request: Request) -> dict[str, list[str]]:
    return docker_filters.normalize(request.json_arg("filters"))


def register(router: Router, volumes: VolumeService, containers: ContainerService) -> None:
    users = containers.volume_users

    @router.route("GET", "/volumes")
    async def list_volumes(request: Request) -> Response:
        return JSONResponse(volumes.listing(filters_arg(request), users))

    @router.route("POST", "/volumes/create")
    async def create(request: Request) -> Response:
        body = await request.json()
        volume = await volumes.create(*create_options({} if body is None else body))
        return JSONResponse(volume.to_docker(), status=201)

    @router.route("POST", "/volumes/prune")
    async def prune(request: Request) -> Response:
        # Before API 1.42 (Docker 23) prune removed named dangling volumes too.
        old_api = bool(request.api_version) and version_tuple(request.api_version) < (1, 42)
        return JSONResponse(await volumes.prune(filters_arg(request), users, all_by_default=old_api))

    @router.route("GET", "/volumes/{name}")
    async def inspect(request: Request) -> Response:
        return JSONResponse(volumes.inspect(request.params["name"]))

    @router.route("DELETE", "/volumes/{name}")
    async def remove(request: Request) -> Response:
        await volumes.remove(request.params["name"], users, force=request.flag("force"))
        return NoContent()
