"""``dockyard ps``: ``GET /containers/json`` shown as Docker's table or a ``--format`` template."""

from __future__ import annotations

import sys

from dockyard.cli import units
from dockyard.cli.flags import Flag, FlagSet, go_quote
from dockyard.cli.listing import ellipsis, filters_param, render
from dockyard.cli.references import short_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("all", "a", "bool", "Show all containers (default shows just running)"),
    Flag("filter", "f", "list", "Filter output based on conditions provided", type_name="filter"),
    Flag("format", "", "string", "Format output using a custom template"),
    Flag("last", "n", "int", "Show n last created containers (includes all states)", default=-1),
    Flag("latest", "l", "bool", "Show the latest created container (includes all states)"),
    Flag("no-trunc", "", "bool", "Don't truncate output"),
    Flag("quiet", "q", "bool", "Only display container IDs"),
    Flag("size", "s", "bool", "Display total file sizes"),
])

DEFAULT_FORMAT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
           "RunningFor": "CREATED", "Status": "STATUS", "State": "STATE", "Ports": "PORTS",
           "Names": "NAMES", "Labels": "LABELS", "Size": "SIZE", "Mounts": "MOUNTS",
           "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM"}


def ports_text(ports: list[dict[str, Any]]) -> str:
    """Docker's ``DisplayablePorts``: ``0.0.0.0:8000-8001->80-81/tcp, [::]:8080->80/tcp, 443/tcp``.

    Ports are sorted (private port, IP, public port, type); runs of consecutive ports published on
    the same IP under their own number (or not published) collapse into one range; the others are
    listed after those, one each."""
    def order(port: dict[str, Any]) -> tuple[int, str, int, str]:
        return (int(port.get("PrivatePort") or 0), str(port.get("IP") or ""), int(port.get("PublicPort") or 0),
                str(port.get("Type") or ""))

    def join_host_port(host: str, port: str) -> str:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def form_group(key: str, first: int, last: int) -> str:
        ip, _, kind = key.rpartition("/")
        group = str(first) if first == last else f"{first}-{last}"
        if ip:
            group = f"{join_host_port(ip, group)}->{group}"
        return f"{group}/{kind}"

    groups: dict[str, list[int]] = {}
    result: list[str] = []
    host_mappings: list[str] = []
    for port in sorted(ports or [], key=order):
        current = int(port.get("PrivatePort") or 0)
        kind = str(port.get("Type") or "")
        ip = str(port.get("IP") or "")
        key = kind
        if ip:
            public = int(port.get("PublicPort") or 0)
            if public != current:
                host_mappings.append(f"{join_host_port(ip, str(public))}->{current}/{kind}")
                continue
            key = f"{ip}/{kind}"
        group = groups.get(key)
        if group is None:
            groups[key] = [current, current]
        elif current == group[1] + 1:
            group[1] = current
        else:
            result.append(form_group(key, group[0], group[1]))
            groups[key] = [current, current]
    result += [form_group(key, first, last) for key, (first, last) in groups.items()]
    return ", ".join(result + host_mappings)


def container_row(c: dict[str, Any], trunc: bool, now: float) -> dict[str, Any]:
    """One container's display fields, named as Docker's ``--format`` names them."""
    names = [n[1:] if n.startswith("/") else n for n in c.get("Names") or []]
    if trunc:
        names = [n for n in names if "/" not in n]
    image = c.get("Image") or ""
    if trunc and image.startswith("sha256:"):
        image = short_id(image)
    command = c.get("Command") or ""
    labels = c.get("Labels") or {}
    networks = sorted(((c.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    mounts = c.get("Mounts") or []
    created = float(c.get("Created") or 0)
    size = units.human_size(c.get("SizeRw") or 0)
    if c.get("SizeRootFs"):
        size += f" (virtual {units.human_size(c['SizeRootFs'])})"
    row = {
        "ID": short_id(c.get("Id", "")) if trunc else c.get("Id", ""),
        "Image": image,
        "Command": go_quote(ellipsis(command, 20) if trunc else command),
        "CreatedAt": units.go_time_string(created),
        "RunningFor": units.since(created, now),
        "Status": c.get("Status") or "",
        "State": c.get("State") or "",
        "Ports": ports_text(c.get("Ports") or []),
        "Names": ",".join(names),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Size": size,
        "Mounts": ",".join(m.get("Name") or m.get("Source", "") for m in mounts),
        "Networks": ",".join(networks),
        "LocalVolumes": str(sum(1 for m in mounts if m.get("Type") == "volume")),
        "Platform": None,
    }
    return dict(sorted(row.items()))  # ``{{json .}}`` lists fields in Go's (sorted) map order


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    import time

    params = []
    if parsed["all"]:
        params.append(("all", "1"))
    limit = 1 if parsed["latest"] else parsed["last"]
    if limit is not None and limit > 0:
        params.append(("limit", str(limit)))
    format_text = parsed["format"] or ""
    if parsed["size"] or ".Size" in format_text or "json ." in format_text:
        params.append(("size", "1"))
    if parsed["filter"]:
        params.append(("filters", filters_param(parsed["filter"])))
    containers = invocation.api.json("GET", "/containers/json", params) or []
    trunc = not parsed["no-trunc"]
    now = time.time()
    rows = [container_row(c, trunc, now) for c in containers]
    if not format_text:
        format_text = "{{.ID}}" if parsed["quiet"] else DEFAULT_FORMAT
        if parsed["size"] and not parsed["quiet"]:
            format_text += "\t{{.Size}}"
    elif parsed["quiet"] and format_text.strip().startswith("table"):
        format_text = "{{.ID}}"
    sys.stdout.write(render(format_text, rows, HEADERS))
    return 0
