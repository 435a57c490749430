"""Docker Engine API routes for containers: a thin adapter over the containers service."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from dockyard.api.http import Hijack, JSONResponse, NoContent, Request, Response, StreamResponse
from dockyard.api.router import Router, version_tuple
from dockyard.containers import detachkeys
from dockyard.containers.logs import LogOptions
from dockyard.containers.management import sizes
from dockyard.containers.service import ContainerService
from dockyard.errors import InvalidParameter
from dockyard.formats import timestamps


def _int_arg(request: Request, name: str, default: int | None = None) -> int | None:
    raw = request.arg(name)
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {raw!r}") from None


def time_arg(request: Request, name: str) -> float:
    """Docker's ``since``/``until`` in unix seconds (0 when absent): see :func:`timestamps.parse_time_arg`."""
    raw = request.arg(name)
    return timestamps.parse_time_arg(raw) / timestamps.NANOS if raw else 0.0


def stream_type(request: Request, tty: bool) -> str:
    """Output with a TTY is raw; without, it is multiplexed (named so from API 1.42 on)."""
    if not tty and version_tuple(request.api_version) >= (1, 42):
        return "application/vnd.docker.multiplexed-stream"
    return "application/vnd.docker.raw-stream"


def old_client_defaults(body: Any, api_version: str) -> Any:
    """dockerd's create defaults for clients older than API 1.40 (compose v1 speaks 1.38): a
    ``HostConfig`` without ``IpcMode`` gets ``shareable`` (the daemon's own default is ``private``)."""
    host = body.get("HostConfig") if isinstance(body, dict) else None
    if isinstance(host, dict) and not host.get("IpcMode") and version_tuple(api_version) < (1, 40):
        return {**body, "HostConfig": {**host, "IpcMode": "shareable"}}
    return body


def check_newer_fields(body: Any, api_version: str) -> None:
    """dockerd refuses fields set by a client whose API version predates them: a volume mount's
    ``VolumeOptions.Subpath`` needs API 1.45."""
    if version_tuple(api_version) >= (1, 45):
        return
    host = body.get("HostConfig") if isinstance(body, dict) else None
    mounts = host.get("Mounts") if isinstance(host, dict) else None
    for m in mounts if isinstance(mounts, list) else []:
        options = m.get("VolumeOptions") if isinstance(m, dict) else None
        if isinstance(options, dict) and options.get("Subpath"):
            raise InvalidParameter("VolumeOptions.Subpath needs API v1.45 or newer")


def register(router: Router, containers: ContainerService) -> None:
    @router.route("POST", "/containers/create")
    async def create(request: Request) -> Response:
        body = old_client_defaults(await request.json(required=True), request.api_version)
        check_newer_fields(body, request.api_version)
        c, warnings = await containers.create(request.arg("name") or None, body)
        return JSONResponse({"Id": c.id, "Warnings": warnings}, status=201)

    @router.route("GET", "/containers/json")
    async def list_containers(request: Request) -> Response:
        limit = _int_arg(request, "limit", -1) or -1
        listed = containers.list(all=request.flag("all"), limit=limit, filters=request.json_arg("filters"))
        if request.flag("size"):
            for entry in listed:
                entry["SizeRw"], entry["SizeRootFs"] = sizes(containers, containers.get(entry["Id"]))
        return JSONResponse(listed)

    @router.route("GET", "/containers/{id}/json")
    async def inspect(request: Request) -> Response:
        answer = containers.inspect(request.params["id"])
        if request.flag("size"):
            answer["SizeRw"], answer["SizeRootFs"] = sizes(containers, containers.get(answer["Id"]))
        return JSONResponse(answer)

    @router.route("POST", "/containers/{id}/start")
    async def start(request: Request) -> Response:
        await containers.start(request.params["id"])
        return NoContent()

    @router.route("POST", "/containers/{id}/stop")
    async def stop(request: Request) -> Response:
        timeout = _int_arg(request, "t")
        await containers.stop(request.params["id"], timeout=timeout, signal=request.arg("signal") or None)
        return NoContent()

    @router.route("POST", "/containers/{id}/kill")
    async def kill(request: Request) -> Response:
        await containers.kill(request.params["id"], request.arg("signal") or None)
        return NoContent()

    @router.route("DELETE", "/containers/{id}")
    async def remove(request: Request) -> Response:
        await containers.remove(request.params["id"], force=request.flag("force"), volumes=request.flag("v"))
        return NoContent()

    @router.route("POST", "/containers/{id}/wait")
    async def wait(request: Request) -> Response:
        ref = request.params["id"]
        containers.get(ref)  # 404 before the headers go out
        condition = request.arg("condition") or "not-running"  # empty means the default, as in dockerd
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        # Subscribe now, so an exit between the headers and the body is not missed.
        result = asyncio.ensure_future(containers.wait(ref, condition))
        # A client that leaves before the body is sent never awaits it: take its outcome anyway.
        result.add_done_callback(lambda done: done.cancelled() or done.exception())

        async def body() -> AsyncIterator[bytes]:
            try:
                outcome = await result
            except Exception as exc:  # the container went away some other way
                outcome = {"StatusCode": -1, "Error": {"Message": str(exc)}}
            if version_tuple(request.api_version) < (1, 30):
                outcome.pop("Error", None)
            yield (json.dumps(outcome) + "\n").encode()

        return StreamResponse(chunks=body())

    @router.route("GET", "/containers/{id}/logs")
    async def logs(request: Request) -> Response:
        stdout, stderr = request.flag("stdout"), request.flag("stderr")
        if not stdout and not stderr:
            raise InvalidParameter("Bad parameters: you must choose at least one stream")
        tail_raw = request.arg("tail", "all")
        if tail_raw in ("all", ""):
            tail = -1
        else:
            try:
                tail = int(tail_raw)
            except ValueError:
                tail = -1  # Docker treats an unparsable tail as "all"
        opts = LogOptions(stdout=stdout, stderr=stderr, follow=request.flag("follow"),
                          timestamps=request.flag("timestamps"), tail=tail,
                          since=time_arg(request, "since"), until=time_arg(request, "until"))
        c, chunks = containers.logs(request.params["id"], opts)
        return StreamResponse(chunks=chunks, content_type=stream_type(request, c.tty))

    @router.route("POST", "/containers/{id}/attach")
    async def attach(request: Request) -> Response:
        ref = request.params["id"]
        c = containers.get(ref)
        options: dict[str, Any] = {name: request.flag(name) for name in ("stdin", "stdout", "stderr", "logs", "stream")}
        options["detach_keys"] = request.arg("detachKeys")
        detachkeys.parse(options["detach_keys"] or detachkeys.DEFAULT)  # a bad value is a 400, before the upgrade

        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, buffered: bytes,
                      head_read: asyncio.Future[None]) -> None:
            await containers.attach(ref, reader, writer, buffered, head_read=head_read, **options)

        return Hijack(handler=run, content_type=stream_type(request, c.tty))

    @router.route("POST", "/containers/{id}/resize")
    async def resize(request: Request) -> Response:
        height = _int_arg(request, "h", 0) or 0
        width = _int_arg(request, "w", 0) or 0
        if not (0 <= height < 65536 and 0 <= width < 65536):
            raise InvalidParameter("invalid terminal size")
        await containers.resize(request.params["id"], height, width)
        return NoContent(200)
