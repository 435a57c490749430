"""A container's networking, between its record and the network service.

Terms:

- *network mode* (``HostConfig.NetworkMode``): ``none``, ``host``, ``container:<id|name>`` (share that
  running container's namespace, hostname and /etc files: the pod pattern), or a network — ``default``
  and ``bridge`` mean the default bridge, anything else a user-defined network by name or ID.
- *endpoint settings* (``Container.endpoints_config``): what the container asks of each network it is
  on, keyed by the network's name (the mode's network first): Docker's ``EndpointSettings`` as given at
  create (``NetworkingConfig.EndpointsConfig``) or ``connect``: ``Aliases``, ``IPAMConfig``,
  ``MacAddress``, ``Links``, plus the ``NetworkID``.
- *live network state* (``Container.net``): what a run got — the sandbox (pinned namespace) path, each
  endpoint's address, MAC and veth, the published ports, whether it has had the embedded resolver
  (``resolver``). Emptied when the run ends.

Docker's rules kept here: ``--ip`` and ``--network-alias`` need a user-defined network; ports, DNS
settings, extra hosts, a hostname and a MAC conflict with ``container:`` mode; links write ``/etc/hosts``
entries on the default bridge; names are served by the embedded DNS (``127.0.0.11``) on user networks,
where a network's ``EndpointSettings.Links`` (``--link name:alias``, ``connect --link``) are DNS aliases
only this container resolves (``HostConfig.Links`` alone is ignored there, as by dockerd).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard import blocking
from dockyard.errors import Conflict, DockyardError, Forbidden, InvalidParameter, NotFound
from dockyard.networks import etc_files, ports, resolv_conf
from dockyard.networks.names import parse_link
from dockyard.networks.service import EndpointRequest, NetworkService

if TYPE_CHECKING:
    from dockyard.containers.record import Container

DEFAULT_MODES = ("default", "bridge", "")


def network_of_mode(mode: str) -> str | None:
    """The network a mode puts the container on first (None for none/host/container:)."""
    if mode in DEFAULT_MODES:
        return "bridge"
    if mode in ("none", "host") or mode.startswith("container:"):
        return None
    return mode


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f"invalid {what}: expected a list of strings")
    return list(value)


def _ipv4_of(cfg: dict[str, Any]) -> str:
    return str(((cfg.get("IPAMConfig") or {}).get("IPv4Address")) or "")


def _ipv6_of(cfg: dict[str, Any]) -> str:
    return str(((cfg.get("IPAMConfig") or {}).get("IPv6Address")) or "")


log = logging.getLogger("dockyard.networks")


def _refill_sandboxes(svc: NetworkService) -> None:
    try:
        svc.refill_sandboxes()
    except (DockyardError, OSError) as exc:
        log.warning("cannot make a network namespace ahead: %s", exc)


class ContainerNetworking:
    """Plans, sets up and tears down containers' networking over ``networks``; ``get`` finds a
    container by reference (for ``container:`` mode and links)."""

    def __init__(self, networks: NetworkService, get: Callable[[str], Container]) -> None:
        self.networks = networks
        self.get = get
        # The host's resolv.conf: the source of containers' files and of the embedded DNS server's
        # upstreams (the daemon sets it; DOCKYARD_HOST_RESOLV_CONF names another file, for tests).
        self.host_resolv_path = Path(resolv_conf.HOST_RESOLV_CONF)
        # Told a container's ID after its run's networking is given back (the DNS wiring detaches).
        self.released: list[Callable[[str], None]] = []

    # -- create ---------------------------------------------------------------------------------

    def plan(self, config: dict[str, Any], host_config: dict[str, Any], networking: Any,
             mac_address: str = "") -> dict[str, dict[str, Any]]:
        """Validate the request's networking; the container's endpoint settings (see the module)."""
        mode = str(host_config.get("NetworkMode") or "default")
        wanted = dict(((networking or {}).get("EndpointsConfig") or {}) if isinstance(networking, dict) else {})
        publishes = bool(host_config.get("PortBindings")) or bool(host_config.get("PublishAllPorts"))
        ports.requests(host_config.get("PortBindings"), bool(host_config.get("PublishAllPorts")),
                       config.get("ExposedPorts"), self.networks.options.default_bind_ip)
        for key in ("Dns", "DnsSearch", "DnsOptions", "ExtraHosts", "Links"):
            _strings(host_config.get(key), key)
        for entry in host_config.get("ExtraHosts") or []:
            etc_files.parse_extra_host(entry, "0.0.0.0")
        if mode.startswith("container:"):
            # a missing container fails the start, not the create, as with dockerd
            for what, present in (("port publishing", publishes),  # dockerd: "... and the container type network mode"
                                  ("hostname", bool(config.get("Hostname"))),
                                  ("dns", bool(host_config.get("Dns"))),
                                  ("custom host-to-IP mapping", bool(host_config.get("ExtraHosts"))),
                                  ("mac-address", bool(mac_address))):
                if present:
                    mode_words = "the container type network mode" if what == "port publishing" else "the network mode"
                    raise InvalidParameter(f"conflicting options: {what} and {mode_words}")
            return {}
        if mode == "host" and mac_address:
            raise InvalidParameter("conflicting options: mac-address and the network mode")
        if mode in ("none", "host"):
            if any(k != mode for k in wanted):
                raise InvalidParameter(f"container cannot be connected to network(s) {sorted(wanted)} in {mode} mode")
            return {mode: {"NetworkID": self.networks.get(mode).id}}
        primary = network_of_mode(mode)
        assert primary is not None
        order = [primary, *[k for k in wanted if k != primary and not (primary == "bridge" and k in DEFAULT_MODES)]]
        out: dict[str, dict[str, Any]] = {}
        for i, ref in enumerate(order):
            try:
                net = self.networks.get(ref)
                name, net_id, default, configured = net.name, net.id, net.default, net.ipam_configured
                configured6 = net.ipam6_configured
            except NotFound:
                # as dockerd: a missing network fails the start ("network x not found"), not the create
                name, net_id, default, configured, configured6 = ref, "", False, True, True
            cfg = dict(wanted.get(ref) or wanted.get(name) or (wanted.get(net_id) if net_id else None) or
                       (wanted.get("default") if name == "bridge" else None) or {})
            if i == 0 and mac_address and not cfg.get("MacAddress"):
                cfg["MacAddress"] = mac_address
            self._check_endpoint(default, configured, cfg, configured6)
            out[name] = {"IPAMConfig": cfg.get("IPAMConfig") or None, "Links": cfg.get("Links") or None,
                         "Aliases": cfg.get("Aliases") or None, "MacAddress": cfg.get("MacAddress") or "",
                         "NetworkID": net_id}
        return out

    @staticmethod
    def _check_endpoint(default: bool, configured: bool, cfg: dict[str, Any], configured6: bool | None = None) -> None:
        _strings(cfg.get("Aliases"), "Aliases")
        ip, ip6 = _ipv4_of(cfg), _ipv6_of(cfg)
        if default and (ip or ip6):
            raise InvalidParameter("user specified IP address is supported on user defined networks only")
        if (ip and not configured) or (ip6 and not (configured if configured6 is None else configured6)):
            raise InvalidParameter("user specified IP address is supported only when connecting to networks "
                                   "with user configured subnets")
        if default and cfg.get("Aliases"):
            raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
        if ip:
            import ipaddress

            try:
                ipaddress.IPv4Address(ip)
            except ValueError:
                raise InvalidParameter(f"invalid IPv4 address: {ip}") from None
        if ip6:
            import ipaddress

            try:
                ipaddress.IPv6Address(ip6)
            except ValueError:
                raise InvalidParameter(f"invalid IPv6 address: {ip6}") from None
        mac = str(cfg.get("MacAddress") or "")
        if mac and (len(mac.split(":")) != 6 or not all(len(x) == 2 for x in mac.split(":"))):
            raise InvalidParameter(f"invalid MAC address: {mac}")

    # -- start / stop -----------------------------------------------------------------------------

    def start(self, c: Container) -> tuple[str, dict[str, Path], Callable[[], None] | None]:
        """Prepare the run's networking: returns the runtime's ``network``, the /etc files, and for
        bridge networks a *finish* step — endpoints, ports, the hosts file's own line — that the caller
        runs while the runtime builds the container (it must be done before the process runs; the
        files are bind-mounted by inode, so what finish writes shows inside). Checks that can fail
        (missing networks, links) happen here, before anything runs. On failure nothing is left."""
        mode = str(c.host_config.get("NetworkMode") or "default")
        settings = self._etc_settings(c)
        host_resolv = etc_files.host_resolv_conf(self.host_resolv_path)
        if mode in ("none", "host"):
            c.net = {"mode": mode}
            if mode == "host":
                try:
                    hosts = Path("/etc/hosts").read_text()
                except OSError:
                    hosts = etc_files.HOSTS_LOCAL
                resolv = host_resolv
            else:
                hosts = etc_files.hosts_text(settings)
                resolv = etc_files.resolv_text(host_resolv, settings)
            return mode, etc_files.write(c.dir, c.config["Hostname"], hosts, resolv), None
        if mode.startswith("container:"):
            other = self.get(mode.partition(":")[2])
            if not other.state.running or other.state.pid <= 0:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            path = (other.net or {}).get("sandbox") or ""
            if (other.net or {}).get("mode") == "host":
                path = "host"
            elif not path or not Path(path).exists():
                path = f"/proc/{other.state.pid}/ns/net"
            c.net = {"mode": mode, "container": other.id}
            files = {"/etc/hostname": other.dir / "hostname", "/etc/hosts": other.dir / "hosts",
                     "/etc/resolv.conf": other.dir / "resolv.conf"}
            return path, {k: v for k, v in files.items() if v.exists()}, None
        return self._prepare_networks(c, settings, host_resolv)

    def _etc_settings(self, c: Container) -> etc_files.EtcSettings:
        hc = c.host_config
        gateway = ""
        with contextlib.suppress(DockyardError):
            gateway = self.networks.get("bridge").gateway
        return etc_files.EtcSettings(
            hostname=c.config["Hostname"], domainname=c.config.get("Domainname") or "",
            extra_hosts=list(hc.get("ExtraHosts") or []), dns=list(hc.get("Dns") or []),
            dns_search=list(hc.get("DnsSearch") or []), dns_options=list(hc.get("DnsOptions") or []),
            host_gateway=gateway)

    def _prepare_networks(self, c: Container, settings: etc_files.EtcSettings,
                          host_resolv: str) -> tuple[str, dict[str, Path], Callable[[], None]]:
        svc = self.networks
        if not c.endpoints_config:
            c.endpoints_config = self.plan(c.config, c.host_config, None)
        nets = [(svc.get(name), cfg) for name, cfg in c.endpoints_config.items()]  # "network x not found"
        for _, cfg in nets:
            self._request(cfg)  # a bad link fails here, before anything runs
        first_net = nets[0][0] if nets else None
        settings.embedded_dns = first_net is not None and not first_net.default
        link_env: list[str] = []
        if first_net is not None and first_net.default:
            settings.links = self._links(c)
            link_env = self.link_env(c)
        wanted = []
        if first_net is not None and not first_net.internal:
            wanted = ports.requests(c.host_config.get("PortBindings"), bool(c.host_config.get("PublishAllPorts")),
                                    c.config.get("ExposedPorts"), svc.host_binding_ip(first_net))
        # the first endpoint asks nothing particular: a namespace already on that network will do
        first_cfg = nets[0][1] if nets else {}
        plain = first_net is not None and not (first_cfg.get("MacAddress") or _ipv4_of(first_cfg) or _ipv6_of(first_cfg))
        sandbox = svc.create_sandbox(c.id, attached_to=first_net.id if plain and first_net is not None else "")
        c.net = {"mode": c.host_config.get("NetworkMode") or "default", "sandbox": str(sandbox),
                 "sandbox_id": secrets.token_hex(32), "endpoints": {}, "ports": [], "link_env": link_env}
        try:
            resolv = (self._embedded_resolv(c, host_resolv) if settings.embedded_dns
                      else etc_files.resolv_text(host_resolv, settings))
            files = etc_files.write(c.dir, c.config["Hostname"], etc_files.hosts_text(settings), resolv)
        except BaseException:
            self.stop(c)
            raise

        def finish() -> None:
            # Built aside and swapped in whole: the event loop may snapshot the record meanwhile.
            endpoints: dict[str, Any] = {}
            published: list[dict[str, Any]] = []
            try:
                first = None
                for net, cfg in nets:
                    request = self._request(cfg)
                    request.upstreams = etc_files.upstream_servers(host_resolv, settings.dns)
                    ep = svc.connect(net, c.id, c.name, sandbox, request, default_route=first is None,
                                     dns_names=self._dns_names(c, net.default, cfg))
                    endpoints[net.name] = self._endpoint_state(ep, net.id)
                    first = first or ep
                if first is not None:
                    published = [p.as_dict() for p in svc.publish(c.id, first.ip, wanted, first.ip6)]
                    settings.ip, settings.ip6 = first.ip, first.ip6
                    files["/etc/hosts"].write_text(etc_files.hosts_text(settings))  # same inode: seen inside
                c.net = {**c.net, "endpoints": endpoints, "ports": published,
                         "resolver": any(not net.default for net, _ in nets)}
            except BaseException:
                self.stop(c)
                raise
            # The next container's namespace, made on the pool while this one runs (not awaited).
            blocking.submit(_refill_sandboxes, svc)

        return str(sandbox), files, finish

    def _embedded_resolv(self, c: Container, host_resolv: str) -> str:
        """Docker 28's resolv.conf for a container whose first network is user-defined (127.0.0.11)."""
        hc = c.host_config
        return resolv_conf.container_resolv_conf(host_resolv, list(hc.get("DnsSearch") or []),
                                                 list(hc.get("DnsOptions") or []),
                                                 dns_servers=list(hc.get("Dns") or []),
                                                 source_path=str(self.host_resolv_path))

    def _switch_to_embedded_resolv(self, c: Container) -> None:
        """A running container's first user network (it started on the default bridge): its
        resolv.conf now names 127.0.0.11, as dockerd's ``rebuildDNS`` rewrites it when the sandbox's
        resolver starts — unless the file is not the one written at start (the user changed it).
        Written in place: the file is bind-mounted by inode."""
        path = c.dir / "resolv.conf"
        host_resolv = etc_files.host_resolv_conf(self.host_resolv_path)
        try:
            current = path.read_text()
        except OSError:
            return
        if current == etc_files.resolv_text(host_resolv, self._etc_settings(c)):
            path.write_text(self._embedded_resolv(c, host_resolv))

    def dns_settings(self, container_id: str) -> tuple[list[str], bool]:
        """For the embedded DNS server: the container's ``--dns`` servers ([]: the host's resolvers)
        and whether its resolv.conf options set ndots (``resolv_conf.sets_ndots``)."""
        try:
            hc = self.get(container_id).host_config
        except NotFound:
            return [], False
        host_text = etc_files.host_resolv_conf(self.host_resolv_path)
        return list(hc.get("Dns") or []), resolv_conf.sets_ndots(host_text, list(hc.get("DnsOptions") or []))

    @staticmethod
    def _request(cfg: dict[str, Any]) -> EndpointRequest:
        links = _strings(cfg.get("Links"), "Links")
        for link in links:  # as dockerd, a bad one fails the start or the connect
            parse_link(link)
        return EndpointRequest(aliases=list(cfg.get("Aliases") or []), ipv4=_ipv4_of(cfg), ipv6=_ipv6_of(cfg),
                               mac=str(cfg.get("MacAddress") or ""), links=links)

    @staticmethod
    def _dns_names(c: Container, default: bool, cfg: dict[str, Any]) -> list[str]:
        if default:
            return []
        names = [c.name, *(cfg.get("Aliases") or [])]
        if c.config.get("Hostname") and c.config["Hostname"] != c.id[:12] and c.config["Hostname"] not in names:
            names.append(c.config["Hostname"])
        names.append(c.id[:12])
        return list(dict.fromkeys(names))

    @staticmethod
    def _endpoint_state(ep: Any, network_id: str) -> dict[str, Any]:
        return {"NetworkID": network_id, "EndpointID": ep.endpoint_id, "Gateway": ep.gateway,
                "IPAddress": ep.ip, "IPPrefixLen": ep.prefixlen, "MacAddress": ep.mac,
                "IPv6Gateway": ep.gateway6, "GlobalIPv6Address": ep.ip6, "GlobalIPv6PrefixLen": ep.prefixlen6,
                "DNSNames": ep.dns_names or None, "HostIfname": ep.host_ifname}

    def legacy_links(self, links: Any, name: str) -> list[str]:
        """``HostConfig.Links`` of a container named ``name`` on the default bridge as dockerd keeps
        them: each ``/<linked>:/<name>/<alias>`` (``web:db`` → ``/web:/c/db``), the linked container
        found by name or ID when the container is created."""
        out: list[str] = []
        for text in _strings(links, "Links"):
            linked, alias = parse_link(text)
            try:
                other = self.get(linked)
            except NotFound:
                raise InvalidParameter(f"could not get container for {linked}: No such container: {linked}") from None
            if str(other.host_config.get("NetworkMode") or "").startswith("container:"):
                raise InvalidParameter("conflicting options: container cannot be linked to a container using "
                                       "--net=container:")
            out.append(f"/{other.name}:/{name}/{alias}")
        return out

    def _links(self, c: Container) -> list[tuple[str, list[str]]]:
        out = []
        for link in c.host_config.get("Links") or []:
            name, _, alias = link.partition(":")
            name = name.lstrip("/")
            alias = alias.rsplit("/", 1)[-1] if alias else name
            try:
                other = self.get(name)
            except NotFound:
                raise InvalidParameter(f"could not get container for {name}") from None
            ip = ((other.net or {}).get("endpoints") or {}).get("bridge", {}).get("IPAddress")
            if not other.state.running or not ip:
                raise InvalidParameter(f"Cannot link to a non running container: /{other.name} AS /{c.name}/{alias}")
            out.append((ip, list(dict.fromkeys([alias, other.id[:12], other.name]))))
        return out

    def link_env(self, c: Container) -> list[str]:
        """Docker's environment for legacy links (``--link web:db``): ``DB_NAME=/<this>/db``, for each
        port the linked container exposes ``DB_PORT_80_TCP=tcp://IP:80`` with ``_ADDR``, ``_PORT``,
        ``_PROTO``, ``DB_PORT`` for the lowest, and its own environment as ``DB_ENV_<key>``. Links to
        containers on the default bridge only (as in Docker); computed at start."""
        env: list[str] = []
        for link in c.host_config.get("Links") or []:
            name, _, alias = link.partition(":")
            alias = alias.rsplit("/", 1)[-1] if alias else name.lstrip("/")
            try:
                other = self.get(name.lstrip("/"))
            except NotFound:
                continue
            ip = ((other.net or {}).get("endpoints") or {}).get("bridge", {}).get("IPAddress")
            if not ip:
                continue
            prefix = alias.upper().replace("-", "_").replace(".", "_")
            env.append(f"{prefix}_NAME=/{c.name}/{alias}")
            exposed = sorted((ports.parse_key(k) for k in other.config.get("ExposedPorts") or {}),
                             key=lambda pp: (pp[0], pp[1]))
            for i, (port, proto) in enumerate(exposed):
                if i == 0:
                    env.append(f"{prefix}_PORT={proto}://{ip}:{port}")
                base = f"{prefix}_PORT_{port}_{proto.upper()}"
                env += [f"{base}={proto}://{ip}:{port}", f"{base}_ADDR={ip}", f"{base}_PORT={port}",
                        f"{base}_PROTO={proto}"]
            for item in other.config.get("Env") or []:
                key, eq, value = item.partition("=")
                if eq and key not in ("HOME", "PATH"):  # moby's links.go leaves these two out
                    env.append(f"{prefix}_ENV_{key}={value}")
        return env

    def recovered(self, c: Container) -> None:
        """A container still running at a daemon's start: when its run had the embedded resolver
        (``net["resolver"]``: it joined a user network), the registry keeps it, so the DNS server
        serves it again even with no user network left (dockerd keeps the sandbox's resolver)."""
        sandbox = (c.net or {}).get("sandbox")
        if sandbox and (c.net or {}).get("resolver"):
            self.networks.names.keep_resolver(c.id, str(sandbox))

    def stop(self, c: Container) -> None:
        """The run ended: give back its sandbox, endpoints and ports."""
        if (c.net or {}).get("sandbox"):  # (a run that never got one has nothing to give back)
            try:
                self.networks.release(c.id)
            finally:
                for released in list(self.released):
                    released(c.id)
        c.net = {}

    # -- connect / disconnect ---------------------------------------------------------------------

    def connect(self, c: Container, ref: str, cfg: dict[str, Any]) -> None:
        """``POST /networks/{id}/connect``: a running container gets the endpoint now; any container
        keeps the setting for its next start."""
        net = self.networks.get(ref)
        mode = str(c.host_config.get("NetworkMode") or "default")
        if mode in ("none", "host") or mode.startswith("container:"):
            raise Forbidden("container sharing network namespace with another container or host cannot be "
                            "connected to any other network" if mode != "none" else
                            "container cannot be connected to multiple networks with one of the networks "
                            "in private (none) mode")
        if net.driver != "bridge":
            raise Forbidden("container cannot be disconnected from host network or connected to host network"
                            if net.driver == "host" else
                            "container cannot be connected to multiple networks with one of the networks "
                            "in private (none) mode")
        if net.name in c.endpoints_config:
            raise Forbidden(f"endpoint with name {c.name} already exists in network {net.name}")
        cfg = dict(cfg or {})
        self._check_endpoint(net.default, net.ipam_configured, cfg, net.ipam6_configured)
        entry = {"IPAMConfig": cfg.get("IPAMConfig") or None, "Links": cfg.get("Links") or None,
                 "Aliases": cfg.get("Aliases") or None, "MacAddress": cfg.get("MacAddress") or "",
                 "NetworkID": net.id}
        sandbox = (c.net or {}).get("sandbox")
        if c.state.running and sandbox:
            request = self._request(entry)
            request.upstreams = etc_files.upstream_servers(etc_files.host_resolv_conf(self.host_resolv_path), list(c.host_config.get("Dns") or []))
            ep = self.networks.connect(net, c.id, c.name, Path(sandbox), request, default_route=False,
                                       dns_names=self._dns_names(c, net.default, entry))
            c.net = {**c.net, "endpoints": {**(c.net.get("endpoints") or {}), net.name: self._endpoint_state(ep, net.id)},
                     "resolver": bool(c.net.get("resolver")) or not net.default}
            if not net.default:
                self._switch_to_embedded_resolv(c)
        c.endpoints_config = {**c.endpoints_config, net.name: entry}

    def disconnect(self, c: Container, ref: str, force: bool = False) -> None:
        net = self.networks.get(ref)
        if net.name not in c.endpoints_config:  # dockerd answers 500 here
            raise DockyardError(f"container {c.id} is not connected to network {net.name}")
        if net.driver == "host":
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        if c.state.running and (c.net or {}).get("sandbox"):
            try:
                self.networks.disconnect(net, c.id)
            except DockyardError:
                if not force:
                    raise
            c.net = {**c.net, "endpoints": {k: v for k, v in (c.net.get("endpoints") or {}).items() if k != net.name}}
        c.endpoints_config = {k: v for k, v in c.endpoints_config.items() if k != net.name}

    # -- Docker's views ----------------------------------------------------------------------------

    @staticmethod
    def published(c: Container) -> list[ports.Published]:
        return ports.from_dicts((c.net or {}).get("ports")) if c.state.running else []
