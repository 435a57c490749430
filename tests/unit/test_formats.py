"""Docker's value notations (dockyard/formats/): times, durations, signals and sizes, one parser each."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.errors import InvalidParameter
from dockyard.formats import timestamps
from dockyard.formats.durations import parse_go_duration
from dockyard.formats.signals import parse_signal
from dockyard.formats.sizes import from_human_size, ram_in_bytes

NANOS = 1_000_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(lambda m: timedelta(minutes=m))
moments = st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9998, 12, 30))


def _zone_text(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _expected_ns(local: datetime, offset: timedelta, nanos: int) -> int:
    """Nanoseconds since the epoch of wall-clock ``local`` at ``offset`` from UTC, plus ``nanos``."""
    moment = local.replace(microsecond=0, tzinfo=timezone(offset))
    return (moment - EPOCH) // timedelta(seconds=1) * NANOS + nanos


@given(local=moments, offset=offsets, nanos=st.integers(0, NANOS - 1), digits=st.integers(0, 9),
       zulu=st.sampled_from(["Z", "z"]), utc=st.booleans(), sep=st.sampled_from(["T", "t"]))
def test_rfc3339_offsets_z_and_fractions(local: datetime, offset: timedelta, nanos: int, digits: int,
                                         zulu: str, utc: bool, sep: str) -> None:
    kept = nanos // 10 ** (9 - digits) * 10 ** (9 - digits)  # only the digits written
    fraction = f".{nanos:09d}"[: digits + 1] if digits else ""
    zone = zulu if utc else _zone_text(offset)
    text = local.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + fraction + zone
    expected = _expected_ns(local, timedelta(0) if utc else offset, kept)
    assert timestamps.parse_ns(text) == expected
    assert timestamps.parse_time_arg(text) == expected  # the since/until arguments read them alike


def test_an_offset_is_not_ignored() -> None:
    # The same instant, written in three zones (the bug: +02:00 was read as UTC, two hours off).
    utc = timestamps.parse_ns("2024-05-01T08:00:00Z")
    assert timestamps.parse_ns("2024-05-01T10:00:00+02:00") == utc
    assert timestamps.parse_ns("2024-05-01T03:30:00-04:30") == utc
    assert timestamps.parse_time_arg("2024-05-01T10:00:00.5+02:00") == utc + NANOS // 2


@given(ns=st.integers(min_value=0, max_value=253402300799 * NANOS))
def test_format_then_parse_round_trips(ns: int) -> None:
    text = timestamps.format_ns(ns)
    assert text.endswith("Z") and not text.endswith("0Z") or "." not in text
    assert timestamps.parse_ns(text) == ns


def test_format_trims_the_fraction_as_go_does_logs_keep_nine_digits() -> None:
    assert timestamps.format_ns_fixed(3 * NANOS) == "1970-01-01T00:00:03.000000000Z"
    assert timestamps.format_ns(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert timestamps.format_ns(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert timestamps.format_ns(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"


@given(seconds=st.integers(-(10**11), 10**11), frac=st.integers(0, NANOS - 1), digits=st.integers(0, 9))
def test_unix_seconds_with_fractions(seconds: int, frac: int, digits: int) -> None:
    written = f"{frac:09d}"[:digits]
    text = f"{seconds}.{written}" if digits else str(seconds)
    nanos = int(written.ljust(9, "0")) if digits else 0
    sign = -1 if text.startswith("-") else 1
    assert timestamps.parse_time_arg(text) == seconds * NANOS + sign * nanos


@given(hours=st.integers(0, 10_000), minutes=st.integers(0, 59), millis=st.integers(0, 999),
       now=st.integers(0, 4 * 10**18))
def test_durations_count_back_from_now(hours: int, minutes: int, millis: int, now: int) -> None:
    text = f"{hours}h{minutes}m{millis}ms"
    back = ((hours * 60 + minutes) * 60 * 1000 + millis) * 1_000_000
    assert timestamps.parse_time_arg(text, now) == now - back
    assert timestamps.parse_time_arg("1.5h", now) == now - 5400 * NANOS


def test_time_arg_layouts_and_errors() -> None:
    # "0" is unix time 0, not a duration (GetTimestamp); dates without a time are midnight.
    assert timestamps.parse_time_arg("0", 123) == 0
    assert timestamps.parse_time_arg("2024-01-02Z") == timestamps.parse_ns("2024-01-02T00:00:00Z")
    assert timestamps.parse_time_arg("2024-01-02T03:04Z") == timestamps.parse_ns("2024-01-02T03:04:00Z")
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Etc/GMT-3"  # zone-less values are the daemon's local time: here UTC+3
    time.tzset()
    try:
        assert timestamps.parse_time_arg("2024-01-02T03:04:05") == timestamps.parse_ns("2024-01-02T00:04:05Z")
        assert timestamps.parse_time_arg("2024-01-02") == timestamps.parse_ns("2024-01-01T21:00:00Z")
    finally:
        if old is None:
            os.environ.pop("TZ")
        else:
            os.environ["TZ"] = old
        time.tzset()
    for bad in ("yesterday", "2024-13-01", "2024-01-01T25:00:00Z", "2024-01-01T10:00:00+24:00", "", "1h-"):
        with pytest.raises(InvalidParameter):
            timestamps.parse_time_arg(bad)
    with pytest.raises(InvalidParameter, match='failed to parse value as time or duration: "yesterday"'):
        timestamps.parse_time_arg("yesterday")


def test_stored_times_and_the_zero_time() -> None:
    assert timestamps.parse_ns(timestamps.ZERO_TIME) == 0 and timestamps.parse_ns("") == 0
    assert timestamps.stored_ns("not a time") == 0 and timestamps.unix_seconds("2023-11-14T22:13:20.9Z") == 1_700_000_000
    with pytest.raises(InvalidParameter):
        timestamps.parse_ns("2023-11-14 22:13:20")


def test_go_durations() -> None:
    assert parse_go_duration("1h2m3.5s") == 3_723_500_000_000
    assert parse_go_duration("300ms") == 300_000_000 and parse_go_duration("1.5µs") == 1_500
    assert parse_go_duration("-2m") == -120 * NANOS and parse_go_duration("0") == 0
    assert parse_go_duration(".5s") == NANOS // 2 and parse_go_duration("1.s") == NANOS
    with pytest.raises(InvalidParameter, match='time: missing unit in duration "10"'):
        parse_go_duration("10")
    for bad in ("", "s", "1x", "1h 2m", ".s", "-"):
        with pytest.raises(InvalidParameter, match="time: invalid duration"):
            parse_go_duration(bad)


def test_signals_as_moby_parses_them() -> None:
    assert parse_signal("SIGTERM") == 15 and parse_signal("term") == 15 and parse_signal("9") == 9
    assert parse_signal(None) == 9 and parse_signal("", default=15) == 15
    assert parse_signal("SIGRTMIN+1") == signal.SIGRTMIN + 1 and parse_signal("rtmax-1") == signal.SIGRTMAX - 1
    assert parse_signal("CLD") == signal.SIGCHLD and parse_signal(10) == 10
    for bad, message in (("SIGFOO", "invalid signal: SIGFOO"), ("0", "invalid signal: 0"),
                         ("999", "the linux daemon does not support signal 999"),
                         ("-1", "the linux daemon does not support signal -1")):
        with pytest.raises(InvalidParameter) as info:
            parse_signal(bad)
        assert info.value.message == message


def test_sizes_as_go_units_reads_them() -> None:
    assert from_human_size("10m") == 10_000_000 and ram_in_bytes("10m") == 10 << 20
    assert ram_in_bytes("512k") == ram_in_bytes("512KiB") == ram_in_bytes("512 kb") == 512 << 10
    assert ram_in_bytes("1.5g") == 3 << 29 and ram_in_bytes("100") == ram_in_bytes("100b") == 100
    assert from_human_size("1e3") == 1000
    for bad in ("ten", "-1m", "10x", "10mbb", "10bb", "", "m"):
        with pytest.raises(InvalidParameter):
            ram_in_bytes(bad)
    with pytest.raises(InvalidParameter, match="invalid suffix: 'x'"):
        from_human_size("10x")
