"""Per-phase timestamps of one build, for profiling where its milliseconds go.

Off unless the daemon runs with ``DOCKYARD_BUILD_PHASES=1``: then each ``POST /build`` logs one
line at its end (logger ``dockyard.build.phases``, level WARNING so the default log level keeps it):
every *mark* as ``name=+ms`` since the request arrived, in the order they were made. Marks made in
worker threads and in tasks the build starts land in the same build's line (the timeline is carried
in a context variable, which :mod:`dockyard.blocking` and asyncio copy). Off, a mark is one global
test: nothing is recorded.
"""

from __future__ import annotations

import contextvars
import logging
import os
import time

ENABLED = bool(os.environ.get("DOCKYARD_BUILD_PHASES"))

log = logging.getLogger("dockyard.build.phases")
_timeline: contextvars.ContextVar[list[tuple[str, float]] | None] = contextvars.ContextVar(
    "build_phases", default=None)


def start() -> None:
    """Begin the current build's timeline (in the request's task, before anything else)."""
    if ENABLED:
        _timeline.set([("start", time.perf_counter())])


def mark(name: str) -> None:
    """Note that ``name`` happened now (nothing when off or outside a build)."""
    if ENABLED:
        timeline = _timeline.get()
        if timeline is not None:
            timeline.append((name, time.perf_counter()))


def finish() -> None:
    """Log the current build's timeline."""
    if not ENABLED:
        return
    timeline = _timeline.get()
    if not timeline:
        return
    t0 = timeline[0][1]
    log.warning("build phases: %s", " ".join(f"{name}=+{(t - t0) * 1000:.1f}" for name, t in timeline[1:]))
