"""``dockyard rename CONTAINER NEW_NAME``: ``POST /containers/{id}/rename?name=``; prints nothing."""

from __future__ import annotations

from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([])


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    old, new = parsed.args[0].strip(), parsed.args[1].strip()
    if not old or not new:
        raise CliFailure("Error: Neither old nor new names may be empty", 1)
    invocation.api.request("POST", f"/containers/{old}/rename", [("name", new)]).read()
    return 0
