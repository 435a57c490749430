"""Docker's loop over a verb's arguments (``rm a b c``, ``stop …``, ``volume rm …``).

Each name is acted on in turn; what the action returns (if anything) is printed on stdout, a
failure's message on stderr, and the loop goes on; the exit status is 1 when any failed. Losing the
daemon (:class:`ConnectFailure`) stops everything at once.
"""

from __future__ import annotations

import sys

from dockyard.cli.failure import CliFailure, ConnectFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


def for_each(names: Iterable[str], act: Callable[[str], str | None]) -> int:
    failed = False
    for name in names:
        try:
            output = act(name)
        except ConnectFailure:
            raise
        except CliFailure as failure:
            if failure.message.startswith("Cannot connect"):
                raise
            failed = True
            sys.stdout.flush()
            sys.stderr.write(failure.message + "\n")
            sys.stderr.flush()
            continue
        if output is not None:
            sys.stdout.write(output + "\n")
            sys.stdout.flush()
    return 1 if failed else 0
