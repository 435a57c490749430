"""``dockyard rmi``: ``DELETE /images/{name}``, printing Docker's ``Untagged:``/``Deleted:`` lines."""

from __future__ import annotations

import sys

from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import Flag, FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("force", "f", "bool", "Force removal of the image"),
    Flag("no-prune", "", "bool", "Do not delete untagged parents"),
])


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    api = invocation.api
    params = []
    if parsed["force"]:
        params.append(("force", "1"))
    if parsed["no-prune"]:
        params.append(("noprune", "1"))
    failed = False
    for name in parsed.args:
        try:
            items = api.json("DELETE", f"/images/{name}", params) or []
        except CliFailure as failure:
            if failure.message.startswith("Cannot connect"):
                raise
            failed = True
            sys.stdout.flush()
            sys.stderr.write(failure.message + "\n")
            sys.stderr.flush()
            continue
        for item in items:
            if item.get("Untagged"):
                sys.stdout.write(f"Untagged: {item['Untagged']}\n")
            if item.get("Deleted"):
                sys.stdout.write(f"Deleted: {item['Deleted']}\n")
        sys.stdout.flush()
    return 1 if failed else 0
