"""``dockyard events``: ``GET /events`` printed as Docker's CLI prints it.

Default line: ``<time RFC3339 with nanoseconds, local zone> <Type> <Action> <Actor ID> (k=v, …)``
with the attributes sorted by key; ``--format`` takes a Go template (``{{json .}}``).
``--since``/``--until`` accept Docker's forms (durations, Unix times, RFC 3339); with ``--until``
the stream ends once the daemon reaches that time.
"""

from __future__ import annotations

import sys
import time

from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import Flag, FlagSet
from dockyard.cli.listing import filters_param

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("filter", "f", "list", "Filter output based on conditions provided", type_name="filter"),
    Flag("format", "", "string", "Format output using a custom template"),
    Flag("since", "", "string", "Show all events created since timestamp"),
    Flag("until", "", "string", "Stream events until this timestamp"),
])


def local_rfc3339_nano(time_nano: int) -> str:
    """Go's ``RFC3339NanoFixed`` in local time: ``2024-05-01T10:00:00.000000000+02:00`` (``Z`` for UTC)."""
    seconds, nanos = divmod(time_nano, 1_000_000_000)
    local = time.localtime(seconds)
    offset = local.tm_gmtoff or 0
    zone = "Z" if offset == 0 else f"{'+' if offset > 0 else '-'}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{nanos:09d}" + zone


def default_line(event: dict[str, Any]) -> str:
    time_nano = int(event.get("timeNano") or int(event.get("time") or 0) * 1_000_000_000)
    actor = event.get("Actor") or {}
    line = f"{local_rfc3339_nano(time_nano)} {event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attributes = actor.get("Attributes") or {}
    if attributes:
        line += " (" + ", ".join(f"{k}={attributes[k]}" for k in sorted(attributes)) + ")"
    return line


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    from dockyard.cli import jsoncodec
    from dockyard.cli.units import api_timestamp

    params = []
    for name in ("since", "until"):
        if parsed[name]:
            try:
                params.append((name, api_timestamp(parsed[name])))
            except ValueError as error:
                raise CliFailure(str(error), 1) from None
    if parsed["filter"]:
        params.append(("filters", filters_param(parsed["filter"])))
    template = None
    if parsed["format"]:
        from dockyard.cli.template import Template, TemplateError, prepare

        try:
            template = Template(prepare(parsed["format"])[1] if parsed["format"] != "json" else "{{json .}}")
        except TemplateError as error:
            raise CliFailure(f"template parsing error: {error}", 64) from None
    response = invocation.api.request("GET", "/events", params)
    try:
        for raw in response.lines():
            if not raw.strip():
                continue
            event = jsoncodec.loads(raw)
            text = template.execute(event) if template is not None else default_line(event)
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
    finally:
        response.close()
    return 0
