"""Engine API routes for a container's files: the archive API (``docker cp``), ``changes``
(``docker diff``), ``export``, and ``POST /commit``."""

from __future__ import annotations

import contextlib

from dockyard import blocking
from dockyard.api.http import BytesResponse, JSONResponse, NoContent, Request, Response, StreamResponse
from dockyard.api.router import Router
from dockyard.containers.archive import ContainerFiles, stat_header
from dockyard.containers.service import ContainerService
from dockyard.errors import InvalidParameter
from dockyard.images.commit import CommitRequest, commit
from dockyard.images.service import ImageService

STAT_HEADER = "X-Docker-Container-Path-Stat"
TAR = "application/x-tar"


def _path_arg(request: Request) -> str:
    path = request.arg("path")
    if not path:
        raise InvalidParameter("path is required" if "path" not in request.query else "path cannot be empty")
    if "\0" in path:  # no file name holds one: the kernel would refuse it (EINVAL)
        raise InvalidParameter(f"invalid path {path!r}: a path cannot contain a NUL byte")
    return path


def register(router: Router, containers: ContainerService, images: ImageService) -> None:
    files = ContainerFiles(images, containers.volumes)

    @router.route("HEAD", "/containers/{id}/archive")
    async def stat_path(request: Request) -> Response:
        ref = request.params["id"]
        c = containers.get(ref)
        st = await files.stat(c, ref, _path_arg(request))
        return BytesResponse(headers=[(STAT_HEADER, stat_header(st))], content_type="")

    @router.route("GET", "/containers/{id}/archive")
    async def get_archive(request: Request) -> Response:
        ref = request.params["id"]
        c = containers.get(ref)
        st, chunks = await files.get(c, ref, _path_arg(request))
        containers.event(c, "archive-path")
        return StreamResponse(headers=[(STAT_HEADER, stat_header(st))], chunks=chunks, content_type=TAR)

    @router.route("PUT", "/containers/{id}/archive")
    async def put_archive(request: Request) -> Response:
        ref = request.params["id"]
        c = containers.get(ref)
        await files.put(c, ref, _path_arg(request), request.iter_body(),
                        no_overwrite_dir_non_dir=request.flag("noOverwriteDirNonDir"),
                        copy_uid_gid=request.flag("copyUIDGID"))
        containers.event(c, "extract-to-dir")
        return NoContent(200)

    @router.route("GET", "/containers/{id}/changes")
    async def changes(request: Request) -> Response:
        c = containers.get(request.params["id"])
        return JSONResponse(await files.changes(c))

    @router.route("GET", "/containers/{id}/export")
    async def export(request: Request) -> Response:
        c = containers.get(request.params["id"])
        chunks = await files.export(c)
        containers.event(c, "export")
        return StreamResponse(chunks=chunks, content_type=TAR)

    @router.route("POST", "/commit")
    async def commit_container(request: Request) -> Response:
        c = containers.get(request.arg("container"))
        body = await request.json()
        if body is not None and not isinstance(body, dict):
            raise InvalidParameter("invalid JSON: the commit config must be an object")
        req = CommitRequest(
            container_id=c.id, image_id=c.image_id,
            upper=images.snapshots.container_dir(c.id) / "upper",
            container_config=c.config, user_config=body, changes=request.query.get("changes", []),
            comment=request.arg("comment"), author=request.arg("author"),
            repo=request.arg("repo"), tag=request.arg("tag"))
        # Through the container's serializer: no rm deletes the layer while it is read. Paused
        # (cgroup freezer) meanwhile, as Docker does unless pause=0.
        async with containers.serializer.operation(c.id, "commit"):
            async with containers.paused(c) if request.flag("pause", True) else contextlib.nullcontext():
                image_id = await blocking.run_stream(commit, images, req)
        containers.event(c, "commit", comment=req.comment)
        return JSONResponse({"Id": image_id}, status=201)
