"""Pure parts of the network service: link names per root, Docker's /etc files, published ports,
records round-tripping, the DNS name registry. No root, no namespaces."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.errors import InvalidParameter
from dockyard.networks import etc_files, ports
from dockyard.networks.names import NameEntry, NameRegistry
from dockyard.networks.naming import Naming
from dockyard.networks.records import Endpoint, Network

HOST_RESOLV = """# from the host
nameserver 127.0.0.53
nameserver 10.0.0.2
search corp.example
options edns0 trust-ad
"""


def test_names_of_the_default_root_look_like_dockers() -> None:
    n = Naming(Path("/var/lib/dockyard"))
    assert n.is_default and n.default_bridge == "dockyard0" and n.table == "dockyard"
    assert n.user_bridge("0123456789abcdef" * 4) == "br-0123456789ab"
    veth = n.veth()
    assert veth.startswith("dyv") and len(veth) <= 15 and n.is_veth(veth) and n.owns(veth)
    assert not n.owns("br-0123456789ab")  # a dockerd's bridges are named so too: known from records only
    assert not n.owns("eth0") and not n.owns("docker0")


def test_names_of_other_roots_never_collide_and_are_found_by_prefix(tmp_path: Path) -> None:
    a, b = Naming(tmp_path / "a"), Naming(tmp_path / "b")
    assert a.default_bridge != b.default_bridge and a.prefix != b.prefix
    assert a.default_bridge.startswith("dyb-") and a.table.startswith("dockyard_")
    assert a.default_bridge[4:] == a.table[len("dockyard_"):]
    for name in (a.default_bridge, a.user_bridge("f" * 64), a.veth()):
        assert len(name) <= 15 and a.owns(name) and not b.owns(name)
    assert not a.owns("eth0") and not a.owns("dockyard0")


def test_hosts_file_as_docker_writes_it() -> None:
    s = etc_files.EtcSettings(hostname="web", domainname="example.org", ip="172.18.0.2",
                              extra_hosts=["db:10.1.2.3", "gw:host-gateway", "v6=[::1]"],
                              links=[("172.18.0.3", ["alias", "0123456789ab", "other"])], host_gateway="172.18.0.1")
    text = etc_files.hosts_text(s)
    assert text.startswith("127.0.0.1\tlocalhost\n")
    assert text.endswith("10.1.2.3\tdb\n172.18.0.1\tgw\n::1\tv6\n172.18.0.3\talias 0123456789ab other\n"
                         "172.18.0.2\tweb.example.org web\n")
    assert etc_files.hosts_text(etc_files.EtcSettings(hostname="h")) == etc_files.HOSTS_LOCAL
    with pytest.raises(InvalidParameter):
        etc_files.hosts_text(etc_files.EtcSettings(hostname="h", extra_hosts=["nocolon"]))


def test_resolv_conf_default_bridge_drops_loopback_servers() -> None:
    text = etc_files.resolv_text(HOST_RESOLV, etc_files.EtcSettings(hostname="h"))
    assert "nameserver 10.0.0.2\n" in text and "127.0.0.53" not in text
    assert "search corp.example\n" in text and "options edns0 trust-ad\n" in text
    only_loopback = etc_files.resolv_text("nameserver 127.0.0.53\n", etc_files.EtcSettings(hostname="h"))
    assert "nameserver 8.8.8.8\nnameserver 8.8.4.4\n" in only_loopback


def test_resolv_conf_overrides_and_embedded_resolver() -> None:
    s = etc_files.EtcSettings(hostname="h", dns=["1.1.1.1"], dns_search=["a.test", "b.test"], dns_options=["rotate"])
    text = etc_files.resolv_text(HOST_RESOLV, s)
    assert "nameserver 1.1.1.1\n" in text and "10.0.0.2" not in text
    assert "search a.test b.test\n" in text and "options rotate\n" in text
    embedded = etc_files.resolv_text(HOST_RESOLV, etc_files.EtcSettings(hostname="h", embedded_dns=True))
    servers = [line for line in embedded.splitlines() if line.startswith("nameserver")]
    assert servers == ["nameserver 127.0.0.11"] and "options edns0 trust-ad ndots:0\n" in embedded
    kept = etc_files.resolv_text("options ndots:2\n", etc_files.EtcSettings(hostname="h", embedded_dns=True))
    assert "options ndots:2\n" in kept
    assert etc_files.upstream_servers(HOST_RESOLV, []) == ["127.0.0.53", "10.0.0.2"]
    assert "search" not in etc_files.resolv_text(HOST_RESOLV, etc_files.EtcSettings(hostname="h", dns_search=["."]))


def test_port_requests_from_bindings_and_publish_all() -> None:
    got = ports.requests({"80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "127.0.0.1", "HostPort": ""}],
                          "53/udp": [{"HostPort": "5300-5310"}], "443": None},
                         True, {"80/tcp": {}, "9000/tcp": {}, "53/udp": {}}, default_ip="10.0.0.1")
    assert got == [
        ports.PortRequest(53, "udp", "10.0.0.1", 5300, 5310, implicit=True),
        ports.PortRequest(80, "tcp", "10.0.0.1", 8080, 8080, implicit=True),
        ports.PortRequest(80, "tcp", "127.0.0.1", 0, 0),
        ports.PortRequest(443, "tcp", "10.0.0.1", 0, 0, implicit=True),
        ports.PortRequest(9000, "tcp", "10.0.0.1", 0, 0, implicit=True),
    ]
    assert ports.requests({"80/tcp": [{"HostIp": "::", "HostPort": "80"}, {"HostIp": "[::1]", "HostPort": "81"},
                                      {"HostIp": "::ffff:127.0.0.1", "HostPort": "82"}]}, False, None) == [
        ports.PortRequest(80, "tcp", "::", 80, 80), ports.PortRequest(80, "tcp", "::1", 81, 81),
        ports.PortRequest(80, "tcp", "127.0.0.1", 82, 82)]


def test_port_targets_as_docker_28() -> None:
    from dockyard.networks.publishing import targets

    implicit = ports.PortRequest(80, "tcp", "0.0.0.0", 8080, 8080, implicit=True)
    assert targets(implicit, "10.1.0.2", "") == [("0.0.0.0", "10.1.0.2")]
    assert targets(implicit, "10.1.0.2", "fd01::2") == [("0.0.0.0", "10.1.0.2"), ("::", "fd01::2")]
    given = ports.PortRequest(80, "tcp", "0.0.0.0", 8080, 8080)  # -p 0.0.0.0:8080:80: IPv4 only
    assert targets(given, "10.1.0.2", "fd01::2") == [("0.0.0.0", "10.1.0.2")]
    other_default = ports.PortRequest(80, "tcp", "10.0.0.1", 8080, 8080, implicit=True)  # daemon.json "ip"
    assert targets(other_default, "10.1.0.2", "fd01::2") == [("10.0.0.1", "10.1.0.2")]
    v6 = ports.PortRequest(80, "tcp", "::1", 8080, 8080)
    assert targets(v6, "10.1.0.2", "fd01::2") == [("::1", "fd01::2")]
    assert targets(v6, "10.1.0.2", "") == []
    # dockerd's userland proxy (on by default, the host having IPv6): IPv6 to an IPv4-only container, TCP
    assert targets(implicit, "10.1.0.2", "", proxy_6to4=True) == [("0.0.0.0", "10.1.0.2"), ("::", "10.1.0.2")]
    assert targets(v6, "10.1.0.2", "", proxy_6to4=True) == [("::1", "10.1.0.2")]
    assert targets(implicit, "10.1.0.2", "fd01::2", proxy_6to4=True) == [("0.0.0.0", "10.1.0.2"), ("::", "fd01::2")]
    udp = ports.PortRequest(53, "udp", "0.0.0.0", 53, 53, implicit=True)
    assert targets(udp, "10.1.0.2", "", proxy_6to4=True) == [("0.0.0.0", "10.1.0.2"), ("::", "10.1.0.2")]
    assert targets(given, "10.1.0.2", "", proxy_6to4=True) == [("0.0.0.0", "10.1.0.2")]


def test_ports_list_the_ipv6_entries_as_docker_28() -> None:
    published = [ports.Published(80, "tcp", "0.0.0.0", 8080), ports.Published(80, "tcp", "::", 8080)]
    assert ports.docker_ports({"80/tcp": {}}, published) == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}]}
    assert ports.summary_ports({"80/tcp": {}}, published) == [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}]


@pytest.mark.parametrize("bindings, message", [
    ({"0/tcp": []}, "invalid containerPort: 0"),
    ({"80/sctp": []}, "sctp"),
    ({"80/icmp": []}, "invalid proto: icmp"),
    ({"80/tcp": [{"HostPort": "70000"}]}, "invalid hostPort: 70000"),
    ({"80/tcp": [{"HostPort": "9-8"}]}, "invalid hostPort: 9-8"),
    ({"80/tcp": [{"HostIp": "nope"}]}, "invalid IP address: nope"),
])
def test_port_requests_refuse_bad_input(bindings: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        ports.requests(bindings, False, None)


def test_ports_in_dockers_shapes() -> None:
    published = [ports.Published(80, "tcp", "0.0.0.0", 8080), ports.Published(53, "udp", "127.0.0.1", 5353)]
    assert ports.docker_ports({"80/tcp": {}, "443/tcp": {}}, published) == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "443/tcp": None,
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}]}
    assert ports.summary_ports({"443/tcp": {}, "80/tcp": {}}, published) == [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"IP": "127.0.0.1", "PrivatePort": 53, "PublicPort": 5353, "Type": "udp"},
        {"PrivatePort": 443, "Type": "tcp"}]
    assert ports.from_dicts([p.as_dict() for p in published]) == published


def test_records_round_trip_and_ignore_unknown_keys() -> None:
    net = Network(id="a" * 64, name="n", driver="bridge", created="2026-01-01T00:00:00Z", bridge="br-aaaa",
                  subnet="10.1.0.0/24", gateway="10.1.0.1", labels={"k": "v"})
    assert Network.from_json(net.to_json()) == net
    ep = Endpoint(network_id=net.id, container_id="c" * 64, container_name="c", endpoint_id="e" * 64,
                  ip="10.1.0.2", prefixlen=24, aliases=["x"])
    assert Endpoint.from_json(ep.to_json().replace("{", '{"future": 1, ', 1)) == ep


def test_name_registry_answers_per_network_and_tells_listeners() -> None:
    seen: list[tuple[str, str]] = []
    reg = NameRegistry()
    reg.listeners.append(lambda what, e: seen.append((what, e.container_id)))
    reg.register(NameEntry("n1", "c1", ("web", "alias"), "10.0.0.2", "/ns/c1"))
    reg.register(NameEntry("n2", "c2", ("web",), "10.0.1.2", "/ns/c2"))
    assert reg.lookup({"n1"}, "WEB.") == ["10.0.0.2"]
    assert reg.lookup({"n1", "n2"}, "web") == ["10.0.0.2", "10.0.1.2"]
    assert reg.lookup({"n2"}, "alias") == []
    reg.unregister("n1", "c1")
    reg.unregister("n1", "c1")  # idempotent, told once
    assert reg.lookup({"n1"}, "web") == [] and [e.container_id for e in reg.entries()] == ["c2"]
    assert seen == [("register", "c1"), ("register", "c2"), ("unregister", "c1")]


def test_daemon_json_ip_and_userland_proxy(tmp_path: Path) -> None:
    from dockyard.daemon.config import load_config

    path = tmp_path / "daemon.json"
    path.write_text('{"ip": "127.0.0.1", "userland-proxy": false}')
    options = load_config({}, path).network
    assert (options.default_bind_ip, options.userland_proxy) == ("127.0.0.1", False)
    path.write_text("{}")
    options = load_config({}, path).network
    assert (options.default_bind_ip, options.userland_proxy) == ("0.0.0.0", True)
    path.write_text('{"ip": "not-an-ip"}')
    with pytest.raises(InvalidParameter, match="invalid IP address: not-an-ip"):
        load_config({}, path)
    path.write_text('{"userland-proxy": "yes"}')
    with pytest.raises(InvalidParameter, match="userland-proxy: expected true or false"):
        load_config({}, path)
    path.write_text('{"ipv6": true, "fixed-cidr-v6": "fd42:1::/64"}')
    options = load_config({}, path).network
    assert (options.ipv6, options.fixed_cidr_v6) == (True, "fd42:1::/64")
    path.write_text('{"fixed-cidr-v6": "10.0.0.0/8"}')
    with pytest.raises(InvalidParameter, match="parse fixed-cidr-v6 failed"):
        load_config({}, path)


class _FakeNetworks:
    """The two things ContainerNetworking.plan asks of the network service."""

    def __init__(self) -> None:
        from dockyard.networks.service import NetworkOptions

        self.options = NetworkOptions()
        self.nets = {n.name: n for n in (
            Network(id="b" * 64, name="bridge", driver="bridge", created="", default=True, subnet="172.18.0.0/16"),
            Network(id="h" * 64, name="host", driver="host", created="", default=True),
            Network(id="0" * 64, name="none", driver="null", created="", default=True),
            Network(id="u" * 64, name="user", driver="bridge", created="", subnet="10.1.0.0/24", ipam_configured=True),
            Network(id="a" * 64, name="auto", driver="bridge", created="", subnet="10.2.0.0/24"),
        )}

    def get(self, ref: str) -> Network:
        from dockyard.errors import NotFound

        for net in self.nets.values():
            if ref in (net.name, net.id):
                return net
        raise NotFound(f"network {ref} not found")


def _plan(mode: str, endpoints: dict[str, object] | None = None, mac: str = "", **host: object) -> object:
    from dockyard.containers.networking import ContainerNetworking

    planner = ContainerNetworking(_FakeNetworks(), lambda ref: None)  # type: ignore[arg-type,return-value]
    networking = {"EndpointsConfig": endpoints} if endpoints is not None else None
    return planner.plan({"Hostname": host.pop("hostname", "")}, {"NetworkMode": mode, **host}, networking, mac)


def test_plan_orders_the_modes_network_first_and_keeps_endpoint_settings() -> None:
    got = _plan("user", {"auto": {"Aliases": ["x"]}, "user": {"IPAMConfig": {"IPv4Address": "10.1.0.9"}}}, mac="02:00:00:00:00:01")
    assert list(got) == ["user", "auto"]  # type: ignore[call-overload]
    assert got["user"] == {"IPAMConfig": {"IPv4Address": "10.1.0.9"}, "Links": None, "Aliases": None,  # type: ignore[index]
                           "MacAddress": "02:00:00:00:00:01", "NetworkID": "u" * 64}
    assert got["auto"]["Aliases"] == ["x"]  # type: ignore[index]
    assert list(_plan("default")) == ["bridge"]  # type: ignore[call-overload]
    assert _plan("none") == {"none": {"NetworkID": "0" * 64}}
    assert _plan("container:abc") == {}
    assert _plan("missing") == {"missing": {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
                                            "NetworkID": ""}}  # the start says "network missing not found"


@pytest.mark.parametrize("mode, endpoints, mac, host, message", [
    ("bridge", {"bridge": {"IPAMConfig": {"IPv4Address": "172.18.0.9"}}}, "", {},
     "user specified IP address is supported on user defined networks only"),
    ("bridge", {"bridge": {"Aliases": ["a"]}}, "", {},
     "network-scoped alias is supported only for containers in user defined networks"),
    ("auto", {"auto": {"IPAMConfig": {"IPv4Address": "10.2.0.9"}}}, "", {},
     "user specified IP address is supported only when connecting to networks with user configured subnets"),
    ("container:x", None, "", {"PortBindings": {"80/tcp": [{}]}},
     "conflicting options: port publishing and the container type network mode"),
    ("container:x", None, "", {"hostname": "h"}, "conflicting options: hostname and the network mode"),
    ("container:x", None, "", {"Dns": ["1.1.1.1"]}, "conflicting options: dns and the network mode"),
    ("container:x", None, "", {"ExtraHosts": ["a:1.2.3.4"]},
     "conflicting options: custom host-to-IP mapping and the network mode"),
    ("host", None, "02:00:00:00:00:01", {}, "conflicting options: mac-address and the network mode"),
    ("user", {"user": {"MacAddress": "nope"}}, "", {}, "invalid MAC address: nope"),
    ("bridge", None, "", {"ExtraHosts": ["nocolon"]}, "invalid extra host"),
])
def test_plan_refuses_as_docker(mode: str, endpoints: dict[str, object] | None, mac: str, host: dict[str, object],
                                message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        _plan(mode, endpoints, mac, **host)


def test_ipv6_in_the_hosts_file_records_views_and_names() -> None:
    from dockyard.networks.network_views import to_docker

    hosts = etc_files.hosts_text(etc_files.EtcSettings(hostname="web", ip="172.18.0.2", ip6="fd12::2"))
    assert hosts.endswith("172.18.0.2\tweb\nfd12::2\tweb\n")
    net = Network(id="b" * 64, name="six", driver="bridge", created="2026-01-01T00:00:00Z", bridge="br-b",
                  subnet="10.1.0.0/24", gateway="10.1.0.1", ipv6=True, subnet6="fd12::/64", gateway6="fd12::1")
    assert Network.from_json(net.to_json()) == net
    ep = Endpoint(network_id=net.id, container_id="c" * 64, container_name="c", endpoint_id="e" * 64,
                  ip="10.1.0.2", prefixlen=24, ip6="fd12::2", prefixlen6=64, gateway6="fd12::1")
    assert Endpoint.from_json(ep.to_json()) == ep
    shown = to_docker(net, [ep])
    assert shown["EnableIPv6"] is True
    assert shown["IPAM"]["Config"] == [{"Subnet": "10.1.0.0/24", "Gateway": "10.1.0.1"},
                                       {"Subnet": "fd12::/64", "Gateway": "fd12::1"}]
    assert shown["Containers"]["c" * 64]["IPv6Address"] == "fd12::2/64"
    given = Network(id="d" * 64, name="given", driver="bridge", created="2026-01-01T00:00:00Z", subnet="10.2.0.0/24",
                    gateway="10.2.0.1", ipam_configured=True, ipv6=True, subnet6="fd13::/64", gateway6="fd13::1",
                    ipam6_configured=True, ip_range6="fd13::100/120")
    assert to_docker(given, [])["IPAM"]["Config"] == [{"Subnet": "10.2.0.0/24"},
                                                      {"Subnet": "fd13::/64", "IPRange": "fd13::100/120"}]
    v6_given = Network(id="e" * 64, name="v6given", driver="bridge", created="", subnet="172.20.0.0/16",
                       gateway="172.20.0.1", ipv6=True, subnet6="fd14::/64", gateway6="fd14::1", ipam6_configured=True)
    assert to_docker(v6_given, [])["IPAM"]["Config"] == [{"Subnet": "fd14::/64"},
                                                         {"Subnet": "172.20.0.0/16", "Gateway": "172.20.0.1"}]
    old = Network.from_json('{"id": "x", "name": "old", "driver": "bridge", "created": "t"}')  # a record of before
    assert old.ipv6 is False and to_docker(old, [])["EnableIPv6"] is False
    reg = NameRegistry()
    reg.register(NameEntry(net.id, "c" * 64, ("c",), "10.1.0.2", "/x", ip6="fd12::2"))
    assert reg.lookup({net.id}, "c") == ["10.1.0.2", "fd12::2"]
