"""``dockyard image prune``, ``builder prune``, ``system df`` and ``system prune``.

``system prune`` is composed of the prune endpoints that exist: stopped containers
(``POST /containers/prune``), unused networks (``POST /networks/prune``), then — with
``--volumes`` — unused volumes (``POST /volumes/prune``),
then images (``POST /images/prune``, dangling only unless ``-a``), then the build cache
(``POST /build/prune``, ``all=1`` with ``-a``), as Docker's CLI does. An endpoint the daemon does
not serve (404) is skipped.

The *build cache* rows of ``system df`` count as Docker's CLI does: the size is that of the entries
not ``Shared`` (their bytes belong to no tagged image), reclaimable that minus the entries in use.
"""

from __future__ import annotations

import sys

from dockyard.cli import units
from dockyard.cli.failure import CliFailure, DaemonError
from dockyard.cli.flags import Flag, FlagSet
from dockyard.cli.listing import filters_param, render

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

IMAGE_PRUNE_FLAGS = FlagSet([
    Flag("all", "a", "bool", "Remove all unused images, not just dangling ones"),
    Flag("filter", "", "list", 'Provide filter values (e.g. "until=<timestamp>")', type_name="filter"),
    Flag("force", "f", "bool", "Do not prompt for confirmation"),
])
SYSTEM_PRUNE_FLAGS = FlagSet([
    Flag("all", "a", "bool", "Remove all unused images not just dangling ones"),
    Flag("filter", "", "list", 'Provide filter values (e.g. "label=<key>=<value>")', type_name="filter"),
    Flag("force", "f", "bool", "Do not prompt for confirmation"),
    Flag("volumes", "", "bool", "Prune anonymous volumes"),
])
BUILDER_PRUNE_FLAGS = FlagSet([
    Flag("all", "a", "bool", "Remove all unused build cache, not just dangling ones"),
    Flag("filter", "", "list", 'Provide filter values (e.g. "until=24h")', type_name="filter"),
    Flag("force", "f", "bool", "Do not prompt for confirmation"),
    Flag("keep-storage", "", "string", "Amount of disk space to keep for cache", type_name="bytes"),
])
DF_FLAGS = FlagSet([
    Flag("format", "", "string", "Format output using a custom template"),
    Flag("verbose", "v", "bool", "Show detailed information on space usage"),
])
FLAGS = {"image prune": IMAGE_PRUNE_FLAGS, "system prune": SYSTEM_PRUNE_FLAGS, "system df": DF_FLAGS,
         "builder prune": BUILDER_PRUNE_FLAGS, "builder": FlagSet([])}
BUILDER_COMMANDS = """
Usage:  dockyard builder COMMAND

Manage builds

Commands:
  build       Build an image from a Dockerfile
  prune       Remove build cache

Run 'dockyard builder COMMAND --help' for more information on a command.
"""

DANGLING_WARNING = "WARNING! This will remove all dangling images."
ALL_WARNING = "WARNING! This will remove all images without at least one container associated to them."
CACHE_DANGLING_WARNING = "WARNING! This will remove all dangling build cache."
CACHE_ALL_WARNING = "WARNING! This will remove all build cache."


def confirm(text: str, separator: str = "\n") -> bool:
    sys.stdout.write(text + separator + "Are you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip() in ("y", "Y")  # Docker's prompt.Confirm: "y", any case, nothing else


def _prune(invocation: Invocation, path: str, filters: list[str],
           extra: list[tuple[str, str]] | None = None) -> dict[str, Any] | None:
    params = [("filters", filters_param(filters))] if filters else []
    params += extra or []
    try:
        result = invocation.api.json("POST", path, params)
    except DaemonError as error:
        if error.status_code == 404 and "page not found" in error.daemon_message:
            return None
        raise
    return result if isinstance(result, dict) else {}


def _image_report(result: dict[str, Any]) -> tuple[list[str], int]:
    lines = []
    for item in result.get("ImagesDeleted") or []:
        if item.get("Untagged"):
            lines.append(f"untagged: {item['Untagged']}")
        if item.get("Deleted"):
            lines.append(f"deleted: {item['Deleted']}")
    return lines, int(result.get("SpaceReclaimed") or 0)


def image_prune(invocation: Invocation, parsed: Parsed) -> int:
    filters = list(parsed["filter"]) + ["dangling=false" if parsed["all"] else "dangling=true"]
    if not parsed["force"] and not confirm(ALL_WARNING if parsed["all"] else DANGLING_WARNING):
        return 0
    result = _prune(invocation, "/images/prune", filters) or {}
    lines, reclaimed = _image_report(result)
    out = ""
    if lines:
        out += "Deleted Images:\n" + "\n".join(lines) + "\n\n"
    out += f"Total reclaimed space: {units.human_size(reclaimed, 4)}\n"
    sys.stdout.write(out)
    return 0


def _cache_report(result: dict[str, Any]) -> str:
    deleted = result.get("CachesDeleted") or []
    return "Deleted build cache objects:\n" + "".join(f"{c}\n" for c in deleted) + "\n" if deleted else ""


def builder_prune(invocation: Invocation, parsed: Parsed) -> int:
    extra: list[tuple[str, str]] = []
    if parsed["keep-storage"]:
        raw = parsed["keep-storage"]
        keep = units.ram_in_bytes(raw)
        if keep is None:
            raise CliFailure(f'invalid argument "{raw}" for "--keep-storage" flag: invalid size: \'{raw}\'\n'
                             "See 'dockyard builder prune --help'.", 125)
        extra.append(("keep-storage", str(keep)))
    if parsed["all"]:
        extra.append(("all", "1"))
    if not parsed["force"] and not confirm(CACHE_ALL_WARNING if parsed["all"] else CACHE_DANGLING_WARNING, " "):
        return 0
    result = _prune(invocation, "/build/prune", list(parsed["filter"]), extra) or {}
    sys.stdout.write(_cache_report(result) +
                     f"Total reclaimed space: {units.human_size(int(result.get('SpaceReclaimed') or 0), 4)}\n")
    return 0


def system_prune_warning(parsed: Parsed) -> str:
    """Docker's confirmation text for ``system prune``: what goes, and the filters that narrow it."""
    from dockyard.cli.listing import natural_sorted

    items = ["all stopped containers", "all networks not used by at least one container"]
    if parsed["volumes"]:
        items.append("all anonymous volumes not used by at least one container")
    items.append("all images without at least one container associated to them" if parsed["all"]
                 else "all dangling images")
    items.append("all build cache" if parsed["all"] else "unused build cache")
    text = "WARNING! This will remove:" + "".join(f"\n  - {i}" for i in items) + "\n"
    shown = []
    for value in parsed["filter"]:
        name, _, val = value.partition("=")
        name, val = name.strip().lower(), val.strip()
        if name in ("label", "label!", "until") and f"{name}={val}" not in shown:
            shown.append(f"{name}={val}")
    if shown:
        text += "\n  Items to be pruned will be filtered with:" + "".join(
            f"\n  - {f}" for f in natural_sorted(shown)) + "\n"
    return text


def system_prune(invocation: Invocation, parsed: Parsed) -> int:
    filters = list(parsed["filter"])
    if parsed["volumes"] and any(f.partition("=")[0].strip().lower() == "until" for f in filters):
        raise CliFailure('ERROR: The "until" filter is not supported with "--volumes"', 1)
    if not parsed["force"] and not confirm(system_prune_warning(parsed)):
        return 0
    reclaimed = 0
    out = ""
    containers = _prune(invocation, "/containers/prune", filters)
    if containers and containers.get("ContainersDeleted"):
        out += "Deleted Containers:\n" + "".join(f"{c}\n" for c in containers["ContainersDeleted"]) + "\n"
    reclaimed += int((containers or {}).get("SpaceReclaimed") or 0)
    networks = _prune(invocation, "/networks/prune", filters)
    if networks and networks.get("NetworksDeleted"):
        out += "Deleted Networks:\n" + "".join(f"{n}\n" for n in networks["NetworksDeleted"]) + "\n"
    if parsed["volumes"]:
        volumes = _prune(invocation, "/volumes/prune", filters)
        if volumes and volumes.get("VolumesDeleted"):
            out += "Deleted Volumes:\n" + "".join(f"{v}\n" for v in volumes["VolumesDeleted"]) + "\n"
        reclaimed += int((volumes or {}).get("SpaceReclaimed") or 0)
    images = _prune(invocation, "/images/prune", filters + ["dangling=false" if parsed["all"] else "dangling=true"])
    lines, image_space = _image_report(images or {})
    if lines:
        out += "Deleted Images:\n" + "\n".join(lines) + "\n\n"
    reclaimed += image_space
    # Docker's client always sends the build cache's ``filters``, empty or not
    cache = _prune(invocation, "/build/prune", [], ([("all", "1")] if parsed["all"] else [])
                   + [("filters", filters_param(filters) if filters else "")])
    out += _cache_report(cache or {})
    reclaimed += int((cache or {}).get("SpaceReclaimed") or 0)
    sys.stdout.write(out + f"Total reclaimed space: {units.human_size(reclaimed, 4)}\n")
    return 0


def _reclaimable(size: int, total: int) -> str:
    if total <= 0:
        return units.human_size(size, 4)
    return f"{units.human_size(size, 4)} ({size * 100 // total}%)"


SUMMARY_FORMAT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
SUMMARY_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
                   "Reclaimable": "RECLAIMABLE"}
IMAGE_FORMAT = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}"
                "\t{{.UniqueSize}}\t{{.Containers}}")
CONTAINER_FORMAT = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.CreatedSince}}"
                    "\t{{.Status}}\t{{.Names}}")
CONTAINER_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "LocalVolumes": "LOCAL VOLUMES",
                     "Size": "SIZE", "CreatedSince": "CREATED", "Status": "STATUS", "Names": "NAMES"}
VOLUME_FORMAT = "table {{.Name}}\t{{.Links}}\t{{.Size}}"
VOLUME_HEADERS = {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}
CACHE_FORMAT = ("table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}"
                "\t{{.Shared}}")
CACHE_HEADERS = {"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE", "CreatedSince": "CREATED",
                 "LastUsedSince": "LAST USED", "UsageCount": "USAGE", "Shared": "SHARED"}


def build_cache_size(cache: list[dict[str, Any]]) -> int:
    """Docker's CLI's build cache size: the entries not shared."""
    return sum(int(c.get("Size") or 0) for c in cache if not c.get("Shared"))


def build_cache_rows(cache: list[dict[str, Any]], now: float) -> list[dict[str, str]]:
    """``system df -v``'s build cache rows, in Docker's order (never used first, then by last use)."""
    def when(text: Any) -> float | None:
        return units.parse_rfc3339(text) if isinstance(text, str) and text else None

    def order(c: dict[str, Any]) -> tuple[int, float, str]:
        used = when(c.get("LastUsedAt"))
        return (0, 0.0, str(c.get("ID") or "")) if used is None else (1, used, str(c.get("ID") or ""))

    rows = []
    for c in sorted(cache, key=order):
        created, used = when(c.get("CreatedAt")), when(c.get("LastUsedAt"))
        rows.append({
            "ID": str(c.get("ID") or "")[:12] + ("*" if c.get("InUse") else ""),
            "CacheType": str(c.get("Type") or ""), "Size": units.human_size(int(c.get("Size") or 0), 3),
            "CreatedSince": units.since(created or 0.0, now), "LastUsedSince": "" if used is None else
            units.since(used, now), "UsageCount": str(int(c.get("UsageCount") or 0)),
            "Shared": "true" if c.get("Shared") else "false"})
    return rows


def summary_rows(df: dict[str, Any]) -> list[dict[str, str]]:
    """The four rows of ``system df``: Images, Containers, Local Volumes, Build Cache."""
    images = df.get("Images") or []
    containers = df.get("Containers") or []
    volumes = df.get("Volumes") or []
    image_total = int(df.get("LayersSize") or 0)
    active_images = [i for i in images if (i.get("Containers") or 0) > 0]
    image_used = sum(int(i.get("Size") or 0) - int(i.get("SharedSize") or 0) for i in active_images)
    container_total = sum(int(c.get("SizeRw") or 0) for c in containers)
    running = [c for c in containers if c.get("State") == "running"]
    container_reclaim = container_total - sum(int(c.get("SizeRw") or 0) for c in running)

    def volume_size(v: dict[str, Any]) -> int:
        return max(int((v.get("UsageData") or {}).get("Size") or 0), 0)

    volume_total = sum(volume_size(v) for v in volumes)
    used_volumes = [v for v in volumes if int((v.get("UsageData") or {}).get("RefCount") or 0) > 0]
    volume_reclaim = volume_total - sum(volume_size(v) for v in used_volumes)
    cache = df.get("BuildCache") or []
    cache_total = build_cache_size(cache)
    cache_in_use = sum(int(c.get("Size") or 0) for c in cache if c.get("InUse") and not c.get("Shared"))
    return [
        {"Type": "Images", "TotalCount": str(len(images)), "Active": str(len(active_images)),
         "Size": units.human_size(image_total, 4),
         "Reclaimable": _reclaimable(max(image_total - image_used, 0), image_total)},
        {"Type": "Containers", "TotalCount": str(len(containers)), "Active": str(len(running)),
         "Size": units.human_size(container_total, 4), "Reclaimable": _reclaimable(container_reclaim, container_total)},
        {"Type": "Local Volumes", "TotalCount": str(len(volumes)), "Active": str(len(used_volumes)),
         "Size": units.human_size(volume_total, 4), "Reclaimable": _reclaimable(volume_reclaim, volume_total)},
        {"Type": "Build Cache", "TotalCount": str(len(cache)), "Active": str(len([c for c in cache if c.get("InUse")])),
         "Size": units.human_size(cache_total, 4), "Reclaimable": units.human_size(cache_total - cache_in_use, 4)},
    ]


def verbose_text(df: dict[str, Any], now: float) -> str:
    """``system df -v``: one table per kind of object, as Docker prints them."""
    from dockyard.cli.flags import go_quote
    from dockyard.cli.listing import ellipsis
    from dockyard.cli.references import short_id
    from dockyard.cli.verbs.images import HEADERS as IMAGE_HEADERS
    from dockyard.cli.verbs.images import image_rows

    image_lines = []
    for image in df.get("Images") or []:
        size, shared = int(image.get("Size") or 0), int(image.get("SharedSize") or 0)
        for row in image_rows(image, True, now):
            row.update({"SharedSize": units.human_size(shared, 4), "UniqueSize": units.human_size(size - shared, 4),
                        "Containers": str(image.get("Containers") or 0)})
            image_lines.append(row)
    container_lines = []
    for c in df.get("Containers") or []:
        names = [n.lstrip("/") for n in c.get("Names") or []]
        volumes = [m for m in c.get("Mounts") or [] if m.get("Type") == "volume"]
        container_lines.append({
            "ID": short_id(c.get("Id") or ""), "Image": c.get("Image") or "",
            "Command": go_quote(ellipsis(c.get("Command") or "", 20)), "LocalVolumes": str(len(volumes)),
            "Size": units.human_size(int(c.get("SizeRw") or 0)),
            "CreatedSince": units.since(float(c.get("Created") or 0), now), "Status": c.get("Status") or "",
            "Names": ",".join(names)})
    cache = df.get("BuildCache") or []
    volume_lines = [{"Name": v.get("Name") or "", "Links": str((v.get("UsageData") or {}).get("RefCount", 0)),
                     "Size": units.human_size(max(int((v.get("UsageData") or {}).get("Size") or 0), 0), 4)}
                    for v in df.get("Volumes") or []]
    return ("Images space usage:\n\n" + render(IMAGE_FORMAT, image_lines, IMAGE_HEADERS)
            + "\nContainers space usage:\n\n" + render(CONTAINER_FORMAT, container_lines, CONTAINER_HEADERS)
            + "\nLocal Volumes space usage:\n\n" + render(VOLUME_FORMAT, volume_lines, VOLUME_HEADERS)
            + f"\nBuild cache usage: {units.human_size(build_cache_size(cache), 4)}\n\n"
            + render(CACHE_FORMAT, build_cache_rows(cache, now), CACHE_HEADERS))


def disk_usage(invocation: Invocation, parsed: Parsed) -> int:
    import time

    df = invocation.api.json("GET", "/system/df") or {}
    if parsed["verbose"] and not parsed["format"]:
        sys.stdout.write(verbose_text(df, time.time()))
        return 0
    if parsed["verbose"]:
        raise CliFailure("dockyard system df: --verbose with --format is not supported", 1)
    sys.stdout.write(render(parsed["format"] or SUMMARY_FORMAT, summary_rows(df), SUMMARY_HEADERS))
    return 0


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    if verb == "image prune":
        return image_prune(invocation, parsed)
    if verb == "system prune":
        return system_prune(invocation, parsed)
    if verb == "builder prune":
        return builder_prune(invocation, parsed)
    if verb == "builder":
        sys.stdout.write(BUILDER_COMMANDS)
        return 0
    return disk_usage(invocation, parsed)

