"""Who answers to which name on which network: the hook the embedded DNS server (``dns.py``) reads.

Terms:

- *entry* (:class:`NameEntry`): one container's attachment to one user-defined network as DNS sees
  it: the names it answers to there (its name, its aliases, its short ID), its address, the path
  of its network namespace (where a resolver for it listens on 127.0.0.11), and its *links*.
- *link* (``--link name:alias`` on a user network, ``EndpointSettings.Links``): not /etc/hosts and
  environment as on the default bridge, but a name only this container resolves: ``alias`` answers
  what ``name`` answers on that network (Docker's ``CreateOptionAlias``). :func:`parse_link` reads one.
- The network service registers an entry when a container joins a network and unregisters it when it
  leaves; *listeners* (``on_change``) are told of both, so a DNS server can start or stop listening in
  a namespace. The default bridge has no entries: as in Docker, names resolve only on user networks.

- *kept resolver*: a running container whose sandbox has had the embedded resolver (it joined a user
  network) but may have no entry left: as dockerd's, the resolver outlives a disconnect from the
  last user network, and a daemon restart must serve it again (:meth:`NameRegistry.keep_resolver`).

Wiring a DNS server: the daemon's one registry is ``ContainerService.networks.names``. The entries and
kept resolvers of containers still running from before a daemon restart are registered during
``recover()``; a server attached afterwards starts from :meth:`NameRegistry.entries` and
:meth:`NameRegistry.kept_resolvers`, then follows the listeners. Lookups
are scoped by the networks of the asking container: ``lookup({network ids of the asker}, name)``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from dockyard.errors import InvalidParameter


@dataclass(frozen=True)
class NameEntry:
    network_id: str
    container_id: str
    names: tuple[str, ...]
    ip: str
    netns: str
    upstreams: tuple[str, ...] = field(default=())  # where names not ours are forwarded
    links: tuple[str, ...] = field(default=())  # "name:alias" (see the module's terms)
    ip6: str = ""  # the IPv6 address on a network with IPv6 ("" when none)

    @property
    def addresses(self) -> list[str]:
        """Its addresses on the network: IPv4, then IPv6 when it has one."""
        return [a for a in (self.ip, self.ip6) if a]


def parse_link(text: str) -> tuple[str, str]:
    """``(name, alias)`` of a link as Docker's ``ParseLink`` reads it: ``name`` alone is its own
    alias, ``/name:/container/alias`` (a legacy link as inspect shows it) gives ``alias``."""
    if not text:
        raise InvalidParameter("empty string specified for links")
    parts = text.split(":")
    if len(parts) > 2:
        raise InvalidParameter(f"bad format for links: {text}")
    if len(parts) == 1:
        return text, text
    if parts[0].startswith("/"):
        return parts[0][1:], parts[1].rsplit("/", 1)[-1]
    return parts[0], parts[1]


Listener = Callable[[str, NameEntry], None]  # ("register" | "unregister", entry)


class NameRegistry:
    """The entries of every network, kept in memory (the network service restores them at start)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], NameEntry] = {}
        self._kept: dict[str, str] = {}  # container id -> its namespace's path
        self._lock = threading.Lock()
        self.listeners: list[Listener] = []

    def register(self, entry: NameEntry) -> None:
        with self._lock:
            self._entries[(entry.network_id, entry.container_id)] = entry
        for listener in list(self.listeners):
            listener("register", entry)

    def unregister(self, network_id: str, container_id: str) -> None:
        with self._lock:
            entry = self._entries.pop((network_id, container_id), None)
        if entry is not None:
            for listener in list(self.listeners):
                listener("unregister", entry)

    def lookup(self, network_ids: set[str], name: str) -> list[str]:
        """The addresses answering to ``name`` (case-insensitive) on any of ``network_ids``."""
        wanted = name.rstrip(".").lower()
        with self._lock:
            return [a for (net, _), e in sorted(self._entries.items())
                    if net in network_ids and wanted in (n.lower() for n in e.names) for a in e.addresses]

    def keep_resolver(self, container_id: str, netns: str) -> None:
        """The container (running, its namespace at ``netns``) has a kept resolver (see the terms)."""
        with self._lock:
            self._kept[container_id] = netns

    def drop_resolver(self, container_id: str) -> None:
        with self._lock:
            self._kept.pop(container_id, None)

    def kept_resolvers(self) -> dict[str, str]:
        """Container id -> namespace path of the kept resolvers."""
        with self._lock:
            return dict(self._kept)

    def entries(self, container_id: str | None = None) -> list[NameEntry]:
        with self._lock:
            return [e for e in self._entries.values() if container_id is None or e.container_id == container_id]
