"""Resource limits and the cgroup files that hold them, on v1 and on v2.

Terms: in :class:`Resources` a value of ``0`` (or ``""``) means *leave as it is* (the kernel's
default for a new cgroup), ``-1`` means *unlimited* (written as ``-1`` on v1, ``max`` on v2).
``memory_swap`` is Docker's *memory + swap* total, as v1's ``memory.memsw.limit_in_bytes`` takes it;
v2's ``memory.swap.max`` holds the swap alone (total - memory), as runc converts it.
``memory_swappiness`` exists on v1 only (``-1``: leave it). ``cpu_shares`` become v2's ``cpu.weight`` by runc's linear mapping of [2, 262144] onto [1, 10000].
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from dockyard.runtime.cgroups import Cgroup

CFS_PERIOD_DEFAULT = 100_000
"""The CFS period (µs) Docker uses with ``--cpus``."""


@dataclass
class Resources:
    memory: int = 0
    memory_swap: int = 0
    memory_reservation: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int = 0
    oom_kill_disable: bool = False
    memory_swappiness: int = -1  # v1's memory.swappiness (0..100); -1 leaves the kernel's value


def nano_cpus_to_cfs(nano_cpus: int, period: int = CFS_PERIOD_DEFAULT) -> tuple[int, int]:
    """Docker's ``--cpus`` (NanoCpus, 1e9 per CPU) as a CFS (period, quota) in µs."""
    return period, nano_cpus * period // 1_000_000_000


def shares_to_weight(shares: int) -> int:
    """runc's ``ConvertCPUSharesToCgroupV2Value``: 0 stays 0 (unset)."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def swap_to_v2(memory_swap: int, memory: int) -> str | None:
    """``memory.swap.max`` for a Docker memory+swap total; None to leave it unset."""
    if memory_swap == -1:
        return "max"
    if memory_swap > 0 and memory > 0:
        return str(max(memory_swap - memory, 0))
    return None


def _v1(value: int) -> str:
    return "-1" if value < 0 else str(value)


def _v2(value: int) -> str:
    return "max" if value < 0 else str(value)


def files(res: Resources, version: str) -> list[tuple[str, str, str]]:
    """The (controller, file, value) writes for ``res``, memory first, in a safe order."""
    out: list[tuple[str, str, str]] = []
    if version == "2":
        if res.memory:
            out.append(("memory", "memory.max", _v2(res.memory)))
        swap = swap_to_v2(res.memory_swap, res.memory)
        if swap is not None:
            out.append(("memory", "memory.swap.max", swap))
        if res.memory_reservation:
            out.append(("memory", "memory.low", _v2(res.memory_reservation)))
        if res.cpu_shares:
            out.append(("cpu", "cpu.weight", str(shares_to_weight(res.cpu_shares))))
        if res.cpu_quota or res.cpu_period:
            quota = "max" if res.cpu_quota <= 0 else str(res.cpu_quota)
            out.append(("cpu", "cpu.max", f"{quota} {res.cpu_period or CFS_PERIOD_DEFAULT}"))
        if res.cpuset_cpus:
            out.append(("cpuset", "cpuset.cpus", res.cpuset_cpus))
        if res.cpuset_mems:
            out.append(("cpuset", "cpuset.mems", res.cpuset_mems))
        if res.pids_limit:
            out.append(("pids", "pids.max", _v2(res.pids_limit)))
        return out
    if res.memory:
        out.append(("memory", "memory.limit_in_bytes", _v1(res.memory)))
    if res.memory_swap:
        out.append(("memory", "memory.memsw.limit_in_bytes", _v1(res.memory_swap)))
    if res.memory_reservation:
        out.append(("memory", "memory.soft_limit_in_bytes", _v1(res.memory_reservation)))
    if res.oom_kill_disable:
        out.append(("memory", "memory.oom_control", "1"))
    if res.memory_swappiness >= 0:
        out.append(("memory", "memory.swappiness", str(res.memory_swappiness)))
    if res.cpu_shares:
        out.append(("cpu", "cpu.shares", str(res.cpu_shares)))
    if res.cpu_period:
        out.append(("cpu", "cpu.cfs_period_us", str(res.cpu_period)))
    if res.cpu_quota:
        out.append(("cpu", "cpu.cfs_quota_us", _v1(res.cpu_quota)))
    if res.cpuset_cpus:
        out.append(("cpuset", "cpuset.cpus", res.cpuset_cpus))
    if res.cpuset_mems:
        out.append(("cpuset", "cpuset.mems", res.cpuset_mems))
    if res.pids_limit:
        out.append(("pids", "pids.max", "max" if res.pids_limit < 0 else str(res.pids_limit)))
    return out


def apply(cg: Cgroup, res: Resources) -> None:
    """Write ``res`` into ``cg``. On v1 the kernel insists memory <= memory+swap at every moment,
    so when the first order fails with EINVAL the pair is written the other way round."""
    writes = files(res, cg.version)
    memory = [w for w in writes if w[1] in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes")]
    rest = [w for w in writes if w not in memory]
    if memory:
        try:
            for controller, name, value in memory:
                cg.write(controller, name, value)
        except OSError as err:
            if err.errno != errno.EINVAL or len(memory) < 2:
                raise
            for controller, name, value in reversed(memory):
                cg.write(controller, name, value)
    for controller, name, value in rest:
        cg.write(controller, name, value)
