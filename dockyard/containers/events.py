"""The event bus behind ``GET /events``: what happened to containers, images and networks, in
Docker's shape.

Terms:
- *event*: one thing that happened (``Type`` container/image/network, ``Action`` start/die/tag…, the
  ``Actor`` it happened to with its ``Attributes``), stamped with ``time``/``timeNano``.
- *history*: the last :data:`HISTORY` events, kept in memory (like dockerd) so that ``since``
  can replay them; nothing survives a daemon restart.
- *subscriber*: an ``asyncio.Queue`` that receives every event published after it subscribed.
- *filters*: Docker's ``filters`` of ``GET /events``: ``type``, ``event`` (the action, also
  matching the part before ``:`` as in ``exec_create: sh``), ``container`` (ID, ID prefix or
  name), ``image``, ``label`` (``key`` or ``key=value``), ``scope``, ``network`` (a network event's
  network, by ID or name).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dockyard import filters as docker_filters

HISTORY = 1024
FILTER_KEYS = ("type", "event", "container", "image", "label", "scope", "daemon", "network", "volume",
               "plugin", "node", "service", "secret", "config")


@dataclass(frozen=True)
class Event:
    type: str                 # "container", "image", …
    action: str               # "start", "die", "exec_create: sh -c …", "tag"…
    actor_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    time_nano: int = 0

    def to_docker(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.type in ("container", "image"):
            # The legacy fields Docker still sends for these two types.
            out["status"] = self.action
            out["id"] = self.actor_id
            if self.type == "container" and "image" in self.attributes:
                out["from"] = self.attributes["image"]
        out.update({
            "Type": self.type,
            "Action": self.action,
            "Actor": {"ID": self.actor_id, "Attributes": dict(self.attributes)},
            "scope": "local",
            "time": self.time_nano // 1_000_000_000,
            "timeNano": self.time_nano,
        })
        return out

    def matches(self, filters: dict[str, list[str]]) -> bool:
        def any_of(key: str, candidates: Iterable[str]) -> bool:
            wanted = filters.get(key)
            if not wanted:
                return True
            values = [c for c in candidates if c]
            return any(w == v for w in wanted for v in values)

        if not any_of("type", [self.type]):
            return False
        if not any_of("event", [self.action, self.action.partition(":")[0]]):
            return False
        if not any_of("scope", ["local"]):
            return False
        if "container" in filters:
            name = self.attributes.get("name", "")
            if self.type != "container" or not any(
                    w in (name, "/" + name) or self.actor_id.startswith(w) for w in filters["container"]):
                return False
        if "image" in filters:
            names = [self.attributes.get("image", "")]
            if self.type == "image":
                names += [self.actor_id, self.attributes.get("name", "")]
            expanded = names + [n.rsplit(":", 1)[0] for n in names if ":" in n and "/" not in n.rsplit(":", 1)[1]]
            if not any_of("image", expanded):
                return False
        for item in filters.get("label", []):
            key, eq, value = item.partition("=")
            if key not in self.attributes or (eq and self.attributes[key] != value):
                return False
        if "network" in filters and (self.type != "network" or not any(
                w in (self.actor_id, self.attributes.get("name", "")) for w in filters["network"])):
            return False
        for key in ("daemon", "volume", "plugin", "node", "service", "secret", "config"):
            if filters.get(key):
                return False  # no such objects emit events here
        return True


def normalize_filters(raw: Any) -> dict[str, list[str]]:
    """``{"type": ["container"]}`` or the legacy ``{"type": {"container": true}}``; unknown keys refused."""
    return docker_filters.normalize(raw, FILTER_KEYS)


class EventBus:
    """Publish events; subscribe to the ones to come; replay the recent ones."""

    def __init__(self) -> None:
        self.history: deque[Event] = deque(maxlen=HISTORY)
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._last_nano = 0

    def publish(self, type: str, action: str, actor_id: str, attributes: dict[str, str] | None = None) -> Event:
        now = time.time_ns()
        now = max(now, self._last_nano + 1)  # strictly increasing, so order survives since/until
        self._last_nano = now
        event = Event(type=type, action=action, actor_id=actor_id, attributes=dict(attributes or {}),
                      time_nano=now)
        self.history.append(event)
        for queue in list(self._subscribers):
            queue.put_nowait(event)
        return event

    def subscribe(self) -> tuple[list[Event], asyncio.Queue[Event]]:
        """The history so far and a queue of what comes next (unsubscribe when done)."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.add(queue)
        return list(self.history), queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self._subscribers.discard(queue)
