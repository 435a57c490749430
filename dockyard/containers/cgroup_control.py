"""A container's cgroup over its life: made with its limits before start, joined by the init
before it execs, read for OOM kills when it exits, and removed then (and on removal / recovery).
Also the verbs acting on a running container's cgroup: pause, unpause, update.

Terms: *prepare* = create the cgroup and write limits and device rules; *finish* = read whether
the kernel's OOM killer fired in it, then remove it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dockyard.containers.record import Container, State
from dockyard.containers.resources import RESOURCE_FIELDS, Machine, resources_of, validate
from dockyard.errors import Conflict, DockyardError, InvalidParameter
from dockyard.runtime.cgroups import Cgroup, attach_primer
from dockyard.runtime.devices import cgroup_rules
from dockyard.runtime.limits import Resources, apply

log = logging.getLogger("dockyard.cgroups")


def prime_join() -> None:
    """A container is about to start: have the kernel's wait that its cgroup join would make begin
    now, in the background (see ``runtime/cgroups.AttachPrimer``)."""
    attach_primer.prime()


def prepare(c: Container, devices: list[Any]) -> Cgroup:
    """Create container ``c``'s cgroup with its limits and device rules; nothing left on failure."""
    cg = Cgroup.of(c.id)
    try:
        cg.create()
        apply(cg, resources_of(c.host_config))
        cg.confine_devices(cgroup_rules(devices, bool(c.host_config.get("Privileged")),
                                        c.host_config.get("DeviceCgroupRules") or ()))
    except OSError as err:
        discard(c.id)
        raise DockyardError(f"failed to set up the cgroup of container {c.id[:12]}: {err}") from err
    return cg


def oom_killed(cg: Cgroup) -> bool:
    """Whether the OOM killer killed a process in ``cg`` (v1 ``memory.oom_control``'s ``oom_kill``
    counter, v2 ``memory.events``' ``oom_kill``)."""
    if not cg.has("memory"):
        return False
    name = "memory.events" if cg.version == "2" else "memory.oom_control"
    return cg.read_keyed("memory", name).get("oom_kill", 0) > 0


def finish(cid: str) -> bool:
    """After the container exited: whether it was OOM-killed; then remove its cgroup."""
    cg = Cgroup.of(cid)
    if not cg.exists():
        return False
    killed = oom_killed(cg)
    discard(cid)
    return killed


def discard(cid: str) -> None:
    """Remove container ``cid``'s cgroup if there is one; failures are logged, not raised."""
    try:
        Cgroup.of(cid).remove()
    except OSError as err:
        log.warning("cannot remove the cgroup of %s: %s", cid[:12], err)


def thaw_for_kill(c: Container) -> None:
    """Docker thaws a paused container after sending SIGKILL, so that the signal is delivered."""
    if c.state.status != "paused":
        return
    try:
        Cgroup.of(c.id).thaw()
    except OSError as err:
        log.warning("cannot thaw %s: %s", c.id[:12], err)


async def pause(c: Container) -> None:
    if c.state.status == "paused":
        raise Conflict(f"Container {c.id} is already paused")
    if c.state.status == "restarting":
        raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
    if not c.state.running:
        raise Conflict(f"Container {c.id} is not running")
    cg = Cgroup.of(c.id)
    if cg.version == "1" and not cg.has("freezer"):
        raise DockyardError("Cannot pause container: the freezer cgroup is not mounted")
    run = c.state
    try:
        await asyncio.to_thread(cg.freeze)
    except OSError as err:
        if not _same_run(c, run, "running"):
            raise Conflict(f"Container {c.id} is not running") from err
        raise DockyardError(f"Cannot pause container {c.id}: {err}") from err
    # The freeze ran in a thread: the container may have exited (and its exit been recorded,
    # its cgroup removed) meanwhile. Marking it paused then would leave "Up (Paused)" with no
    # process, which unpause (no freezer.state) and rm -f (nothing to kill) could never undo.
    if not _same_run(c, run, "running"):
        raise Conflict(f"Container {c.id} is not running")
    c.state.status = "paused"
    c.save_soon()


async def unpause(c: Container) -> None:
    if c.state.status != "paused":
        raise Conflict(f"Container {c.id} is not paused")
    run = c.state
    try:
        await asyncio.to_thread(Cgroup.of(c.id).thaw)
    except OSError as err:
        if not _same_run(c, run, "paused"):
            return  # it exited meanwhile: its cgroup is gone, and it is not paused any more
        raise DockyardError(f"Cannot unpause container {c.id}: {err}") from err
    if _same_run(c, run, "paused"):  # else it exited while thawing (e.g. a SIGKILL held by the freezer)
        c.state.status = "running"
        c.save_soon()


def _same_run(c: Container, run: State, status: str) -> bool:
    """Whether ``c`` is still in the run whose state is ``run`` (a start makes a new State) and
    in ``status``: the check after a thread that raced with the container's exit."""
    return c.state is run and run.status == status


def update(c: Container, body: Any) -> list[str]:
    """``POST /containers/{id}/update``: merge the changed resource fields into the record and,
    when the container runs, write them into its cgroup. Returns Docker's warnings."""
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: the update request must be an object")
    unknown = [k for k, v in body.items() if k not in RESOURCE_FIELDS and v not in
               (None, "", 0, [], {}, False)]
    if unknown:
        raise InvalidParameter(f"Cannot update container {c.id}: updating {', '.join(sorted(unknown))} is not "
                               "supported by dockyard yet")
    if c.state.status in ("removing", "dead"):
        raise Conflict(f"Cannot update container {c.id}: container is marked for removal and cannot be "
                       "\"update\"")
    changes = {k: body[k] for k in RESOURCE_FIELDS if body.get(k) not in (None, "", 0)}
    if "OomKillDisable" in changes:
        raise InvalidParameter(f"Cannot update container {c.id}: OomKillDisable cannot be changed")
    current = c.host_config
    memory = changes.get("Memory", 0)
    if (memory and "MemorySwap" not in changes and (current.get("MemorySwap") or 0) > 0
            and memory > current["MemorySwap"]):
        raise InvalidParameter("Memory limit should be smaller than already set memoryswap limit, update the "
                               "memoryswap at the same time")
    merged = {**current, **changes}
    if changes.get("NanoCpus"):
        merged["CpuPeriod"] = merged["CpuQuota"] = 0
    elif "CpuPeriod" in changes or "CpuQuota" in changes:
        merged["NanoCpus"] = 0
    warnings = validate(merged, Machine.probe(), update=True)
    if c.state.running:
        res = resources_of(merged)
        wanted = Resources()  # only what changed: the rest stays as the cgroup has it
        for name in _FIELDS_OF:
            if _changed(name, changes):
                setattr(wanted, name, getattr(res, name))
        if "PidsLimit" in changes and (changes["PidsLimit"] or 0) <= 0:
            wanted.pids_limit = -1
        try:
            apply(Cgroup.of(c.id), wanted)
        except OSError as err:
            raise DockyardError(f"Cannot update container {c.id}: {err}") from err
    if merged.get("PidsLimit") is not None and merged["PidsLimit"] <= 0:
        merged["PidsLimit"] = None
    c.host_config = merged
    c.save_soon()
    return warnings


_FIELDS_OF = {"memory": ("Memory",), "memory_swap": ("MemorySwap", "Memory"),
              "memory_reservation": ("MemoryReservation",), "cpu_shares": ("CpuShares",),
              "cpu_period": ("CpuPeriod", "NanoCpus"), "cpu_quota": ("CpuQuota", "NanoCpus"),
              "cpuset_cpus": ("CpusetCpus",), "cpuset_mems": ("CpusetMems",), "pids_limit": ("PidsLimit",)}


def _changed(name: str, changes: dict[str, Any]) -> bool:
    return any(key in changes for key in _FIELDS_OF.get(name, ()))
