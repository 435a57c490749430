"""``dockyard port CONTAINER [PRIVATE_PORT[/PROTO]]``: the container's published ports.

Port publishing is not built yet, so every container answers as Docker's does for one without
published ports: nothing listed, or ``Error: No public port '80/tcp' published for NAME``.
"""

from __future__ import annotations

import sys

from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([])


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    container = parsed.args[0]
    info = invocation.api.json("GET", f"/containers/{container}/json")
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if len(parsed.args) > 1:
        wanted = parsed.args[1]
        port, _, proto = wanted.partition("/")
        key = f"{port}/{proto or 'tcp'}"
        bindings = ports.get(key)
        if not bindings:
            raise CliFailure(f"Error: No public port '{wanted}' published for {container}", 1)
        for b in bindings:
            sys.stdout.write(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}\n")
        return 0
    for key in sorted(ports):
        for b in ports[key] or []:
            sys.stdout.write(f"{key} -> {b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}\n")
    return 0
