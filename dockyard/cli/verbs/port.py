"""``dockyard port CONTAINER [PRIVATE_PORT[/PROTO]]``: a container's published ports, as Docker's CLI
prints them from ``NetworkSettings.Ports`` of the container's inspect.

Each *mapping* prints as ``80/tcp -> 0.0.0.0:8080`` (or only the host side when one port is asked
for), the host side joined as Go's ``net.JoinHostPort`` joins it (``[::]:8080`` for IPv6, ``:8080``
for an empty address); all lines in Docker's natural order.
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


def join_host_port(host: str, port: str) -> str:
    """Go's ``net.JoinHostPort``: brackets around a host holding a colon."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    from dockyard.cli.client import quote
    from dockyard.cli.listing import natural_sorted
    from dockyard.cli.options.networking import parse_port_number

    container = parsed.args[0]
    info = invocation.api.json("GET", f"/containers/{quote(container)}/json")
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    lines: list[str] = []
    if len(parsed.args) > 1:
        wanted = parsed.args[1]
        port, _, proto = wanted.partition("/")
        try:
            parse_port_number(port)
        except ValueError as error:
            raise CliFailure(f"Error: invalid port ({port}): {error}", 1) from None
        bindings = ports.get(f"{port}/{proto or 'tcp'}")
        if not bindings:
            raise CliFailure(f"Error: No public port '{wanted}' published for {container}", 1)
        lines = [join_host_port(b.get("HostIp") or "", b.get("HostPort") or "") for b in bindings]
    else:
        for key, bindings in ports.items():
            lines += [f"{key} -> {join_host_port(b.get('HostIp') or '', b.get('HostPort') or '')}"
                      for b in bindings or []]
    if lines:
        sys.stdout.write("\n".join(natural_sorted(lines)) + "\n")
    return 0
