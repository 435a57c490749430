"""The attach primer writes the process's own pid into the cgroup it is already in (a no-op move
that starts the kernel's grace period early), one hierarchy only, never two primings at once."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from dockyard.runtime import cgroups
from dockyard.runtime.cgroups import AttachPrimer


def _fake_root(tmp_path: Path, own: str, *, hybrid: bool) -> Path:
    root = tmp_path / "cgroup"
    bases = [root / "unified", root / "pids"] if hybrid else [root]
    for base in bases:
        (base / own.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (base / "cgroup.procs").write_text("")
        (base / own.lstrip("/") / "cgroup.procs").write_text("")
    if not hybrid:
        (root / "cgroup.controllers").write_text("cpu memory pids\n")
    return root


@pytest.mark.parametrize("hybrid", [True, False])
def test_prime_moves_us_into_our_own_v2_cgroup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hybrid: bool) -> None:
    root = _fake_root(tmp_path, "/system.slice/dockyard.service", hybrid=hybrid)
    real_read = Path.read_text

    def read_text(self: Path, *args: object, **kwargs: object) -> str:
        if str(self) == "/proc/self/cgroup":
            return "3:pids:/system.slice/dockyard.service\n0::/system.slice/dockyard.service\n"
        return real_read(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", read_text)
    primer = AttachPrimer(root)
    primer.prime()
    assert primer._busy.acquire(timeout=5)  # the priming thread is done
    unified = (root / "unified") if hybrid else root
    assert (unified / "system.slice/dockyard.service/cgroup.procs").read_text() == str(os.getpid())
    if hybrid:  # one hierarchy is enough: the kernel's lock is global
        assert (root / "pids/system.slice/dockyard.service/cgroup.procs").read_text() == ""


def test_one_priming_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    primer = AttachPrimer(Path("/nonexistent"))
    release = threading.Event()
    runs: list[int] = []

    def slow_write(path: Path, value: str) -> None:
        runs.append(1)
        release.wait(5)

    monkeypatch.setattr(cgroups, "_write", slow_write)
    monkeypatch.setattr(AttachPrimer, "_own_procs_file", lambda self: Path("/x/cgroup.procs"))
    primer.prime()
    primer.prime()  # the first still waits: nothing more to gain
    release.set()
    assert primer._busy.acquire(timeout=5)
    assert runs == [1]


def test_failures_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    primer = AttachPrimer(Path("/nonexistent"))

    def refuse(path: Path, value: str) -> None:
        raise PermissionError(13, "refused")

    monkeypatch.setattr(cgroups, "_write", refuse)
    monkeypatch.setattr(AttachPrimer, "_own_procs_file", lambda self: Path("/x/cgroup.procs"))
    primer.prime()
    assert primer._busy.acquire(timeout=5)
