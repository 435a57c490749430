"""``dockyard tag SOURCE TARGET``: ``POST /images/{source}/tag?repo=&tag=`` (tag defaults to latest)."""

from __future__ import annotations

from dockyard.cli.flags import FlagSet
from dockyard.cli.references import DEFAULT_TAG, split_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([])


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    source, target = parsed.args
    repo, tag, _ = split_reference(target)
    invocation.api.request("POST", f"/images/{source}/tag",
                           [("repo", repo), ("tag", tag or DEFAULT_TAG)]).read()
    return 0
