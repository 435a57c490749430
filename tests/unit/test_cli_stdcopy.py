"""The multiplexed stream decoder and the detach-key proxy."""

from __future__ import annotations

import pytest

from dockyard.cli.detach import EscapeProxy
from dockyard.cli.stdcopy import Demuxer, StreamFormatError, frame


def test_frames_split_anywhere() -> None:
    data = frame(1, b"out\n") + frame(2, b"err\n") + frame(1, b"") + frame(1, b"x" * 70000)
    for step in (1, 3, 8, 9, 4096, len(data)):
        demuxer = Demuxer()
        got = []
        for start in range(0, len(data), step):
            got += list(demuxer.feed(data[start:start + step]))
        assert got == [(1, b"out\n"), (2, b"err\n"), (1, b""), (1, b"x" * 70000)]
        assert demuxer.pending == 0


def test_header_layout() -> None:
    assert frame(2, b"ab") == b"\x02\x00\x00\x00\x00\x00\x00\x02ab"


def test_bad_stream_number() -> None:
    with pytest.raises(StreamFormatError):
        list(Demuxer().feed(b"\x09\x00\x00\x00\x00\x00\x00\x01a"))


def test_detach_keys() -> None:
    proxy = EscapeProxy()
    assert proxy.filter(b"ab") == (b"ab", False)
    assert proxy.filter(b"x\x10") == (b"x", False)
    assert proxy.filter(b"\x11") == (b"", True)
    assert proxy.filter(b"\x10y") == (b"\x10y", False)
    assert proxy.filter(b"\x10\x10\x11") == (b"\x10", True)
