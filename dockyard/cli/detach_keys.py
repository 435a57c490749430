"""Docker's ``--detach-keys`` syntax: comma-separated keys, each ``ctrl-<key>`` or one character.

``ctrl-a`` … ``ctrl-z`` are bytes 1 … 26; ``ctrl-@``, ``ctrl-[``, ``ctrl-\\``, ``ctrl-]``, ``ctrl-^``,
``ctrl-_`` are 0 and 27 … 31. ``ctrl-p,ctrl-q`` (the default) is ``b"\\x10\\x11"``.
"""

from __future__ import annotations

from dockyard.cli.failure import CliFailure

_CTRL_SPECIAL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(text: str) -> bytes:
    """The byte sequence for ``text``; a :class:`CliFailure` with Docker's message when invalid."""
    out = bytearray()
    for key in text.split(","):
        lowered = key.lower()
        if len(key.encode()) == 1:  # one byte, as Go's len(key)
            out.append(ord(key))
        elif lowered.startswith("ctrl-") and len(key) == 6:
            ch = lowered[5]
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
            elif ch in _CTRL_SPECIAL:
                out.append(_CTRL_SPECIAL[ch])
            else:
                raise CliFailure(f"Invalid detach keys ({text}) provided", 1)
        else:
            raise CliFailure(f"Invalid detach keys ({text}) provided", 1)
    return bytes(out)
