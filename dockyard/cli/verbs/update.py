"""``update``: change the resource limits of one or more containers (``POST /containers/{id}/update``).

Only the flags given are sent; the daemon keeps every other limit as it is. Prints each name on
success, Docker's error lines on failure; exit status 1 if any failed.
"""

from __future__ import annotations

import sys

from dockyard.cli.each import for_each
from dockyard.cli.failure import FlagError
from dockyard.cli.flags import Flag, FlagSet
from dockyard.cli.options.resources import LIMIT_FLAGS, resource_body

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([*LIMIT_FLAGS, Flag("restart", "", "string", "Restart policy to apply when a container exits")])


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    body = resource_body(parsed)
    if parsed["restart"]:
        from dockyard.cli.options.supervision import parse_restart

        body["RestartPolicy"] = parse_restart(parsed["restart"])
    if not body:
        raise FlagError("you must provide one or more flags when using this command")
    def act(name: str) -> str:
        result = invocation.api.json("POST", f"/containers/{name}/update", body=body) or {}
        for warning in result.get("Warnings") or []:
            sys.stderr.write(f"WARNING: {warning}\n")
        return name

    return for_each(parsed.args, act)
