"""``pause`` and ``unpause``: freeze or thaw every process of each container named.

Each success prints the name as given; each failure prints ``Error response from daemon: ...`` to
stderr; the exit status is 1 if any failed (Docker's behaviour).
"""

from __future__ import annotations

import sys

from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = {"pause": FlagSet([]), "unpause": FlagSet([])}


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    failed = False
    for name in parsed.args:
        try:
            invocation.api.request("POST", f"/containers/{name}/{verb}").read()
        except CliFailure as failure:
            if failure.status == 1 and failure.message.startswith("Cannot connect"):
                raise
            failed = True
            sys.stdout.flush()
            sys.stderr.write(failure.message + "\n")
            sys.stderr.flush()
            continue
        sys.stdout.write(name + "\n")
        sys.stdout.flush()
    return 1 if failed else 0
