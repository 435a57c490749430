"""The pure parts of dockyard/networks/firewall.py: table names, binding checks, the nft scripts it
writes for networks and published ports, and reading elements back from ``nft -j`` output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dockyard.errors import DockyardError, InvalidParameter
from dockyard.networks.firewall import Firewall, PortForward, _Network, table_for_root


class ScriptRecorder(Firewall):
    """A Firewall whose nft transactions are recorded instead of run (and whose table is empty)."""

    def __init__(self) -> None:
        super().__init__("dockyard_test")
        self.scripts: list[str] = []
        self._networks, self._forwards = {}, {}

    def _nft(self, script: str) -> None:
        self.scripts.append(script)

    def _list6(self) -> list[dict[str, Any]] | None:
        return None  # never the host's nft


def test_table_names_per_root() -> None:
    assert table_for_root(Path("/var/lib/dockyard")) == "dockyard"
    other = table_for_root(Path("/tmp/some-root"))
    assert other.startswith("dockyard_") and len(other) == len("dockyard_") + 8
    assert other != table_for_root(Path("/tmp/other-root"))
    assert table_for_root(Path("/tmp/some-root/")) == other


def test_table_name_is_checked() -> None:
    with pytest.raises(InvalidParameter):
        Firewall("dockyard; flush ruleset")


def test_publish_writes_map_elements_with_the_owner() -> None:
    fw = ScriptRecorder()
    fw.publish("abc", [PortForward("", 8080, "172.18.0.2", 80, "tcp"),
                       PortForward("127.0.0.1", 5353, "172.18.0.2", 53, "udp")])
    assert fw.scripts == [
        'add element ip dockyard_test dnat_any { tcp . 8080 comment "abc" : 172.18.0.2 . 80 }\n'
        'add element ip dockyard_test dnat_addr { 127.0.0.1 . udp . 5353 comment "abc" : 172.18.0.2 . 53 }\n'
        'add element ip dockyard_test hairpin { 172.18.0.2 . 172.18.0.2 }\n']
    fw.scripts.clear()
    fw.unpublish("abc")
    assert fw.scripts == [
        "delete element ip dockyard_test dnat_any { tcp . 8080 }\n"
        "delete element ip dockyard_test dnat_addr { 127.0.0.1 . udp . 5353 }\n"
        "delete element ip dockyard_test hairpin { 172.18.0.2 . 172.18.0.2 }\n"]
    fw.scripts.clear()
    fw.unpublish("abc")
    assert fw.scripts == []


@pytest.mark.parametrize(("first", "second"), [
    (PortForward("", 8080, "172.18.0.2", 80, "tcp"), PortForward("10.0.0.1", 8080, "172.18.0.3", 80, "tcp")),
    (PortForward("10.0.0.1", 8080, "172.18.0.2", 80, "tcp"), PortForward("0.0.0.0", 8080, "172.18.0.3", 80, "tcp")),
    (PortForward("10.0.0.1", 8080, "172.18.0.2", 80, "tcp"), PortForward("10.0.0.1", 8080, "172.18.0.3", 81, "tcp")),
])
def test_a_host_port_is_published_once(first: PortForward, second: PortForward) -> None:
    fw = ScriptRecorder()
    fw.publish("a", [first])
    with pytest.raises(DockyardError, match=r"Bind for .*:8080 failed: port is already allocated"):
        fw.publish("b", [second])
    assert len(fw.scripts) == 1


def test_one_publish_cannot_take_a_port_twice() -> None:
    fw = ScriptRecorder()
    twice = PortForward("", 9090, "172.18.0.2", 80, "tcp")
    with pytest.raises(DockyardError, match="Bind for 0.0.0.0:9090 failed: port is already allocated"):
        fw.publish("c", [twice, twice])
    assert fw.scripts == []


def test_the_same_port_for_another_protocol_or_address_is_free() -> None:
    fw = ScriptRecorder()
    fw.publish("a", [PortForward("10.0.0.1", 8080, "172.18.0.2", 80, "tcp")])
    fw.publish("b", [PortForward("10.0.0.2", 8080, "172.18.0.3", 80, "tcp"),
                     PortForward("", 8080, "172.18.0.3", 80, "udp")])
    assert len(fw.scripts) == 2


@pytest.mark.parametrize("bad", [
    PortForward("", 0, "172.18.0.2", 80, "tcp"),
    PortForward("", 80, "172.18.0.2", 70000, "tcp"),
    PortForward("", 80, "172.18.0.2", 80, "sctp"),  # type: ignore[arg-type]
    PortForward("10.0.0.1", 80, "fd12::2", 80, "tcp"),
    PortForward("::zz", 80, "172.18.0.2", 80, "tcp"),
    PortForward("", 80, "fe80::1", 80, "tcp"),
])
def test_bindings_are_checked(bad: PortForward) -> None:
    fw = ScriptRecorder()
    with pytest.raises(InvalidParameter):
        fw.publish("a", [bad])
    assert fw.scripts == []


def test_owner_names_cannot_break_out_of_the_comment() -> None:
    fw = ScriptRecorder()
    with pytest.raises(InvalidParameter):
        fw.publish('x" ; flush ruleset ; "', [PortForward("", 8080, "172.18.0.2", 80, "tcp")])
    assert fw.scripts == []


def test_network_elements() -> None:
    fw = ScriptRecorder()
    assert fw._network_lines(_Network("br-1", "172.18.0.0/16", False), "add") == [
        'add element ip dockyard_test bridges { "br-1" }',
        'add element ip dockyard_test same_bridge { "br-1" . "br-1" }',
        'add element ip dockyard_test masq_subnets { 172.18.0.0/16 comment "br-1" }']
    assert fw._network_lines(_Network("br-2", None, True), "delete") == [
        'delete element ip dockyard_test bridges { "br-2" }',
        'delete element ip dockyard_test same_bridge { "br-2" . "br-2" }',
        'delete element ip dockyard_test internal { "br-2" }']


def test_elements_are_read_back_from_nft_json() -> None:
    fw = ScriptRecorder()
    listing: list[dict[str, Any]] = [
        {"table": {"family": "ip", "name": "dockyard_test", "comment": "x"}},
        {"set": {"name": "bridges", "elem": ["br-1", "br-2"]}},
        {"set": {"name": "internal", "elem": ["br-2"]}},
        {"set": {"name": "masq_subnets", "elem": [
            {"elem": {"val": {"prefix": {"addr": "172.18.0.0", "len": 16}}, "comment": "br-1"}}]}},
        {"map": {"name": "dnat_any", "elem": [
            [{"elem": {"val": {"concat": ["tcp", 8080]}, "comment": "c1"}}, {"concat": ["172.18.0.2", 80]}]]}},
        {"map": {"name": "dnat_addr", "elem": [
            [{"elem": {"val": {"concat": ["127.0.0.1", 17, 53]}, "comment": "c2"}},
             {"concat": ["172.18.0.3", 5353]}]]}},
    ]
    fw._list = lambda: listing  # type: ignore[method-assign]  # noqa: E731
    fw._load()
    assert fw._networks == {"br-1": _Network("br-1", "172.18.0.0/16", False), "br-2": _Network("br-2", None, True)}
    assert fw._forwards == {"c1": [PortForward("0.0.0.0", 8080, "172.18.0.2", 80, "tcp")],
                            "c2": [PortForward("127.0.0.1", 53, "172.18.0.3", 5353, "udp")]}


# -- IPv6 --------------------------------------------------------------------------------------------

def test_ipv6_network_elements_go_to_the_ip6_table_too() -> None:
    fw = ScriptRecorder()
    net = _Network("br-6", "172.18.0.0/16", False, ipv6=True, subnet6="fd12:3456:789a::/64")
    assert fw._network_lines(net, "add") == [
        'add element ip dockyard_test bridges { "br-6" }',
        'add element ip dockyard_test same_bridge { "br-6" . "br-6" }',
        'add element ip dockyard_test masq_subnets { 172.18.0.0/16 comment "br-6" }',
        'add element ip6 dockyard_test bridges { "br-6" }',
        'add element ip6 dockyard_test same_bridge { "br-6" . "br-6" }',
        'add element ip6 dockyard_test masq_subnets { fd12:3456:789a::/64 comment "br-6" }']
    internal = _Network("br-7", None, True, ipv6=True, subnet6=None)
    assert [line for line in fw._network_lines(internal, "delete") if " ip6 " in line] == [
        'delete element ip6 dockyard_test bridges { "br-7" }',
        'delete element ip6 dockyard_test same_bridge { "br-7" . "br-7" }',
        'delete element ip6 dockyard_test internal { "br-7" }']


def test_ipv6_forwards_go_to_the_ip6_maps() -> None:
    fw = ScriptRecorder()
    fw.publish("abc", [PortForward("0.0.0.0", 8080, "172.18.0.2", 80, "tcp"),
                       PortForward("::", 8080, "fd12::2", 80, "tcp"),
                       PortForward("::1", 8081, "fd12::2", 81, "tcp")])
    assert fw.scripts == [
        'add element ip dockyard_test dnat_any { tcp . 8080 comment "abc" : 172.18.0.2 . 80 }\n'
        'add element ip6 dockyard_test dnat_any { tcp . 8080 comment "abc" : fd12::2 . 80 }\n'
        'add element ip6 dockyard_test dnat_addr { ::1 . tcp . 8081 comment "abc" : fd12::2 . 81 }\n'
        'add element ip dockyard_test hairpin { 172.18.0.2 . 172.18.0.2 }\n'
        'add element ip6 dockyard_test hairpin { fd12::2 . fd12::2 }\n']
    # the same port on the other family is another binding; on the same family it is taken
    with pytest.raises(DockyardError, match=r"Bind for \[::\]:8080 failed: port is already allocated"):
        fw.publish("def", [PortForward("::", 8080, "fd12::3", 80, "tcp")])
    with pytest.raises(InvalidParameter):
        fw.publish("def", [PortForward("", 9000, "fe80::2", 80, "tcp")])  # link-local target
    with pytest.raises(InvalidParameter):
        fw.publish("def", [PortForward("10.0.0.1", 9000, "fd12::3", 80, "tcp")])  # v4 host, v6 target


def test_ipv6_elements_are_read_back() -> None:
    fw = ScriptRecorder()
    v6: list[dict[str, Any]] = [
        {"table": {"family": "ip6", "name": "dockyard_test", "comment": "x"}},
        {"set": {"name": "bridges", "elem": ["br-1"]}},
        {"set": {"name": "masq_subnets", "elem": [
            {"elem": {"val": {"prefix": {"addr": "fd12::", "len": 64}}, "comment": "br-1"}}]}},
        {"map": {"name": "dnat_any", "elem": [
            [{"elem": {"val": {"concat": ["tcp", 8080]}, "comment": "c1"}}, {"concat": ["fd12::2", 80]}]]}},
        {"map": {"name": "dnat_addr", "elem": [
            [{"elem": {"val": {"concat": ["::1", "tcp", 8081]}, "comment": "c1"}}, {"concat": ["fd12::2", 81]}]]}},
    ]
    v4: list[dict[str, Any]] = [
        {"set": {"name": "bridges", "elem": ["br-1"]}},
        {"set": {"name": "masq_subnets", "elem": [
            {"elem": {"val": {"prefix": {"addr": "172.18.0.0", "len": 16}}, "comment": "br-1"}}]}},
    ]
    fw._list = lambda: v4  # type: ignore[method-assign]  # noqa: E731
    fw._list6 = lambda: v6  # type: ignore[method-assign]  # noqa: E731
    fw._load()
    assert fw._networks == {"br-1": _Network("br-1", "172.18.0.0/16", False, ipv6=True, subnet6="fd12::/64")}
    assert fw._forwards == {"c1": [PortForward("::", 8080, "fd12::2", 80, "tcp"),
                                   PortForward("::1", 8081, "fd12::2", 81, "tcp")]}
    assert fw._forwards["c1"][0].shown_host_ip() == "::" and fw._forwards["c1"][1].family == 6


def test_the_ip6_table_leaves_loopback_to_the_relay() -> None:
    from dockyard.networks.firewall import _skeleton6

    script = _skeleton6("dockyard_test")
    assert script.startswith("table ip6 dockyard_test {")
    assert "ip6 daddr != ::1 fib daddr type local jump published" in script
    assert "ip6 saddr @masq_subnets oifname != @bridges masquerade" in script


def test_ipv6_host_to_ipv4_container_is_recorded_for_the_relay() -> None:
    fw = ScriptRecorder()
    proxied = PortForward("::", 8080, "172.18.0.2", 80, "tcp")
    assert proxied.proxied and proxied.host_family == 6 and proxied.any_address() and proxied.shown_host_ip() == "::"
    fw.publish("abc", [PortForward("0.0.0.0", 8080, "172.18.0.2", 80, "tcp"), proxied])
    assert fw.scripts == [
        'add element ip dockyard_test dnat_any { tcp . 8080 comment "abc" : 172.18.0.2 . 80 }\n'
        'add element ip6 dockyard_test proxy6 { :: . tcp . 8080 . 172.18.0.2 . 80 comment "abc" }\n'
        'add element ip dockyard_test hairpin { 172.18.0.2 . 172.18.0.2 }\n']
    with pytest.raises(DockyardError, match=r"Bind for \[::\]:8080 failed: port is already allocated"):
        fw.publish("def", [PortForward("::", 8080, "fd12::3", 80, "tcp")])
    fw.scripts.clear()
    fw.unpublish("abc")
    assert fw.scripts == [
        "delete element ip dockyard_test dnat_any { tcp . 8080 }\n"
        "delete element ip6 dockyard_test proxy6 { :: . tcp . 8080 . 172.18.0.2 . 80 }\n"
        "delete element ip dockyard_test hairpin { 172.18.0.2 . 172.18.0.2 }\n"]
    v6: list[dict[str, Any]] = [{"set": {"name": "proxy6", "elem": [
        {"elem": {"val": {"concat": ["::1", "tcp", 8081, "172.18.0.3", 81]}, "comment": "c9"}}]}}]
    fw._list = lambda: []  # type: ignore[method-assign]  # noqa: E731
    fw._list6 = lambda: v6  # type: ignore[method-assign]  # noqa: E731
    fw._load()
    assert fw._forwards == {"c9": [PortForward("::1", 8081, "172.18.0.3", 81, "tcp")]}
