"""The embedded DNS server wired to the network service's name registry.

Terms:

- the *registry* (``names.NameRegistry``): the network service's entries (container, user network) →
  names, address, namespace; its listeners are told of each register/unregister.
- the *table* (``dns_names.NameTable``): what the DNS server reads, keyed by network *name* (Docker's
  ``name.network`` and PTR ``<container>.<network>`` use the network's name).
- an *attachment*: a container's listeners on 127.0.0.11:53 in its namespace (``EmbeddedDns.attach``),
  made when its first user-network entry registers (after a daemon restart also for a container whose
  registry names a kept resolver, though it has no entry left) and closed by :meth:`DnsWiring.forget` when its run's
  networking is given back (the namespace goes: the listeners must not hold it). As dockerd's resolver,
  it outlives a disconnect from the container's last user network (names not ours are still
  forwarded). The view it is given reads the container's networks at each query, so
  connect/disconnect need no re-attach.
- *DNS settings* of a container (``dns_settings(container_id)``): its ``--dns`` servers ([] = the host's
  resolvers, re-read when the host file changes) and whether its resolv.conf options set ndots.

A container on internal networks only does not forward to the host's resolvers (Docker 26+): names
not ours get SERVFAIL — but its own ``--dns`` servers are still asked, from its namespace (Docker's
resolver skips only host-namespace servers when the sandbox has no external access).
Listener calls come from the service's callers (worker threads), never the daemon's event loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.errors import DockyardError
from dockyard.networks.dns import EmbeddedDns
from dockyard.networks.dns_names import NameTable
from dockyard.networks.names import NameEntry, NameRegistry, parse_link
from dockyard.networks.service import NetworkService

log = logging.getLogger(__name__)

# network id → (network name, internal); None when the network is unknown
NetworkInfo = Callable[[str], "tuple[str, bool] | None"]
# container id → (its --dns servers, ndots set in its options)
DnsSettings = Callable[[str], "tuple[list[str], bool]"]


@dataclass
class _Container:
    networks: dict[str, tuple[str, bool]] = field(default_factory=dict)  # network id → (name, internal)
    links: dict[str, dict[str, str]] = field(default_factory=dict)  # network name → link alias → linked name
    netns: str = ""
    forwards: bool | None = None  # whether the attachment forwards (None: not attached)


class DnsWiring:
    """Keeps ``dns``'s attachments and ``table`` in step with ``registry``; see the module's terms."""

    def __init__(self, dns: EmbeddedDns, registry: NameRegistry, network_info: NetworkInfo,
                 dns_settings: DnsSettings) -> None:
        self.dns = dns
        self.registry = registry
        self.table = NameTable()
        self._network_info = network_info
        self._dns_settings = dns_settings
        self._lock = threading.RLock()
        self._containers: dict[str, _Container] = {}
        registry.listeners.append(self._on_change)
        for entry in registry.entries():  # containers still running from before a daemon restart
            self._on_change("register", entry)
        for container_id, netns in registry.kept_resolvers().items():  # ... and those left without entries
            if container_id not in self._containers:
                self._keep(container_id, netns)

    def close(self) -> None:
        """Stop following the registry and close every attachment (a daemon's stop; the containers'
        namespaces stay, and the next daemon attaches again)."""
        if self._on_change in self.registry.listeners:
            self.registry.listeners.remove(self._on_change)
        self.dns.close()

    def networks_of(self, container_id: str) -> list[str]:
        """The container's user networks by name, in Docker's lookup order (internal ones after the
        others, then by name)."""
        with self._lock:
            state = self._containers.get(container_id)
            found = list(state.networks.values()) if state is not None else []
        return [name for name, _ in sorted(found, key=lambda ni: (ni[1], ni[0]))]

    def links_of(self, container_id: str, network: str) -> dict[str, str]:
        """The container's link aliases on ``network`` (by name): alias → linked name, lowercase."""
        with self._lock:
            state = self._containers.get(container_id)
            return state.links.get(network, {}) if state is not None else {}

    def _on_change(self, action: str, entry: NameEntry) -> None:
        try:
            if action == "register":
                self._register(entry)
            else:
                self._unregister(entry)
        except (DockyardError, OSError) as exc:  # a DNS failure must not fail a start or a connect
            log.warning("embedded DNS for container %s: %s", entry.container_id[:12], exc)

    def _register(self, entry: NameEntry) -> None:
        info = self._network_info(entry.network_id)
        if info is None:
            return
        name, internal = info
        container_name, *aliases = entry.names or ("",)
        links: dict[str, str] = {}
        for text in entry.links:
            try:
                linked, alias = parse_link(text)
            except DockyardError:
                continue  # refused when the endpoint was made; an old record's is skipped
            links[alias.lower()] = linked.lower()
        with self._lock:
            self.table.set(name, entry.container_id, name=container_name, aliases=aliases, addresses=entry.addresses)
            state = self._containers.setdefault(entry.container_id, _Container())
            state.networks[entry.network_id] = (name, internal)
            state.links[name] = links
            state.netns = entry.netns
            self._sync(entry.container_id, state)

    def _unregister(self, entry: NameEntry) -> None:
        with self._lock:
            state = self._containers.get(entry.container_id)
            if state is None:
                return
            found = state.networks.pop(entry.network_id, None)
            if found is not None:
                self.table.remove(found[0], entry.container_id)
                state.links.pop(found[0], None)
            if state.networks:
                self._sync(entry.container_id, state)

    def _keep(self, container_id: str, netns: str) -> None:
        """Attach a container that has no user network now but had the resolver before a daemon
        restart (it disconnected from its last one): it forwards, as it did."""
        try:
            with self._lock:
                state = self._containers.setdefault(container_id, _Container(netns=netns))
                self._sync(container_id, state)
        except (DockyardError, OSError) as exc:
            log.warning("embedded DNS for container %s: %s", container_id[:12], exc)

    def forget(self, container_id: str) -> None:
        """The container's run gave back its networking: close its attachment (nothing when none)."""
        with self._lock:
            state = self._containers.pop(container_id, None)
            for name, _ in (state.networks.values() if state is not None else ()):
                self.table.remove(name, container_id)
        if state is not None:
            try:
                self.dns.detach(container_id)
            except (DockyardError, OSError) as exc:
                log.warning("embedded DNS for container %s: %s", container_id[:12], exc)

    def _sync(self, container_id: str, state: _Container) -> None:
        """Attach the container (again when whether it forwards changed); call with the lock held."""
        # none left (a disconnect from the last one): it forwards, as it did before the disconnect
        forwards = not state.networks or not all(internal for _, internal in state.networks.values())
        if state.forwards == forwards:
            return
        servers, ndots_set = self._dns_settings(container_id)
        upstreams: list[str] | None = servers or (None if forwards else [])
        view = self.table.view(lambda: self.networks_of(container_id),
                               lambda network: self.links_of(container_id, network))
        self.dns.attach(container_id, Path(state.netns), view, upstreams, ndots_set=ndots_set)
        state.forwards = forwards


def wire(dns: EmbeddedDns, service: NetworkService, dns_settings: DnsSettings) -> DnsWiring:
    """The daemon's wiring: ``dns`` follows ``service``'s name registry (call after the containers'
    recovery, which registers the names of those still running)."""

    def network_info(network_id: str) -> tuple[str, bool] | None:
        try:
            net = service.get(network_id)
        except DockyardError:
            return None
        return (None if net.default else (net.name, net.internal))

    return DnsWiring(dns, service.names, network_info, dns_settings)
