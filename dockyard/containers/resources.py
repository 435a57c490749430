"""A container's resource settings (HostConfig's cgroup fields): validated as Docker does, and
turned into runtime :class:`~dockyard.runtime.limits.Resources` and device nodes.

Terms: *machine* is what the host offers (:class:`Machine`: cgroup mode, the CPUs and memory
nodes of the root cpuset, which v1 files exist). Docker's rules kept here: ``MemorySwap`` 0 with
a memory limit becomes 2 × memory; ``-1`` is unlimited; swap below memory is refused; NanoCpus
excludes CpuPeriod/CpuQuota; ``PidsLimit`` <= 0 means unlimited (stored as null);
``MemorySwappiness`` -1 means unset (stored as null), a cgroup v1 knob only (v2 has none: it is
discarded with a warning, before its 0..100 range is checked, as dockerd does); ``OomScoreAdj``
lies in -1000..1000; ``CpuCount`` is a Windows setting that dockerd on Linux keeps and ignores;
``DeviceCgroupRules`` are checked by :func:`dockyard.runtime.devices.check_rule`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidParameter
from dockyard.runtime import cgroups
from dockyard.runtime.devices import DeviceNode, check_rule, host_device
from dockyard.runtime.limits import Resources, nano_cpus_to_cfs

MIN_MEMORY = 6 * 1024 * 1024
RESOURCE_FIELDS = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod",
                   "CpuQuota", "CpusetCpus", "CpusetMems", "PidsLimit", "OomKillDisable")
"""The HostConfig fields this module handles (plus ``Devices``)."""


def parse_uint_list(text: str) -> set[int]:
    """Docker's ``ParseUintList``: ``0-2,4`` -> {0, 1, 2, 4}; raises ValueError."""
    out: set[int] = set()
    if text == "":
        return out
    for part in text.split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"invalid format: {text}")
        start, end = int(low), int(high) if dash else int(low)
        if end < start:
            raise ValueError(f"invalid format: {text}")
        out.update(range(start, end + 1))
    return out


@dataclass
class Machine:
    """What this host's cgroups can do."""

    version: str = "1"
    cpus: str = ""
    mems: str = ""
    ncpu: int = 1
    controllers: set[str] = field(default_factory=set)
    swap: bool = False
    oom_kill_disable: bool = False
    swappiness: bool = False

    @classmethod
    def probe(cls, root: Path = cgroups.CGROUP_ROOT) -> Machine:
        version = cgroups.mode(root)
        ncpu = os.cpu_count() or 1
        if version == "2":
            controllers = cgroups.v2_available(root)
            cpus = _read(root / "cpuset.cpus.effective") or f"0-{ncpu - 1}"
            mems = _read(root / "cpuset.mems.effective") or "0"
            return cls(version, cpus, mems, ncpu, controllers, swap=True, oom_kill_disable=False)
        found = cgroups.v1_available(root)
        cpus = _read(found["cpuset"] / "cpuset.cpus") if "cpuset" in found else ""
        mems = _read(found["cpuset"] / "cpuset.mems") if "cpuset" in found else ""
        memory = found.get("memory")
        return cls(version, cpus, mems, ncpu, set(found),
                   swap=bool(memory and (memory / "memory.memsw.limit_in_bytes").exists()),
                   oom_kill_disable=bool(memory and (memory / "memory.oom_control").exists()),
                   swappiness=bool(memory and (memory / "memory.swappiness").exists()))

    @property
    def cfs(self) -> bool:
        return "cpu" in self.controllers


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _int(host: dict[str, Any], key: str) -> int:
    value = host.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(f"invalid HostConfig.{key}: expected an integer")
    return value


def validate(host: dict[str, Any], machine: Machine, *, update: bool = False) -> list[str]:
    """Check and normalise ``host``'s resource fields in place; return Docker's warnings.
    ``update``: a ``POST /containers/{id}/update`` body, where 0 means *unchanged*."""
    warnings: list[str] = []
    memory, swap = _int(host, "Memory"), _int(host, "MemorySwap")
    reservation = _int(host, "MemoryReservation")
    if memory and memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if memory > 0 and "memory" not in machine.controllers:
        warnings.append("Your kernel does not support memory limit capabilities or the cgroup is not mounted. "
                        "Limitation discarded.")
        host["Memory"] = memory = 0
        host["MemorySwap"] = swap = 0
    if memory > 0 and swap != -1 and not machine.swap:
        warnings.append("Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
                        "Memory limited without swap.")
        host["MemorySwap"] = swap = -1
    if memory > 0 and swap > 0 and swap < memory:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, see usage")
    if memory == 0 and swap > 0 and not update:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap limit, see usage")
    if reservation and reservation < MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise InvalidParameter("Minimum memory limit can not be less than memory reservation limit, see usage")
    if memory > 0 and swap == 0 and not update and machine.swap:
        host["MemorySwap"] = memory * 2
    swappiness = host.get("MemorySwappiness")
    if swappiness is not None:
        if isinstance(swappiness, bool) or not isinstance(swappiness, int):
            raise InvalidParameter("invalid HostConfig.MemorySwappiness: expected an integer")
        if swappiness == -1:  # Docker's CLI sends -1 for "not set"
            host["MemorySwappiness"] = swappiness = None
        elif not machine.swappiness:
            warnings.append("Your kernel does not support memory swappiness capabilities or the cgroup is not "
                            "mounted. Memory swappiness discarded.")
            host["MemorySwappiness"] = swappiness = None
        elif not 0 <= swappiness <= 100:
            raise InvalidParameter(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    if host.get("OomKillDisable"):
        if not machine.oom_kill_disable:
            warnings.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
            host["OomKillDisable"] = False
        elif memory == 0:
            warnings.append("OOM killer is disabled for the container, but no memory limit is set, this can "
                            "result in the system running out of resources.")

    nano, period, quota = _int(host, "NanoCpus"), _int(host, "CpuPeriod"), _int(host, "CpuQuota")
    shares = _int(host, "CpuShares")
    if nano > 0 and period > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if nano > 0 and not machine.cfs:
        raise InvalidParameter("NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or "
                               "the cgroup is not mounted")
    if nano < 0 or nano > machine.ncpu * 1_000_000_000:
        raise InvalidParameter(f"Range of CPUs is from 0.01 to {machine.ncpu}.00, as there are only "
                               f"{machine.ncpu} CPUs available")
    if shares < 0:
        raise InvalidParameter("invalid CPU shares: must not be negative")
    if period and (period < 1000 or period > 1_000_000):
        raise InvalidParameter("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s "
                               "(i.e. 1000000)")
    if quota > 0 and quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")

    for key, noun, available, what in (("CpusetCpus", "cpus", machine.cpus, "CPUs"),
                                       ("CpusetMems", "mems", machine.mems, "memory nodes")):
        value = host.get(key) or ""
        if not value:
            continue
        if "cpuset" not in machine.controllers:
            warnings.append("Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.")
            host[key] = ""
            continue
        try:
            wanted = parse_uint_list(value)
        except ValueError as err:
            raise InvalidParameter(f"Invalid value {value} for cpuset {noun}: {err}") from None
        if not wanted <= parse_uint_list(available):
            raise InvalidParameter(f"Requested {what} are not available - requested {value}, available: {available}")

    oom_score_adj = _int(host, "OomScoreAdj")
    if not -1000 <= oom_score_adj <= 1000:
        raise InvalidParameter(f"Invalid value {oom_score_adj}, range for oom score adj is [-1000, 1000]")
    _int(host, "CpuCount")  # Windows only: dockerd on Linux keeps it in the record and ignores it

    pids = host.get("PidsLimit")
    if pids is not None:
        if isinstance(pids, bool) or not isinstance(pids, int):
            raise InvalidParameter("invalid HostConfig.PidsLimit: expected an integer")
        if pids > 0 and "pids" not in machine.controllers:
            warnings.append("Your kernel does not support pids limit capabilities or the cgroup is not mounted. "
                            "PIDs limit discarded.")
            host["PidsLimit"] = None
        elif pids <= 0 and not update:
            host["PidsLimit"] = None  # Docker: zero and negative values mean unlimited
    return warnings


def resources_of(host: dict[str, Any]) -> Resources:
    """The runtime limits for a (validated) HostConfig."""
    period, quota = _int(host, "CpuPeriod"), _int(host, "CpuQuota")
    nano = _int(host, "NanoCpus")
    if nano > 0:
        period, quota = nano_cpus_to_cfs(nano)
    pids = host.get("PidsLimit") or 0
    return Resources(memory=_int(host, "Memory"), memory_swap=_int(host, "MemorySwap"),
                     memory_reservation=_int(host, "MemoryReservation"), cpu_shares=_int(host, "CpuShares"),
                     cpu_period=period, cpu_quota=quota, cpuset_cpus=host.get("CpusetCpus") or "",
                     cpuset_mems=host.get("CpusetMems") or "", pids_limit=-1 if pids < 0 else pids,
                     oom_kill_disable=bool(host.get("OomKillDisable")),
                     memory_swappiness=-1 if host.get("MemorySwappiness") is None else host["MemorySwappiness"])


def validate_devices(host: dict[str, Any]) -> None:
    """``HostConfig.Devices``: a list of {PathOnHost, PathInContainer, CgroupPermissions}; and
    ``HostConfig.DeviceCgroupRules``: rules as :func:`check_rule` reads them (dockerd checks them
    only at start; refusing them at create keeps a container that could never start from being made)."""
    rules = host.get("DeviceCgroupRules")
    if rules is not None:
        if not isinstance(rules, list) or not all(isinstance(rule, str) for rule in rules):
            raise InvalidParameter("invalid HostConfig.DeviceCgroupRules: expected a list of strings")
        for rule in rules:
            try:
                check_rule(rule)
            except ValueError as err:
                raise InvalidParameter(str(err)) from None
    devices = host.get("Devices") or []
    if not isinstance(devices, list):
        raise InvalidParameter("invalid HostConfig.Devices: expected a list")
    for device in devices:
        if not isinstance(device, dict) or not device.get("PathOnHost"):
            raise InvalidParameter("invalid HostConfig.Devices: each needs PathOnHost")
        perms = device.get("CgroupPermissions") or "rwm"
        if not perms or any(ch not in "rwm" for ch in perms):
            raise InvalidParameter(f"invalid device mode: {perms}")
        inside = device.get("PathInContainer") or device["PathOnHost"]
        if not inside.startswith("/"):
            raise InvalidParameter(f"bad format for path: {inside}")
        device_nodes({"Devices": [device]})  # the host path must be a device node now


def device_nodes(host: dict[str, Any]) -> list[DeviceNode]:
    """The ``--device`` nodes of a HostConfig, read from the host's /dev now."""
    nodes = []
    for device in host.get("Devices") or []:
        on_host = device["PathOnHost"]
        try:
            nodes.append(host_device(on_host, device.get("PathInContainer") or on_host,
                                     device.get("CgroupPermissions") or "rwm"))
        except (OSError, ValueError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            raise InvalidParameter(f'error gathering device information while adding custom device "{on_host}": '
                                   f"{reason.lower()}") from None
    return nodes


def cgroup_features(machine: Machine | None = None) -> dict[str, bool]:
    """``docker info``'s resource flags, as this host's cgroups support them."""
    m = machine or Machine.probe()
    return {"MemoryLimit": "memory" in m.controllers, "SwapLimit": m.swap, "CpuCfsPeriod": m.cfs,
            "CpuCfsQuota": m.cfs, "CPUShares": "cpu" in m.controllers, "CPUSet": "cpuset" in m.controllers,
            "PidsLimit": "pids" in m.controllers, "OomKillDisable": m.oom_kill_disable}
