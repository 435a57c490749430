"""``GET /containers/{id}/stats``: samples of a container's cgroup counters in Docker's JSON shape.

Terms: a *sample* is one reading (``read`` time, cpu, memory, pids, blkio); Docker's answer pairs
it with the previous one (``preread``/``precpu_stats``) so clients compute CPU % from the deltas:
``(cpu.total_usage delta / system_cpu_usage delta) × online_cpus × 100``. *System CPU usage* is the
host's total CPU time from ``/proc/stat``, in nanoseconds like the cgroup's counters.

``networks`` maps each interface of the container's network namespace to its counters, read from
``/proc/<init pid>/net/dev``. As dockerd reports only the interfaces it put into the sandbox, ``lo``
is left out, and so is the key itself when nothing is left (``--network none``) or when the
container shares the host's namespace (``--network host``); a bridge network's container has ``eth0``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dockyard.containers.record import Container
from dockyard.formats import timestamps
from dockyard.runtime.cgroups import Cgroup

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NANOS = 1_000_000_000


def system_cpu_usage(stat_path: Path = Path("/proc/stat")) -> int:
    """The host's total CPU time (all CPUs, all states but guest) in nanoseconds."""
    for line in stat_path.read_text().splitlines():
        if line.startswith("cpu "):
            ticks = sum(int(v) for v in line.split()[1:8])
            return ticks * NANOS // CLOCK_TICKS
    return 0


NET_DEV_FIELDS = {"rx_bytes": 0, "rx_packets": 1, "rx_errors": 2, "rx_dropped": 3,
                  "tx_bytes": 8, "tx_packets": 9, "tx_errors": 10, "tx_dropped": 11}


def parse_net_dev(text: str) -> dict[str, dict[str, int]]:
    """Per-interface counters from ``/proc/net/dev`` text, in Docker's ``NetworkStats`` keys."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        values = rest.split()
        if not sep or len(values) < 16:
            continue
        out[name.strip()] = {key: int(values[i]) for key, i in NET_DEV_FIELDS.items()}
    return out


def network_stats(c: Container) -> dict[str, dict[str, int]]:
    """The counters of ``c``'s own interfaces but ``lo``; empty with the host's namespace or none running."""
    if c.host_config.get("NetworkMode") == "host" or c.config.get("NetworkDisabled") or not c.state.pid:
        return {}
    try:
        text = Path(f"/proc/{c.state.pid}/net/dev").read_text()
    except OSError:  # it has just exited
        return {}
    return {name: counters for name, counters in parse_net_dev(text).items() if name != "lo"}


def machine_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def empty_cpu() -> dict[str, Any]:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def _cpu(cg: Cgroup) -> dict[str, Any]:
    online = os.cpu_count() or 1
    if cg.version == "2":
        stat = cg.read_keyed("cpu", "cpu.stat") if cg.has("cpu") else {}
        usage: dict[str, Any] = {"total_usage": stat.get("usage_usec", 0) * 1000,
                 "usage_in_kernelmode": stat.get("system_usec", 0) * 1000,
                 "usage_in_usermode": stat.get("user_usec", 0) * 1000}
        throttling = {"periods": stat.get("nr_periods", 0), "throttled_periods": stat.get("nr_throttled", 0),
                      "throttled_time": stat.get("throttled_usec", 0) * 1000}
    else:
        acct = cg.read_keyed("cpuacct", "cpuacct.stat")
        try:
            percpu = [int(v) for v in cg.read("cpuacct", "cpuacct.usage_percpu").split()]
        except (OSError, KeyError, ValueError):
            percpu = []
        usage = {"total_usage": cg.read_int("cpuacct", "cpuacct.usage"), "percpu_usage": percpu,
                 "usage_in_kernelmode": acct.get("system", 0) * NANOS // CLOCK_TICKS,
                 "usage_in_usermode": acct.get("user", 0) * NANOS // CLOCK_TICKS}
        stat = cg.read_keyed("cpu", "cpu.stat")
        throttling = {"periods": stat.get("nr_periods", 0), "throttled_periods": stat.get("nr_throttled", 0),
                      "throttled_time": stat.get("throttled_time", 0)}
    return {"cpu_usage": usage, "system_cpu_usage": system_cpu_usage(), "online_cpus": online,
            "throttling_data": throttling}


def _memory(cg: Cgroup) -> dict[str, Any]:
    if not cg.has("memory"):
        return {}
    host_memory = machine_memory()
    if cg.version == "2":
        limit = cg.read_int("memory", "memory.max", -1)
        out = {"usage": cg.read_int("memory", "memory.current"), "stats": cg.read_keyed("memory", "memory.stat")}
    else:
        limit = cg.read_int("memory", "memory.limit_in_bytes", -1)
        out = {"usage": cg.read_int("memory", "memory.usage_in_bytes"),
               "max_usage": cg.read_int("memory", "memory.max_usage_in_bytes"),
               "failcnt": cg.read_int("memory", "memory.failcnt"),
               "stats": cg.read_keyed("memory", "memory.stat")}
    # Docker reports the machine's memory when the container's limit is unset (or larger).
    out["limit"] = host_memory if limit < 0 or (host_memory and limit > host_memory) else limit
    return out


def _blkio(cg: Cgroup) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    if cg.version == "2":
        try:
            text = cg.read("io", "io.stat") if cg.has("io") else ""
        except OSError:
            text = ""
        for line in text.splitlines():
            device, *pairs = line.split()
            major, _, minor = device.partition(":")
            values = dict(p.split("=", 1) for p in pairs if "=" in p)
            for key, op in (("rbytes", "read"), ("wbytes", "write")):
                entries.append({"major": int(major), "minor": int(minor), "op": op, "value": int(values.get(key, 0))})
    elif cg.has("blkio"):
        try:
            text = cg.read("blkio", "blkio.throttle.io_service_bytes_recursive")
        except OSError:
            text = ""
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and ":" in parts[0]:
                major, _, minor = parts[0].partition(":")
                entries.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
    keys = ("io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive", "io_service_time_recursive",
            "io_wait_time_recursive", "io_merged_recursive", "io_time_recursive", "sectors_recursive")
    return {key: (entries or None) if key == "io_service_bytes_recursive" else None for key in keys}


def sample(c: Container) -> dict[str, Any]:
    """One reading of container ``c`` (zeros when it is not running)."""
    base: dict[str, Any] = {"name": "/" + c.name, "id": c.id, "read": timestamps.now(), "preread": timestamps.ZERO_TIME,
                            "pids_stats": {}, "blkio_stats": _blkio(Cgroup(c.id, "1", {})), "num_procs": 0,
                            "storage_stats": {}, "cpu_stats": empty_cpu(), "precpu_stats": empty_cpu(),
                            "memory_stats": {}}
    cg = Cgroup.of(c.id)
    if not c.state.running or not cg.exists():
        base["read"] = timestamps.ZERO_TIME
        return base
    pids: dict[str, Any] = {"current": cg.read_int("pids", "pids.current")} if cg.has("pids") else {}
    if cg.has("pids"):
        limit = cg.read_int("pids", "pids.max", -1)
        if limit > 0:
            pids["limit"] = limit
    base.update({"pids_stats": pids, "blkio_stats": _blkio(cg), "cpu_stats": _cpu(cg), "memory_stats": _memory(cg)})
    networks = network_stats(c)
    if networks:
        base["networks"] = networks
    return base


def pair(current: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """``current`` with ``previous``'s reading as its ``preread``/``precpu_stats``."""
    if previous is not None:
        current["preread"] = previous["read"]
        current["precpu_stats"] = previous["cpu_stats"]
    return current
