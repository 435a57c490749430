"""``pause`` and ``unpause``: freeze or thaw every process of each container named.

Each success prints the name as given; each failure prints ``Error response from daemon: ...`` to
stderr; the exit status is 1 if any failed (Docker's behaviour).
"""

from __future__ import annotations

from dockyard.cli.each import for_each
from dockyard.cli.flags import FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = {"pause": FlagSet([]), "unpause": FlagSet([])}


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    def act(name: str) -> str:
        invocation.api.request("POST", f"/containers/{name}/{verb}").read()
        return name

    return for_each(parsed.args, act)
