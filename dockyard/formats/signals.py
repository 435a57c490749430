"""Signals as Docker's API takes them (moby's ``signal.ParseSignal``): a non-zero number, or a name
with or without ``SIG`` in any case (``SIGTERM``, ``term``, ``RTMIN+3``). A number must be a signal
this platform has (``ValidSignalForPlatform``).
"""

from __future__ import annotations

import re
import signal as _signal

from dockyard.errors import InvalidParameter


def _signal_map() -> dict[str, int]:
    """moby's ``SignalMap`` for Linux: name without ``SIG`` → number, the real-time ones included."""
    names = {s.name[3:]: int(s) for s in _signal.Signals if s.name.startswith("SIG") and not s.name.startswith("SIG_")}
    names.update({"CLD": int(_signal.SIGCHLD), "IOT": int(_signal.SIGABRT), "POLL": int(_signal.SIGIO)})
    low, high = int(_signal.SIGRTMIN), int(_signal.SIGRTMAX)
    names.update({"RTMIN": low, "RTMAX": high})
    names.update({f"RTMIN+{i}": low + i for i in range(1, 16)})
    names.update({f"RTMAX-{i}": high - i for i in range(1, 15)})
    return names


SIGNAL_MAP = dict(_signal_map())
_VALID_NUMBERS = frozenset(SIGNAL_MAP.values())


def parse_signal(value: str | int | None, default: int = int(_signal.SIGKILL)) -> int:
    """The signal number ``value`` names (``default`` when empty); InvalidParameter with Docker's message."""
    if value is None or value == "":
        return default
    text = str(value)
    if re.fullmatch(r"[+-]?[0-9]+", text):
        number = int(text)
        if number == 0:
            raise InvalidParameter(f"invalid signal: {text}")
        if number not in _VALID_NUMBERS:
            raise InvalidParameter(f"the linux daemon does not support signal {number}")
        return number
    name = text.upper()
    if name.startswith("SIG"):
        name = name[3:]
    if name not in SIGNAL_MAP:
        raise InvalidParameter(f"invalid signal: {text}")
    return SIGNAL_MAP[name]
