"""Request limits: 429 ``TOOMANYREQUESTS`` with ``Retry-After`` when one client asks too much.

Terms:
- *client*: the peer's IP address.
- *concurrency limit* (``concurrent_requests_per_client``): how many requests of one client may be
  handled at once (a request counts from its arrival until its handler is done, which includes
  receiving an upload's body); one more is refused with ``Retry-After: 1``.
- *rate limit* (``requests_per_second`` with ``burst``): a token bucket per client holding up to
  ``burst`` tokens (default: one second's worth, at least 1), refilled at ``requests_per_second``;
  each request takes a token, and an empty bucket refuses the request, ``Retry-After`` saying in
  how many whole seconds the next token is there.

Zero (the default) turns a limit off. The config file's ``limits`` object holds the three keys.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dockyard.registry.errors import SpecError

MAX_CLIENTS = 10_000  # buckets kept before the full ones are forgotten


@dataclass(frozen=True)
class Limits:
    concurrent: int = 0
    rate: float = 0.0
    burst: int = 0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Limits:
        rate = float(config.get("requests_per_second", 0))
        burst = int(config.get("burst", 0)) or max(1, math.ceil(rate))
        limits = cls(int(config.get("concurrent_requests_per_client", 0)), rate, burst)
        if limits.concurrent < 0 or limits.rate < 0 or limits.burst < 0:
            raise ValueError("limits must not be negative")
        return limits


def _too_many(message: str, retry_after: int) -> SpecError:
    error = SpecError("TOOMANYREQUESTS", message)
    error.headers = [("Retry-After", str(retry_after))]
    return error


class Limiter:
    """Admits or refuses each request of a client under :class:`Limits`; ``clock`` is monotonic seconds."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._running: dict[str, int] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when counted)

    def admit(self, client: str) -> None:
        """Count a request of ``client`` in, or raise 429 TOOMANYREQUESTS (then nothing is counted)."""
        running = self._running.get(client, 0)
        if self.limits.concurrent and running >= self.limits.concurrent:
            raise _too_many(f"more than {self.limits.concurrent} requests at once", 1)
        if self.limits.rate:
            self._take(client)
        self._running[client] = running + 1

    def release(self, client: str) -> None:
        """The request of ``client`` is done."""
        left = self._running.get(client, 0) - 1
        if left > 0:
            self._running[client] = left
        else:
            self._running.pop(client, None)

    def _take(self, client: str) -> None:
        now = self.clock()
        rate, burst = self.limits.rate, float(self.limits.burst)
        tokens, then = self._buckets.get(client, (burst, now))
        tokens = min(burst, tokens + (now - then) * rate)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            raise _too_many(f"more than {rate:g} requests per second",
                            max(1, math.ceil((1 - tokens) / rate)))
        self._buckets[client] = (tokens - 1, now)
        if len(self._buckets) > MAX_CLIENTS:
            self._buckets = {c: (t, w) for c, (t, w) in self._buckets.items()
                             if t + (now - w) * rate < burst}
