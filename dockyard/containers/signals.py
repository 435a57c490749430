"""Signal names as Docker's API and CLI take them."""

from __future__ import annotations

import re
import signal as signals

from dockyard.errors import InvalidParameter


def parse_signal(value: str | int | None, default: int = signals.SIGKILL) -> int:
    """A signal given as ``SIGTERM``, ``TERM``, ``15`` or ``SIGRTMIN+3``; Docker's error otherwise."""
    if value in (None, ""):
        return default
    text = str(value).upper()
    if text.isdigit():
        num = int(text)
        if 0 < num < signals.NSIG:
            return num
        raise InvalidParameter(f"Invalid signal: {value}")
    name = text if text.startswith("SIG") else "SIG" + text
    m = re.fullmatch(r"SIGRTM(IN|AX)([+-]\d+)?", name)
    if m:
        base = signals.SIGRTMIN if m.group(1) == "IN" else signals.SIGRTMAX
        num = int(base) + int(m.group(2) or 0)
        if signals.SIGRTMIN <= num <= signals.SIGRTMAX:
            return num
        raise InvalidParameter(f"Invalid signal: {value}")
    try:
        return int(signals.Signals[name])
    except KeyError:
        raise InvalidParameter(f"Invalid signal: {value}") from None
