"""``GET /system/df``: disk usage of images, containers, (when a volume service is wired in)
volumes and the build cache (:mod:`dockyard.build.cache`), in Docker's shapes.

Terms: an image's *shared size* is the part of its unpacked layers other images use too;
``LayersSize`` counts every unpacked layer once. A container's ``SizeRw`` is its writable
layer (the overlay upper dir), ``SizeRootFs`` that plus its image's size.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from dockyard import blocking
from dockyard.api.http import JSONResponse, Request, Response
from dockyard.api.router import Router
from dockyard.build.cache import BuildCache
from dockyard.containers.service import ContainerService
from dockyard.errors import DockyardError, InvalidParameter
from dockyard.images.service import ImageService

_TYPES = ("container", "image", "volume", "build-cache")


def tree_size(path: str) -> int:
    """Bytes of the regular files under ``path`` (hard links counted once, symlinks not followed)."""
    total, seen = 0, set()
    for directory, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def image_usage(images: ImageService, container_list: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    """(LayersSize, image summaries with ``Containers`` and ``SharedSize`` filled in)."""
    summaries = images.list()  # as Docker's: intermediate images count as build cache, not here
    users = Counter(c.get("ImageID") for c in container_list)
    chains_of = {s["Id"]: [layer.chain_id for layer in images.store.get(s["Id"]).layers] for s in summaries}
    chain_users = Counter(chain for chains in chains_of.values() for chain in set(chains))
    sizes: dict[str, int] = {}
    for chain in chain_users:
        if images.snapshots.has(chain):
            sizes[chain] = images.snapshots.layer(chain).size
    for summary in summaries:
        summary["Containers"] = users.get(summary["Id"], 0)
        summary["SharedSize"] = sum(sizes.get(c, 0) for c in set(chains_of[summary["Id"]]) if chain_users[c] > 1)
    return sum(sizes.values()), summaries


def container_usage(images: ImageService, container_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Container summaries with ``SizeRw`` and ``SizeRootFs``."""
    out = []
    image_sizes: dict[str, int] = {}
    for summary in container_list:
        upper = images.snapshots.container_dir(summary["Id"]) / "upper"
        size_rw = tree_size(str(upper)) if upper.is_dir() else 0
        image_id = summary.get("ImageID") or ""
        if image_id not in image_sizes:
            try:
                image_sizes[image_id] = images.resolve(image_id).size
            except DockyardError:
                image_sizes[image_id] = 0
        out.append({**summary, "SizeRw": size_rw, "SizeRootFs": size_rw + image_sizes[image_id]})
    return out


def register(router: Router, images: ImageService, containers: ContainerService, volumes: Any = None) -> None:
    """``volumes``, when given, is the volume service: its ``usage()`` lists Docker's volume objects."""

    @router.route("GET", "/system/df")
    async def disk_usage(request: Request) -> Response:
        wanted = request.query.get("type", []) or list(_TYPES)
        for kind in wanted:
            if kind not in _TYPES:
                raise InvalidParameter(f"unknown object type: {kind}")

        container_list = containers.list(all=True)  # on the event loop: the service is not thread-safe
        used = {summary.get("ImageID") for summary in container_list}
        cache = BuildCache(images.metadata, images, lambda image_id: image_id if image_id in used else None)

        def collect() -> dict[str, Any]:
            out: dict[str, Any] = {}
            if "image" in wanted:
                out["LayersSize"], out["Images"] = image_usage(images, container_list)
            if "container" in wanted:
                out["Containers"] = container_usage(images, container_list)
            if "volume" in wanted:
                out["Volumes"] = list(volumes.usage()) if volumes is not None else []
            if "build-cache" in wanted:
                out["BuildCache"] = cache.usage()
                out["BuilderSize"] = sum(int(item["Size"]) for item in out["BuildCache"])  # before API 1.42
            return out

        return JSONResponse(await blocking.run_stream(collect))
