"""Docker Engine API routes for volumes: a thin adapter over the volume service.

The volume service does not know containers; every call that must know which containers use a
volume passes ``containers.volume_users``.
"""

from __future__ import annotations

from dockyard import filters as docker_filters
from dockyard.api.http import JSONResponse, NoContent, Request, Response
from dockyard.api.router import Router, version_tuple
from dockyard.containers.service import ContainerService
from dockyard.errors import InvalidParameter
from dockyard.volumes.service import VolumeService


def filters_arg(request: Request) -> dict[str, list[str]]:
    return docker_filters.normalize(request.json_arg("filters"))


def register(router: Router, volumes: VolumeService, containers: ContainerService) -> None:
    users = containers.volume_users

    @router.route("GET", "/volumes")
    async def list_volumes(request: Request) -> Response:
        return JSONResponse(volumes.listing(filters_arg(request), users))

    @router.route("POST", "/volumes/create")
    async def create(request: Request) -> Response:
        body = await request.json() or {}
        if not isinstance(body, dict):
            raise InvalidParameter("invalid JSON: the volume create request must be an object")
        volume = await volumes.create(body.get("Name") or "", body.get("Driver") or "", body.get("DriverOpts"),
                                      body.get("Labels"))
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
