"""Container verbs beyond the lifecycle core: restart, rename, top, prune, and disk sizes.

Terms:
- *container pids*: the host pids whose pid namespace is the container init's (the init, its
  children, and exec processes), found by comparing ``/proc/<pid>/ns/pid`` links.
- *SizeRw*: bytes in the container's writable (upper) layer; *SizeRootFs*: that plus the image.
- *prune*: remove every container that is not running (created, exited, dead), subject to the
  ``until`` and ``label`` / ``label!`` filters.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from pathlib import Path
from typing import Any

from dockyard import blocking
from dockyard.containers.names import validate_name
from dockyard.containers.record import Container
from dockyard.containers.service import ContainerService
from dockyard.errors import Conflict, DockyardError, InvalidParameter, NotFound
from dockyard.formats import timestamps


# -- restart ----------------------------------------------------------------------------------------
async def restart(svc: ContainerService, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
    """Stop (if running) and start again, keeping the ID; Docker's ``restart`` event at the end."""
    c = svc.get(ref)
    if c.state.running:
        try:
            await svc.stop(ref, timeout=timeout, signal=signal)
        except DockyardError as exc:
            if exc.status != 304:
                raise
    await svc.start(c.id)
    svc.event(c, "restart")


# -- rename ------------------------------------------------------------------------------------------
async def rename(svc: ContainerService, ref: str, new_name: str) -> None:
    if not ref or not new_name:
        raise InvalidParameter("Neither old nor new names may be empty")
    c = svc.get(ref)
    new_name = validate_name(new_name)
    async with svc.serializer.operation(c.id, "rename"):
        if new_name == c.name:
            raise InvalidParameter("Renaming a container with the same name as its current name")
        svc.check_name_free(new_name)
        old = c.name
        c.name = new_name
        try:
            await blocking.write(c.save, c.snapshot())
        except BaseException:
            c.name = old
            raise
    svc.event(c, "rename", oldName="/" + old)


# -- top ---------------------------------------------------------------------------------------------------
def container_pids(init_pid: int) -> set[int]:
    try:
        target = os.readlink(f"/proc/{init_pid}/ns/pid")
    except OSError:
        return set()
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") == target:
                pids.add(int(entry))
        except OSError:
            continue
    return pids


def parse_ps(output: str, pids: set[int]) -> dict[str, Any]:
    """Docker's ``Titles``/``Processes`` from ``ps`` output, keeping the rows of ``pids`` only."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        raise DockyardError("ps produced no output")
    titles = lines[0].split()
    try:
        pid_index = titles.index("PID")
    except ValueError:
        raise DockyardError("Couldn't find PID field in ps output") from None
    processes = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) <= pid_index:
            continue
        try:
            pid = int(fields[pid_index])
        except ValueError:
            raise DockyardError(f"Unexpected pid '{fields[pid_index]}': invalid pid") from None
        if pid not in pids:
            continue
        row = fields[:len(titles) - 1] + [" ".join(fields[len(titles) - 1:])]
        processes.append(row)
    return {"Titles": titles, "Processes": processes}


async def top(svc: ContainerService, ref: str, ps_args: str = "") -> dict[str, Any]:
    c = svc.get(ref)
    if c.state.status != "running" and c.state.status != "paused":
        raise Conflict(f"Container {c.id} is not running")
    args = shlex.split(ps_args or "-ef")
    pids = container_pids(c.state.pid)
    proc = await asyncio.create_subprocess_exec("ps", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise DockyardError(f"Error running ps: exit status {proc.returncode}: {err.decode(errors='replace').strip()}")
    return parse_ps(out.decode(errors="replace"), pids)


# -- sizes ---------------------------------------------------------------------------------------------------
def tree_size(path: Path) -> int:
    """Bytes in the regular files under ``path`` (hard links counted once), like ``du --apparent-size``."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def sizes(svc: ContainerService, c: Container) -> tuple[int, int]:
    """(SizeRw, SizeRootFs) of a container."""
    upper = (svc.images.graph_driver(c.id).get("Data") or {}).get("UpperDir")
    size_rw = tree_size(Path(upper)) if upper else 0
    image_size = 0
    try:
        image_size = int(svc.images.inspect(c.image_id).get("Size") or 0)
    except DockyardError:
        pass
    return size_rw, size_rw + image_size


# -- prune ---------------------------------------------------------------------------------------------------
def _labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


async def prune(svc: ContainerService, filters: dict[str, list[str]]) -> dict[str, Any]:
    for key in filters:
        if key not in ("until", "label", "label!"):
            raise InvalidParameter(f"invalid filter '{key}'")
    until = [timestamps.parse_time_arg(v) / timestamps.NANOS for v in filters.get("until", [])]
    deleted: list[str] = []
    reclaimed = 0
    for summary in svc.list(all=True):
        try:
            c = svc.get(summary["Id"])
        except NotFound:
            continue
        if until and not all(timestamps.stored_seconds(c.created) < u for u in until):
            continue
        labels = c.config.get("Labels") or {}
        if filters.get("label") and not _labels_match(labels, filters["label"]):
            continue
        if filters.get("label!") and any(_labels_match(labels, [item]) for item in filters["label!"]):
            continue
        try:
            # Through the container's serializer: a start in flight finishes first, and the
            # container is then judged by what it has become.
            async with svc.serializer.operation(c.id, "remove"):
                if c.state.running or c.state.status == "removing":
                    continue
                size_rw, _ = await blocking.run(sizes, svc, c)
                await svc.remove_held(c)
        except DockyardError:
            continue
        deleted.append(c.id)
        reclaimed += size_rw
    svc.events.publish("container", "prune", "", {"reclaimed": str(reclaimed)})
    return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}
