"""Docker Engine API routes for networks: a thin adapter over the network service (records, bridges)
and the containers service (connecting a container, which changes its record)."""

from __future__ import annotations

from dockyard import blocking
from dockyard.api.http import BytesResponse, JSONResponse, NoContent, Request, Response
from dockyard.api.router import Router
from dockyard.containers.service import ContainerService
from dockyard.errors import InvalidParameter


def register(router: Router, containers: ContainerService) -> None:
    networks = containers.networks

    @router.route("GET", "/networks")
    async def list_networks(request: Request) -> Response:
        return JSONResponse(await blocking.run(networks.listing, request.json_arg("filters")))

    @router.route("POST", "/networks/create")
    async def create(request: Request) -> Response:
        body = await request.json(required=True)
        return JSONResponse(await blocking.run(networks.create, body), status=201)

    @router.route("POST", "/networks/prune")
    async def prune(request: Request) -> Response:
        return JSONResponse(await blocking.run(networks.prune, request.json_arg("filters")))

    @router.route("GET", "/networks/{id}")
    async def inspect(request: Request) -> Response:
        return JSONResponse(await blocking.run(networks.inspect, request.params["id"]))

    @router.route("DELETE", "/networks/{id}")
    async def remove(request: Request) -> Response:
        await blocking.run(networks.remove, request.params["id"])
        return NoContent()

    @router.route("POST", "/networks/{id}/connect")
    async def connect(request: Request) -> Response:
        body = await request.json(required=True)
        if not isinstance(body, dict) or not body.get("Container"):
            raise InvalidParameter("no container specified")
        await containers.connect_network(request.params["id"], str(body["Container"]), body.get("EndpointConfig"))
        return BytesResponse(200)

    @router.route("POST", "/networks/{id}/disconnect")
    async def disconnect(request: Request) -> Response:
        body = await request.json(required=True)
        if not isinstance(body, dict) or not body.get("Container"):
            raise InvalidParameter("no container specified")
        await containers.disconnect_network(request.params["id"], str(body["Container"]), bool(body.get("Force")))
        return BytesResponse(200)
