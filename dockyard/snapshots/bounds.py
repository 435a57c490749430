"""Bounds on how much a layer may expand: decompression bombs and over-large layers.

Terms:

- *expanded bytes*: the bytes of the plain (uncompressed) tar, and separately the bytes written
  to disk for its files (a GNU sparse entry can declare a huge file with almost no data, so
  the second can exceed the first).
- *ratio*: expanded bytes divided by the compressed bytes read so far. A hostile blob can
  expand a few kilobytes into terabytes (zstd and xz reach ratios far above 10,000:1 on
  zeros; gzip cannot exceed about 1,032:1, so the default cap never trips on gzip).
  The ratio is checked only past ``ratio_floor`` expanded bytes, so small, very repetitive
  layers are never refused.

Limits are configured by environment variables read when a limit is needed (so the daemon's
environment decides, and tests can change them):

- ``DOCKYARD_MAX_LAYER_BYTES``: the most bytes one layer may expand to (default 64 GiB);
- ``DOCKYARD_MAX_LAYER_RATIO``: the highest expansion ratio (default 5000; 0 disables);
- ``DOCKYARD_LAYER_RATIO_FLOOR``: bytes expanded before the ratio is enforced (default 64 MiB).

Docker itself sets no such bounds: the errors are ours, worded in its style and raised as
:class:`InvalidParameter` (too large) or :class:`CorruptContent` (a bomb) so they map to 400.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from dockyard.errors import CorruptContent, InvalidParameter
from dockyard.snapshots.readers import PassThroughReader

ENV_MAX_BYTES = "DOCKYARD_MAX_LAYER_BYTES"
ENV_MAX_RATIO = "DOCKYARD_MAX_LAYER_RATIO"
ENV_RATIO_FLOOR = "DOCKYARD_LAYER_RATIO_FLOOR"


class ByteCounter(Protocol):
    """Anything that counts the bytes it has read (``count``)."""

    count: int


@dataclass(frozen=True)
class LayerLimits:
    """The bounds of one layer's expansion (see the module docstring)."""

    max_bytes: int = 64 << 30
    max_ratio: int = 5000
    ratio_floor: int = 64 << 20

    @classmethod
    def from_env(cls) -> LayerLimits:
        """The limits the environment sets, the defaults for those it does not."""
        default = cls()
        return cls(_env_int(ENV_MAX_BYTES, default.max_bytes), _env_int(ENV_MAX_RATIO, default.max_ratio),
                   _env_int(ENV_RATIO_FLOOR, default.ratio_floor))


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParameter(f"invalid {name}={raw!r}: not an integer") from None
    if value < 0:
        raise InvalidParameter(f"invalid {name}={raw!r}: negative")
    return value


def check_layer_size(expanded: int, limits: LayerLimits) -> None:
    """Refuse a layer past ``limits.max_bytes`` expanded bytes."""
    if expanded > limits.max_bytes:
        raise InvalidParameter(
            f"layer too large: it expands to more than {limits.max_bytes} bytes ({ENV_MAX_BYTES})")


def check_ratio(expanded: int, compressed: int, limits: LayerLimits) -> None:
    """Refuse a stream that expands past ``limits.max_ratio`` times its compressed size."""
    if not limits.max_ratio or expanded <= limits.ratio_floor:
        return
    if expanded > limits.max_ratio * max(compressed, 1):
        raise CorruptContent(
            f"invalid layer: decompressed size is more than {limits.max_ratio} times the compressed size "
            f"({expanded} bytes from {compressed}); refusing a likely decompression bomb ({ENV_MAX_RATIO})")


class SizeCap(PassThroughReader):
    """Reads through ``raw`` and refuses (:func:`check_layer_size`) once too many bytes came."""

    def __init__(self, raw: BinaryIO, limits: LayerLimits) -> None:
        super().__init__(raw)
        self._limits = limits

    def seen(self, data: bytes) -> None:
        check_layer_size(self.count, self._limits)


class RatioGuard(PassThroughReader):
    """Reads decompressed bytes from ``raw`` while ``compressed.count`` tells the bytes it consumed."""

    def __init__(self, raw: BinaryIO, compressed: ByteCounter, limits: LayerLimits) -> None:
        super().__init__(raw)
        self._compressed = compressed
        self._limits = limits

    def seen(self, data: bytes) -> None:
        check_ratio(self.count, self._compressed.count, self._limits)


@dataclass
class WriteBudget:
    """Bytes written to disk for one layer's files, refused past ``limits.max_bytes``."""

    limits: LayerLimits
    written: int = 0

    def charge(self, n: int) -> None:
        self.written += n
        check_layer_size(self.written, self.limits)
