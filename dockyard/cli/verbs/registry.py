"""``dockyard registry serve|gc``: the registry server, run in this process (imported only here).

The server stands beside the engine and needs no daemon; its package parses its own arguments.
"""

from __future__ import annotations

FLAGS = None  # dockyard.registry.main parses its own arguments


def main(invocation: object, verb: str, argv: list[str]) -> int:
    import sys

    if sys.flags.no_site:
        # The installed launcher starts Python with -I -S; the server needs the venv's h11.
        import site

        site.main()
    from dockyard.registry.main import main as registry_main

    return int(registry_main(argv) or 0)
