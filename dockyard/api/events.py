"""``GET /events``: the event bus as a stream of JSON messages, Docker's since/until/filters included.

``since`` replays the stored events from that time on; ``until`` ends the stream at that time
(at once when it is already past, which is how ``docker events --since 1m --until 0s`` ends).
Without ``until`` the stream lasts until the client leaves.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from dockyard.api.http import Request, Response, StreamResponse
from dockyard.api.router import Router
from dockyard.containers.events import Event, EventBus, normalize_filters
from dockyard.formats import timestamps


def _encode(event: Event) -> bytes:
    return (json.dumps(event.to_docker()) + "\n").encode()


def register(router: Router, bus: EventBus) -> None:
    @router.route("GET", "/events")
    async def events(request: Request) -> Response:
        filters = normalize_filters(request.json_arg("filters"))
        since_ns = timestamps.parse_time_arg(request.arg("since")) if request.arg("since") else None
        until_ns = timestamps.parse_time_arg(request.arg("until")) if request.arg("until") else None
        history, queue = bus.subscribe()

        async def body() -> AsyncIterator[bytes]:
            try:
                if since_ns is not None:
                    for event in history:
                        if event.time_nano < since_ns:
                            continue
                        if until_ns is not None and event.time_nano > until_ns:
                            break
                        if event.matches(filters):
                            yield _encode(event)
                while True:
                    timeout = None
                    if until_ns is not None:
                        timeout = (until_ns - time.time_ns()) / 1e9
                        if timeout <= 0:
                            return
                    try:
                        event = await asyncio.wait_for(queue.get(), timeout)
                    except TimeoutError:
                        return
                    if until_ns is not None and event.time_nano > until_ns:
                        return
                    if event.matches(filters):
                        yield _encode(event)
            finally:
                bus.unsubscribe(queue)

        return StreamResponse(chunks=body())
