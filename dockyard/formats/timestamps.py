"""Times the way Docker writes and reads them.

- *RFC 3339*: ``2024-05-01T10:00:00.123456789+02:00``; a ``Z`` (or ``z``) or a ``±hh:mm`` offset; any
  number of fraction digits (nanoseconds kept, the rest dropped). Docker writes UTC with Go's
  ``RFC3339Nano``: trailing zeros of the fraction trimmed, no fraction when it is zero.
  ``docker logs --timestamps`` shows all nine digits instead (``RFC3339NanoFixed``).
- the *zero time*: ``0001-01-01T00:00:00Z``, Go's zero ``time.Time``; read as 0 ("never").
- a *time argument* (``since``/``until``, the ``until`` filter; Docker's ``timetypes.GetTimestamp``): a
  Go duration (that long before now: ``10m``, ``1h30m``), unix seconds with an optional fraction
  (``1700000000.5``), or an RFC 3339 date/time, where the time, the seconds and the zone may be left out
  (``2024-05-01``, ``2024-05-01T10:00``; without a zone it is the daemon's local time).

All values are integer nanoseconds since the epoch unless a name says seconds.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone

from dockyard.errors import InvalidParameter
from dockyard.formats.durations import is_go_duration, parse_go_duration

ZERO_TIME = "0001-01-01T00:00:00Z"
NANOS = 1_000_000_000
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})")
# GetTimestamp's layouts: a date, then optionally hours[:minutes[:seconds[.fraction]]], then optionally a zone.
_LOOSE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[Tt](\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?)?([Zz]|[+-]\d{2}:\d{2})?")
_UNIX = re.compile(r"[+-]?\d+(?:\.\d*)?")


def format_ns(ns: int) -> str:
    """A UTC ``RFC3339Nano`` timestamp for ``ns`` nanoseconds since the epoch."""
    seconds, frac = divmod(ns, NANOS)
    base = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + "Z"


def format_ns_fixed(ns: int) -> str:
    """A UTC timestamp with all nine fraction digits (Docker's ``RFC3339NanoFixed``, as ``logs -t`` shows)."""
    seconds, frac = divmod(ns, NANOS)
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def now() -> str:
    """The current time as Docker writes it."""
    return format_ns(time.time_ns())


def _zone(text: str | None, local: bool) -> timezone | None:
    if text is None:
        return None if local else UTC
    if text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 23 or minutes > 59:
        raise ValueError(f"zone {text} out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _to_ns(groups: tuple[str | None, ...], local: bool) -> int:
    year, month, day, hour, minute, second, frac, zone = groups
    moment = datetime(int(year or 0), int(month or 0), int(day or 0), int(hour or 0), int(minute or 0),
                      int(second or 0), tzinfo=_zone(zone, local))
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the daemon's local zone, as Go's ParseInLocation(time.Local)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    whole = (moment - epoch) // timedelta(seconds=1)
    return whole * NANOS + int((frac or "0")[:9].ljust(9, "0"))


def parse_ns(text: str) -> int:
    """Nanoseconds since the epoch of RFC 3339 ``text``; 0 for "" and the zero time. InvalidParameter if not one."""
    if not text or text.startswith("0001-01-01T00:00:00"):
        return 0
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise InvalidParameter(f"parsing time {text!r}: not an RFC 3339 time")
    try:
        return _to_ns(m.groups(), local=False)
    except ValueError as exc:
        raise InvalidParameter(f"parsing time {text!r}: {exc}") from None


def stored_ns(text: str) -> int:
    """:func:`parse_ns` for a time read from a record or an image config: 0 when it is not RFC 3339."""
    try:
        return parse_ns(text)
    except InvalidParameter:
        return 0


def stored_seconds(text: str) -> float:
    """Seconds since the epoch of a stored time (0 when unparseable)."""
    return stored_ns(text) / NANOS


def unix_seconds(text: str) -> int:
    """Whole seconds since the epoch of a stored time (0 when unparseable)."""
    return stored_ns(text) // NANOS


def parse_time_arg(value: str, now_ns: int | None = None) -> int:
    """Nanoseconds since the epoch of a time argument: a Go duration back from ``now_ns``, unix seconds, or a date/time."""
    text = value.strip()
    if text != "0" and is_go_duration(text):
        current = time.time_ns() if now_ns is None else now_ns
        return current - parse_go_duration(text)
    if _UNIX.fullmatch(text):
        whole, _, frac = text.partition(".")
        sign = -1 if whole.startswith("-") else 1
        return int(whole) * NANOS + sign * int((frac or "0")[:9].ljust(9, "0"))
    m = _LOOSE.fullmatch(text)
    if m is not None:
        try:
            return _to_ns(m.groups(), local=m.group(8) is None)
        except ValueError as exc:
            raise InvalidParameter(f"parsing time {value!r}: {exc}") from None
    raise InvalidParameter(f'failed to parse value as time or duration: "{value}"')
