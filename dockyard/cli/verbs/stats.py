"""``stats``: live resource usage of containers, as Docker's table or a ``--format`` template.

Terms: each container's *row* is computed from one ``GET /containers/{id}/stats`` object the way
Docker's CLI does: CPU % from the deltas of ``cpu_usage.total_usage`` and ``system_cpu_usage``
times the online CPUs; memory usage minus the page cache (v1 ``total_inactive_file``, v2
``inactive_file``); block I/O summed over the ``read``/``write`` entries; network over every
interface. ``--no-stream`` prints one table; otherwise the table is redrawn every second.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from dockyard.cli import units
from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import Flag, FlagSet
from dockyard.cli.listing import render

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("all", "a", "bool", "Show all containers (default shows just running)"),
    Flag("format", "", "string", "Format output using a custom template"),
    Flag("no-stream", "", "bool", "Disable streaming stats and only pull the first result"),
    Flag("no-trunc", "", "bool", "Do not truncate output"),
])

DEFAULT_FORMAT = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t"
                  "{{.BlockIO}}\t{{.PIDs}}")
HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
           "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
           "PIDs": "PIDS"}


def cpu_percent(s: dict[str, Any]) -> float:
    cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    if cpu_delta > 0 and system_delta > 0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def memory_usage(mem: dict[str, Any]) -> float:
    """Docker's ``calculateMemUsageUnixNoCache``: usage without the inactive page cache."""
    stats = mem.get("stats") or {}
    usage = mem.get("usage") or 0
    for key in ("total_inactive_file", "inactive_file"):
        if key in stats and stats[key] < usage:
            return usage - stats[key]
    return usage


def row(s: dict[str, Any], trunc: bool) -> dict[str, Any]:
    """One container's display fields, named as Docker's ``--format`` names them."""
    mem = s.get("memory_stats") or {}
    usage, limit = memory_usage(mem), mem.get("limit") or 0
    blk = (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    read = sum(e.get("value", 0) for e in blk if str(e.get("op", "")).lower() == "read")
    write = sum(e.get("value", 0) for e in blk if str(e.get("op", "")).lower() == "write")
    nets = (s.get("networks") or {}).values()
    rx, tx = sum(n.get("rx_bytes", 0) for n in nets), sum(n.get("tx_bytes", 0) for n in nets)
    cid = s.get("id") or ""
    name = (s.get("name") or "").lstrip("/")
    running = s.get("read") not in (None, "", "0001-01-01T00:00:00Z")
    return {
        "ID": cid[:12] if trunc else cid,
        "Container": s.get("_ref") or (cid[:12] if trunc else cid),
        "Name": name or "--",
        "CPUPerc": f"{cpu_percent(s):.2f}%" if running else "--",
        "MemUsage": f"{units.bytes_size(usage)} / {units.bytes_size(limit)}" if running else "-- / --",
        "MemPerc": f"{(usage / limit * 100.0) if limit else 0.0:.2f}%" if running else "--",
        "NetIO": f"{units.human_size(rx)} / {units.human_size(tx)}" if running else "--",
        "BlockIO": f"{units.human_size(read)} / {units.human_size(write)}" if running else "--",
        "PIDs": str((s.get("pids_stats") or {}).get("current", 0)) if running else "--",
    }


def _targets(invocation: Invocation, parsed: Parsed) -> list[str]:
    if parsed.args:
        return list(parsed.args)
    params = [("all", "1")] if parsed["all"] else []
    return [c["Id"] for c in invocation.api.json("GET", "/containers/json", params) or []]


def _one_shot(invocation: Invocation, ref: str) -> dict[str, Any]:
    stats = invocation.api.json("GET", f"/containers/{ref}/stats", [("stream", "0")]) or {}
    stats["_ref"] = ref
    return dict(stats)


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    format_text = parsed["format"] or DEFAULT_FORMAT
    trunc = not parsed["no-trunc"]
    refs = _targets(invocation, parsed)
    if parsed["no-stream"]:
        samples, errors = [], []
        for ref in refs:
            try:
                samples.append(_one_shot(invocation, ref))
            except CliFailure as failure:
                errors.append(failure)
        if errors:
            raise errors[0]
        sys.stdout.write(render(format_text, [row(s, trunc) for s in samples], HEADERS))
        return 0
    latest: dict[str, dict[str, Any]] = {}

    def follow(ref: str) -> None:
        try:
            response = invocation.api.request("GET", f"/containers/{ref}/stats", [("stream", "1")])
            for line in response.lines():
                if line.strip():
                    latest[ref] = {**json.loads(line), "_ref": ref}
        except (CliFailure, OSError, ValueError):
            return

    for ref in refs:
        threading.Thread(target=follow, args=(ref,), daemon=True).start()
    try:
        while True:
            time.sleep(1.0)
            rows = [row(latest[ref], trunc) for ref in refs if ref in latest]
            sys.stdout.write("\033[2J\033[H" + render(format_text, rows, HEADERS))
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
