"""``dockyard daemon``: hand the rest of the command line to the daemon (imported only here)."""

from __future__ import annotations

FLAGS = None  # the daemon parses its own arguments


def main(invocation: object, verb: str, argv: list[str]) -> int:
    from dockyard.daemon.main import main as daemon_main

    return int(daemon_main(argv) or 0)
