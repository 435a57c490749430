"""The host's network state, to check that a bench left it as it found it.

Terms:

- *state*: the host's addresses (with every link), its IPv4 and IPv6 routes of every table and its
  nft ruleset, without the values that change on their own (address lifetimes, route expiry, rule
  counters) — what tests/integration/conftest.py's guard compares too.
- *another daemon's*: a link, route or nft table named as a dockyard daemon names them (links
  ``dockyard0``, ``dy…``; tables ``dockyard…``) but not by the bench's own daemon root. Other jobs on the
  machine may start and stop such daemons while a bench runs; they are left out, the bench's own are not.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

_VOLATILE_KEYS = {"valid_life_time", "preferred_life_time", "expires", "packets", "bytes", "used", "stats64"}


def _without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_volatile(v) for k, v in value.items() if k not in _VOLATILE_KEYS}
    if isinstance(value, list):
        return [_without_volatile(v) for v in value]
    return value


def _json_of(argv: list[str]) -> Any:
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout or "null")


def host_network_state(owns_link: Callable[[str], bool], table: str) -> dict[str, Any]:
    """The host's state, leaving out another daemon's links, routes and tables; ``owns_link`` and
    ``table`` say which link names and which nft table are the bench's own daemon's."""

    def foreign_link(name: object) -> bool:
        return isinstance(name, str) and name.startswith(("dy", "dockyard")) and not owns_link(name)

    def foreign_item(item: dict[str, Any]) -> bool:
        (kind, body), = item.items()
        name = body.get("name") if kind == "table" else body.get("table")
        return isinstance(name, str) and name.startswith("dockyard") and name != table

    ruleset = _json_of(["nft", "-j", "list", "ruleset"])["nftables"]
    return _without_volatile({
        "addr": [a for a in _json_of(["ip", "-j", "addr"]) if not foreign_link(a.get("ifname"))],
        "route": [r for r in _json_of(["ip", "-j", "route", "show", "table", "all"]) if not foreign_link(r.get("dev"))],
        "route6": [r for r in _json_of(["ip", "-6", "-j", "route", "show", "table", "all"])
                   if not foreign_link(r.get("dev"))],
        "nft": [item for item in ruleset if not foreign_item(item)],
    })


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs between two states, one line per added or removed entry."""
    lines = []
    for key in before:
        old = {json.dumps(x, sort_keys=True) for x in before[key]}
        new = {json.dumps(x, sort_keys=True) for x in after[key]}
        differ = [f"{key}: gone: {x}" for x in sorted(old - new)] + [f"{key}: new: {x}" for x in sorted(new - old)]
        if not differ and before[key] != after[key]:
            differ.append(f"{key}: the same entries in another order")
        lines += differ
    return lines
