"""Docker's detach keys on the input side of ``run -it``: Ctrl-P then Ctrl-Q leaves the container running.

An *escape proxy* watches stdin bytes. A byte that starts the sequence is held back; if the whole
sequence arrives the proxy reports a detach, otherwise the held bytes go through unchanged.
"""

from __future__ import annotations

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q


class EscapeProxy:
    """``filter(data) -> (bytes to forward, detached?)``."""

    def __init__(self, keys: bytes = DEFAULT_DETACH_KEYS) -> None:
        self.keys = keys
        self._held = 0  # how many bytes of ``keys`` have been matched and held back

    def filter(self, data: bytes) -> tuple[bytes, bool]:
        out = bytearray()
        for byte in data:
            if byte == self.keys[self._held]:
                self._held += 1
                if self._held == len(self.keys):
                    self._held = 0
                    return bytes(out), True
                continue
            if self._held:
                out += self.keys[:self._held]
                self._held = 0
                if byte == self.keys[0]:
                    self._held = 1
                    continue
            out.append(byte)
        return bytes(out), False
