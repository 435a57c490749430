"""Docker's filter arguments: the ``filters`` query parameter of list, prune and events routes.

The JSON is ``{"key": ["value", ...]}`` or, from old clients, ``{"key": {"value": true}}``; both
become ``{"key": ["value", ...]}``. ``allowed`` names the keys a route knows; any other key is
refused with Docker's ``invalid filter 'key'``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from dockyard.errors import InvalidParameter

Filters = dict[str, list[str]]


def normalize(raw: Any, allowed: Collection[str] | None = None) -> Filters:
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise InvalidParameter("invalid filter: expected a JSON object")
    out: Filters = {}
    for key, value in raw.items():
        if allowed is not None and key not in allowed:
            raise InvalidParameter(f"invalid filter '{key}'")
        if isinstance(value, dict):
            out[key] = [k for k, on in value.items() if on]
        elif isinstance(value, (list, tuple)):
            out[key] = [str(v) for v in value]
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            out[key] = [str(value)]
        else:
            raise InvalidParameter(f"invalid filter '{key}'")
    return out
