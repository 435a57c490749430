"""Human-readable times and sizes the way Docker prints them (its ``go-units`` package), and back.

- *human duration*: ``Less than a second``, ``3 seconds``, ``About a minute``, ``5 hours``, ...
- *human size*: decimal units with 3 significant digits (``1.98MB``), as ``docker images`` shows.
- *bytes size*: binary units with 4 significant digits (``23.54GiB``), as ``docker info`` shows.
- *RAM size*: ``64m``, ``1.5g``, ``512kb`` → bytes, binary units (go-units ``RAMInBytes``), for flags.
- *RFC 3339*: the API's timestamps (``2024-05-01T10:00:00.123456789Z``), parsed without ``datetime``.
"""

from __future__ import annotations

import time

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
_BINARY_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                   "h": 3600.0}


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration``: how long ``seconds`` is, roughly, in words."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(round(seconds / 3600))
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def since(timestamp: float, now: float | None = None) -> str:
    """``5 seconds ago``-style age of a Unix ``timestamp``."""
    current = time.time() if now is None else now
    return human_duration(max(0.0, current - timestamp)) + " ago"


def _scaled(size: float, base: float, units: tuple[str, ...]) -> tuple[float, str]:
    index = 0
    while size >= base and index < len(units) - 1:
        size /= base
        index += 1
    return size, units[index]


def human_size(size: float, precision: int = 3) -> str:
    """Decimal size (``HumanSizeWithPrecision``): ``1.98MB``, ``4.26MB``, ``1.2GB``, ``0B``."""
    value, unit = _scaled(float(size), 1000.0, _DECIMAL)
    return f"{value:.{precision}g}{unit}"


def bytes_size(size: float) -> str:
    """Binary size (``BytesSize``): ``23.54GiB``."""
    value, unit = _scaled(float(size), 1024.0, _BINARY)
    return f"{value:.4g}{unit}"


def ram_in_bytes(text: str) -> int | None:
    """Docker's ``RAMInBytes``: ``64m`` → 67108864 (binary units, ``b``/``ib`` suffix allowed)."""
    value = text.strip().lower()
    for suffix in ("ib", "b"):
        if value.endswith(suffix) and len(value) > len(suffix):
            value = value[: -len(suffix)]
            break
    unit = value[-1:] if value[-1:] in _BINARY_UNITS and value[-1:] else ""
    number = value[: len(value) - len(unit)].strip()
    if not number or number.startswith("-"):
        return None
    try:
        return int(float(number) * _BINARY_UNITS[unit])
    except ValueError:
        return None


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm)."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_rfc3339(text: str) -> float | None:
    """Unix time of an RFC 3339 timestamp (fractional seconds and offsets allowed), or ``None``."""
    try:
        date, _, clock = text.strip().replace("t", "T").partition("T")
        year, month, day = (int(p) for p in date.split("-"))
        offset = 0.0
        if clock.endswith(("Z", "z")):
            clock = clock[:-1]
        else:
            for sign_char, sign in (("+", 1), ("-", -1)):
                if sign_char in clock:
                    clock, _, zone = clock.partition(sign_char)
                    zh, _, zm = zone.partition(":")
                    offset = sign * (int(zh) * 3600 + int(zm or 0) * 60)
                    break
        if not clock:
            hour = minute = 0
            second = 0.0
        else:
            h, m, s = clock.split(":")
            hour, minute, second = int(h), int(m), float(s)
    except ValueError:
        return None
    days = _days_from_civil(year, month, day)
    return days * 86400 + hour * 3600 + minute * 60 + second - offset


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration (``1h30m``, ``10s``, ``1.5h``, ``300ms``), or ``None`` if it is not one."""
    rest = text.strip()
    sign = 1.0
    if rest[:1] in "+-" and rest:
        sign = -1.0 if rest[0] == "-" else 1.0
        rest = rest[1:]
    if not rest:
        return None
    if rest == "0":
        return 0.0
    total = 0.0
    while rest:
        end = 0
        while end < len(rest) and (rest[end].isdigit() or rest[end] == "."):
            end += 1
        if end == 0:
            return None
        number, rest = rest[:end], rest[end:]
        unit_end = 0
        while unit_end < len(rest) and not (rest[unit_end].isdigit() or rest[unit_end] == "."):
            unit_end += 1
        unit, rest = rest[:unit_end], rest[unit_end:]
        if unit not in _DURATION_UNITS:
            return None
        try:
            total += float(number) * _DURATION_UNITS[unit]
        except ValueError:
            return None
    return sign * total


def api_timestamp(value: str, now: float | None = None) -> str:
    """Docker's ``GetTimestamp``: ``--since``/``--until`` values as the API's ``seconds.nanoseconds``.

    Accepts a Go duration (relative to now, in the past), a Unix timestamp, or an RFC 3339 date/time.
    """
    current = time.time() if now is None else now
    duration = parse_go_duration(value)
    if duration is not None and value.strip() not in ("",) and not value.strip().isdigit():
        moment = current - duration
    else:
        try:
            float(value)
            return value
        except ValueError:
            pass
        parsed = parse_rfc3339(value if "T" in value or ":" in value else value + "T00:00:00Z")
        if parsed is None:
            raise ValueError(f"failed to parse value as time or duration: {value!r}")
        moment = parsed
    seconds = int(moment // 1)
    nanos = int(round((moment - seconds) * 1e9))
    if nanos >= 1_000_000_000:
        seconds, nanos = seconds + 1, nanos - 1_000_000_000
    return f"{seconds}.{nanos:09d}"


def go_time_string(timestamp: float) -> str:
    """Go's ``time.Unix(t, 0).String()`` in local time: ``2024-05-01 10:00:00 +0000 UTC``."""
    local = time.localtime(timestamp)
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", local)
