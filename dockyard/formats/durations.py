"""Go durations (``time.ParseDuration``): a sequence of decimal numbers with units, e.g. ``1h30m``,
``1.5h``, ``300ms``, ``-2m``; units ``ns``, ``us`` (``µs``), ``ms``, ``s``, ``m``, ``h``. ``0`` alone needs no
unit. Values are integer nanoseconds, computed without floating point as Go does.
"""

from __future__ import annotations

import json
import re

from dockyard.errors import InvalidParameter

UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
         "m": 60_000_000_000, "h": 3_600_000_000_000}
_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> int:
    """Nanoseconds in Go duration ``text``; InvalidParameter with Go's message when it is not one."""
    s = text
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise InvalidParameter(f"time: invalid duration {json.dumps(text)}")
    total = 0
    pos = 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None or (m.group(1) == "" and not m.group(2)):
            if re.fullmatch(r"[0-9.]+", s[pos:]):
                raise InvalidParameter(f"time: missing unit in duration {json.dumps(text)}")
            raise InvalidParameter(f"time: invalid duration {json.dumps(text)}")
        whole, frac, unit = m.group(1) or "0", m.group(2) or "", UNITS[m.group(3)]
        total += int(whole) * unit + (int(frac) * unit // 10 ** len(frac) if frac else 0)
        pos = m.end()
    if total >= 1 << 63:
        raise InvalidParameter(f"time: invalid duration {json.dumps(text)}")
    return sign * total


def is_go_duration(text: str) -> bool:
    try:
        parse_go_duration(text)
    except InvalidParameter:
        return False
    return True
