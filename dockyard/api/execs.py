"""Docker Engine API routes for exec instances: create, start (hijacked or detached), resize, inspect."""

from __future__ import annotations

import asyncio

from dockyard.api.containers import stream_type
from dockyard.api.http import Hijack, JSONResponse, NoContent, Request, Response
from dockyard.api.router import Router
from dockyard.containers.execs import ExecService
from dockyard.errors import InvalidParameter


def register(router: Router, execs: ExecService) -> None:
    @router.route("POST", "/containers/{id}/exec")
    async def create(request: Request) -> Response:
        body = await request.json(required=True)
        e = await execs.create(request.params["id"], body)
        return JSONResponse({"Id": e.id}, status=201)

    @router.route("POST", "/exec/{id}/start")
    async def start(request: Request) -> Response:
        body = await request.json() or {}
        if not isinstance(body, dict):
            raise InvalidParameter("invalid JSON: the exec start request must be an object")
        if body.get("Detach"):
            await execs.start_detached(request.params["id"])
            return NoContent(200)
        e = await execs.prepare(request.params["id"])
        raw = bool(body.get("Tty"))  # how the output travels; the process's TTY is create's (as dockerd)
        if isinstance(body.get("ConsoleSize"), list) and len(body["ConsoleSize"]) == 2:
            e.console_size = [int(x) for x in body["ConsoleSize"]]

        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, buffered: bytes,
                      head_read: asyncio.Future[None]) -> None:
            await execs.start_attached(e, reader, writer, buffered, raw=raw, head_read=head_read)

        return Hijack(handler=run, content_type=stream_type(request, raw))

    @router.route("POST", "/exec/{id}/resize")
    async def resize(request: Request) -> Response:
        try:
            height = int(request.arg("h", "0") or 0)
            width = int(request.arg("w", "0") or 0)
        except ValueError:
            raise InvalidParameter("invalid terminal size") from None
        if not (0 <= height < 65536 and 0 <= width < 65536):
            raise InvalidParameter("invalid terminal size")
        await execs.resize(request.params["id"], height, width)
        return NoContent(200)

    @router.route("GET", "/exec/{id}/json")
    async def inspect(request: Request) -> Response:
        return JSONResponse(execs.inspect(request.params["id"]))
