"""The builder's side of :mod:`dockyard.build.rootfs_step`: one helper process per COPY/ADD/WORKDIR.

:class:`RootfsStep` owns the step's scratch dirs (``upper``, ``work``, ``merged``, ``source``)
under the build's directory; the upper dir is what the builder commits afterwards, and
:meth:`RootfsStep.cleanup` removes them all.
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

import dockyard
from dockyard.errors import DockyardError, InvalidParameter, NotFound

_STATUS = {400: InvalidParameter, 404: NotFound}


class RootfsStep:
    """One step's rootfs changes, done by the helper (see :mod:`dockyard.build.rootfs_step`)."""

    def __init__(self, build_dir: Path, lowers: list[Path]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="step-", dir=build_dir))
        self.upper = self.dir / "upper"
        for name in ("upper", "work", "merged", "source", "scratch"):
            (self.dir / name).mkdir(mode=0o755 if name == "upper" else 0o700)
        self.lowers = [str(p) for p in lowers]
        self._proc: subprocess.Popen[str] | None = None

    def _request(self, **fields: Any) -> dict[str, Any]:
        return {"lowers": self.lowers, "upper": str(self.upper), "work": str(self.dir / "work"),
                "merged": str(self.dir / "merged"), "source": str(self.dir / "source"),
                "scratch": str(self.dir / "scratch"), **fields}

    def _start(self, request: dict[str, Any]) -> subprocess.Popen[str]:
        package_parent = str(Path(dockyard.__file__).resolve().parent.parent)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": package_parent,
               "PYTHONDONTWRITEBYTECODE": "1"}
        for key in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
            if key in os.environ:
                env[key] = os.environ[key]
        proc = subprocess.Popen([sys.executable, "-m", "dockyard.build.rootfs_step"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd="/")
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        self._proc = proc
        return proc

    def _answer(self) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read().strip()
            proc.wait()
            raise DockyardError(f"failed to prepare the build step's rootfs: {err.splitlines()[-1] if err else 'no answer'}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            proc.wait()
            raise _STATUS.get(int(answer.get("status") or 500), DockyardError)(str(answer["error"]))
        return answer

    def mkdir(self, path: str) -> None:
        """WORKDIR: create ``path`` in the rootfs unless it exists."""
        self._start(self._request(op="workdir", path=path))
        try:
            self._answer()
        finally:
            self._finish()

    def export(self, path: str) -> str:
        """``path`` of the layers copied into this step's dir (see ``rootfs_step``); the copy's path."""
        into = self.dir / "export"
        into.mkdir(mode=0o755)
        self._start(self._request(op="export", path=path, into=str(into)))
        try:
            return str(self._answer()["path"])
        finally:
            self._finish()

    def plan_copy(self, **copy: Any) -> dict[str, Any]:
        """Plan a COPY/ADD (fields as :mod:`dockyard.build.rootfs_step` reads them); returns
        ``{"checksum", "source_hash"}``. Then :meth:`apply` or :meth:`skip`."""
        self._start(self._request(op="copy", **copy))
        try:
            return self._answer()
        except BaseException:
            self._finish()
            raise

    def apply(self) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write("apply\n")
            self._proc.stdin.flush()
            self._answer()
        finally:
            self._finish()

    def skip(self) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.write("skip\n")
            self._proc.stdin.flush()
        self._finish()

    def _finish(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def cleanup(self) -> None:
        self._finish()
        shutil.rmtree(self.dir, ignore_errors=True)
