"""``dockyard search [OPTIONS] TERM``: ``GET /images/search``, as Docker's table or a template.

As Docker's CLI: ``NAME``, ``DESCRIPTION`` (cut at 45 characters unless ``--no-trunc``), ``STARS`` and
``OFFICIAL`` (``[OK]``); ``-f stars=N``, ``-f is-official=true``; ``--limit`` (the daemon's default 25).
"""

from __future__ import annotations

import sys

from dockyard.cli import registry_auth
from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import Flag, FlagSet
from dockyard.cli.listing import ellipsis, filters_param, render

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("filter", "f", "list", "Filter output based on conditions provided"),
    Flag("format", "", "string", "Pretty-print search using a Go template"),
    Flag("limit", "", "int", "Max number of search results"),
    Flag("no-trunc", "", "bool", "Don't truncate output"),
])

DEFAULT_FORMAT = "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}"
HEADERS = {"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS", "IsOfficial": "OFFICIAL",
           "IsAutomated": "AUTOMATED"}
DESCRIPTION_WIDTH = 45


def search_row(result: dict[str, Any], trunc: bool) -> dict[str, str]:
    """One row of ``docker search`` as Docker's formatter shows it."""
    description = " ".join(str(result.get("description") or "").split("\n"))
    return {
        "Name": str(result.get("name") or ""),
        "Description": ellipsis(description, DESCRIPTION_WIDTH) if trunc else description,
        "StarCount": str(int(result.get("star_count") or 0)),
        "IsOfficial": "[OK]" if result.get("is_official") else "",
        "IsAutomated": "[OK]" if result.get("is_automated") else "",
    }


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    term = parsed.args[0]
    params = [("term", term)]
    if parsed["limit"]:
        params.append(("limit", str(parsed["limit"])))
    if parsed["filter"]:
        params.append(("filters", filters_param(parsed["filter"])))
    try:
        headers = registry_auth.header_for(term)
    except registry_auth.CredentialError as error:
        raise CliFailure(str(error), 1) from None
    results = invocation.api.request("GET", "/images/search", params, headers=headers).json() or []
    rows = [search_row(r, not parsed["no-trunc"]) for r in results]
    sys.stdout.write(render(parsed["format"] or DEFAULT_FORMAT, rows, HEADERS))
    return 0
