"""``dockyard top CONTAINER [ps OPTIONS]``: the container's processes, as ``ps`` shows them."""

from __future__ import annotations

import sys

from dockyard.cli.flags import FlagSet
from dockyard.cli.tabwriter import align

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([], interspersed=False)


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    container, ps_args = parsed.args[0], parsed.args[1:]
    params = [("ps_args", " ".join(ps_args))] if ps_args else []
    result = invocation.api.json("GET", f"/containers/{container}/top", params)
    lines = ["\t".join(result.get("Titles") or [])]
    lines += ["\t".join(row) for row in result.get("Processes") or []]
    # Docker's tabwriter for top: minwidth 20, padding 3.
    sys.stdout.write("".join(line + "\n" for line in align(lines, 20, 3)))
    return 0
