"""Engine API routes that move images in and out as archives, and the image verbs around them:
``GET /images/get``, ``GET /images/{name}/get`` (save), ``POST /images/load``,
``GET /images/{name}/history`` and ``POST /images/prune``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from dockyard import blocking
from dockyard.api.byte_pipes import BodyPipe, ResponsePipe
from dockyard.api.http import JSONResponse, Request, Response, StreamResponse
from dockyard.api.router import Router
from dockyard.build.cache import BuildCache
from dockyard.containers.service import ContainerService
from dockyard.errors import DockyardError
from dockyard.images import garbage
from dockyard.images.archive_load import load_archive
from dockyard.images.archive_save import ArchiveWriter, select
from dockyard.images.history import image_history
from dockyard.images.image_prune import prune_images
from dockyard.images.leftovers import sweep_leftovers
from dockyard.images.service import ImageService

log = logging.getLogger("dockyard.api")


async def _lines(messages: list[str], error: str | None = None) -> AsyncIterator[bytes]:
    """The load's JSON message stream; a failed load ends it with dockerd's error message
    (``errorDetail`` + ``error``), from which clients raise their load error."""
    for message in messages:
        yield (json.dumps({"stream": message + "\n"}) + "\n").encode()
    if error is not None:
        yield (json.dumps({"errorDetail": {"message": error}, "error": error}) + "\n").encode()


def register(router: Router, root: Path, images: ImageService, containers: ContainerService) -> None:
    """Add the routes. Called once at start-up (after container recovery, before serving), it
    first clears what interrupted loads left behind (:mod:`dockyard.images.leftovers`)."""
    spool = root / "tmp"
    spool.mkdir(parents=True, exist_ok=True, mode=0o700)
    swept = sweep_leftovers(images, spool)
    if swept.spools or swept.ingests or swept.layers:
        log.info("cleared leftovers: %d load spools, %d ingest files, %d orphan layers",
                 swept.spools, swept.ingests, len(swept.layers or []))

    async def save(request: Request, names: list[str]) -> Response:
        # Resolve every name first, so that a missing image is a 404 rather than a cut-off tar.
        selection = await blocking.run(select, images.store, images.resolve_id, names)
        writer = ArchiveWriter(images.store, spool)
        pipe = ResponsePipe()
        return StreamResponse(chunks=pipe.chunks(lambda out: writer.write(selection, out)),  # type: ignore[arg-type]
                              content_type="application/x-tar")

    @router.route("GET", "/images/get")
    async def save_many(request: Request) -> Response:
        return await save(request, list(request.query.get("names", [])))

    @router.route("GET", "/images/{name:path}/get")
    async def save_one(request: Request) -> Response:
        return await save(request, [request.params["name"]])

    @router.route("POST", "/images/load")
    async def load(request: Request) -> Response:
        # As dockerd: the answer is 200 once the body is being read; a bad archive (nothing of it
        # is stored) is the stream's error message.
        body = BodyPipe()
        feeding = asyncio.create_task(body.feed(request.iter_body()))
        try:
            messages = await blocking.run_stream(load_archive, images, body, spool)
        except DockyardError as exc:
            return StreamResponse(chunks=_lines([], exc.message))
        finally:
            body.abandon()
            await feeding
        return StreamResponse(chunks=_lines(messages))

    @router.route("GET", "/images/{name:path}/history")
    async def history(request: Request) -> Response:
        return JSONResponse(await blocking.run(image_history, images, request.params["name"]))

    @router.route("POST", "/images/prune")
    async def prune(request: Request) -> Response:
        # Read the containers here, on the event loop: the container service is not thread-safe.
        used = {summary.get("ImageID") for summary in containers.list(all=True)}
        report = await blocking.run_stream(prune_images, images, request.json_arg("filters"),
                                         lambda image_id: image_id if image_id in used else None,
                                         BuildCache(images.metadata).holds)
        await blocking.run_stream(garbage.collect, images, root)  # and whatever else nothing references
        return JSONResponse(report)
