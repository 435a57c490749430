"""The builder's side of :mod:`dockyard.build.rootfs_step`: one step thread per COPY/ADD/WORKDIR.

:class:`RootfsStep` owns the step's scratch dirs (``upper``, ``work``, ``merged``, ``source``)
under the build's directory; the upper dir is what the builder commits afterwards, and
:meth:`RootfsStep.cleanup` removes them all. Its methods block (they wait for the step thread):
the builder calls them on the filesystem pool.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dockyard.build.copying import CopyPlan
from dockyard.build.rootfs_step import StepMounts, StepThread
from dockyard.errors import DockyardError

T = TypeVar("T")


class RootfsStep:
    """One step's rootfs changes, done in a step thread (see :mod:`dockyard.build.rootfs_step`)."""

    def __init__(self, build_dir: Path, lowers: list[Path]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="step-", dir=build_dir))
        self.upper = self.dir / "upper"
        for name in ("upper", "work", "merged", "source", "scratch"):
            (self.dir / name).mkdir(mode=0o755 if name == "upper" else 0o700)
        self.mounts = StepMounts([str(p) for p in lowers], {name: str(self.dir / name) for name in
                                                            ("upper", "work", "merged", "source", "scratch")})
        self._thread: StepThread | None = None

    def _call(self, fn: Callable[[], T]) -> T:
        """``fn`` in the step thread (started on first use); an OSError is a failed copy, in the
        words Docker uses."""
        if self._thread is None:
            self._thread = StepThread()
        try:
            return self._thread.call(fn)
        except OSError as e:
            raise DockyardError(f"failed to copy files: {e.strerror or e}") from None

    def mkdir(self, path: str) -> None:
        """WORKDIR: create ``path`` in the rootfs unless it exists."""
        try:
            self._call(lambda: self.mounts.workdir(path))
        finally:
            self._finish()

    def export(self, path: str) -> str:
        """``path`` of the layers copied into this step's dir (see ``rootfs_step``); the copy's path."""
        into = self.dir / "export"
        into.mkdir(mode=0o755)
        try:
            return self._call(lambda: self.mounts.export(path, str(into)))
        finally:
            self._finish()

    def plan_copy(self, **copy: Any) -> dict[str, Any]:
        """Plan a COPY/ADD (fields as :meth:`StepMounts.plan_copy` reads them); returns
        ``{"checksum", "source_hash"}``. Then :meth:`apply` or :meth:`skip`."""
        try:
            plan = self._call(lambda: self.mounts.plan_copy(copy))
        except BaseException:
            self._finish()
            raise
        return {"checksum": plan.checksum, "source_hash": plan.source_hash}

    def apply(self, plan: CopyPlan | None = None) -> None:
        """Write the planned copy (or ``plan``, one made outside the step) into the step's rootfs."""
        try:
            self._call(lambda: self.mounts.apply(plan))
        finally:
            self._finish()

    def skip(self) -> None:
        self._finish()

    def _finish(self) -> None:
        """Unmount the step's overlays and end its thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            with contextlib.suppress(OSError):  # what stays mounted dies with the thread's namespace
                thread.call(self.mounts.unmount)
        finally:
            thread.close()

    def cleanup(self) -> None:
        self._finish()
        shutil.rmtree(self.dir, ignore_errors=True)
