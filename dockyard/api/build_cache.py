"""``POST /build/prune``: drop build cache entries (and the intermediate images only they held).

Query (Docker's, API 1.47): ``all`` (also the entries of tagged images' chains), ``keep-storage``
(bytes of cache to keep, least recently used dropped first), ``filters`` (``until``, ``id``,
``parent``, ``type``, ``description``, ``inuse``, ``shared``, ``private``). The answer is
``{"CachesDeleted": [cache IDs], "SpaceReclaimed": bytes}``; see :mod:`dockyard.build.cache`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dockyard import blocking
from dockyard.api.http import JSONResponse, Request, Response
from dockyard.api.router import Router
from dockyard.build.cache import BuildCache
from dockyard.containers.service import ContainerService
from dockyard.errors import InvalidParameter
from dockyard.images import garbage
from dockyard.images.service import ImageService


def cache_of(images: ImageService, containers: ContainerService) -> BuildCache:
    """The build cache of the daemon's root, with the containers' images (read now, on the event loop) in use."""
    used = {summary.get("ImageID") for summary in containers.list(all=True)}
    return BuildCache(images.metadata, images, lambda image_id: image_id if image_id in used else None)


def register(router: Router, root: Path, images: ImageService, containers: ContainerService) -> None:

    @router.route("POST", "/build/prune")
    async def prune(request: Request) -> Response:
        raw = request.arg("keep-storage")
        try:
            keep_storage = int(raw) if raw else 0
        except ValueError:
            raise InvalidParameter(f"keep-storage is in bytes and expects an integer, got {raw}: "
                                   f'strconv.Atoi: parsing "{raw}": invalid syntax') from None
        filters: Any = request.json_arg("filters")
        cache, everything = cache_of(images, containers), request.flag("all")
        deleted, reclaimed = await blocking.run_stream(
            lambda: cache.prune(all=everything, keep_storage=keep_storage, filters=filters))
        if reclaimed:
            await blocking.run_stream(garbage.collect, images, root)  # what the dropped images alone held
        return JSONResponse({"CachesDeleted": deleted, "SpaceReclaimed": reclaimed})
