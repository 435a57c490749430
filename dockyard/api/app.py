"""The Engine API application: every route, wired to the services, behind one router."""

from __future__ import annotations

from pathlib import Path

from dockyard.api import build as build_routes
from dockyard.api import build_cache as build_cache_routes
from dockyard.api import container_files as container_file_routes
from dockyard.api import container_management as container_management_routes
from dockyard.api import containers as container_routes
from dockyard.api import disk_usage as disk_usage_routes
from dockyard.api import events as event_routes
from dockyard.api import execs as exec_routes
from dockyard.api import image_archives as image_archive_routes
from dockyard.api import images as image_routes
from dockyard.api import networks as network_routes
from dockyard.api import resources as resource_routes
from dockyard.api import store_check as store_check_routes
from dockyard.api import system as system_routes
from dockyard.api import volumes as volume_routes
from dockyard.api.router import Router
from dockyard.containers.execs import ExecService
from dockyard.containers.service import ContainerService
from dockyard.distribution.endpoints import RegistrySettings
from dockyard.images.service import ImageService


def build_app(root: Path, containers: ContainerService, images: ImageService, daemon_id: str,
              registry: RegistrySettings | None = None) -> Router:
    router = Router()
    registry = registry or RegistrySettings()
    system_routes.register(router, root, containers, images, daemon_id, registry)
    container_routes.register(router, containers)
    resource_routes.register(router, containers)  # stats, update, pause, unpause
    execs = ExecService(containers)
    execs.recover()
    exec_routes.register(router, execs)
    container_management_routes.register(router, containers)
    event_routes.register(router, containers.events)
    image_routes.register(router, root, images, containers, registry)
    volume_routes.register(router, containers.volumes, containers)
    network_routes.register(router, containers)
    image_archive_routes.register(router, root, images, containers)
    disk_usage_routes.register(router, images, containers, getattr(containers, "volumes", None))
    build_cache_routes.register(router, root, images, containers)  # POST /build/prune
    build_routes.register(router, root, images, containers, registry)  # POST /build
    container_file_routes.register(router, containers, images)  # cp, diff, export, commit
    store_check_routes.register(router, root, images, containers)  # dockyard's own: system check, gc
    return router
