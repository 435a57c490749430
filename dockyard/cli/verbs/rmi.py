"""``dockyard rmi``: ``DELETE /images/{name}``, printing Docker's ``Untagged:``/``Deleted:`` lines."""

from __future__ import annotations

from dockyard.cli.each import for_each
from dockyard.cli.flags import Flag, FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("force", "f", "bool", "Force removal of the image"),
    Flag("no-prune", "", "bool", "Do not delete untagged parents"),
])


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    api = invocation.api
    params = []
    if parsed["force"]:
        params.append(("force", "1"))
    if parsed["no-prune"]:
        params.append(("noprune", "1"))
    def act(name: str) -> str | None:
        lines = []
        for item in api.json("DELETE", f"/images/{name}", params) or []:
            if item.get("Untagged"):
                lines.append(f"Untagged: {item['Untagged']}")
            if item.get("Deleted"):
                lines.append(f"Deleted: {item['Deleted']}")
        return "\n".join(lines) if lines else None

    return for_each(parsed.args, act)
