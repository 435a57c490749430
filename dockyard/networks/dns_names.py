"""The names the embedded DNS server answers, per network, and each container's view of them.

Terms:

- an *endpoint*: a container's attachment to one network, named by the caller (the container's ID),
  with its DNS *names* (the container's name, its ``--network-alias`` aliases, …) and its addresses
  on that network.
- a *view* (:class:`NetworkView`): what one container resolves — the names on the networks it is on,
  tried in the order its ``networks()`` gives (Docker: the first network that knows the name answers,
  with the addresses of every endpoint there carrying that name). Its PTR name for an address is
  ``<container name>.<network>``, as Docker's.
- a container's *link aliases* on a network (``--link name:alias`` there): ``links(network)`` maps
  ``alias`` to ``name``; as Docker's sandbox, a name is first looked up as a link alias on each of
  the container's networks (answering what the linked name answers there), and only then as a name
  — skipping a network where it is a link alias.

:class:`NameTable` is daemon-wide and thread-safe: the network service changes it while the DNS
server's thread reads it.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class _Endpoint:
    name: str
    names: tuple[str, ...]
    addresses: tuple[str, ...]


class NameTable:
    """Every network's endpoints and the names that reach them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._endpoints: dict[str, dict[str, _Endpoint]] = {}  # network -> endpoint key -> endpoint
        self._by_name: dict[str, dict[str, set[str]]] = {}  # network -> name -> endpoint keys

    def set(self, network: str, endpoint: str, *, name: str, aliases: Sequence[str] = (),
            addresses: Sequence[str]) -> None:
        """Record (or replace) ``endpoint`` on ``network``: reachable as ``name`` and ``aliases``
        (matched case-insensitively) at ``addresses``."""
        names = tuple(dict.fromkeys(n.lower().rstrip(".") for n in (name, *aliases) if n))
        record = _Endpoint(name, names, tuple(str(ipaddress.ip_address(a)) for a in addresses))
        with self._lock:
            self._drop(network, endpoint)
            self._endpoints.setdefault(network, {})[endpoint] = record
            index = self._by_name.setdefault(network, {})
            for n in names:
                index.setdefault(n, set()).add(endpoint)

    def remove(self, network: str, endpoint: str) -> None:
        """Forget ``endpoint`` on ``network`` (nothing when unknown)."""
        with self._lock:
            self._drop(network, endpoint)

    def _drop(self, network: str, endpoint: str) -> None:
        old = self._endpoints.get(network, {}).pop(endpoint, None)
        if old is None:
            return
        index = self._by_name[network]
        for n in old.names:
            keys = index.get(n)
            if keys is not None:
                keys.discard(endpoint)
                if not keys:
                    del index[n]
        if not self._endpoints[network]:
            del self._endpoints[network], self._by_name[network]

    def lookup(self, network: str, name: str) -> list[str] | None:
        """The addresses of every endpoint on ``network`` called ``name``; None when none is."""
        with self._lock:
            keys = self._by_name.get(network, {}).get(name.lower())
            if not keys:
                return None
            endpoints = self._endpoints[network]
            found: list[str] = []
            for key in sorted(keys):
                found.extend(a for a in endpoints[key].addresses if a not in found)
            return found

    def name_at(self, network: str, address: str) -> str | None:
        """``<container name>.<network>`` for the endpoint at ``address`` on ``network``."""
        with self._lock:
            for record in self._endpoints.get(network, {}).values():
                if address in record.addresses:
                    return f"{record.name}.{network}"
        return None

    def view(self, networks: Callable[[], Sequence[str]],
             links: Callable[[str], Mapping[str, str]] | None = None) -> NetworkView:
        """The view of a container whose networks (names, in lookup order) ``networks()`` gives now,
        and whose link aliases on a network ``links(network)`` gives (alias → linked name, lowercase).

        Docker's order is its sandbox's endpoint order: a higher ``--gw-priority`` first, internal
        networks after the others, then by network name (so ``my.dotted`` before ``mynet``)."""
        return NetworkView(self, networks, links)


class NetworkView:
    """One container's view of a :class:`NameTable` (a ``ScopedNameView`` for the DNS server)."""

    def __init__(self, table: NameTable, networks: Callable[[], Sequence[str]],
                 links: Callable[[str], Mapping[str, str]] | None = None) -> None:
        self.table = table
        self.networks = networks
        self.links = links or (lambda network: {})

    def addresses(self, name: str) -> list[str] | None:
        networks = self.networks()
        for network in networks:  # link aliases first, on every network
            found = self._by_link(network, name)
            if found is not None:
                return found
        for network in networks:
            if name.lower() in self.links(network):
                continue
            found = self.table.lookup(network, name)
            if found is not None:
                return found
        return None

    def addresses_on(self, name: str, network: str) -> list[str] | None:
        if network not in self.networks():
            return None
        if name.lower() in self.links(network):
            return self._by_link(network, name)
        return self.table.lookup(network, name)

    def _by_link(self, network: str, name: str) -> list[str] | None:
        target = self.links(network).get(name.lower())
        return None if target is None else self.table.lookup(network, target)

    def name_of(self, address: str) -> str | None:
        for network in self.networks():
            found = self.table.name_at(network, address)
            if found is not None:
                return found
        return None
