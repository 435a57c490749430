"""The Engine API application: every route, wired to the services, behind one router."""

from __future__ import annotations

from pathlib import Path

from dockyard.api import containers as container_routes
from dockyard.api import images as image_routes
from dockyard.api import system as system_routes
from dockyard.api.router import Router
from dockyard.containers.service import ContainerService
from dockyard.images.service import ImageService


def build_app(root: Path, containers: ContainerService, images: ImageService, daemon_id: str) -> Router:
    router = Router()
    system_routes.register(router, root, containers, images, daemon_id)
    container_routes.register(router, containers)
    image_routes.register(router, root, images, containers)
    return router
