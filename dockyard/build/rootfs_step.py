"""One build step's rootfs changes, made in a thread of the daemon that has a mount namespace of its own:
COPY/ADD, WORKDIR's mkdir and the sources of ``RUN --mount=type=bind,from=``.

Terms: the *target* is the step's rootfs: the parent image's layers (``lowers``, top-most first)
under a fresh writable ``upper`` dir, mounted as an overlay on ``merged``; with no layers (``FROM
scratch``) the upper dir itself is the rootfs. The *source* of ``COPY --from`` is another image's
layers, mounted read-only on ``source``. No container is needed: what the step writes lands in
``upper``, which the builder then commits as the step's layer, the way ``commit`` turns a
container's upper dir into a layer.

The *step thread* (:class:`StepThread`) is made for one step and ends with it. Its first act is
``unshare(CLONE_NEWNS)`` (which also gives it a working directory of its own) and making every
mount in that namespace private, so the overlays it mounts never show in the host's mount table
nor in any other thread's; it unmounts them before it ends, and whatever is left dies with its
namespace when the thread exits. Linux lets one thread of a process have a mount namespace of its
own as it lets it have a network namespace (see :mod:`dockyard.networks.netns`). A thread instead of
a helper process: the step costs no interpreter start-up (~100 ms of imports on this machine).

The jobs (run in the step thread by :class:`dockyard.build.rootfs_client.RootfsStep`):

- :meth:`StepMounts.workdir`: the directory is created (0755, root, like Docker's
  ``ContainerCreateWorkdir``) unless it exists.
- :meth:`StepMounts.export`: a path of the (read-only mounted) layers copied into a directory
  (``RUN --mount=type=bind,from=``: the container binds the copy, so writes are discarded, as
  BuildKit discards them).
- :meth:`StepMounts.plan_copy` then :meth:`StepMounts.apply`: the copy planned (``--chown``
  resolved in the target), then written into the target on a cache miss.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from dockyard.build.copying import CopyPlan, parse_chmod, plan_copy, resolve_chown
from dockyard.build.downloads import download
from dockyard.build.scope import resolve_in_scope
from dockyard.errors import DockyardError, NotFound
from dockyard.runtime import syscalls as sc

T = TypeVar("T")


class StepThread:
    """A thread in a private mount namespace of its own that runs jobs one at a time until closed."""

    def __init__(self, name: str = "build-rootfs") -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], object], Future[object]] | None] = queue.SimpleQueue()
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name=name, daemon=True)
        self._thread.start()
        try:
            ready.result()
        except BaseException:
            self._thread.join()
            raise

    def _serve(self, ready: Future[None]) -> None:
        try:
            sc.unshare(sc.CLONE_NEWNS)
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
        except OSError as e:
            ready.set_exception(DockyardError(f"failed to prepare the build step's rootfs: {e.strerror or e}"))
            return
        ready.set_result(None)
        while (job := self._jobs.get()) is not None:
            fn, result = job
            try:
                result.set_result(fn())
            except BaseException as exc:
                result.set_exception(exc)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the thread (inside its namespace) and return its result."""
        if not self._thread.is_alive():
            raise DockyardError("the build step's rootfs thread has ended")
        result: Future[T] = Future()
        self._jobs.put((fn, result))  # type: ignore[arg-type]
        return result.result()

    def close(self) -> None:
        """End the thread (and with it its namespace) once its jobs are done."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()


class StepMounts:
    """The mounts of one step, made and used only in its step thread (``dirs``: the step's
    ``upper``, ``work``, ``merged``, ``source`` and ``scratch`` dirs)."""

    def __init__(self, lowers: list[str], dirs: dict[str, str]) -> None:
        self.lowers = lowers
        self.dirs = dirs
        self.mounted: list[str] = []
        self.plan: CopyPlan | None = None
        self.root = ""

    def _overlay(self, lowers: list[str], target: str, upper: str | None = None, work: str | None = None) -> str:
        """Mount ``lowers`` (+ ``upper``) on ``target``; the rootfs path. Layer paths are given relative
        to their common parent when the absolute form would pass the kernel's one-page limit."""
        if not lowers:
            return upper or target
        if upper is None and len(lowers) == 1:
            return lowers[0]  # one read-only layer: the plain dir is the rootfs
        paths = [*lowers, *([upper, work or ""] if upper else [])]
        base = os.path.commonpath(paths)
        os.chdir(base)  # this thread's own working directory (unshared with the namespace)
        try:
            rel = [os.path.relpath(p, base) for p in paths]
            lower_text = ":".join(rel[:len(lowers)])
            if upper:
                data = f"lowerdir={lower_text},upperdir={rel[-2]},workdir={rel[-1]}"
                sc.mount("overlay", target, "overlay", 0, data)
            else:
                sc.mount("overlay", target, "overlay", sc.MS_RDONLY, "lowerdir=" + lower_text)
        finally:
            os.chdir("/")
        self.mounted.append(target)
        return target

    def _target(self) -> str:
        """The step's rootfs, mounted read-write over its upper dir."""
        if not self.root:
            self.root = self._overlay(self.lowers, self.dirs["merged"], self.dirs["upper"], self.dirs["work"])
        return self.root

    def unmount(self) -> None:
        """Unmount what this step mounted (newest first)."""
        while self.mounted:
            sc.umount2(self.mounted.pop(), sc.MNT_DETACH)

    def workdir(self, path: str) -> None:
        target = resolve_in_scope(self._target(), path)
        if not os.path.isdir(target):
            os.makedirs(target, mode=0o755, exist_ok=True)

    def export(self, path: str, into: str) -> str:
        """Copy ``path`` of the layers (resolved inside them) to ``into``, owners, modes and links kept;
        returns what was written (``into``/content for a directory, ``into``/name for a file)."""
        root = self._overlay(self.lowers, self.dirs["merged"]) if self.lowers else self.dirs["upper"]
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

    def plan_copy(self, request: dict[str, Any]) -> CopyPlan:
        """Plan a COPY/ADD (``context`` or ``source_lowers``, ``sources``, ``dest``, ``workdir``,
        ``is_add``, ``chown``, ``chmod``, ``heredocs``, ``known_digests`` of the context's files);
        kept for :meth:`apply`."""
        root = self._target()
        source = request.get("context") or ""
        from_rootfs = request.get("source_lowers") is not None
        if from_rootfs:
            lowers = list(request["source_lowers"])
            source = self._overlay(lowers, self.dirs["source"]) if lowers else self.dirs["source"]
        chown = resolve_chown(request["chown"], Path(root)) if request.get("chown") else None
        chmod = parse_chmod(request["chmod"]) if request.get("chmod") else None
        downloads = tempfile.mkdtemp(prefix="add-", dir=self.dirs["scratch"])
        self.plan = plan_copy(Path(source), list(request["sources"]), request["dest"], workdir=request["workdir"],
                              is_add=bool(request["is_add"]), chown=chown, chmod=chmod,
                              heredocs=dict(request.get("heredocs") or {}),
                              fetch_url=lambda url: download(url, Path(downloads)), from_rootfs=from_rootfs,
                              known_digests=None if from_rootfs else request.get("known_digests"))
        return self.plan

    def apply(self, plan: CopyPlan | None = None) -> None:
        """Write ``plan`` (else the one :meth:`plan_copy` made) into the step's rootfs."""
        plan = plan or self.plan
        assert plan is not None
        plan.apply(Path(self._target()))
