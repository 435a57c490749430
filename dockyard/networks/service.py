"""The network service: network records, their bridges and nft elements, and containers' endpoints.

Terms (Docker's):

- *predefined networks*: ``bridge`` (the default, on the bridge device :attr:`Naming.default_bridge`,
  with a subnet :func:`ipam.pick_subnet` chose once and recorded), ``host`` and ``none``. They are
  recorded like the others and never removed.
- *user-defined network*: a bridge network made by ``network create``; its bridge is made at once
  and given its elements in our nft table (:class:`Firewall`).
- *sandbox*: a container's network namespace, pinned at ``<run dir>/netns/<container id>``
  (:attr:`Naming.run_dir`)
  while the container runs (:mod:`netns`); the runtime ``setns()``es its init there.
- *endpoint*: a sandbox's attachment to a network (a veth: host end on the bridge, ``eth<n>`` inside,
  an address from the network's IPAM pool); see :mod:`records`. Published ports belong to the
  container (the nft map element's owner) and go with its sandbox.

Every operation here blocks (netlink, nft, SQLite): the containers service calls it on its worker
pool, never on the event loop. One lock keeps the records, pools and kernel state in step.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import secrets
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard import filters as docker_filters
from dockyard.errors import Conflict, DockyardError, Forbidden, InvalidParameter, NotFound
from dockyard.formats import timestamps
from dockyard.metadata import open_db
from dockyard.networks import ipam, netlink, netns, network_views, publishing
from dockyard.networks.firewall import Firewall, PortForward
from dockyard.networks.names import NameEntry, NameRegistry
from dockyard.networks.naming import Naming
from dockyard.networks.ports import PortRequest, Published
from dockyard.networks.records import Endpoint, Network, NetworkStore
from dockyard.networks.relay import LoopbackRelay

log = logging.getLogger("dockyard.networks")

BRIDGE_NAME_OPT = "com.docker.network.bridge.name"
MASQ_OPT = "com.docker.network.bridge.enable_ip_masquerade"
MTU_OPT = "com.docker.network.driver.mtu"
HOST_BINDING_OPT = "com.docker.network.bridge.host_binding_ipv4"
OVERLAP = "invalid pool request: Pool overlaps with other one on this address space"
PREDEFINED = ("bridge", "host", "none")

EventSink = Callable[[str, str, dict[str, str]], None]  # (action, network id, attributes)


@dataclass
class NetworkOptions:
    """The daemon's settings (daemon.json): ``ip`` (the default host address of ``-p``) and
    ``userland-proxy`` (when true, as by default, a host port some process of the host holds is refused
    as dockerd's proxy would fail to bind it; publishing itself is always nft DNAT)."""

    default_bind_ip: str = "0.0.0.0"
    userland_proxy: bool = True
    mtu: int = 1500
    host_id: str = ""  # the engine's ID: where IPv6 subnets come from (ipam.ula_pool); "" = the root's path
    ipv6: bool = False  # daemon.json's "ipv6": the default bridge has IPv6 too
    fixed_cidr_v6: str = ""  # daemon.json's "fixed-cidr-v6": its IPv6 subnet ("": a ULA /64 of the pool)


@dataclass
class EndpointRequest:
    """What a container asks of one network (``EndpointsConfig``): aliases, an address, a MAC."""

    aliases: list[str] = field(default_factory=list)
    ipv4: str = ""
    ipv6: str = ""
    mac: str = ""
    links: list[str] = field(default_factory=list)
    upstreams: list[str] = field(default_factory=list)  # DNS servers the embedded resolver forwards to


SPARE_PREFIX = ".spare-"
"""The pins of namespaces made ahead, beside the containers' ``<id>`` pins in ``netns_dir``."""


class NetworkService:
    """Networks of the daemon root ``root`` (see the module docstring)."""

    def __init__(self, root: Path, events: EventSink | None = None, options: NetworkOptions | None = None,
                 host_netns: Path = netns.HOST) -> None:
        self.root = Path(root)
        self.naming = Naming(self.root)
        self.options = options or NetworkOptions()
        self.netns_dir = self.naming.run_dir / "netns"
        self.host_netns = host_netns
        self.names = NameRegistry()  # the embedded DNS server's view (dns.py)
        self._events = events
        self._lock = threading.RLock()
        self._started = False
        self._store: NetworkStore | None = None
        self._firewall: Firewall | None = None
        self._networks: dict[str, Network] = {}
        self._pools: dict[str, ipam.AddressPool] = {}
        self._pools6: dict[str, ipam.AddressPool] = {}  # networks with IPv6
        self.relay = LoopbackRelay(host_netns)  # [::1] of ports published over IPv6 (relay.py)
        self._v6_listenable: bool | None = None
        self._spare_sandboxes: list[Path] = []  # namespaces made ahead (``.spare-…`` in netns_dir)
        # namespaces made ahead with an endpoint on the default bridge (see ``refill_sandboxes``)
        self._spare_attached: list[tuple[Path, Endpoint]] = []
        self._ready: dict[str, Endpoint] = {}  # container id -> the endpoint its sandbox came with, unclaimed
        self._going_down: dict[str, list[Future[None]]] = {}  # network id -> ports of released endpoints
        self._closed = False
        self._refilling = False

    # -- start-up -----------------------------------------------------------------------------------

    @property
    def store(self) -> NetworkStore:
        self.start()
        assert self._store is not None
        return self._store

    @property
    def firewall(self) -> Firewall:
        self.start()
        assert self._firewall is not None
        return self._firewall

    def start(self) -> None:
        """Load the records, make the predefined networks, and bring every bridge and its nft elements
        back (idempotent: after a restart what is there stays)."""
        with self._lock:
            if self._started:
                return
            self.netns_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._store = NetworkStore(open_db(self.root))
            self._firewall = Firewall(self.naming.table, netns=self.host_netns)
            self._firewall.ensure()
            self._networks = {n.id: n for n in self._store.networks()}
            self._ensure_predefined()
            for net in self._networks.values():
                if net.driver == "bridge":
                    self._bring_up(net)
            for ep in self._store.endpoints():
                for pool, ip in ((self._pools.get(ep.network_id), ep.ip), (self._pools6.get(ep.network_id), ep.ip6)):
                    if pool is not None and ip:
                        with contextlib.suppress(DockyardError):
                            pool.allocate(ip)
            self._started = True

    def _ensure_predefined(self) -> None:
        assert self._store is not None
        have = {n.name: n for n in self._networks.values() if n.default}
        bridge = have.get("bridge")
        if bridge is not None and bridge.options.get(HOST_BINDING_OPT) != self.options.default_bind_ip:
            bridge.options[HOST_BINDING_OPT] = self.options.default_bind_ip  # daemon.json's "ip" changed
            self._store.save_network(bridge)
        if bridge is not None:
            self._default_bridge_ipv6(bridge)
        for name in PREDEFINED:
            if name in have:
                continue
            net = Network(id=secrets.token_hex(32), name=name, driver={"none": "null"}.get(name, name),
                          created=timestamps.now(), default=True)
            if name == "bridge":
                subnet = ipam.pick_subnet(self._taken(), ipam.default_pool())
                net.bridge = self.naming.default_bridge
                net.subnet, net.gateway = str(subnet), ipam.default_gateway(subnet)
                net.options = {"com.docker.network.bridge.default_bridge": "true",
                               "com.docker.network.bridge.enable_icc": "true",
                               MASQ_OPT: "true", HOST_BINDING_OPT: self.options.default_bind_ip,
                               BRIDGE_NAME_OPT: net.bridge, MTU_OPT: str(self.options.mtu)}
                self._networks[net.id] = net
                self._default_bridge_ipv6(net)
            self._store.save_network(net)
            self._networks[net.id] = net

    def _default_bridge_ipv6(self, bridge: Network) -> None:
        """The default bridge's IPv6 as daemon.json asks (``ipv6``, ``fixed-cidr-v6``), as dockerd:
        the subnet ``fixed-cidr-v6`` or a ULA /64 of the pool (kept once picked), the gateway its first
        address. A change waits while containers are on the bridge (their addresses stay valid)."""
        assert self._store is not None
        want = self.options.ipv6
        fixed = self.options.fixed_cidr_v6
        same = bridge.ipv6 == want and (not want or not fixed or bridge.subnet6 == fixed)
        if same:
            return
        if self._store.endpoints(network_id=bridge.id):
            log.warning("the default bridge's IPv6 settings changed: they apply once no container is on it")
            return
        had = bridge.ipv6
        bridge.ipv6, bridge.subnet6, bridge.gateway6 = False, "", ""
        if had and netlink.link_exists(bridge.bridge, netns=self.host_netns):
            # IPv6 off flushes the bridge's old IPv6 addresses (on again when it is brought up)
            netns.run_in(self.host_netns, lambda: netlink.set_ipv6(bridge.bridge, False))
        if want:
            self._address_plan6(bridge, {"Subnet": fixed} if fixed else None)
            bridge.ipam6_configured = False  # shown with its gateway, as dockerd shows it
        self._store.save_network(bridge)

    def _taken(self) -> list[ipaddress.IPv4Network]:
        """Subnets a new network must not overlap: the host's routes and addresses (but our own
        bridges'), and every network of ours."""
        ours = {ipaddress.IPv4Network(n.subnet) for n in self._networks.values() if n.subnet}
        host = [r for r in netlink.host_routes(netns=self.host_netns) if r not in ours]
        return [*host, *ours]

    def _taken6(self) -> list[ipaddress.IPv6Network]:
        """:meth:`_taken` for IPv6 subnets."""
        ours = {ipaddress.IPv6Network(n.subnet6) for n in self._networks.values() if n.subnet6}
        host = [r for r in netlink.host_routes6(netns=self.host_netns) if r not in ours]
        return [*host, *ours]

    def _host_id(self) -> str:
        if self.options.host_id:
            return self.options.host_id
        with contextlib.suppress(OSError):
            return (self.root / "engine-id").read_text().strip()
        return str(self.root.resolve())

    def _bring_up(self, net: Network) -> None:
        subnet = ipaddress.IPv4Network(net.subnet)
        subnet6 = ipaddress.IPv6Network(net.subnet6) if net.ipv6 and net.subnet6 else None
        mtu = int(net.options.get(MTU_OPT) or self.options.mtu)
        netlink.ensure_bridge(net.bridge, f"{net.gateway}/{subnet.prefixlen}", mtu,
                              gateway6_cidr=f"{net.gateway6}/{subnet6.prefixlen}" if subnet6 else None,
                              netns=self.host_netns)
        assert self._firewall is not None
        self._firewall.add_network(net.bridge, net.subnet, net.internal,
                                   masquerade=net.options.get(MASQ_OPT, "true") != "false",
                                   subnet6=net.subnet6 if subnet6 else None)
        self._pools[net.id] = ipam.AddressPool(subnet, net.gateway, net.ip_range or None,
                                               allocated=net.aux_addresses.values())
        if subnet6 is not None:
            self._pools6[net.id] = ipam.AddressPool(subnet6, net.gateway6 or None, net.ip_range6 or None,
                                                    allocated=net.aux_addresses6.values())

    def cleanup(self, running: set[str]) -> None:
        """Remove what containers that no longer run left (a crash, a kill of the daemon): their
        endpoints and addresses, published ports, pinned namespaces, and veths of ours nobody owns."""
        with self._lock:
            self.start()
            assert self._store is not None and self._firewall is not None
            for ep in self._store.endpoints():
                if ep.container_id not in running:
                    self._drop_endpoint(ep)
            for owner, forwards in self._firewall.forwards().items():
                if owner not in running:
                    self._firewall.unpublish(owner)
                else:
                    self._serve_relay(owner, forwards)
            # bridges our table knows that no network record names (a crash in the middle of a remove)
            recorded = {n.bridge for n in self._networks.values() if n.bridge}
            for bridge in self._firewall.bridges():
                if bridge not in recorded:
                    log.info("removing stale bridge %s", bridge)
                    self._firewall.remove_network(bridge)
                    netlink.delete_link(bridge, netns=self.host_netns)
            spares = set(self._spare_sandboxes) | {spare for spare, _ in self._spare_attached}
            for pin in self.netns_dir.iterdir():
                if pin.name not in running and pin not in spares:  # a previous run's spares go too
                    with contextlib.suppress(OSError):
                        netns.remove(pin)
            known = {ep.host_ifname for ep in self._store.endpoints()}
            known |= {ep.host_ifname for _, ep in self._spare_attached} | {ep.host_ifname for ep in self._ready.values()}
            for name in self._host_links():
                if self.naming.is_veth(name) and name not in known:
                    log.info("removing stale veth %s", name)
                    netlink.delete_link(name, netns=self.host_netns)
            # Names of the running containers, for the DNS hook.
            for ep in self._store.endpoints():
                self._register_names(ep)

    def _host_links(self) -> list[str]:
        return netlink.handle(self.host_netns).read(
            lambda ipr: [str(link.get("ifname")) for link in ipr.get_links()])

    def close(self, take_down_if_idle: bool = False) -> None:
        """Let go of the nft context. ``take_down_if_idle`` (a daemon's stop): when no container has an
        endpoint any more, the bridges and our table go too — the records stay and the next start
        brings them back —, so a stopped daemon leaves nothing on the host; with containers still
        running (they outlive the daemon) everything stays for them."""
        with self._lock:
            self._closed = True
            self._drop_spare_sandboxes()
            if take_down_if_idle and self._started and self._store is not None and not self._store.endpoints():
                try:
                    self.reset()
                    netlink.close_pool()
                    with contextlib.suppress(OSError):
                        self.netns_dir.rmdir()
                        self.naming.run_dir.rmdir()
                except (DockyardError, OSError) as exc:
                    log.warning("cannot take the networks down: %s", exc)
            if self._firewall is not None:
                self._firewall.close()
            self.relay.close()

    def reset(self) -> None:
        """Take down everything this root made on the host: bridges, veths, the nft table (for
        tests and uninstall; records stay, so the next start rebuilds the networks)."""
        with self._lock:
            self.start()
            for net in self._networks.values():
                if net.bridge:
                    netlink.delete_link(net.bridge, netns=self.host_netns)
            for name in self._host_links():
                if self.naming.owns(name):
                    netlink.delete_link(name, netns=self.host_netns)
            self.firewall.reset()

    # -- events -------------------------------------------------------------------------------------

    def _event(self, action: str, net: Network, **extra: str) -> None:
        if self._events is not None:
            self._events(action, net.id, {"name": net.name, "type": net.driver, **extra})

    # -- lookup -------------------------------------------------------------------------------------

    def get(self, ref: str) -> Network:
        """By full ID, by name, then by a unique ID prefix; Docker's errors."""
        self.start()
        with self._lock:
            nets = list(self._networks.values())
        for net in nets:
            if net.id == ref:
                return net
        for net in nets:
            if net.name == ref:
                return net
        found = [n for n in nets if ref and n.id.startswith(ref)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(found)} matches found based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    def _by_name(self, name: str) -> Network | None:
        return next((n for n in self._networks.values() if n.name == name), None)

    # -- create / remove ------------------------------------------------------------------------------

    def create(self, body: Any) -> dict[str, str]:
        """``POST /networks/create``: a bridge network; returns ``{"Id", "Warning"}``."""
        if not isinstance(body, dict):
            raise InvalidParameter("invalid JSON: the network create request must be an object")
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            raise InvalidParameter("network name is required" if not name else "invalid network name")
        driver = body.get("Driver") or "bridge"
        if driver in ("host", "null"):
            raise Forbidden(f'only one instance of "{driver}" network is allowed')
        if driver != "bridge":
            raise NotFound(f'plugin "{driver}" not found')
        if body.get("EnableIPv4") is False:
            raise InvalidParameter("IPv6-only networks (--ipv4=false) are not supported by dockyard")
        enable_ipv6 = body.get("EnableIPv6")
        if enable_ipv6 is None and "com.docker.network.enable_ipv6" in (body.get("Options") or {}):
            enable_ipv6 = str(body["Options"]["com.docker.network.enable_ipv6"]).lower() in ("1", "true", "t")
        if body.get("Ingress") or body.get("Scope") not in (None, "", "local") or body.get("ConfigOnly") \
                or (body.get("ConfigFrom") or {}).get("Network"):
            raise InvalidParameter("only local bridge networks are supported by dockyard")
        options = {str(k): str(v) for k, v in (body.get("Options") or {}).items()
                   if k != "com.docker.network.enable_ipv6"}
        labels = {str(k): str(v) for k, v in (body.get("Labels") or {}).items()}
        ipam_body = body.get("IPAM") or {}
        if (ipam_body.get("Driver") or "default") != "default":
            raise NotFound(f'plugin "{ipam_body["Driver"]}" not found')
        configs = [c for c in ipam_body.get("Config") or [] if c]
        v4 = [c for c in configs if ":" not in str(c.get("Subnet") or "")]
        v6 = [c for c in configs if ":" in str(c.get("Subnet") or "")]
        if len(v4) > 1:
            raise InvalidParameter("dockyard supports one IPv4 subnet per network")
        if len(v6) > 1:
            raise InvalidParameter("dockyard supports one IPv6 subnet per network")
        mtu = options.get(MTU_OPT)
        if mtu is not None and not (mtu.isdigit() and 68 <= int(mtu) <= 65535):
            raise InvalidParameter(f"invalid MTU: {mtu}")
        with self._lock:
            self.start()
            if self._by_name(name) is not None:
                raise Conflict(f"network with name {name} already exists")
            net = Network(id=secrets.token_hex(32), name=name, driver="bridge", created=timestamps.now(),
                          internal=bool(body.get("Internal")), attachable=bool(body.get("Attachable")),
                          options=options, labels=labels,
                          ipam_options=(None if ipam_body.get("Options") is None else
                                        {str(k): str(v) for k, v in ipam_body["Options"].items()}))
            self._address_plan(net, v4[0] if v4 else None)
            if enable_ipv6:
                self._address_plan6(net, v6[0] if v6 else None)
            bridge = options.get(BRIDGE_NAME_OPT) or self.naming.user_bridge(net.id)
            if not (0 < len(bridge) <= 15) or any(c in bridge for c in "/ :") or not bridge.isprintable():
                raise InvalidParameter(f"invalid bridge name: {bridge!r}")
            if any(n.bridge == bridge for n in self._networks.values()):
                raise Conflict(f"bridge name {bridge} is already in use by another network")
            if netlink.link_exists(bridge, netns=self.host_netns):
                raise Conflict(f"cannot create network {net.id} ({bridge}): conflicts with an existing link")
            net.bridge = bridge
            try:
                self._bring_up(net)
                self.store.save_network(net)
            except BaseException:
                self._take_down(net)
                raise
            self._networks[net.id] = net
        self._event("create", net)
        return {"Id": net.id, "Warning": ""}

    def _address_plan(self, net: Network, config: dict[str, Any] | None) -> None:
        """Subnet, gateway and range of ``net`` from its IPAM config, or a subnet picked from the pool."""
        ours = [ipaddress.IPv4Network(n.subnet) for n in self._networks.values() if n.subnet]
        if config and config.get("Subnet"):
            try:
                subnet = ipaddress.IPv4Network(str(config["Subnet"]), strict=False)
            except ValueError:
                text = config["Subnet"]
                raise InvalidParameter(f"Invalid subnet {text} : invalid CIDR address: {text}") from None
            if any(subnet.overlaps(other) for other in ours):
                raise Forbidden(OVERLAP)
            net.ipam_configured = True
        else:
            if config and (config.get("Gateway") or config.get("IPRange")):
                raise InvalidParameter("a gateway or an IP range needs a subnet (--subnet)")
            subnet = ipam.pick_subnet(self._taken(), ipam.default_pool())
        net.gateway_given = bool((config or {}).get("Gateway"))
        gateway = str((config or {}).get("Gateway") or "") or ipam.default_gateway(subnet)
        ip_range = str((config or {}).get("IPRange") or "")
        for text, what in ((gateway, "gateway"), (ip_range, "range")):
            if not text:
                continue
            try:
                inside = (ipaddress.IPv4Network(text, strict=False).subnet_of(subnet) if what == "range"
                          else ipaddress.IPv4Address(text) in subnet)
            except ValueError:
                raise InvalidParameter(f"invalid {what}: {text}") from None
            if not inside:
                raise InvalidParameter(f"no matching subnet for {what} {text}")
        net.subnet, net.gateway = str(subnet), gateway
        net.ip_range = str(ipaddress.IPv4Network(ip_range, strict=False)) if ip_range else ""
        aux = (config or {}).get("AuxiliaryAddresses") or {}
        if not isinstance(aux, dict):
            raise InvalidParameter("invalid AuxiliaryAddresses: expected an object")
        for key, text in aux.items():
            try:
                inside = ipaddress.IPv4Address(str(text)) in subnet
            except ValueError:
                raise InvalidParameter(f"invalid auxiliary address {key}={text}") from None
            if not inside:
                raise InvalidParameter(f"no matching subnet for aux-address {text}")
        net.aux_addresses = {str(k): str(v) for k, v in aux.items()}

    def _address_plan6(self, net: Network, config: dict[str, Any] | None) -> None:
        """The IPv6 subnet, gateway and range of ``net`` (``--ipv6``) from its IPAM config, or a /64 of
        the ULA pool (Docker 28's), as :meth:`_address_plan` does for IPv4."""
        ours = [ipaddress.IPv6Network(n.subnet6) for n in self._networks.values() if n.subnet6]
        config = config or {}
        if config.get("Subnet"):
            text = str(config["Subnet"])
            try:
                subnet = ipaddress.IPv6Network(text, strict=False)
            except ValueError:
                raise InvalidParameter(f"invalid subnet {text}: invalid CIDR block notation") from None
            if "/" in text and ipaddress.IPv6Interface(text).ip != subnet.network_address:
                raise InvalidParameter(f"invalid subnet {text}: it should be {subnet}")
            if subnet.prefixlen > 127:
                raise InvalidParameter(f"invalid subnet {text}: the prefix is too long for a network")
            if any(subnet.overlaps(other) for other in ours):
                raise Forbidden(OVERLAP)
            net.ipam6_configured = True
        else:
            if config.get("Gateway") or config.get("IPRange"):
                raise InvalidParameter("a gateway or an IP range needs a subnet (--subnet)")
            subnet = ipam.pick_subnet6(self._taken6(), ipam.ula_pool(self._host_id()))
        net.gateway6_given = bool(config.get("Gateway"))
        gateway = str(config.get("Gateway") or "") or ipam.default_gateway(subnet)
        ip_range = str(config.get("IPRange") or "")
        for text, what in ((gateway, "gateway"), (ip_range, "range")):
            if not text:
                continue
            try:
                inside = (ipaddress.IPv6Network(text, strict=False).subnet_of(subnet) if what == "range"
                          else ipaddress.IPv6Address(text) in subnet)
            except ValueError:
                raise InvalidParameter(f"invalid {what}: {text}") from None
            if not inside:
                raise InvalidParameter(f"no matching subnet for {what} {text}")
        aux = config.get("AuxiliaryAddresses") or {}
        if not isinstance(aux, dict):
            raise InvalidParameter("invalid AuxiliaryAddresses: expected an object")
        for key, text in aux.items():
            try:
                inside = ipaddress.IPv6Address(str(text)) in subnet
            except ValueError:
                raise InvalidParameter(f"invalid auxiliary address {key}={text}") from None
            if not inside:
                raise InvalidParameter(f"no matching subnet for aux-address {text}")
        net.ipv6 = True
        net.subnet6, net.gateway6 = str(subnet), str(ipaddress.IPv6Address(gateway))
        net.ip_range6 = str(ipaddress.IPv6Network(ip_range, strict=False)) if ip_range else ""
        net.aux_addresses6 = {str(k): str(v) for k, v in aux.items()}

    def _take_down(self, net: Network) -> None:
        with contextlib.suppress(DockyardError, OSError):
            if self._firewall is not None:
                self._firewall.remove_network(net.bridge)
        with contextlib.suppress(DockyardError, OSError):
            netlink.delete_link(net.bridge, netns=self.host_netns)
        self._pools.pop(net.id, None)
        self._pools6.pop(net.id, None)

    def remove(self, ref: str) -> None:
        """``DELETE /networks/{id}``: Docker's errors for predefined networks and networks in use."""
        with self._lock:
            net = self.get(ref)
            if net.default:
                raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
            if self.store.endpoints(network_id=net.id):
                raise Forbidden(f"error while removing network: network {net.name} id {net.id} has active endpoints")
            self._take_down(net)
            self.store.delete_network(net.id)
            self._networks.pop(net.id, None)
        self._event("destroy", net)

    def prune(self, raw_filters: Any) -> dict[str, Any]:
        """``POST /networks/prune``: every user network without endpoints that the filters select
        (``until``, ``label``, ``label!``); answers ``{"NetworksDeleted": [names] | null}``."""
        import time

        f = docker_filters.normalize(raw_filters, ("until", "label", "label!"))
        now = time.time_ns()
        until = [timestamps.parse_time_arg(v, now) for v in f.get("until", [])]
        deleted: list[str] = []
        for net in sorted(self.list_networks(), key=lambda n: n.name):
            if net.default:
                continue
            if until and not all(timestamps.stored_ns(net.created) < u for u in until):
                continue
            if not network_views.labels_match(net.labels, f.get("label", [])):
                continue
            if f.get("label!") and any(network_views.labels_match(net.labels, [w]) for w in f["label!"]):
                continue
            try:
                self.remove(net.id)
            except (Forbidden, NotFound):
                continue
            deleted.append(net.name)
        return {"NetworksDeleted": deleted or None}

    # -- views --------------------------------------------------------------------------------------

    def list_networks(self) -> list[Network]:
        self.start()
        with self._lock:
            return list(self._networks.values())

    def listing(self, raw_filters: Any) -> list[dict[str, Any]]:
        """``GET /networks`` with Docker's filters (see :mod:`network_views`)."""
        used = {ep.network_id for ep in self.store.endpoints()}
        return network_views.listing(self.list_networks(), used, raw_filters)

    def inspect(self, ref: str) -> dict[str, Any]:
        net = self.get(ref)
        return network_views.to_docker(net, self.store.endpoints(network_id=net.id))

    # -- sandboxes and endpoints ------------------------------------------------------------------------

    def sandbox_path(self, container_id: str) -> Path:
        return self.netns_dir / container_id

    def create_sandbox(self, container_id: str, attached_to: str = "") -> Path:
        """A pinned network namespace for the container (``lo`` up); an old pin of it is replaced.
        One made ahead (:meth:`refill_sandboxes`) is taken when there is one: making a namespace
        costs a start ~1.5–3 ms (a thread, ``unshare``, ``lo`` up, the pin's mount).

        ``attached_to``: the ID of the network the container's first endpoint goes on when it asks
        for no address and no MAC there. When a namespace made ahead already has its endpoint on that
        network (the default bridge's), that one is taken and :meth:`connect` claims the endpoint
        (its veth joins the bridge: ~0.3 ms) instead of making one (~3–5 ms of netlink and sysctls)."""
        self.start()
        path = self.sandbox_path(container_id)
        netns.remove(path)
        with self._lock:
            found = next((i for i, (_, ep) in enumerate(self._spare_attached) if ep.network_id == attached_to),
                         None) if attached_to else None
            attached = self._spare_attached.pop(found) if found is not None else None
            spare = self._spare_sandboxes.pop() if attached is None and self._spare_sandboxes else None
        if attached is not None:
            source, ep = attached
            try:
                netns.move(source, path)
            except OSError as exc:
                log.warning("cannot use the namespace made ahead (%s): making one", exc)
                self._give_back(ep, source)
            else:
                with self._lock:
                    self._ready[container_id] = ep
                return path
        if spare is not None:
            try:
                netns.move(spare, path)
                return path
            except OSError as exc:
                log.warning("cannot use the namespace made ahead (%s): making one", exc)
                with contextlib.suppress(OSError):
                    netns.remove(spare)
        netns.create(path)
        return path

    def refill_sandboxes(self) -> None:
        """Make namespaces ahead for the next containers' sandboxes (called off the start's critical
        path, beside the runtime's work): a bare one if there is none, and one ready for the default
        bridge if there is none of those — ``eth0`` with an address of the bridge's pool, up, with the
        default route, its veth's host end down and on no bridge, so nothing reaches it until
        :meth:`connect` puts it there. A stop of the service removes them and gives the address back."""
        with self._lock:
            if self._closed or self._refilling:
                return
            self.start()
            bridge = self._by_name("bridge")
            want_bare = not self._spare_sandboxes
            want_attached = (bridge is not None and bridge.id in self._pools and
                             not any(ep.network_id == bridge.id for _, ep in self._spare_attached))
            if not (want_bare or want_attached):
                return
            self._refilling = True
        try:
            if want_bare:
                self._keep_spare(self._make_spare(), None)
            if want_attached and bridge is not None:
                spare = self._make_spare()
                try:
                    ep = self._attach_ahead(bridge, spare)
                except (DockyardError, OSError) as exc:
                    log.warning("cannot attach a namespace ahead to %s: %s", bridge.bridge, exc)
                    netns.remove(spare)
                else:
                    self._keep_spare(spare, ep)
        finally:
            with self._lock:
                self._refilling = False

    def _make_spare(self) -> Path:
        spare = self.netns_dir / f"{SPARE_PREFIX}{secrets.token_hex(4)}"
        netns.create(spare)  # outside the lock: other containers' network work goes on meanwhile
        return spare

    def _keep_spare(self, spare: Path, ep: Endpoint | None) -> None:
        with self._lock:
            if not self._closed:
                if ep is None:
                    self._spare_sandboxes.append(spare)
                else:
                    self._spare_attached.append((spare, ep))
                return
        if ep is not None:
            self._give_back(ep, spare)
        else:
            netns.remove(spare)

    def _attach_ahead(self, net: Network, sandbox: Path) -> Endpoint:
        """An endpoint of no container yet: ``eth0`` of ``sandbox`` on ``net`` with the default route."""
        with self._lock:
            return self._new_endpoint(net, sandbox, EndpointRequest(), "eth0", routed=not net.internal, join=False)

    def _new_endpoint(self, net: Network, sandbox: Path, request: EndpointRequest, ifname: str, routed: bool,
                      join: bool = True) -> Endpoint:
        """Addresses from ``net``'s pools (``request``'s or the lowest free), a free veth name, and the
        veth made, addressed and up as ``ifname`` in ``sandbox`` (``attach_veth``); the endpoint has no
        container fields yet. Without ``join`` its host end stays down and off the bridge (made ahead:
        see ``refill_sandboxes``). Called with the lock held; on failure nothing of it is left."""
        self._settle(net.id)
        pool6 = self._pools6.get(net.id)
        ip, ip6 = self._pools[net.id].allocate(request.ipv4 or None), ""
        try:
            ip6 = pool6.allocate(request.ipv6 or None) if pool6 is not None else ""
            ep = Endpoint(network_id=net.id, container_id="", container_name="", endpoint_id="", ip=ip,
                          prefixlen=ipaddress.IPv4Network(net.subnet).prefixlen, gateway=net.gateway,
                          host_ifname=self._free_veth_name(), ifname=ifname, ip6=ip6)
            if pool6 is not None:
                ep.prefixlen6, ep.gateway6 = pool6.subnet.prefixlen, net.gateway6
            mtu = int(net.options.get(MTU_OPT) or self.options.mtu)
            try:
                ep.mac = netlink.attach_veth(sandbox, net.bridge, ep.host_ifname, ifname, f"{ip}/{ep.prefixlen}",
                                             net.gateway if routed else None, request.mac or None, mtu,
                                             address6_cidr=f"{ip6}/{ep.prefixlen6}" if ip6 else None,
                                             gateway6=net.gateway6 if routed and ip6 else None,
                                             host_netns=self.host_netns, join=join)
            except BaseException:
                with contextlib.suppress(DockyardError, OSError):
                    netlink.detach_veth(ep.host_ifname, netns=self.host_netns)
                raise
        except BaseException:
            self._release_addresses(net.id, ip, ip6)
            raise
        return ep

    def _release_addresses(self, network_id: str, ip: str, ip6: str) -> None:
        pool, pool6 = self._pools.get(network_id), self._pools6.get(network_id)
        if pool is not None and ip:
            pool.release(ip)
        if pool6 is not None and ip6:
            pool6.release(ip6)

    def _give_back(self, ep: Endpoint, sandbox: Path | None) -> None:
        """An endpoint made ahead that no container keeps: its veth deleted, its addresses freed, and
        ``sandbox`` (its namespace) unpinned when given."""
        with contextlib.suppress(DockyardError, OSError):
            netlink.detach_veth(ep.host_ifname, netns=self.host_netns)
        with self._lock:
            self._release_addresses(ep.network_id, ep.ip, ep.ip6)
        if sandbox is not None:
            with contextlib.suppress(OSError):
                netns.remove(sandbox)

    def _drop_spare_sandboxes(self) -> None:
        with self._lock:
            spares, self._spare_sandboxes = self._spare_sandboxes, []
            attached, self._spare_attached = self._spare_attached, []
        for spare in spares:
            with contextlib.suppress(OSError):
                netns.remove(spare)
        for spare, ep in attached:
            self._give_back(ep, spare)

    def connect(self, net: Network, container_id: str, container_name: str, sandbox: Path,
                request: EndpointRequest, default_route: bool, dns_names: list[str]) -> Endpoint:
        """Attach the sandbox to ``net``: an address, a veth ``eth<n>`` (default route via the gateway
        when asked and the network is not internal), the endpoint record, the names for DNS."""
        if net.driver != "bridge":
            raise InvalidParameter(f"container cannot be connected to network {net.name} ({net.driver})")
        with self._lock:
            self.start()
            assert self._store is not None
            if self._store.endpoints(network_id=net.id, container_id=container_id):
                raise Forbidden(f"endpoint with name {container_name} already exists in network {net.name}")
            if request.ipv6 and net.id not in self._pools6:
                raise InvalidParameter(f"network {net.name} has no IPv6 (--ip6 needs a network made with --ipv6)")
            existing = self._store.endpoints(container_id=container_id)
            routed = default_route and not net.internal
            ready = self._ready.pop(container_id, None)
            if ready is not None and not (ready.network_id == net.id and routed and not existing and
                                          not (request.ipv4 or request.ipv6 or request.mac)):
                self._give_back(ready, None)  # not what this endpoint asks: its eth0 goes first
                ready = None
            if ready is None:
                ep = self._new_endpoint(net, sandbox, request, f"eth{len(existing)}", routed)
            else:
                ep = ready
                try:
                    netlink.join_bridge(net.bridge, ep.host_ifname, netns=self.host_netns)
                except BaseException:
                    self._give_back(ep, None)
                    raise
            ep.container_id, ep.container_name, ep.endpoint_id = container_id, container_name, secrets.token_hex(32)
            ep.aliases, ep.dns_names, ep.ipam_ip, ep.ipam_ip6 = (list(request.aliases), list(dns_names),
                                                                 request.ipv4, request.ipv6)
            ep.links, ep.upstreams = list(request.links), list(request.upstreams)
            try:
                self._store.save_endpoint(ep)
            except BaseException:
                self._release_addresses(net.id, ep.ip, ep.ip6)
                with contextlib.suppress(DockyardError, OSError):
                    netlink.detach_veth(ep.host_ifname, netns=self.host_netns)
                raise
        self._register_names(ep, sandbox)
        self._event("connect", net, container=container_id)
        return ep

    def _free_veth_name(self) -> str:
        for _ in range(20):
            name = self.naming.veth()
            if not netlink.link_exists(name, netns=self.host_netns):
                return name
        raise DockyardError("cannot find a free name for a veth")

    def _register_names(self, ep: Endpoint, sandbox: Path | None = None) -> None:
        net = self._networks.get(ep.network_id)
        if net is None or net.default or not ep.dns_names:
            return
        self.names.register(NameEntry(ep.network_id, ep.container_id, tuple(ep.dns_names), ep.ip,
                                      str(sandbox or self.sandbox_path(ep.container_id)), tuple(ep.upstreams),
                                      tuple(ep.links), ip6=ep.ip6))

    def endpoints(self, container_id: str) -> list[Endpoint]:
        return self.store.endpoints(container_id=container_id)

    def disconnect(self, net: Network, container_id: str) -> None:
        """Detach the container from ``net`` (its veth, address, record, names)."""
        with self._lock:
            found = self.store.endpoints(network_id=net.id, container_id=container_id)
            if not found:
                raise DockyardError(f"container {container_id} is not connected to network {net.name}")
            self._drop_endpoint(found[0])
        self._event("disconnect", net, container=container_id)

    def _drop_endpoint(self, ep: Endpoint, sandbox_going: bool = False) -> None:
        """Forget ``ep``. ``sandbox_going``: its namespace is unpinned next, with no process left in it,
        so the veth is only set down (no frame reaches the old address from now) and the kernel deletes
        the pair with the namespace, off the caller's path; else the pair is deleted now."""
        assert self._store is not None
        self.names.unregister(ep.network_id, ep.container_id)
        pool = self._pools.get(ep.network_id)
        pool6 = self._pools6.get(ep.network_id)
        if ep.host_ifname and sandbox_going:
            # The port goes down in the handle's thread (a few ms: the bridge waits for an RCU grace
            # period) while the exit goes on; its address comes back to the pool once it is down, and
            # whoever allocates on this network meanwhile waits for that (see ``_settle``).
            try:
                down = netlink.link_down_soon(ep.host_ifname, netns=self.host_netns)
            except (DockyardError, OSError):
                pass
            else:
                pending = self._going_down.setdefault(ep.network_id, [])
                pending.append(down)

                def back(done: Future[None], ip: str = ep.ip, ip6: str = ep.ip6) -> None:
                    if pool is not None:
                        pool.release(ip)
                    if pool6 is not None and ip6:
                        pool6.release(ip6)
                    with contextlib.suppress(ValueError):
                        pending.remove(done)

                down.add_done_callback(back)
                self._store.delete_endpoint(ep.network_id, ep.container_id)
                return
        elif ep.host_ifname:
            with contextlib.suppress(DockyardError, OSError):
                netlink.detach_veth(ep.host_ifname, netns=self.host_netns)
        if pool is not None:
            pool.release(ep.ip)
        if pool6 is not None and ep.ip6:
            pool6.release(ep.ip6)
        self._store.delete_endpoint(ep.network_id, ep.container_id)

    def _settle(self, network_id: str) -> None:
        """Wait until the ports of the endpoints given up on ``network_id`` are down and their
        addresses back, so an allocation sees the pool as a synchronous release would leave it."""
        for down in list(self._going_down.get(network_id, ())):
            with contextlib.suppress(Exception):
                down.result(timeout=10)

    def release(self, container_id: str) -> None:
        """Everything a container's run held: published ports, endpoints (a ``disconnect`` event
        each), its pinned namespace. Idempotent."""
        with self._lock:
            self.start()
            assert self._store is not None and self._firewall is not None
            self._firewall.unpublish(container_id)
            self.relay.drop(container_id)
            gone = self._store.endpoints(container_id=container_id)
            for ep in gone:
                self._drop_endpoint(ep, sandbox_going=True)
            unclaimed = self._ready.pop(container_id, None)  # a start that failed before its connect
            if unclaimed is not None:
                self._drop_endpoint(unclaimed, sandbox_going=True)
            self.names.drop_resolver(container_id)
            netns.remove(self.sandbox_path(container_id))
        for ep in gone:
            net = self._networks.get(ep.network_id)
            if net is not None:
                self._event("disconnect", net, container=container_id)

    # -- published ports --------------------------------------------------------------------------------

    def host_binding_ip(self, net: Network) -> str:
        return net.options.get(HOST_BINDING_OPT) or self.options.default_bind_ip

    def publish(self, container_id: str, container_ip: str, wanted: list[PortRequest],
                container_ip6: str = "") -> list[Published]:
        """Publish ``wanted`` to ``container_ip`` (and ``container_ip6``, on a network with IPv6) for
        the container, all or none (see :mod:`publishing`); the loopback relay serves their ``[::1]``."""
        if not wanted:
            return []
        with self._lock:
            published, forwards = publishing.choose_ports(self.firewall, wanted, container_ip,
                                                          self.options.userland_proxy, self.host_netns,
                                                          container_ip6=container_ip6,
                                                          proxy_6to4=self._ipv6_listenable())
            self.firewall.publish(container_id, forwards)
            self._serve_relay(container_id, forwards)
            return published

    def _ipv6_listenable(self) -> bool:
        """Whether the host namespace can listen on IPv6 (dockerd's ``IsV6Listenable``): only then
        is a port published on ``::`` by default. Asked once."""
        if self._v6_listenable is None:
            def probe() -> bool:
                try:
                    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                        s.bind(("::1", 0))
                    return True
                except OSError:
                    return False

            self._v6_listenable = netns.run_in(self.host_netns, probe)
        return self._v6_listenable

    def _serve_relay(self, owner: str, forwards: list[PortForward]) -> None:
        try:
            self.relay.serve(owner, forwards)
        except (OSError, RuntimeError, TimeoutError) as exc:  # [::1] only: the DNAT serves the rest
            log.warning("loopback relay for %s: %s", owner[:12], exc)

    def forwards_of(self, container_id: str) -> list[PortForward]:
        return self.firewall.forwards().get(container_id, [])
