"""Docker Engine API routes for images: a thin adapter over the image service."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from dockyard import blocking
from dockyard.api.distribution import RegistryRoutes
from dockyard.api.http import JSONResponse, NoContent, Request, Response
from dockyard.api.router import Router
from dockyard.containers.service import ContainerService
from dockyard.distribution.endpoints import RegistrySettings
from dockyard.errors import InvalidParameter
from dockyard.images import garbage
from dockyard.images.service import ImageService
from dockyard.metadata import leases


def register(router: Router, root: Path, images: ImageService, containers: ContainerService,
             registry: RegistrySettings) -> None:
    registries = RegistryRoutes(images, registry, containers.events)
    spool = root / "tmp"
    spool.mkdir(parents=True, exist_ok=True, mode=0o700)

    @router.route("GET", "/images/json")
    async def list_images(request: Request) -> Response:
        return JSONResponse(images.list(all=request.flag("all"), filters=request.json_arg("filters")))

    @router.route("GET", "/images/{name:path}/json")
    async def inspect(request: Request) -> Response:
        return JSONResponse(images.inspect(request.params["name"]))

    @router.route("POST", "/images/{name:path}/tag")
    async def tag(request: Request) -> Response:
        repo = request.arg("repo")
        if not repo:
            raise InvalidParameter("repository name must have at least one component")
        images.tag(request.params["name"], repo, request.arg("tag"))
        image_id = images.resolve_id(request.params["name"])
        name = f"{repo}:{request.arg('tag') or 'latest'}" if ":" not in repo.rsplit("/", 1)[-1] else repo
        containers.events.publish("image", "tag", image_id, {"name": name})
        return NoContent(201)

    @router.route("DELETE", "/images/{name:path}")
    async def remove(request: Request) -> Response:
        image_id = images.resolve_id(request.params["name"])
        report = images.remove(request.params["name"], force=request.flag("force"),
                               prune=not request.flag("noprune"), in_use=containers.image_in_use,
                               running=containers.image_running)
        for item in report:  # Docker's events: untag per reference, delete per image
            if item.get("Untagged"):
                containers.events.publish("image", "untag", image_id, {"name": image_id})
            if item.get("Deleted"):
                containers.events.publish("image", "delete", item["Deleted"], {"name": item["Deleted"]})
        if any(item.get("Deleted") for item in report):
            await blocking.run_stream(garbage.collect, images, root)  # what the image alone held
        return JSONResponse(report)

    router.route("POST", "/auth")(registries.auth)
    router.route("GET", "/images/search")(registries.search)
    router.route("POST", "/images/{name:path}/push")(registries.push)
    router.route("GET", "/distribution/{name:path}/json")(registries.distribution)

    @router.route("POST", "/images/create")
    async def create(request: Request) -> Response:
        from_src = request.arg("fromSrc")
        if request.arg("fromImage"):
            return await registries.create(request)
        if not from_src:
            raise InvalidParameter("fromImage or fromSrc is required")
        if from_src != "-":
            raise InvalidParameter("importing from a URL is not supported: use fromSrc=- with the tar as the body")
        repo, tag_ = request.arg("repo"), request.arg("tag")
        reference = f"{repo}:{tag_}" if repo and tag_ else repo or None
        changes = request.query.get("changes", [])
        with leases.hold(images.metadata, "import"):  # keeps the spooled body from the collector
            fd, tmp = tempfile.mkstemp(dir=spool, prefix="import-")
            try:
                with os.fdopen(fd, "wb") as f:
                    async for chunk in request.iter_body():
                        await blocking.run(f.write, chunk)
                with open(tmp, "rb") as f:
                    image_id = await blocking.run_stream(images.import_tarball, f, reference, changes,
                                                       request.arg("message"), request.arg("platform"))
            finally:
                os.unlink(tmp)
        containers.events.publish("image", "import", image_id, {"name": image_id})
        return JSONResponse({"status": image_id})
