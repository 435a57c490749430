"""Running one healthcheck probe inside a container, through the exec runtime.

A probe is an exec that nobody sees: its shim keeps state in ``containers/<id>/health/<probe id>/``
(removed when the probe is done), its stdout and stderr are collected (at most 4096 bytes, as
Docker keeps) from the shim's attach socket, and its exit code comes from the shim's exit record.
Past the timeout the probe is killed and reported with exit code -1 and Docker's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import time

from dockyard.containers.health import MAX_OUTPUT, ProbeResult
from dockyard.containers.record import Container
from dockyard.errors import DockyardError
from dockyard.formats import timestamps
from dockyard.runtime import shim as shimproto
from dockyard.runtime.exec import ExecSpec, init_cgroups, spawn_exec
from dockyard.runtime.spawn import reap
from dockyard.runtime.spec import ProcessSpec

PROBE_DIR = "health"
SHIM_EXIT_GRACE = 5.0  # seconds to wait for the probe's shim after its output ended


def go_duration(seconds: float) -> str:
    """A duration as Go prints it for the common cases: ``30s``, ``500ms``, ``1m30s``."""
    ms = round(seconds * 1000)
    if ms % 1000:
        return f"{seconds:g}s" if ms > 1000 else f"{ms}ms"
    whole = ms // 1000
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


async def run_probe(c: Container, argv: list[str], timeout: float) -> ProbeResult:
    """Run ``argv`` in ``c`` (its Env, WorkingDir and User) and report how it went."""
    from dockyard.containers.service import open_shim  # the service imports this module's users

    probe_id = secrets.token_hex(16)
    state_dir = c.dir / PROBE_DIR / probe_id
    state_dir.mkdir(parents=True, mode=0o700)
    start = timestamps.now()
    try:
        spec = ExecSpec(
            container_id=c.id, exec_id=probe_id, init_pid=c.state.pid, state_dir=state_dir,
            process=ProcessSpec(args=argv, env=list(c.config.get("Env") or []),
                                cwd=c.config.get("WorkingDir") or "/", user=c.config.get("User") or "",
                                tty=False, open_stdin=False),
            hostname=c.config.get("Hostname") or "", cgroup_procs=init_cgroups(c.state.pid))
        spawned = await asyncio.to_thread(spawn_exec, spec)
        output = bytearray()
        failed: str | None = None
        try:
            reader, writer = await open_shim(state_dir)
        except OSError:
            reader = None
        try:
            await asyncio.to_thread(spawned.go)
        except DockyardError as exc:
            failed = exc.message

        async def collect() -> None:
            if reader is None:
                return
            while True:
                try:
                    header = await reader.readexactly(8)
                    _, size = shimproto.FRAME.unpack(header)
                    payload = await reader.readexactly(size)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if len(output) < MAX_OUTPUT:
                    output.extend(payload[:MAX_OUTPUT - len(output)])

        timed_out = False
        try:
            await asyncio.wait_for(collect(), timeout)
        except TimeoutError:
            timed_out = True
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(OSError):
                    kill(spawned.pid, signal.SIGKILL)
        finally:
            if reader is not None:
                writer.close()
        await _reap(spawned.shim_pid)
        end = timestamps.now()
        if timed_out:
            return ProbeResult(start, end, -1, f"Health check exceeded timeout ({go_duration(timeout)})")
        record = shimproto.read_exit_record(state_dir)
        code = record.exit_code if record is not None else -1
        text = output.decode("utf-8", "replace")
        if failed is not None:
            text = failed
        return ProbeResult(start, end, code, text)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


async def _reap(shim_pid: int) -> None:
    deadline = time.monotonic() + SHIM_EXIT_GRACE
    while reap(shim_pid) is None:
        if time.monotonic() > deadline:
            with contextlib.suppress(OSError):
                os.kill(shim_pid, signal.SIGKILL)
            await asyncio.sleep(0.05)
            reap(shim_pid)
            return
        await asyncio.sleep(0.02)
