"""Sizes as Docker's go-units reads them: a number, an optional space, and a unit ``b``, ``k``, ``m``,
``g``, ``t`` or ``p`` (any case), optionally followed by ``b`` or ``ib`` (``10m``, ``1.5GiB``, ``512 kb``).

- *human size* (``FromHumanSize``): decimal units, ``1k`` = 1000; Docker's log ``max-size``.
- *RAM size* (``RAMInBytes``): binary units, ``1k`` = 1024; memory limits, ``tmpfs`` sizes.
"""

from __future__ import annotations

import math

from dockyard.errors import InvalidParameter

_DECIMAL = {"k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5}
_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def _parse(text: str, units: dict[str, int]) -> int:
    cut = max(text.rfind(c) for c in "0123456789. ")
    if cut == -1:
        raise InvalidParameter(f"invalid size: '{text}'")
    number, suffix = (text[:cut], text[cut + 1:]) if text[cut] == " " else (text[:cut + 1], text[cut + 1:])
    try:
        size = float(number) if number.strip() == number and "_" not in number else math.nan
    except ValueError:
        size = math.nan
    if math.isnan(size):
        raise InvalidParameter(f"invalid size: '{text}'")
    if size < 0 or math.isinf(size):
        raise InvalidParameter(f"invalid size: '{text}'")
    if not suffix:
        return int(size)
    low = suffix.lower()
    if len(low) > 3 or (low[0] == "b" and len(low) > 1):
        raise InvalidParameter(f"invalid suffix: '{suffix}'")
    if low[0] == "b":
        return int(size)
    if low[0] not in units or (len(low) == 2 and low[1] != "b") or (len(low) == 3 and low[1:] != "ib"):
        raise InvalidParameter(f"invalid suffix: '{suffix}'")
    return int(size * units[low[0]])


def from_human_size(text: str) -> int:
    """Bytes in ``text`` with decimal units (``10m`` → 10000000)."""
    return _parse(text, _DECIMAL)


def ram_in_bytes(text: str) -> int:
    """Bytes in ``text`` with binary units (``64m`` → 67108864)."""
    return _parse(text, _BINARY)
