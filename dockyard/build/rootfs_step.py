"""A short-lived process that changes one build step's rootfs: COPY/ADD and WORKDIR's mkdir.

Run as ``python -m dockyard.build.rootfs_step`` by the builder (:mod:`dockyard.build.rootfs_client`),
one request JSON on stdin. Terms: the *target* is the step's rootfs: the parent image's layers
(``lowers``, top-most first) under a fresh writable ``upper`` dir, mounted as an overlay on
``merged``; with no layers (``FROM scratch``) the upper dir itself is the rootfs. The *source* of
``COPY --from`` is another image's layers, mounted read-only on ``source``.

Every mount is made in this process's own mount namespace (``unshare(CLONE_NEWNS)``, everything
private), so nothing leaks into the host's mount table and all of it vanishes with the process.
No container is needed: what the step writes lands in ``upper``, which the builder then commits
as the step's layer, the way ``commit`` turns a container's upper dir into a layer.

Protocol (one JSON object per line on stdout):

- ``{"op": "workdir", "path": "/abs"}``: the directory is created (0755, root, like Docker's
  ``ContainerCreateWorkdir``) unless it exists; answers ``{"ok": true}``.
- ``{"op": "export", "path": p, "into": dir}``: ``p`` of the (read-only mounted) layers copied into
  ``dir`` (``RUN --mount=type=bind,from=``: the container binds the copy, so writes are discarded, as
  BuildKit discards them); answers ``{"path": the copy}``.
- ``{"op": "copy", ...}``: the copy is planned (``plan_copy``; ``--chown`` resolved in the target)
  and ``{"checksum": ..., "source_hash": ...}`` is sent; the builder answers a line ``apply``
  (cache miss) or ``skip`` (hit) on stdin; after ``apply``, ``{"ok": true}``.
- Any failure: ``{"error": message, "status": http status}`` and exit 1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from dockyard.build.copying import parse_chmod, plan_copy, resolve_chown
from dockyard.build.downloads import download
from dockyard.build.scope import resolve_in_scope
from dockyard.errors import DockyardError, NotFound
from dockyard.runtime import syscalls as sc


def _overlay(lowers: list[str], target: str, upper: str | None = None, work: str | None = None) -> str:
    """Mount ``lowers`` (+ ``upper``) on ``target``; the rootfs path. Layer paths are given relative
    to their common parent when the absolute form would pass the kernel's one-page limit."""
    if not lowers:
        return upper or target
    if upper is None and len(lowers) == 1:
        return lowers[0]  # one read-only layer: the plain dir is the rootfs
    paths = [*lowers, *([upper, work or ""] if upper else [])]
    base = os.path.commonpath(paths)
    os.chdir(base)
    rel = [os.path.relpath(p, base) for p in paths]
    lower_text = ":".join(rel[:len(lowers)])
    if upper:
        data = f"lowerdir={lower_text},upperdir={rel[-2]},workdir={rel[-1]}"
        sc.mount("overlay", target, "overlay", 0, data)
    else:
        sc.mount("overlay", target, "overlay", sc.MS_RDONLY, "lowerdir=" + lower_text)
    os.chdir("/")
    return target


def _send(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _export(root: str, path: str, into: str) -> str:
    """Copy ``path`` of the rootfs (resolved inside it) to ``into``, owners, modes and links kept;
    returns what was written (``into``/content for a directory, ``into``/name for a file)."""
    source = resolve_in_scope(root, path)
    if not os.path.lexists(source):
        raise NotFound(f"failed to compute cache key: \"{path}\" not found")
    if os.path.isdir(source):
        target = os.path.join(into, "content")
        os.mkdir(target)
        subprocess.run(["cp", "-a", "--", source + "/.", target], check=True, capture_output=True)
        shutil.copystat(source, target)
        os.chown(target, os.stat(source).st_uid, os.stat(source).st_gid)
    else:
        target = os.path.join(into, "file")
        subprocess.run(["cp", "-a", "--", source, target], check=True, capture_output=True)
    return target


def run(request: dict[str, Any]) -> None:
    sc.unshare(sc.CLONE_NEWNS)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    if request["op"] == "export":
        lowers = list(request["lowers"])
        root = _overlay(lowers, request["merged"]) if lowers else request["upper"]
        _send({"path": _export(root, request["path"], request["into"])})
        return
    root = _overlay(list(request["lowers"]), request["merged"], request["upper"], request["work"])
    if request["op"] == "workdir":
        path = resolve_in_scope(root, request["path"])
        if not os.path.isdir(path):
            os.makedirs(path, mode=0o755, exist_ok=True)
        _send({"ok": True})
        return
    source = request.get("context") or ""
    from_rootfs = bool(request.get("source_lowers") is not None)
    if from_rootfs:
        lowers = list(request["source_lowers"])
        source = _overlay(lowers, request["source"]) if lowers else request["source"]
    chown = resolve_chown(request["chown"], Path(root)) if request.get("chown") else None
    chmod = parse_chmod(request["chmod"]) if request.get("chmod") else None
    downloads = tempfile.mkdtemp(prefix="add-", dir=request["scratch"])
    plan = plan_copy(Path(source), list(request["sources"]), request["dest"], workdir=request["workdir"],
                     is_add=bool(request["is_add"]), chown=chown, chmod=chmod,
                     heredocs=dict(request.get("heredocs") or {}),
                     fetch_url=lambda url: download(url, Path(downloads)), from_rootfs=from_rootfs)
    _send({"checksum": plan.checksum, "source_hash": plan.source_hash})
    if sys.stdin.readline().strip() != "apply":
        return
    plan.apply(Path(root))
    _send({"ok": True})


def main() -> int:
    request = json.loads(sys.stdin.readline())
    try:
        run(request)
    except DockyardError as e:
        _send({"error": e.message, "status": e.status})
        return 1
    except OSError as e:
        _send({"error": f"failed to copy files: {e.strerror or e}", "status": 500})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
