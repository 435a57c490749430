"""Detach keys: the key sequence that ends an attach without stopping the container.

Docker's format is a comma-separated list of keys, each a single character or ``ctrl-<c>`` with
``<c>`` one of a–z, ``@``, ``[``, ``\\``, ``]``, ``^``, ``_``; the default is ``ctrl-p,ctrl-q``.
The *scanner* watches the stdin stream of an attach: bytes that could start the sequence are
held back; the whole sequence means "detach"; anything else is passed on unchanged.
"""

from __future__ import annotations

from dockyard.errors import InvalidParameter

DEFAULT = "ctrl-p,ctrl-q"
_CTRL_SYMBOLS = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse(keys: str) -> bytes:
    """``ctrl-p,ctrl-q`` → ``b"\\x10\\x11"``; Docker's error for anything else."""
    out = bytearray()
    for key in keys.split(","):
        low = key.strip().lower()
        if len(key.encode()) == 1:  # one byte, as Go's len(key): "é" is two and so no key
            out.append(ord(key))
        elif low.startswith("ctrl-") and len(low) == 6 and ("a" <= low[5] <= "z"):
            out.append(ord(low[5]) - ord("a") + 1)
        elif low.startswith("ctrl-") and len(low) == 6 and low[5] in _CTRL_SYMBOLS:
            out.append(_CTRL_SYMBOLS[low[5]])
        else:
            raise InvalidParameter(f"Invalid detach keys ({keys}) provided")
    if not out:
        raise InvalidParameter(f"Invalid detach keys ({keys}) provided")
    return bytes(out)


class Scanner:
    """Finds the detach sequence in a byte stream fed in chunks of any size."""

    def __init__(self, sequence: bytes) -> None:
        self.sequence = sequence
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """The bytes to pass on, and whether the sequence was typed (then the rest is dropped)."""
        out = bytearray()
        for byte in data:
            candidate = self.held + bytes([byte])
            if self.sequence.startswith(candidate):
                if candidate == self.sequence:
                    self.held = b""
                    return bytes(out), True
                self.held = candidate
                continue
            out += self.held
            self.held = b""
            if self.sequence.startswith(bytes([byte])):
                self.held = bytes([byte])
            else:
                out.append(byte)
        return bytes(out), False
