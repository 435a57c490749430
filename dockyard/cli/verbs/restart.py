"""``dockyard restart``: ``POST /containers/{id}/restart`` for each container named, printing each."""

from __future__ import annotations

import sys

from dockyard.cli.failure import CliFailure, DaemonError
from dockyard.cli.flags import Flag, FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("signal", "s", "string", "Signal to send to the container"),
    Flag("time", "t", "int", "Seconds to wait before killing the container"),
])


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    api = invocation.api
    params = []
    if parsed["time"] is not None:
        params.append(("t", str(parsed["time"])))
    if parsed["signal"]:
        params.append(("signal", parsed["signal"]))
    failed = False
    for name in parsed.args:
        try:
            api.request("POST", f"/containers/{name}/restart", params).read()
        except DaemonError as failure:
            failed = True
            sys.stdout.flush()
            sys.stderr.write(failure.message + "\n")
            continue
        sys.stdout.write(name + "\n")
        sys.stdout.flush()
    if failed:
        raise CliFailure("", 1)
    return 0
