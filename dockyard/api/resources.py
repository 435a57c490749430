"""Engine API routes over a container's cgroup: stats, update, pause, unpause."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from dockyard.api.http import JSONResponse, NoContent, Request, Response, StreamResponse
from dockyard.api.router import Router
from dockyard.containers import cgroup_control
from dockyard.containers import stats as statistics
from dockyard.containers.restart import update_policy
from dockyard.containers.service import ContainerService

STATS_INTERVAL = 1.0
"""Seconds between two streamed samples, as Docker's stats collector."""


def register(router: Router, containers: ContainerService) -> None:
    @router.route("GET", "/containers/{id}/stats")
    async def stats(request: Request) -> Response:
        c = containers.get(request.params["id"])
        stream = request.flag("stream", True)
        one_shot = request.flag("one-shot")

        async def body() -> AsyncIterator[bytes]:
            previous = None
            if not stream and not one_shot:
                # Docker's non-streamed answer carries two readings, so CPU % can be computed.
                previous = statistics.sample(c)
                await asyncio.sleep(STATS_INTERVAL)
            while True:
                current = statistics.pair(statistics.sample(c), previous)
                yield (json.dumps(current) + "\n").encode()
                if not stream or not c.state.running:
                    return
                previous = current
                await asyncio.sleep(STATS_INTERVAL)

        return StreamResponse(chunks=body())

    @router.route("POST", "/containers/{id}/update")
    async def update(request: Request) -> Response:
        c = containers.get(request.params["id"])
        body = await request.json(required=True)
        policy = body.get("RestartPolicy") if isinstance(body, dict) else None
        resources = {k: v for k, v in body.items() if k != "RestartPolicy"} if isinstance(body, dict) else body
        async with containers.serializer.operation(c.id, "update"):
            if policy and policy.get("Name") not in (None, ""):
                update_policy(dict(c.host_config), policy)  # refuse a bad policy before changing anything
            warnings = cgroup_control.update(c, resources)
            if policy and policy.get("Name") not in (None, ""):
                containers.restarts.update(c, policy)
        return JSONResponse({"Warnings": warnings})

    @router.route("POST", "/containers/{id}/pause")
    async def pause(request: Request) -> Response:
        c = containers.get(request.params["id"])
        async with containers.serializer.operation(c.id, "pause"):
            await cgroup_control.pause(c)
        containers.event(c, "pause")
        return NoContent()

    @router.route("POST", "/containers/{id}/unpause")
    async def unpause(request: Request) -> Response:
        c = containers.get(request.params["id"])
        async with containers.serializer.operation(c.id, "unpause"):
            await cgroup_control.unpause(c)
        containers.event(c, "unpause")
        return NoContent()
