"""Network plumbing with real namespaces: pinned namespaces, bridges and veths (netlink), and the
nft table (firewall): NAT through a test-made "outside" namespace, published ports reached from the
host's loopback, internal networks, isolation between bridges, and teardown that leaves nothing.

Every link, namespace and table a test makes is removed by its fixture, whatever happens; the
session fixture of conftest.py then checks the host's addresses, routes and ruleset are unchanged.
Traffic only runs on loopback and between namespaces these tests made.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from dockyard.errors import DockyardError
from dockyard.networks import ipam, netlink, netns
from dockyard.networks.firewall import Firewall, PortForward, _LibNftables
from dockyard.networks.rtnl import RtnlError, RtnlSocket
from tests.integration.daemon_harness import DOCKER

pytestmark = pytest.mark.root

BUSYBOX = "/bin/busybox"


def in_ns(path: Path, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={path}", *argv], capture_output=True, text=True, timeout=timeout)


def ping(path: Path, address: str) -> bool:
    return in_ns(path, BUSYBOX, "ping", "-c", "1", "-W", "2", address).returncode == 0


def pings(*pairs: tuple[Path, str]) -> list[bool]:
    """Ping each (namespace, address) at once (one second to answer); which answered."""
    running = [subprocess.Popen(["nsenter", f"--net={path}", BUSYBOX, "ping", "-c", "1", "-W", "1", address],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for path, address in pairs]
    return [proc.wait(10) == 0 for proc in running]


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
    with RtnlSocket() as sock:  # the start path's socket: the same guard
        with pytest.raises(netlink.NamespaceMismatch):
            netlink.guard(sock, netns.identity(path), "configuring eth0")
        netlink.guard(sock, netns.identity(netns.HOST), "configuring eth0")
    inside = netns.run_in(path, RtnlSocket)
    try:
        with pytest.raises(netlink.NamespaceMismatch):
            netlink.guard(inside, netns.identity(netns.HOST), "configuring eth0")
        netlink.guard(inside, netns.identity(path), "configuring eth0")
    finally:
        inside.close()


def test_rtnl_requests_report_the_kernels_refusal(lab: Lab) -> None:
    """Each request of the start path waits for its ACK and turns an errno into an RtnlError that
    names the operation; the socket goes on serving after one (the sequence numbers stay in step)."""
    path = lab.netns("c1")
    peer = lab.netns("c2")

    def work() -> None:
        with RtnlSocket() as sock:
            fd = os.open(peer, os.O_RDONLY | os.O_CLOEXEC)
            try:
                sock.add_veth("va", "eth0", peer_netns_fd=fd, peer_mac="02:00:00:00:00:05", mtu=1400, master=None)
                with pytest.raises(RtnlError, match="cannot create veth va: File exists") as caught:
                    sock.add_veth("va", "eth1", peer_netns_fd=fd, peer_mac="02:00:00:00:00:06", mtu=1400, master=None)
                assert caught.value.errno == errno.EEXIST
            finally:
                os.close(fd)
            with pytest.raises(RtnlError, match="cannot set nothing up: No such device") as missing:
                sock.set_up(4000, "nothing")
            assert missing.value.errno == errno.ENODEV
            index = socket.if_nametoindex("va")
            sock.add_address(index, ipaddress.IPv4Interface("10.213.252.1/24"), "va")
            with pytest.raises(RtnlError, match="File exists"):
                sock.add_address(index, ipaddress.IPv4Interface("10.213.252.1/24"), "va")
            sock.set_up(index, "va")

    netns.run_in(path, work)
    here = json.loads(in_ns(path, "ip", "-j", "addr", "show", "va").stdout)[0]
    assert here["mtu"] == 1400 and "UP" in here["flags"]
    assert [(a["local"], a["prefixlen"]) for a in here["addr_info"] if a["family"] == "inet"] == [("10.213.252.1", 24)]
    there = json.loads(in_ns(peer, "ip", "-j", "link", "show", "eth0").stdout)[0]
    assert there["address"] == "02:00:00:00:00:05" and there["mtu"] == 1400 and "UP" not in there["flags"]


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
    # removing a namespace takes its veth pair with it (the kernel does it in the background)
    netns.remove(b)
    for _ in range(100):
        if not netlink.link_exists(lab.links[2]):
            break
        threading.Event().wait(0.05)
    assert not netlink.link_exists(lab.links[2])
    netlink.delete_link(bridge)
    netlink.delete_link(bridge)
    assert not netlink.link_exists(bridge) and subnet not in netlink.host_routes()


def test_a_veth_made_ahead_joins_its_bridge_when_taken(lab: Lab) -> None:
    """``attach_veth(join=False)`` (a namespace made ahead): the inside is ready — address, up, the
    default route — but the host end is down and on no bridge, so nothing reaches it; ``join_bridge``
    makes it a port (up, hairpin on) as ``attach_veth`` would have."""
    subnet = lab.subnet()
    gateway = ipam.default_gateway(subnet)
    bridge = lab.link("br")
    netlink.ensure_bridge(bridge, f"{gateway}/{subnet.prefixlen}")
    a = lab.netns("a")
    host_end = lab.link("va")
    ip = str(subnet.network_address + 2)
    mac = netlink.attach_veth(a, bridge, host_end, "eth0", f"{ip}/{subnet.prefixlen}", gateway, None, 1400, join=False)
    link = json.loads(subprocess.run(["ip", "-j", "link", "show", host_end], capture_output=True, text=True).stdout)[0]
    assert "master" not in link and "UP" not in link["flags"]
    inside = json.loads(in_ns(a, "ip", "-j", "addr", "show", "eth0").stdout)[0]
    assert inside["address"] == mac and "UP" in inside["flags"] and inside["mtu"] == 1400
    assert f"default via {gateway} dev eth0" in in_ns(a, "ip", "route").stdout
    assert not ping(a, gateway)
    netlink.join_bridge(bridge, host_end)
    link = json.loads(subprocess.run(["ip", "-j", "link", "show", host_end], capture_output=True, text=True).stdout)[0]
    assert link["master"] == bridge and "UP" in link["flags"]
    assert "hairpin on" in subprocess.run(["bridge", "-d", "link", "show", "dev", host_end],
                                          capture_output=True, text=True).stdout
    assert ping(a, gateway)
    with pytest.raises(DockyardError, match="not found"):
        netlink.join_bridge(bridge, lab.link("vnone"))


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


class TcpServer:
    """A TCP listener made inside a namespace (netns.run_in) that answers each client with ``reply``
    and records what the client sent and the address it came from."""

    def __init__(self, path: Path | None, address: str, port: int = 0, reply: bytes = b"pong") -> None:
        def make() -> socket.socket:
            return socket.create_server((address, port))

        self.listener = netns.run_in(path, make) if path else make()
        self.port = self.listener.getsockname()[1]
        self.reply = reply
        self.seen: list[tuple[str, bytes]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    self.seen.append((peer[0], conn.recv(100)))
                    conn.sendall(self.reply)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(5)


class UdpEcho:
    """A UDP socket inside a namespace answering each datagram with ``echo:`` + it."""

    def __init__(self, path: Path, address: str, port: int) -> None:
        self.sock = netns.run_in(path, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        self.sock.bind((address, port))
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                data, peer = self.sock.recvfrom(100)
                self.sock.sendto(b"echo:" + data, peer)
            except OSError:
                continue

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def tcp_exchange(path: Path | None, address: str, port: int, data: bytes = b"ping", timeout: float = 3) -> bytes:
    """Connect from inside ``path`` (None: here), send ``data``, return the answer."""

    def talk() -> bytes:
        with socket.create_connection((address, port), timeout=timeout) as conn:
            conn.sendall(data)
            return conn.recv(100)

    return netns.run_in(path, talk) if path else talk()


def udp_exchange(address: str, port: int, data: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(data, (address, port))
        return sock.recv(100)


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture()
def host_firewall(lab: Lab) -> Iterator[Firewall]:
    """A firewall of this test's own table in the host's namespace, dropped at the end."""
    fw = Firewall(f"dockyard_t{lab.tag}")
    try:
        fw.ensure()
        yield fw
    finally:
        try:
            fw.reset()
        finally:
            fw.close()


def test_published_ports_reach_a_container_from_the_hosts_loopback(lab: Lab, host_firewall: Firewall,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fw = host_firewall
    subnet = lab.subnet()
    gateway = ipam.default_gateway(subnet)
    bridge = lab.link("br")
    netlink.ensure_bridge(bridge, f"{gateway}/{subnet.prefixlen}")
    fw.add_network(bridge, str(subnet), internal=False)
    c1 = lab.netns("c1")
    ip = str(subnet.network_address + 2)
    netlink.attach_veth(c1, bridge, lab.link("v1"), "eth0", f"{ip}/{subnet.prefixlen}", gateway, None)
    tcp_port, udp_port, bound_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM), \
        free_port(socket.SOCK_STREAM)
    server = TcpServer(c1, "0.0.0.0", 80, reply=b"from c1")
    echo = UdpEcho(c1, "0.0.0.0", 53)
    try:
        fw.publish("c1" * 32, [PortForward("", tcp_port, ip, 80, "tcp"), PortForward("0.0.0.0", udp_port, ip, 53, "udp"),
                               PortForward("127.0.0.1", bound_port, ip, 80, "tcp")])
        assert tcp_exchange(None, "127.0.0.1", tcp_port) == b"from c1"
        assert tcp_exchange(None, "127.0.0.1", bound_port) == b"from c1"
        assert udp_exchange("127.0.0.1", udp_port, b"hello") == b"echo:hello"
        assert server.seen[0] == (gateway, b"ping")  # loopback clients are masqueraded to the gateway
        # the container reaches itself through the host's address (hairpin)
        assert tcp_exchange(c1, gateway, tcp_port) == b"from c1"
        # read back from the kernel, as after a restart
        published = {PortForward("0.0.0.0", tcp_port, ip, 80, "tcp"), PortForward("127.0.0.1", bound_port, ip, 80, "tcp"),
                     PortForward("0.0.0.0", udp_port, ip, 53, "udp")}
        for library in (True, False):  # through libnftables, and through the nft program
            reader = Firewall(fw.table)
            if not library:
                monkeypatch.setattr(_LibNftables, "library", classmethod(lambda cls: None))
            try:
                read_back = reader.forwards()
            finally:
                reader.close()
            assert list(read_back) == ["c1" * 32] and set(read_back["c1" * 32]) == published
        with pytest.raises(Exception, match=f"Bind for 0.0.0.0:{tcp_port} failed: port is already allocated"):
            fw.publish("other", [PortForward("", tcp_port, ip, 81, "tcp")])
        with pytest.raises(Exception, match="port is already allocated"):
            fw.publish("other", [PortForward("0.0.0.0", bound_port, ip, 81, "tcp")])
        # a port for a binding that names none: in the ephemeral range, never one published or held
        low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        with socket.create_server(("0.0.0.0", 0)) as holder:
            held, spare = holder.getsockname()[1], free_port(socket.SOCK_STREAM)
            candidates = {tcp_port, held, spare}
            assert all(low <= port <= high for port in candidates)
            assert fw.pick_host_port("tcp", exclude=set(range(low, high + 1)) - candidates) == spare
            assert fw.pick_host_port("udp", exclude=set(range(low, high + 1)) - {udp_port, spare}) == spare
        fw.unpublish("c1" * 32)
        fw.unpublish("c1" * 32)
        assert fw.forwards() == {}
        with pytest.raises(ConnectionRefusedError):
            tcp_exchange(None, "127.0.0.1", tcp_port)
    finally:
        server.close()
        echo.close()
    fw.remove_network(bridge)
    fw.remove_network(bridge)
    netlink.detach_veth(lab.links[1])
    netlink.delete_link(bridge)
    fw.reset()
    assert fw.table not in subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert not netlink.link_exists(bridge) and not netlink.link_exists(lab.links[1])


OUTSIDE = "198.51.100.2"   # TEST-NET-2: the "world", a namespace of the test's own
WAN_GATEWAY = "198.51.100.1"


@dataclass
class World:
    """A stand-in host (namespace ``host``) with our firewall, and an ``outside`` namespace behind its
    ``wan`` bridge that routes our subnets back to it (so only our rules stop traffic, not routing)."""

    host: Path
    outside: Path
    fw: Firewall
    lab: Lab

    def network(self, third_octet: int, internal: bool = False) -> tuple[str, list[str]]:
        bridge = self.lab.link(f"n{third_octet}")
        netlink.ensure_bridge(bridge, f"10.213.{third_octet}.1/24", netns=self.host)
        self.fw.add_network(bridge, f"10.213.{third_octet}.0/24", internal=internal)
        return bridge, [f"10.213.{third_octet}.{i}" for i in range(2, 10)]

    def container(self, name: str, bridge: str, ip: str) -> Path:
        path = self.lab.netns(name)
        gateway = ip.rsplit(".", 1)[0] + ".1"
        netlink.attach_veth(path, bridge, self.lab.link(f"v{name}"), "eth0", f"{ip}/24", gateway, None,
                            host_netns=self.host)
        return path


DOCKERD = "/usr/sbin/dockerd"


def start_dockerd(host: Path, root: Path) -> subprocess.Popen[bytes]:
    """A dockerd with ``--iptables=true`` in the stand-in host namespace (forwarding off first, so it
    turns it on and sets FORWARD's policy to DROP, as on a fresh host), in a private mount namespace
    seeing cgroup v2; on its own root, socket and exec root."""
    assert in_ns(host, "sysctl", "-qw", "net.ipv4.ip_forward=0").returncode == 0
    sock = root / "docker.sock"
    log = open(root / "dockerd.log", "wb")  # noqa: SIM115 - closed below
    argv = ["nsenter", f"--net={host}", "unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"', "sh",
            DOCKERD, "--data-root", str(root / "data"), "--exec-root", str(root / "exec"), "-H", f"unix://{sock}",
            "--pidfile", str(root / "pid"), "--bridge=none", "--iptables=true", "--ip6tables=false",
            "--storage-driver=vfs"]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    log.close()
    for _ in range(150):
        if process.poll() is not None:
            break
        if subprocess.run([DOCKER, "-H", f"unix://{sock}", "version"], capture_output=True).returncode == 0:
            return process
        threading.Event().wait(0.2)
    stop_dockerd(process)
    raise AssertionError("dockerd did not start: " + (root / "dockerd.log").read_text(errors="replace")[-2000:])


def stop_dockerd(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(10)


@pytest.fixture(params=["no iptables", "dockerd's FORWARD DROP emulated", "a real dockerd"])
def world(request: pytest.FixtureRequest, lab: Lab) -> Iterator[World]:
    host, outside = lab.netns("host"), lab.netns("outside")
    fw = Firewall("dockyard", netns=host)
    dockerd = None
    dockerd_root: Path | None = None
    try:
        if request.param == "dockerd's FORWARD DROP emulated":
            # what a dockerd with --iptables=true leaves: iptables-nft's filter table, FORWARD policy DROP
            assert in_ns(host, "iptables-nft", "-w", "-P", "FORWARD", "DROP").returncode == 0
        elif request.param == "a real dockerd":
            # a short root of its own: containerd's sockets live under the exec root, and a unix
            # socket path longer than 107 bytes (pytest's tmp_path can make one) cannot be bound
            dockerd_root = Path(tempfile.mkdtemp(prefix="dyd-", dir="/tmp"))
            dockerd = start_dockerd(host, dockerd_root)
            assert "-P FORWARD DROP" in in_ns(host, "iptables-nft", "-w", "-S", "FORWARD").stdout
        fw.ensure()
        wan = lab.link("wan")
        netlink.ensure_bridge(wan, f"{WAN_GATEWAY}/24", netns=host)
        netlink.attach_veth(outside, wan, lab.link("vwan"), "eth0", f"{OUTSIDE}/24", None, None, host_netns=host)
        assert in_ns(outside, "ip", "route", "add", "10.213.0.0/16", "via", WAN_GATEWAY).returncode == 0
        yield World(host, outside, fw, lab)
    finally:
        try:
            fw.reset()
        finally:
            fw.close()
            netlink.close_pool()
            if dockerd is not None:
                stop_dockerd(dockerd)
            if dockerd_root is not None:
                shutil.rmtree(dockerd_root, ignore_errors=True)


def test_nat_isolation_and_internal_networks(world: World) -> None:
    w = world
    n1, ips1 = w.network(1)
    n2, ips2 = w.network(2)
    n3, ips3 = w.network(3, internal=True)
    a, b = w.container("a", n1, ips1[0]), w.container("b", n1, ips1[1])
    c = w.container("c", n2, ips2[0])
    d = w.container("d", n3, ips3[0])
    world_server = TcpServer(w.outside, OUTSIDE, 7000, reply=b"world")
    try:
        # inter-container communication on one bridge
        assert ping(a, ips1[1]) and ping(b, ips1[0])
        # out to the world, masqueraded behind the host's address
        assert tcp_exchange(a, OUTSIDE, 7000) == b"world"
        assert tcp_exchange(c, OUTSIDE, 7000) == b"world"
        assert [peer for peer, _ in world_server.seen] == [WAN_GATEWAY, WAN_GATEWAY]
        # isolation between two networks, both ways; internal: no way out, no way in, nothing to
        # other networks; the world cannot open connections to a container (but see published ports)
        assert pings((a, ips2[0]), (c, ips1[0]),
                     (d, OUTSIDE), (w.outside, ips3[0]), (d, ips1[0]), (a, ips3[0]),
                     (w.outside, ips1[0])) == [False] * 7
        assert ping(d, "10.213.3.1")  # an internal network's gateway still answers
        with pytest.raises(OSError):
            tcp_exchange(d, OUTSIDE, 7000, timeout=1)
        server = TcpServer(a, "0.0.0.0", 80, reply=b"from a")
        try:
            with pytest.raises(OSError):
                tcp_exchange(w.outside, ips1[0], 80, timeout=1)
            w.fw.publish("a", [PortForward("", 8080, ips1[0], 80, "tcp")])
            assert tcp_exchange(w.outside, WAN_GATEWAY, 8080) == b"from a"
            assert server.seen[-1][0] == OUTSIDE  # published traffic keeps its source
            assert tcp_exchange(b, "10.213.1.1", 8080) == b"from a"  # a neighbour through the host
            assert tcp_exchange(c, "10.213.2.1", 8080) == b"from a"  # another network, through the host
            with pytest.raises(OSError):  # but not from an internal network
                tcp_exchange(d, "10.213.3.1", 8080, timeout=1)
            assert pings((c, ips1[0])) == [False]  # isolation still holds for everything else
        finally:
            server.close()
    finally:
        world_server.close()
    w.fw.unpublish("a")
    for bridge in (n1, n2, n3):
        w.fw.remove_network(bridge)
    rules = in_ns(w.host, "nft", "list", "table", "ip", "dockyard").stdout
    assert "10.213." not in rules and "dyt" not in rules
    forward = in_ns(w.host, "nft", "list", "chain", "ip", "filter", "FORWARD").stdout
    assert "dockyard" not in forward


def test_dockerd_coexistence_rules_come_and_go(world: World) -> None:
    w = world
    docker_like = in_ns(w.host, "nft", "list", "chain", "ip", "filter", "FORWARD").returncode == 0
    n1, _ = w.network(4)
    forward = in_ns(w.host, "iptables-nft", "-w", "-S", "FORWARD").stdout
    if docker_like:
        assert f'-A FORWARD -i {n1} -m comment --comment "dockyard:dockyard" -j ACCEPT' in forward
        assert f'-A FORWARD -o {n1} -m comment --comment "dockyard:dockyard" -j ACCEPT' in forward
        assert "-P FORWARD DROP" in forward
    else:
        assert in_ns(w.host, "nft", "list", "table", "ip", "filter").returncode != 0  # nothing made
    w.fw.add_network(n1, "10.213.4.0/24", internal=False)  # idempotent
    assert in_ns(w.host, "iptables-nft", "-w", "-S", "FORWARD").stdout.count(n1) == (2 if docker_like else 0)
    w.fw.reset()
    assert in_ns(w.host, "nft", "list", "table", "ip", "dockyard").returncode != 0
    if docker_like:
        assert "dockyard" not in in_ns(w.host, "iptables-nft", "-w", "-S", "FORWARD").stdout
        assert "-P FORWARD DROP" in in_ns(w.host, "iptables-nft", "-w", "-S", "FORWARD").stdout


def test_ensure_keeps_the_table_and_rebuilds_an_older_layout_around_its_elements(lab: Lab) -> None:
    host = lab.netns("host")
    bridge = lab.link("br")
    netlink.ensure_bridge(bridge, "10.213.9.1/24", netns=host)
    fw = Firewall("dockyard", netns=host)
    try:
        fw.ensure()
        fw.add_network(bridge, "10.213.9.0/24", internal=False)
        fw.publish("c1", [PortForward("", 8080, "10.213.9.2", 80, "tcp")])
        fw.ensure()  # kept as it is
        assert fw.forwards() == {"c1": [PortForward("0.0.0.0", 8080, "10.213.9.2", 80, "tcp")]}
        # an older dockyard's table: another layout (here: one chain less), same elements
        assert in_ns(host, "nft", "delete", "chain", "ip", "dockyard", "output").returncode == 0
        assert in_ns(host, "nft", "add", "table", "ip", "dockyard", "{", "comment", '"layout 0"', ";", "}").returncode == 0
        again = Firewall("dockyard", netns=host)
        try:
            again.ensure()
            assert again.forwards() == {"c1": [PortForward("0.0.0.0", 8080, "10.213.9.2", 80, "tcp")]}
        finally:
            again.close()
        listing = in_ns(host, "nft", "list", "table", "ip", "dockyard").stdout
        assert "chain output" in listing and "layout 1" in listing
        assert f'"{bridge}"' in listing and "10.213.9.0/24" in listing and "10.213.9.2 . 80" in listing
    finally:
        try:
            fw.reset()
        finally:
            fw.close()
            netlink.close_pool()
