"""`run`/`create` flags of the resources group: see `dockyard.cli.options`.

Cgroup limits → ``HostConfig`` fields, converted as Docker's CLI converts them:
``-m 64m`` → ``Memory`` bytes (binary units, Docker's ``RAMInBytes``); ``--memory-swap -1`` →
unlimited; ``--cpus 1.5`` → ``NanoCpus`` 1500000000; ``--device /dev/x[:/dev/y][:rwm]`` →
``Devices`` entries; ``--device-cgroup-rule`` → ``DeviceCgroupRules`` (checked here with Docker's
CLI pattern); ``--memory-swappiness``, ``--oom-score-adj``. ``update`` reuses :func:`resource_body` for its request body.
"""

from __future__ import annotations

from dockyard.cli.failure import FlagError
from dockyard.cli.flags import Flag
from dockyard.cli.units import ram_in_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Parsed

LIMIT_FLAGS: list[Flag] = [
    Flag("cpu-period", "", "int", "Limit CPU CFS (Completely Fair Scheduler) period", default=0),
    Flag("cpu-quota", "", "int", "Limit CPU CFS (Completely Fair Scheduler) quota", default=0),
    Flag("cpu-shares", "c", "int", "CPU shares (relative weight)", default=0),
    Flag("cpus", "", "string", "Number of CPUs", type_name="decimal"),
    Flag("cpuset-cpus", "", "string", "CPUs in which to allow execution (0-3, 0,1)"),
    Flag("cpuset-mems", "", "string", "MEMs in which to allow execution (0-3, 0,1)"),
    Flag("memory", "m", "string", "Memory limit", type_name="bytes"),
    Flag("memory-reservation", "", "string", "Memory soft limit", type_name="bytes"),
    Flag("memory-swap", "", "string", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
         type_name="bytes"),
    Flag("pids-limit", "", "int", "Tune container pids limit (set -1 for unlimited)", default=0),
]

FLAGS: list[Flag] = [
    *LIMIT_FLAGS,
    Flag("device", "", "list", "Add a host device to the container"),
    Flag("device-cgroup-rule", "", "list", "Add a rule to the cgroup allowed devices list"),
    Flag("memory-swappiness", "", "int", "Tune container memory swappiness (0 to 100)", default=-1),
    Flag("oom-kill-disable", "", "bool", "Disable OOM Killer"),
    Flag("oom-score-adj", "", "int", "Tune host's OOM preferences (-1000 to 1000)", default=0),
]

_CGROUP_RULE = r"[acb] ([0-9]+|\*):([0-9]+|\*) [rwm]{1,3}"
"""Docker CLI's ``ValidateDeviceCgroupRule`` (compiled only when the flag is given: ``re`` costs the
CLI milliseconds of start-up)."""


def _bytes(parsed: Parsed, name: str, label: str, swap: bool = False) -> int:
    raw = parsed[name]
    if not raw:
        return 0
    if swap and raw.strip() == "-1":
        return -1
    value = ram_in_bytes(raw)
    if value is None:
        raise FlagError(f'invalid argument "{raw}" for "{label}" flag: invalid size: \'{raw}\'')
    return value


def nano_cpus(text: str) -> int:
    """``--cpus 1.5`` → 1500000000, as Docker's ``NanoCPUs.Set``; raises FlagError."""
    try:
        value = float(text)
    except ValueError:
        raise FlagError(f'invalid argument "{text}" for "--cpus" flag: failed to parse {text} as a rational '
                        "number") from None
    nanos = round(value * 1_000_000_000)
    if abs(value * 1_000_000_000 - nanos) > 1e-3 or value < 0:
        raise FlagError(f'invalid argument "{text}" for "--cpus" flag: value is too precise')
    return int(nanos)


def parse_device(text: str) -> dict[str, str]:
    """Docker's ``parseDevice``: ``src[:dst][:perms]`` → a ``DeviceMapping``."""
    parts = text.split(":")
    src, dst, perms = parts[0], "", "rwm"
    if len(parts) == 3:
        dst, perms = parts[1], parts[2]
    elif len(parts) == 2:
        if parts[1] and all(ch in "rwm" for ch in parts[1]):
            perms = parts[1]
        else:
            dst = parts[1]
    elif len(parts) != 1:
        raise FlagError(f"invalid device specification: {text}")
    if not perms or any(ch not in "rwm" for ch in perms):
        raise FlagError(f"invalid device mode: {perms}")
    if not src.startswith("/"):
        raise FlagError(f"bad format for path: {src}")
    if dst and not dst.startswith("/"):
        raise FlagError(f"bad format for path: {dst}")
    return {"PathOnHost": src, "PathInContainer": dst or src, "CgroupPermissions": perms}


def resource_body(parsed: Parsed) -> dict[str, Any]:
    """The HostConfig resource fields for the limit flags that were given."""
    body: dict[str, Any] = {}
    if "memory" in parsed.changed:
        body["Memory"] = _bytes(parsed, "memory", "-m, --memory")
    if "memory-swap" in parsed.changed:
        body["MemorySwap"] = _bytes(parsed, "memory-swap", "--memory-swap", swap=True)
    if "memory-reservation" in parsed.changed:
        body["MemoryReservation"] = _bytes(parsed, "memory-reservation", "--memory-reservation")
    if "cpus" in parsed.changed:
        body["NanoCpus"] = nano_cpus(parsed["cpus"] or "0")
    for flag, key in (("cpu-shares", "CpuShares"), ("cpu-period", "CpuPeriod"), ("cpu-quota", "CpuQuota"),
                      ("cpuset-cpus", "CpusetCpus"), ("cpuset-mems", "CpusetMems"), ("pids-limit", "PidsLimit")):
        if flag in parsed.changed:
            body[key] = parsed[flag]
    return body


def apply(parsed: Parsed, body: dict[str, Any]) -> None:
    """Fill the create body from this group's flags."""
    host = body.setdefault("HostConfig", {})
    host.update(resource_body(parsed))
    if parsed["device"]:
        host["Devices"] = [parse_device(text) for text in parsed["device"]]
    if parsed["oom-kill-disable"]:
        host["OomKillDisable"] = True
    for text in parsed["device-cgroup-rule"] or []:
        import re

        if not re.fullmatch(_CGROUP_RULE, text):
            raise FlagError(f'invalid argument "{text}" for "--device-cgroup-rule" flag: invalid device cgroup '
                            f"format '{text}'")
    if parsed["device-cgroup-rule"]:
        host["DeviceCgroupRules"] = list(parsed["device-cgroup-rule"])
    if "memory-swappiness" in parsed.changed:
        swappiness = parsed["memory-swappiness"]
        if swappiness != -1 and not 0 <= swappiness <= 100:
            raise FlagError(f"invalid value: {swappiness}. Valid memory swappiness range is 0-100")
        host["MemorySwappiness"] = swappiness
    if parsed["oom-score-adj"]:
        host["OomScoreAdj"] = parsed["oom-score-adj"]
