"""The healthcheck config, state machine and scheduler, with a fake probe runner."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dockyard.containers.health import (
    HealthMonitor,
    ProbeResult,
    apply_result,
    initial_health,
    merge_config,
    probe_argv,
)
from dockyard.containers.health_probe import go_duration
from dockyard.containers.record import Container, State
from dockyard.errors import InvalidParameter
from dockyard.formats import timestamps

MS = 1_000_000


def result(code: int, start: str = "2026-01-01T00:01:00Z") -> ProbeResult:
    return ProbeResult(start, start, code, "out")


def test_merge_and_validate() -> None:
    image = {"Test": ["CMD-SHELL", "true"], "Interval": 5 * MS, "Retries": 4}
    assert merge_config(None, image) == image
    merged = merge_config({"Interval": 20 * MS}, image)
    assert merged is not None
    assert merged["Test"] == ["CMD-SHELL", "true"] and merged["Interval"] == 20 * MS and merged["Retries"] == 4
    assert merge_config({"Test": ["NONE"]}, image) == {"Test": ["NONE"], "Interval": 5 * MS, "Timeout": 0,
                                                       "StartPeriod": 0, "StartInterval": 0, "Retries": 4}
    with pytest.raises(InvalidParameter, match="Interval in Healthcheck cannot be less than 1ms"):
        merge_config({"Test": ["CMD", "true"], "Interval": 10}, None)
    with pytest.raises(InvalidParameter, match="Retries in Healthcheck cannot be negative"):
        merge_config({"Test": ["CMD", "true"], "Retries": -1}, None)
    with pytest.raises(InvalidParameter, match="invalid Healthcheck.Test: expected a list of strings"):
        merge_config({"Test": "true"}, None)
    # forms dockerd stores as given and never probes
    for test in (["RUN", "true"], ["true"], ["CMD"], ["CMD-SHELL"], ["NONE", "x"]):
        assert merge_config({"Test": test}, None) == {"Test": test}
        assert probe_argv(test) is None
    assert merge_config({"Test": [], "Interval": 5 * MS}, None) == {"Interval": 5 * MS}
    assert probe_argv(["CMD-SHELL", "exit 1"]) == ["/bin/sh", "-c", "exit 1"]
    assert probe_argv(["CMD-SHELL", "echo $0", "a"], ["/bin/ash", "-ec"]) == ["/bin/ash", "-ec", "echo $0", "a"]
    assert probe_argv(["CMD", "cat", "/x"]) == ["cat", "/x"]
    assert probe_argv(["NONE"]) is None and probe_argv([]) is None


def test_state_machine() -> None:
    config = {"Retries": 2, "StartPeriod": 30 * 1000 * MS}
    started = "2026-01-01T00:00:00Z"
    h = initial_health()
    apply_result(h, result(1, "2026-01-01T00:00:10Z"), config, started)  # inside the start period
    assert h["Status"] == "starting" and h["FailingStreak"] == 0
    apply_result(h, result(1), config, started)
    assert h["Status"] == "starting" and h["FailingStreak"] == 1
    apply_result(h, result(1), config, started)
    assert h["Status"] == "unhealthy" and h["FailingStreak"] == 2
    apply_result(h, result(0), config, started)
    assert h["Status"] == "healthy" and h["FailingStreak"] == 0
    for _ in range(6):
        apply_result(h, result(0), config, started)
    assert len(h["Log"]) == 5
    assert set(h["Log"][0]) == {"Start", "End", "ExitCode", "Output"}
    h2 = initial_health()
    apply_result(h2, result(0, "2026-01-01T00:00:01Z"), config, started)
    apply_result(h2, result(1, "2026-01-01T00:00:02Z"), config, started)  # after a success: counts
    assert h2["FailingStreak"] == 1 and h2["Status"] == "healthy"


def _container(tmp_path: Path, test: list[str]) -> Container:
    c = Container(id="c" * 64, name="x", created=timestamps.now(), image="busybox", image_id="sha256:1", path="sh",
                  args=[], config={"Healthcheck": {"Test": test, "Interval": 10 * MS, "Retries": 2}},
                  host_config={}, state_dir=str(tmp_path))
    c.state = State(status="running", pid=1, started_at=timestamps.now())
    return c


def test_scheduler_with_fake_runner(tmp_path: Path) -> None:
    codes = [0, 1, 1, 0]
    changes: list[str] = []

    async def runner(c: Container, argv: list[str], timeout: float) -> ProbeResult:
        assert argv == ["/bin/sh", "-c", "probe"] and timeout == 30.0
        now = timestamps.now()
        return ProbeResult(now, now, codes.pop(0) if codes else 0, "")

    async def scenario() -> None:
        c = _container(tmp_path, ["CMD-SHELL", "probe"])
        monitor = HealthMonitor(runner, lambda c, changed: changes.append(changed) if changed else None)
        monitor.start(c)
        assert c.state.health is not None and c.state.health["Status"] == "starting"
        while codes:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        monitor.stop(c)
        assert c.state.health["Status"] == "unhealthy"  # stopped: Docker reports unhealthy
        none = _container(tmp_path, ["NONE"])
        monitor.start(none)
        assert none.state.health is None
        monitor.close()

    asyncio.run(scenario())
    assert changes[:3] == ["healthy", "unhealthy", "healthy"]


def test_go_duration() -> None:
    assert go_duration(30) == "30s" and go_duration(0.5) == "500ms" and go_duration(90) == "1m30s"
