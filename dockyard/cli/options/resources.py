"""`run`/`create` flags of the resources group: see `dockyard.cli.options`."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Flag, Parsed

FLAGS: list[Flag] = []


def apply(parsed: Parsed, body: dict[str, Any]) -> None:
    """Fill the create body from this group's flags."""
