"""``dockyard daemon``: hand the rest of the command line to the daemon (imported only here)."""

from __future__ import annotations

FLAGS = None  # the daemon parses its own arguments


def main(invocation: object, verb: str, argv: list[str]) -> int:
    import sys

    if sys.flags.no_site:
        # The installed launcher starts Python with -I -S for a fast CLI; the daemon needs the
        # venv's site-packages (h11), so bring them in now.
        import site

        site.main()
    from dockyard.daemon.main import main as daemon_main

    return int(daemon_main(argv) or 0)
