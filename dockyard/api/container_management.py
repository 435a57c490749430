"""Docker Engine API routes for restart, rename, top and prune (``containers/management.py``)."""

from __future__ import annotations

from dockyard.api.containers import _int_arg
from dockyard.api.http import JSONResponse, NoContent, Request, Response
from dockyard.api.router import Router
from dockyard.containers import management
from dockyard.containers.events import normalize_filters
from dockyard.containers.service import ContainerService
from dockyard.errors import InvalidParameter


def register(router: Router, containers: ContainerService) -> None:
    @router.route("POST", "/containers/{id}/restart")
    async def restart(request: Request) -> Response:
        timeout = _int_arg(request, "t")
        await management.restart(containers, request.params["id"], timeout=timeout,
                                 signal=request.arg("signal") or None)
        return NoContent()

    @router.route("POST", "/containers/{id}/rename")
    async def rename(request: Request) -> Response:
        await management.rename(containers, request.params["id"], request.arg("name"))
        return NoContent()

    @router.route("GET", "/containers/{id}/top")
    async def top(request: Request) -> Response:
        return JSONResponse(await management.top(containers, request.params["id"], request.arg("ps_args")))

    @router.route("POST", "/containers/prune")
    async def prune(request: Request) -> Response:
        raw = request.json_arg("filters")
        if raw and not isinstance(raw, dict):
            raise InvalidParameter("invalid filter: expected a JSON object")
        filters: dict[str, list[str]] = {}
        for key, value in (raw or {}).items():
            if key in ("until", "label", "label!"):
                filters[key] = ([k for k, on in value.items() if on] if isinstance(value, dict)
                                else [str(v) for v in value])
            else:
                normalize_filters({key: value})  # Docker's error for an unknown key
                raise InvalidParameter(f"invalid filter '{key}'")
        return JSONResponse(await management.prune(containers, filters))
