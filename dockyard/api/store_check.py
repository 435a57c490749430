"""dockyard's own routes for the store's upkeep (not part of Docker's Engine API).

- ``POST /dockyard/system/check`` reports what :mod:`dockyard.images.store_check` finds;
  ``?repair=1`` repairs it. Answer: ``{"Problems": [{"Kind", "Subject", "Detail"}], "Repaired":
  bool, "Collected": {…}}`` (``Collected``: what the repair's collection removed, with
  ``bytes_freed``; null without ``repair``).
- ``POST /dockyard/system/gc`` runs the collector (:mod:`dockyard.images.garbage`) alone.

At registration (daemon start, before serving) the check runs once in report-only mode and logs
what it finds.
"""

from __future__ import annotations

import logging
from pathlib import Path

from dockyard import blocking
from dockyard.api.http import JSONResponse, Request, Response
from dockyard.api.router import Router
from dockyard.containers.service import ContainerService
from dockyard.images import garbage, store_check
from dockyard.images.service import ImageService

log = logging.getLogger("dockyard.api")


def register(router: Router, root: Path, images: ImageService, containers: ContainerService) -> None:
    try:
        problems = store_check.check(images, root)
    except Exception:  # a report must not keep the daemon from serving
        log.exception("system check at start failed")
    else:
        for problem in problems:
            log.warning("system check: %s %s: %s", problem.kind, problem.subject, problem.detail)
        log.info("system check at start: %d problems (run `dockyard system check --repair` to fix them)",
                 len(problems))

    def forget_volume(name: str) -> None:
        containers.volumes._volumes.pop(name, None)  # the record is gone from the database already

    @router.route("POST", "/dockyard/system/check")
    async def check(request: Request) -> Response:
        if request.flag("repair"):
            found, collected = await blocking.run_stream(store_check.repair, images, root, forget_volume)
            return JSONResponse({"Problems": [p.to_json() for p in found], "Repaired": True,
                                 "Collected": collected.to_json()})
        found = await blocking.run_stream(store_check.check, images, root)
        return JSONResponse({"Problems": [p.to_json() for p in found], "Repaired": False, "Collected": None})

    @router.route("POST", "/dockyard/system/gc")
    async def collect(request: Request) -> Response:
        collected = await blocking.run_stream(garbage.collect, images, root)
        return JSONResponse(collected.to_json())
