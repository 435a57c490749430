"""Network plumbing with real namespaces: pinned namespaces, bridges and veths (netlink), and the
nft table (firewall): NAT through a test-made "outside" namespace, published ports reached from the
host's loopback, internal networks, isolation between bridges, and teardown that leaves nothing.

Every link, namespace and table a test makes is removed by its fixture, whatever happens; the
session fixture of conftest.py then checks the host's addresses, routes and ruleset are unchanged.
Traffic only runs on loopback and between namespaces these tests made.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from dockyard.networks import ipam, netlink, netns

pytestmark = pytest.mark.root

BUSYBOX = "/bin/busybox"


def in_ns(path: Path, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={path}", *argv], capture_output=True, text=True, timeout=timeout)


def ping(path: Path, address: str) -> bool:
    return in_ns(path, BUSYBOX, "ping", "-c", "1", "-W", "2", address).returncode == 0


@dataclass
class Lab:
    """What a test made: namespaces (pinned under ``root``) and host links, all removed at the end."""

    root: Path
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    namespaces: list[Path] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    def netns(self, name: str) -> Path:
        path = self.root / name
        self.namespaces.append(path)
        netns.create(path)
        return path

    def link(self, kind: str) -> str:
        """A host link name of this test (at most 15 characters), remembered for removal."""
        name = f"dyt{self.tag}{kind}"[:15]
        self.links.append(name)
        return name

    def subnet(self, taken: list[ipaddress.IPv4Network] | None = None) -> ipaddress.IPv4Network:
        """A /24 that overlaps no route or address of the host, nor ``taken``."""
        pool = list(ipaddress.IPv4Network("10.213.0.0/16").subnets(new_prefix=24))
        return ipam.pick_subnet([*netlink.host_routes(), *(taken or [])], pool)

    def cleanup(self) -> None:
        for name in reversed(self.links):
            netlink.delete_link(name)
        for path in reversed(self.namespaces):
            netns.remove(path)


@pytest.fixture()
def lab(tmp_path: Path) -> Iterator[Lab]:
    made = Lab(tmp_path)
    try:
        yield made
    finally:
        made.cleanup()


def namespace_of_thread() -> str:
    return os.readlink("/proc/thread-self/ns/net")


def test_pinned_namespace_lives_until_removed(lab: Lab) -> None:
    mine = namespace_of_thread()
    path = lab.netns("c1")
    assert netns.is_pinned(path)
    inside = netns.run_in(path, namespace_of_thread)
    assert inside != mine and namespace_of_thread() == mine
    assert inside == f"net:[{os.stat(path).st_ino}]"
    links = in_ns(path, "ip", "-j", "link").stdout
    assert '"ifname":"lo"' in links and '"operstate":"UNKNOWN"' in links  # lo is up
    # a socket made there belongs there: the host's loopback listener is out of its reach
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        with pytest.raises(ConnectionRefusedError):
            netns.run_in(path, lambda: socket.create_connection(("127.0.0.1", port), timeout=2))
    netns.remove(path)
    netns.remove(path)
    assert not path.exists()
    with pytest.raises(Exception, match="cannot enter network namespace"):
        netns.run_in(path, lambda: None)


def test_guard_refuses_a_socket_of_another_namespace(lab: Lab) -> None:
    path = lab.netns("c1")
    with IPRoute() as ipr:  # opened in this thread: the host's namespace
        ipr.get_links()
        with pytest.raises(netlink.NamespaceMismatch):
            netlink.guard(ipr, netns.identity(path), "configuring eth0")
        netlink.guard(ipr, netns.identity(netns.HOST), "configuring eth0")


def test_bridge_and_veths_connect_two_namespaces(lab: Lab) -> None:
    subnet = lab.subnet()
    gateway = ipam.default_gateway(subnet)
    pool = ipam.AddressPool(subnet, gateway)
    bridge = lab.link("br")
    netlink.ensure_bridge(bridge, f"{gateway}/{subnet.prefixlen}")
    netlink.ensure_bridge(bridge, f"{gateway}/{subnet.prefixlen}")  # idempotent
    assert netlink.link_exists(bridge)
    assert subnet in netlink.host_routes()
    a, b = lab.netns("a"), lab.netns("b")
    ip_a, ip_b = pool.allocate(), pool.allocate()
    mac = netlink.attach_veth(a, bridge, lab.link("va"), "eth0", f"{ip_a}/{subnet.prefixlen}", gateway,
                              "02:42:0a:d5:00:02")
    assert mac == "02:42:0a:d5:00:02"
    mac_b = netlink.attach_veth(b, bridge, lab.link("vb"), "eth0", f"{ip_b}/{subnet.prefixlen}", gateway, None)
    assert len(mac_b) == 17
    assert f"default via {gateway} dev eth0" in in_ns(a, "ip", "route").stdout
    assert ping(a, ip_b) and ping(b, ip_a) and ping(a, gateway)
    assert "hairpin on" in subprocess.run(["bridge", "-d", "link", "show", "dev", lab.links[1]],
                                          capture_output=True, text=True).stdout
    netlink.detach_veth(lab.links[1])
    netlink.detach_veth(lab.links[1])
    assert not netlink.link_exists(lab.links[1])
    assert "eth0" not in in_ns(a, "ip", "-br", "link").stdout
    assert not ping(b, ip_a)
    netlink.delete_link(bridge)
    netlink.delete_link(bridge)
    assert not netlink.link_exists(bridge) and subnet not in netlink.host_routes()


def test_a_failed_attach_leaves_no_veth(lab: Lab) -> None:
    a = lab.netns("a")
    host_end = lab.link("va")
    with pytest.raises(Exception, match="bridge .* not found"):
        netlink.attach_veth(a, lab.link("nobr"), host_end, "eth0", "10.213.250.2/24", None, None)
    assert not netlink.link_exists(host_end)
    assert "eth0" not in in_ns(a, "ip", "-br", "link").stdout


def test_ensure_bridge_never_takes_over_another_link(lab: Lab) -> None:
    a = lab.netns("a")
    subnet = lab.subnet()
    bridge, other = lab.link("br"), lab.link("vx")
    netlink.ensure_bridge(bridge, f"{ipam.default_gateway(subnet)}/24")
    netlink.attach_veth(a, bridge, other, "eth0", f"{subnet.network_address + 2}/24", None, None)
    with pytest.raises(Exception, match="not a bridge"):
        netlink.ensure_bridge(other, "10.213.251.1/24")


def serve_tcp_once(path: Path, port: int, reply: bytes) -> Callable[[], bytes]:
    """A TCP listener inside ``path`` (made there with netns.run_in); returns a function that waits
    for one client and returns what it sent, after answering ``reply``."""
    listener = netns.run_in(path, lambda: socket.create_server(("0.0.0.0", port)))
    got: list[bytes] = []

    def serve() -> None:
        listener.settimeout(10)
        try:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                got.append(conn.recv(100))
                conn.sendall(reply)
        except OSError:
            got.append(b"")
        finally:
            listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def result() -> bytes:
        thread.join(15)
        return got[0] if got else b""

    return result
