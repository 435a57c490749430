"""Detach keys: Docker's key syntax and the stream scanner (no root)."""

from __future__ import annotations

import pytest

from dockyard.containers.detachkeys import DEFAULT, Scanner, parse
from dockyard.errors import InvalidParameter


def test_parse() -> None:
    assert parse(DEFAULT) == b"\x10\x11"
    assert parse("ctrl-a,x,ctrl-@,ctrl-_") == b"\x01x\x00\x1f"
    # "é" and "\U000a566d" are one character but several bytes: no key (the fuzzing found a 500 here)
    for bad in ("", "ctrl-", "ctrl-1", "ctrl-ab", "shift-a", "ab", "é", "\U000a566d"):
        with pytest.raises(InvalidParameter, match="Invalid detach keys"):
            parse(bad)


def test_scanner_passes_other_bytes_and_finds_the_sequence_across_chunks() -> None:
    s = Scanner(b"\x10\x11")
    assert s.feed(b"ls\n") == (b"ls\n", False)
    assert s.feed(b"a\x10") == (b"a", False)  # held back: it may start the sequence
    assert s.feed(b"\x11rest") == (b"", True)


def test_scanner_releases_a_false_start() -> None:
    s = Scanner(b"\x10\x11")
    assert s.feed(b"\x10x") == (b"\x10x", False)
    assert s.feed(b"\x10\x10\x11") == (b"\x10", True)
