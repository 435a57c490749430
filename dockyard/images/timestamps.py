"""Timestamps the way Docker writes them: Go's RFC 3339 with nanoseconds (``RFC3339Nano``).

Go trims trailing zeros of the fraction (``2024-05-01T10:00:00.5Z``) and drops it when zero.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

ZERO_TIME = "0001-01-01T00:00:00Z"
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})")


def format_ns(ns: int) -> str:
    """A UTC timestamp from nanoseconds since the epoch."""
    seconds, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + "Z"


def now() -> str:
    return format_ns(time.time_ns())


def parse_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 timestamp; 0 for an unparseable or zero one."""
    m = _RFC3339.fullmatch(text or "")
    if m is None:
        return 0
    date, clock, frac, zone = m.groups()
    tz = "+00:00" if zone in ("Z", "z") else zone
    try:
        dt = datetime.fromisoformat(f"{date}T{clock}{tz}")
    except ValueError:
        return 0
    nanos = int((frac or "0")[:9].ljust(9, "0"))
    return int(dt.timestamp()) * 1_000_000_000 + nanos


def unix_seconds(text: str) -> int:
    return parse_ns(text) // 1_000_000_000
