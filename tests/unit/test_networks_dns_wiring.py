"""DnsWiring: the name registry's entries into the DNS server's table and attachments (a recording
stand-in for EmbeddedDns; the real server is exercised in tests/integration/test_network_dns_wiring.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dockyard.networks.dns_wiring import DnsWiring
from dockyard.networks.names import NameEntry, NameRegistry

NETWORKS = {"n1": ("front", False), "n2": ("back", True), "n3": ("alpha", False)}


class RecordingDns:
    def __init__(self) -> None:
        self.attached: dict[str, tuple[Path, Any, list[str] | None, bool]] = {}
        self.calls: list[str] = []
        self.closed = False

    def attach(self, key: str, netns: Path, view: Any, upstreams: list[str] | None = None, *,
               ndots_set: bool = False) -> None:
        self.calls.append(f"attach {key}")
        self.attached[key] = (netns, view, upstreams, ndots_set)

    def detach(self, key: str) -> None:
        self.calls.append(f"detach {key}")
        self.attached.pop(key, None)

    def close(self) -> None:
        self.closed = True


def entry(net: str, cid: str, *names: str, ip: str) -> NameEntry:
    return NameEntry(net, cid, names, ip, f"/run/x/netns/{cid}")


def make(settings: dict[str, tuple[list[str], bool]] | None = None) -> tuple[NameRegistry, RecordingDns, DnsWiring]:
    registry = NameRegistry()
    dns = RecordingDns()
    wiring = DnsWiring(dns, registry, NETWORKS.get,  # type: ignore[arg-type]
                       lambda cid: (settings or {}).get(cid, ([], False)))
    return registry, dns, wiring


def test_names_scoped_to_shared_networks_and_attach_once() -> None:
    registry, dns, wiring = make({"c2": (["10.9.9.9"], True)})
    registry.register(entry("n1", "c1", "web", "svc", "c1short", ip="10.0.0.2"))
    registry.register(entry("n1", "c2", "cli", ip="10.0.0.3"))
    registry.register(entry("n3", "c3", "other", ip="10.1.0.2"))
    netns, view, upstreams, ndots = dns.attached["c2"]
    assert (netns, upstreams, ndots) == (Path("/run/x/netns/c2"), ["10.9.9.9"], True)
    assert dns.attached["c1"][2] is None  # the host's resolvers (re-read on change)
    assert view.addresses("web") == ["10.0.0.2"] and view.addresses("SVC") == ["10.0.0.2"]
    assert view.addresses("c1short") == ["10.0.0.2"]
    assert view.addresses_on("web", "front") == ["10.0.0.2"]
    assert view.addresses("other") is None and view.addresses_on("other", "alpha") is None
    assert view.name_of("10.0.0.2") == "web.front"
    # a live connect: the same attachment now sees the other network
    registry.register(entry("n3", "c2", "cli", ip="10.1.0.3"))
    assert dns.calls.count("attach c2") == 1
    assert view.addresses("other") == ["10.1.0.2"]
    # a disconnect: gone again; after the last network's leaving it still forwards (as dockerd's)
    registry.unregister("n3", "c2")
    assert view.addresses("other") is None
    registry.unregister("n1", "c2")
    assert "c2" in dns.attached and view.addresses("web") is None
    assert registry.lookup({"n1"}, "cli") == []
    # the run's end detaches (and forgets the names of a container still registered)
    wiring.forget("c2")
    assert "c2" not in dns.attached and dns.calls[-1] == "detach c2"
    wiring.forget("c1")
    assert dns.calls[-1] == "detach c1" and dns.attached == {} or "c3" in dns.attached
    assert wiring.table.lookup("front", "web") is None
    wiring.forget("nobody")
    assert dns.calls[-1] == "detach c1"


def test_internal_only_forwards_nothing_until_a_routed_network_joins() -> None:
    registry, dns, wiring = make()
    registry.register(entry("n2", "c1", "db", ip="10.2.0.2"))
    assert dns.attached["c1"][2] == []
    registry.register(entry("n1", "c1", "db", ip="10.0.0.9"))
    assert dns.attached["c1"][2] is None
    assert wiring.networks_of("c1") == ["front", "back"]  # internal after the others, then by name
    registry.register(entry("n3", "c1", "db", ip="10.1.0.9"))
    assert wiring.networks_of("c1") == ["alpha", "front", "back"]


def test_internal_only_still_asks_its_own_dns_servers() -> None:
    """Docker's resolver without external access skips only the host's resolvers: a container's own
    ``--dns`` servers are asked from its namespace, which cannot reach past an internal network."""
    registry, dns, _ = make({"c1": (["127.0.0.1"], False)})
    registry.register(entry("n2", "c1", "db", ip="10.2.0.2"))
    assert dns.attached["c1"][2] == ["127.0.0.1"]


def test_entries_before_the_wiring_are_attached_and_close_stops() -> None:
    registry = NameRegistry()
    registry.register(entry("n1", "c1", "web", ip="10.0.0.2"))
    registry.register(entry("default-bridge", "c9", "x", ip="172.30.0.2"))  # unknown network: ignored
    dns = RecordingDns()
    wiring = DnsWiring(dns, registry, NETWORKS.get, lambda cid: ([], False))  # type: ignore[arg-type]
    assert list(dns.attached) == ["c1"]
    wiring.close()
    assert dns.closed
    registry.register(entry("n1", "c2", "late", ip="10.0.0.3"))
    assert "c2" not in dns.attached


def test_kept_resolvers_without_entries_are_attached_forwarding() -> None:
    """After a daemon restart, a container whose sandbox had the resolver but has no user network left
    is attached again, forwarding to the host's resolvers (or its own --dns servers), with no names."""
    registry = NameRegistry()
    registry.register(entry("n1", "c1", "web", ip="10.0.0.2"))
    registry.keep_resolver("c1", "/run/x/netns/c1")
    registry.keep_resolver("c2", "/run/x/netns/c2")
    registry.keep_resolver("c3", "/run/x/netns/c3")
    dns = RecordingDns()
    settings = {"c3": (["127.0.0.1"], False)}
    wiring = DnsWiring(dns, registry, NETWORKS.get,  # type: ignore[arg-type]
                       lambda cid: settings.get(cid, ([], False)))
    assert dns.calls.count("attach c1") == 1  # attached once, by its entry
    netns, view, upstreams, _ = dns.attached["c2"]
    assert (netns, upstreams) == (Path("/run/x/netns/c2"), None)
    assert view.addresses("web") is None and wiring.networks_of("c2") == []
    assert dns.attached["c3"][2] == ["127.0.0.1"]
    # a connect afterwards gives it names on the same attachment; the run's end detaches it
    registry.register(entry("n1", "c2", "late", ip="10.0.0.3"))
    assert dns.calls.count("attach c2") == 1 and view.addresses("web") == ["10.0.0.2"]
    wiring.forget("c2")
    assert "c2" not in dns.attached
    registry.drop_resolver("c2")
    assert sorted(registry.kept_resolvers()) == ["c1", "c3"]


def test_links_are_aliases_of_the_linking_container_alone() -> None:
    """An entry's links (``--link name:alias`` on that network) resolve for that container only, to
    what the linked name answers on that network; a link alias is tried before names on every network
    (Docker's sandbox), and a network where the name is a link alias is not asked for it as a name."""
    registry, dns, wiring = make()
    registry.register(entry("n1", "web", "web", ip="10.0.0.2"))
    registry.register(entry("n3", "api", "api", ip="10.1.0.5"))
    registry.register(entry("n1", "db", "db", ip="10.0.0.7"))  # a container really called db
    linker = NameEntry("n1", "lnk", ("lnk",), "10.0.0.3", "/run/x/netns/lnk", (), ("web:db", "/api:/lnk/x", "web"))
    registry.register(linker)
    registry.register(entry("n1", "other", "other", ip="10.0.0.4"))
    view = dns.attached["lnk"][1]
    assert view.addresses("db") == ["10.0.0.2"]  # the link wins over the container called db
    assert view.addresses("DB") == ["10.0.0.2"] and view.addresses_on("db", "front") == ["10.0.0.2"]
    assert view.addresses("x") is None  # api is on no network lnk shares
    assert view.addresses("web") == ["10.0.0.2"]
    assert dns.attached["other"][1].addresses("db") == ["10.0.0.7"]
    assert wiring.links_of("lnk", "front") == {"db": "web", "x": "api", "web": "web"}
    # on another network too: the alias there answers what the name answers there
    registry.register(NameEntry("n3", "lnk", ("lnk",), "10.1.0.3", "/run/x/netns/lnk", (), ("api:x",)))
    assert view.addresses("x") == ["10.1.0.5"] and view.addresses_on("x", "front") is None
    registry.unregister("n3", "lnk")
    assert view.addresses("x") is None and wiring.links_of("lnk", "alpha") == {}


def test_parse_link_as_dockers() -> None:
    import pytest

    from dockyard.errors import InvalidParameter
    from dockyard.networks.names import parse_link

    assert parse_link("web:db") == ("web", "db")
    assert parse_link("web") == ("web", "web")
    assert parse_link("/web:/lnk/db") == ("web", "db")
    for bad, message in (("", "empty string specified for links"), ("a:b:c", "bad format for links: a:b:c")):
        with pytest.raises(InvalidParameter, match=message):
            parse_link(bad)
