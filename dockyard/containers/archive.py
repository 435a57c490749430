"""A container's files: stat, read and write paths (``docker cp``), export, and changes (``diff``).

Every path in the container is read or written by :mod:`dockyard.runtime.rootfs_helper`, a
short-lived process chrooted into the container (see there for why this is safe against
hostile symlinks and leaves no mount behind). This module starts it, streams tars through it, and
turns its answers into Docker's shapes and errors.

Terms: a *path stat* is Docker's ``ContainerPathStat`` — ``{name, size, mode, mtime,
linkTarget}`` — where ``mode`` is a Go ``os.FileMode`` (permission bits plus type flags in the high
bits, not a Unix ``st_mode``), sent base64-encoded in the ``X-Docker-Container-Path-Stat`` header.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import dockyard
from dockyard import blocking
from dockyard.containers.mounts import runtime_mounts
from dockyard.containers.record import Container
from dockyard.errors import Conflict, DockyardError, InvalidParameter, NotFound
from dockyard.formats import timestamps
from dockyard.images.service import ImageService
from dockyard.runtime.users import resolve_user
from dockyard.snapshots.changes import container_changes
from dockyard.volumes.service import VolumeService

# Go's os.FileMode type bits.
MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27
MODE_DEVICE = 1 << 26
MODE_NAMED_PIPE = 1 << 25
MODE_SOCKET = 1 << 24
MODE_SETUID = 1 << 23
MODE_SETGID = 1 << 22
MODE_CHAR_DEVICE = 1 << 21
MODE_STICKY = 1 << 20
PIECE = 1 << 16


def go_file_mode(st_mode: int) -> int:
    """A Unix ``st_mode`` as Go's ``os.FileMode``."""
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    mode |= {stat.S_IFDIR: MODE_DIR, stat.S_IFLNK: MODE_SYMLINK, stat.S_IFIFO: MODE_NAMED_PIPE,
             stat.S_IFSOCK: MODE_SOCKET, stat.S_IFBLK: MODE_DEVICE,
             stat.S_IFCHR: MODE_DEVICE | MODE_CHAR_DEVICE}.get(kind, 0)
    if st_mode & stat.S_ISUID:
        mode |= MODE_SETUID
    if st_mode & stat.S_ISGID:
        mode |= MODE_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= MODE_STICKY
    return mode


def path_stat(raw: dict[str, Any]) -> dict[str, Any]:
    """The helper's stat as Docker's ``ContainerPathStat``."""
    return {"name": raw["name"], "size": raw["size"], "mode": go_file_mode(raw["mode"]),
            "mtime": timestamps.format_ns(raw["mtime_ns"]), "linkTarget": raw["link_target"]}


def stat_header(stat_obj: dict[str, Any]) -> str:
    """The ``X-Docker-Container-Path-Stat`` header value."""
    return base64.b64encode(json.dumps(stat_obj).encode()).decode()


class ContainerFiles:
    """File access to containers through the rootfs helper."""

    def __init__(self, images: ImageService, volumes: VolumeService | None = None) -> None:
        self.images = images
        self.volumes = volumes

    # -- the helper -------------------------------------------------------------------------

    def _request(self, c: Container, op: str, *, readonly: bool, via_mount: bool = False,
                 **extra: Any) -> dict[str, Any]:
        snap = self.images.snapshots
        base = snap.container_dir(c.id)
        if not base.is_dir():
            raise Conflict(f"container {c.id} has no filesystem")
        request: dict[str, Any] = {
            "op": op, "pid": 0, "readonly": readonly,
            "lowers": [str(p) for p in snap.lowerdirs_of(c.id)],
            "upper": str(base / "upper"), "work": str(base / "work"), "target": str(base / "merged"),
            **extra,
        }
        if c.state.running and c.state.pid > 0 and not via_mount:
            request["pid"], request["shim_pid"] = c.state.pid, c.state.shim_pid
        elif op != "export" and self.volumes is not None:
            # A stopped container's volumes and binds, as Docker mounts them for `cp` (export leaves
            # them out, as Docker's does); tmpfs mounts have no content once the container stopped.
            request["mounts"] = [
                {"source": m.source, "destination": m.destination, "readonly": m.readonly}
                for m in runtime_mounts(c.mounts, self.volumes) if m.type == "bind"]
        return request

    @staticmethod
    async def _start(request: dict[str, Any], stdin: bool = False) -> asyncio.subprocess.Process:
        package_parent = str(Path(dockyard.__file__).resolve().parent.parent)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": package_parent,
               "PYTHONDONTWRITEBYTECODE": "1"}
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dockyard.runtime.rootfs_helper", json.dumps(request),
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd="/",
            limit=1 << 20)

    @staticmethod
    async def _header(proc: asyncio.subprocess.Process, ref: str, path: str) -> dict[str, Any]:
        """Read the helper's JSON line; raise its error the way Docker words it."""
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if not line:
            assert proc.stderr is not None
            err = (await proc.stderr.read()).decode(errors="replace").strip()
            await proc.wait()
            raise DockyardError(f"reading the container's filesystem failed: {err.splitlines()[-1] if err else ''}")
        answer: dict[str, Any] = json.loads(line)
        kind = answer.get("error")
        if kind:
            await proc.wait()
            message = str(answer.get("message", ""))
            if kind == "notfound":
                raise NotFound(f"Could not find the file {path} in container {ref}")
            if kind == "invalid":
                raise InvalidParameter(message)
            if kind == "conflict":
                raise Conflict(message)
            raise DockyardError(message)
        return answer

    @staticmethod
    async def _reap(proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await proc.wait()

    async def _tar_chunks(self, proc: asyncio.subprocess.Process) -> AsyncIterator[bytes]:
        assert proc.stdout is not None
        try:
            while True:
                chunk = await proc.stdout.read(PIECE)
                if not chunk:
                    break
                yield chunk
        finally:
            await self._reap(proc)

    # -- the verbs --------------------------------------------------------------------------------

    async def stat(self, c: Container, ref: str, path: str) -> dict[str, Any]:
        """``HEAD /containers/{id}/archive``: the path stat (NotFound if the path is missing)."""
        proc = await self._start(self._request(c, "stat", readonly=True, path=path))
        try:
            answer = await self._header(proc, ref, path)
        finally:
            await self._reap(proc)
        return path_stat(answer["stat"])

    async def get(self, c: Container, ref: str, path: str) -> tuple[dict[str, Any], AsyncIterator[bytes]]:
        """``GET /containers/{id}/archive``: the path stat and the tar's chunks."""
        proc = await self._start(self._request(c, "get", readonly=True, path=path))
        try:
            answer = await self._header(proc, ref, path)
        except BaseException:
            await self._reap(proc)
            raise
        return path_stat(answer["stat"]), self._tar_chunks(proc)

    async def export(self, c: Container) -> AsyncIterator[bytes]:
        """``GET /containers/{id}/export``: the merged rootfs (overlay only, no mounts) as a tar."""
        proc = await self._start(self._request(c, "export", readonly=True, via_mount=True))
        try:
            await self._header(proc, c.id, "/")
        except BaseException:
            await self._reap(proc)
            raise
        return self._tar_chunks(proc)

    async def put(self, c: Container, ref: str, path: str, body: AsyncIterator[bytes], *,
                  no_overwrite_dir_non_dir: bool, copy_uid_gid: bool) -> None:
        """``PUT /containers/{id}/archive``: extract the tar ``body`` into directory ``path``."""
        if c.host_config.get("ReadonlyRootfs"):
            raise InvalidParameter("container rootfs is marked read-only")
        owner = None
        if copy_uid_gid and c.config.get("User"):
            owner = await blocking.run(self._owner, c)
        request = self._request(c, "put", readonly=False, path=path, owner=owner,
                                no_overwrite_dir_non_dir=no_overwrite_dir_non_dir)
        proc = await self._start(request, stdin=True)
        try:
            await self._header(proc, ref, path)
            assert proc.stdin is not None
            try:
                async for chunk in body:
                    proc.stdin.write(chunk)
                    await proc.stdin.drain()
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass
            await self._header(proc, ref, path)
        finally:
            await self._reap(proc)

    def _owner(self, c: Container) -> list[int]:
        """The uid/gid of the container's ``User`` in its own passwd/group (for ``copyUIDGID``)."""
        lowers = self.images.snapshots.lowerdirs_of(c.id)
        upper = self.images.snapshots.container_dir(c.id) / "upper"
        for layer in [upper, *lowers]:
            etc = layer / "etc"
            # only real files: a symlink planted in the container must not make us read host files
            if not etc.is_symlink() and not (etc / "passwd").is_symlink() and (etc / "passwd").is_file():
                user = resolve_user(str(c.config["User"]), layer)
                return [user.uid, user.gid]
        user = resolve_user(str(c.config["User"]), upper)
        return [user.uid, user.gid]

    async def changes(self, c: Container) -> list[dict[str, Any]]:
        """``GET /containers/{id}/changes``."""
        snap = self.images.snapshots
        upper = snap.container_dir(c.id) / "upper"
        lowers = snap.lowerdirs_of(c.id)
        found = await blocking.run_stream(container_changes, upper, lowers)
        return [{"Path": p, "Kind": k} for p, k in found]
