"""``dockyard container prune``: ``POST /containers/prune`` after Docker's confirmation prompt."""

from __future__ import annotations

import sys

from dockyard.cli.flags import Flag, FlagSet
from dockyard.cli.listing import filters_param

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("filter", "", "list", "Provide filter values (e.g. \"until=<timestamp>\")", type_name="filter"),
    Flag("force", "f", "bool", "Do not prompt for confirmation"),
])

WARNING = "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    from dockyard.cli.units import human_size

    if not parsed["force"]:
        sys.stdout.write(WARNING)
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            sys.stdout.write("\n" if not answer else "")
            return 0
    params = [("filters", filters_param(parsed["filter"]))] if parsed["filter"] else []
    report = invocation.api.json("POST", "/containers/prune", params)
    deleted = report.get("ContainersDeleted") or []
    if deleted:
        sys.stdout.write("Deleted Containers:\n" + "".join(cid + "\n" for cid in deleted) + "\n")
    sys.stdout.write(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0)}\n")
    return 0
