"""``dockyard history IMAGE``: ``GET /images/{name}/history`` as Docker's table or a template."""

from __future__ import annotations

import sys

from dockyard.cli import units
from dockyard.cli.flags import Flag, FlagSet
from dockyard.cli.listing import ellipsis, render
from dockyard.cli.references import short_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

HISTORY_FLAGS = FlagSet([
    Flag("format", "", "string", "Format output using a custom template"),
    Flag("human", "H", "bool", "Print sizes and dates in human readable format", default=True),
    Flag("no-trunc", "", "bool", "Don't truncate output"),
    Flag("quiet", "q", "bool", "Only show image IDs"),
])
FLAGS = {"history": HISTORY_FLAGS, "image history": HISTORY_FLAGS}

DEFAULT_FORMAT = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
           "Size": "SIZE", "Comment": "COMMENT"}
CREATED_BY_WIDTH = 45  # where Docker cuts ``CREATED BY`` unless --no-trunc


def history_row(entry: dict[str, Any], trunc: bool, human: bool, now: float) -> dict[str, str]:
    """One row of ``docker history``, as Docker's formatter shows it."""
    image_id = entry.get("Id") or ""
    created = float(entry.get("Created") or 0)
    created_by = (entry.get("CreatedBy") or "").replace("\t", " ")
    if trunc:
        created_by = ellipsis(created_by, CREATED_BY_WIDTH)
        image_id = short_id(image_id) if image_id != "<missing>" else image_id
    size = int(entry.get("Size") or 0)
    return {
        "ID": image_id,
        "CreatedSince": units.since(created, now) if human else _rfc3339(created),
        "CreatedAt": _rfc3339(created),
        "CreatedBy": created_by,
        "Size": units.human_size(size) if human else str(size),
        "Comment": entry.get("Comment") or "",
    }


def _rfc3339(timestamp: float) -> str:
    """Go's ``time.Unix(t, 0).Format(time.RFC3339)`` in local time."""
    import time

    local = time.localtime(timestamp)
    zone = time.strftime("%z", local)
    zone = "Z" if zone in ("+0000", "-0000") else f"{zone[:3]}:{zone[3:]}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + zone


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    import time

    entries = invocation.api.json("GET", f"/images/{parsed.args[0]}/history") or []
    now = time.time()
    rows = [history_row(e, not parsed["no-trunc"], parsed["human"], now) for e in entries]
    format_text = parsed["format"] or ""
    if parsed["quiet"]:
        format_text = "{{.ID}}"
    elif not format_text:
        format_text = DEFAULT_FORMAT
    headers = HEADERS if parsed["human"] else {**HEADERS, "CreatedSince": "CREATED AT"}
    sys.stdout.write(render(format_text, rows, headers))
    return 0
