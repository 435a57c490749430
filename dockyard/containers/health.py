"""Healthchecks: the config, the state machine, and the scheduler that runs the probes.

Terms (Docker's):
- *healthcheck config*: ``Config.Healthcheck`` = ``{"Test", "Interval", "Timeout", "StartPeriod",
  "StartInterval", "Retries"}``, durations in nanoseconds, 0 meaning the default (30 s, 30 s, 0,
  5 s, 3). ``Test`` is ``["NONE"]`` (disabled), ``["CMD", arg…]`` (run as is) or
  ``["CMD-SHELL", "cmd", arg…]`` (run by the container's ``Shell``, default ``/bin/sh -c``, the
  further items becoming ``$0``, ``$1``…); empty inherits the image's (and is left out when the
  image has none). Any other list (``["true"]``, a legacy bare command, ``["CMD"]`` alone) is
  stored and reported as given, and, as in dockerd, never probed: the container has no health.
- *probe*: one run of ``Test`` inside the container (an exec); exit 0 is healthy, anything else
  (or running past ``Timeout``) a failure.
- *health*: ``State.Health`` = ``{"Status": starting|healthy|unhealthy, "FailingStreak": n,
  "Log": [last 5 probes: Start, End, ExitCode, Output]}``.
- *start period*: failures during it, before any success, do not count; probes run every
  ``StartInterval`` then instead of every ``Interval``.

State machine (per probe): success → healthy, streak 0; failure outside the start period (or after
a success) → streak + 1, unhealthy once the streak reaches ``Retries``; otherwise the status stays.
When the container stops its status becomes unhealthy (Docker does so "for compatibility").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from dockyard.containers.record import Container
from dockyard.errors import InvalidParameter
from dockyard.formats import timestamps

log = logging.getLogger("dockyard.containers.health")

NANO = 1_000_000_000
DEFAULTS = {"Interval": 30 * NANO, "Timeout": 30 * NANO, "StartPeriod": 0, "StartInterval": 5 * NANO, "Retries": 3}
DURATIONS = ("Interval", "Timeout", "StartPeriod", "StartInterval")
MINIMUM_DURATION = 1_000_000  # 1 ms, Docker's minimum for a non-zero duration
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096


@dataclass(frozen=True)
class ProbeResult:
    start: str        # RFC 3339 with nanoseconds
    end: str
    exit_code: int    # -1: did not finish in time / could not run
    output: str

    def to_docker(self) -> dict[str, Any]:
        return {"Start": self.start, "End": self.end, "ExitCode": self.exit_code, "Output": self.output}


ProbeRunner = Callable[[Container, list[str], float], Awaitable[ProbeResult]]
"""Runs ``argv`` inside the container with a timeout (seconds) and reports how it went."""


# -- config --------------------------------------------------------------------------------------------

def merge_config(requested: Any, image: Any) -> dict[str, Any] | None:
    """The container's healthcheck: the request's, its unset parts taken from the image's."""
    if requested is not None and not isinstance(requested, dict):
        raise InvalidParameter("invalid Healthcheck: expected an object")
    if not requested:
        return dict(image) if image else None
    merged = dict(requested)
    if image:
        if not merged.get("Test"):
            merged["Test"] = image.get("Test")
        for key in (*DURATIONS, "Retries"):
            if not merged.get(key):
                merged[key] = image.get(key) or 0
    if "Test" in merged and not merged["Test"]:
        del merged["Test"]  # Go's omitempty: dockerd reports no Test rather than an empty one
    validate_config(merged)
    return merged


def validate_config(config: dict[str, Any]) -> None:
    """Docker's create-time checks, with its messages."""
    for key in DURATIONS:
        value = config.get(key) or 0
        if not isinstance(value, int) or (value != 0 and value < MINIMUM_DURATION):
            raise InvalidParameter(f"{key} in Healthcheck cannot be less than 1ms")
    retries = config.get("Retries") or 0
    if not isinstance(retries, int) or retries < 0:
        raise InvalidParameter("Retries in Healthcheck cannot be negative")
    probe_argv(config.get("Test"))


def probe_argv(test: Any, shell: list[str] | None = None) -> list[str] | None:
    """The probe's command line, or None when nothing is probed: ``NONE``, empty, a ``CMD`` or
    ``CMD-SHELL`` without a command, or a form dockerd stores but does not run (``["true"]``).
    ``shell``: the container's ``Shell`` for ``CMD-SHELL`` (default ``/bin/sh -c``)."""
    if not test:
        return None
    if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
        raise InvalidParameter("invalid Healthcheck.Test: expected a list of strings")
    kind, command = test[0], list(test[1:])
    if kind == "CMD" and command:
        return command
    if kind == "CMD-SHELL" and command:
        return [*(shell or ["/bin/sh", "-c"]), *command]
    return None


def setting(config: dict[str, Any], key: str) -> float:
    """A duration in seconds (or ``Retries``), Docker's default when 0."""
    value = config.get(key) or DEFAULTS[key]
    return float(value) if key == "Retries" else value / NANO


# -- state machine -------------------------------------------------------------------------------------

def initial_health() -> dict[str, Any]:
    return {"Status": "starting", "FailingStreak": 0, "Log": []}


def apply_result(health: dict[str, Any], result: ProbeResult, config: dict[str, Any], started_at: str) -> None:
    """Record one probe in ``health`` (Docker's handleProbeResult)."""
    entries = [*health.get("Log", []), result.to_docker()]
    health["Log"] = entries[-MAX_LOG_ENTRIES:]
    if result.exit_code == 0:
        health["FailingStreak"] = 0
        health["Status"] = "healthy"
        return
    if health["Status"] == "starting":
        in_start_period = timestamps.stored_seconds(result.start) - timestamps.stored_seconds(started_at) < setting(config, "StartPeriod")
        if in_start_period:
            return
    health["FailingStreak"] += 1
    if health["FailingStreak"] >= int(setting(config, "Retries")):
        health["Status"] = "unhealthy"


def next_wait(health: dict[str, Any], config: dict[str, Any], started_at: str, now: float) -> float:
    """Seconds until the next probe: ``StartInterval`` while starting within the start period."""
    if health["Status"] == "starting" and now - timestamps.stored_seconds(started_at) < setting(config, "StartPeriod"):
        return setting(config, "StartInterval")
    return setting(config, "Interval")


# -- scheduler -------------------------------------------------------------------------------------------

class HealthMonitor:
    """Runs each running container's probes. After every probe it calls ``on_probe(c, changed)``,
    ``changed`` being the new status when the status changed, else "" (the service saves the record
    and publishes Docker's ``health_status: <status>`` event)."""

    def __init__(self, runner: ProbeRunner | None, on_probe: Callable[[Container, str], None],
                 clock: Callable[[], float] | None = None) -> None:
        self.runner = runner
        self.on_probe = on_probe
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._clock = clock

    def start(self, c: Container, resume: bool = False) -> None:
        """The container has just started (``resume``: a restarted daemon found it running, and
        its health so far is kept): begin probing if it has a healthcheck."""
        self.stop(c, mark=False)
        config = c.config.get("Healthcheck") or {}
        argv = probe_argv(config.get("Test"), c.config.get("Shell")) if config else None
        if argv is None or self.runner is None:
            return
        if not (resume and c.state.health is not None):
            c.state.health = initial_health()
        self._tasks[c.id] = asyncio.get_running_loop().create_task(self._loop(c, config, argv))

    def stop(self, c: Container, mark: bool = True) -> None:
        """The container stopped: no more probes; its status becomes unhealthy (as Docker)."""
        task = self._tasks.pop(c.id, None)
        if task is not None:
            task.cancel()
        if mark and c.state.health is not None and c.state.health.get("Status") != "unhealthy":
            c.state.health["Status"] = "unhealthy"

    def close(self) -> list[asyncio.Task[None]]:
        """Cancel every probe loop; returns their tasks (to await until they ended)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        self._tasks.clear()
        return tasks

    def _now(self) -> float:
        return self._clock() if self._clock else time.time()

    async def _loop(self, c: Container, config: dict[str, Any], argv: list[str]) -> None:
        assert self.runner is not None
        started_at = c.state.started_at
        while True:
            health = c.state.health
            if health is None:
                return
            await asyncio.sleep(next_wait(health, config, started_at, self._now()))
            if c.state.status != "running" or c.state.started_at != started_at:
                return
            try:
                result = await self.runner(c, argv, setting(config, "Timeout"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a probe that cannot run is a failed probe, as in Docker
                now = timestamps.now()
                result = ProbeResult(now, now, -1, str(exc)[:MAX_OUTPUT])
            if c.state.status != "running" or c.state.started_at != started_at or c.state.health is not health:
                return
            before = health["Status"]
            apply_result(health, result, config, started_at)
            with contextlib.suppress(Exception):
                self.on_probe(c, health["Status"] if health["Status"] != before else "")
