"""The embedded DNS server in real network namespaces: listeners on 127.0.0.11:53 inside pinned
namespaces, queried from inside them with dnspython; upstreams of the test's own on 127.x addresses
of the host's loopback (as systemd-resolved's 127.0.0.53), named by a resolv.conf of the test's own.

Every namespace, server and upstream is made by a fixture and removed whatever happens; traffic stays
on loopback (the host's and the namespaces')."""

from __future__ import annotations

import os
import random
import secrets
import socket
import statistics
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.reversename
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.errors import DockyardError, InvalidParameter
from dockyard.networks import netns
from dockyard.networks.dns import EmbeddedDns, container_resolv_conf, sets_ndots
from dockyard.networks.dns_names import NameTable
from tests.fake_dns import FakeUpstream, answer_a

pytestmark = pytest.mark.root

T = TypeVar("T")


def loopback_address() -> str:
    """A random address of 127/8 (port 53 there is free: nothing of the host's listens on it)."""
    return f"127.{random.randint(60, 250)}.{random.randint(0, 255)}.{random.randint(2, 250)}"


@dataclass
class Lab:
    root: Path
    namespaces: list[Path] = field(default_factory=list)
    upstreams: list[FakeUpstream] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def netns(self, name: str) -> Path:
        path = self.root / f"ns-{name}-{secrets.token_hex(2)}"
        netns.create(path)
        self.namespaces.append(path)
        return path

    def upstream(self, answer: str) -> FakeUpstream:
        for _ in range(20):
            try:
                made = FakeUpstream(loopback_address(), 53, answer_a(answer))
            except OSError:
                continue
            self.upstreams.append(made)
            return made
        raise OSError("no free 127.x address for an upstream")

    def close(self) -> None:
        for proc in self.processes:
            proc.kill()
            proc.wait(10)
        for u in self.upstreams:
            u.close()
        for path in self.namespaces:
            netns.remove(path)


@pytest.fixture()
def lab(tmp_path: Path) -> Iterator[Lab]:
    made = Lab(tmp_path)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture()
def host_file(tmp_path: Path, lab: Lab) -> Path:
    """The host's resolv.conf for the server: a loopback upstream of the test's own."""
    path = tmp_path / "host-resolv.conf"
    path.write_text(f"# as systemd-resolved's\nnameserver {lab.upstream('192.0.2.1').address}\nsearch example.test\n")
    return path


@pytest.fixture()
def server(host_file: Path) -> Iterator[EmbeddedDns]:
    made = EmbeddedDns(host_resolv_conf=host_file, timeout=1.0)
    try:
        yield made
    finally:
        made.close()


def inside(path: Path, fn: Callable[[], T]) -> T:
    return netns.run_in(path, fn)


def resolve(path: Path, name: str, rdtype: str = "A", *, tcp: bool = False, lifetime: float = 3) -> list[str]:
    """``name`` looked up from inside the namespace at 127.0.0.11, as a container's resolver does."""
    def lookup() -> list[str]:
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = ["127.0.0.11"]
        r.lifetime = lifetime
        try:
            return sorted(a.to_text() for a in r.resolve(name, rdtype, tcp=tcp))
        except dns.resolver.NoAnswer:
            return []
    return inside(path, lookup)


def ask(path: Path, name: str, rdtype: str = "A", *, tcp: bool = False, timeout: float = 3) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    if tcp:
        return inside(path, lambda: dns.query.tcp(q, "127.0.0.11", timeout=timeout))
    return inside(path, lambda: dns.query.udp(q, "127.0.0.11", timeout=timeout))


def bindable(path: Path) -> bool:
    """Whether 127.0.0.11:53 is free in the namespace, for UDP and TCP."""
    def probe() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
            try:
                u.bind(("127.0.0.11", 53))
                t.bind(("127.0.0.11", 53))
            except OSError:
                return False
            return True
    return inside(path, probe)


@pytest.fixture()
def table() -> NameTable:
    t = NameTable()
    t.set("front", "c-web", name="web", aliases=["www"], addresses=["10.31.0.2", "fd31::2"])
    t.set("front", "c-api", name="api", addresses=["10.31.0.3"])
    t.set("back", "c-db", name="db", addresses=["10.32.0.2"])
    t.set("back", "c-api", name="api", addresses=["10.32.0.3"])
    return t


def test_names_ptr_and_forwarding_inside_a_namespace(lab: Lab, server: EmbeddedDns, table: NameTable) -> None:
    ns = lab.netns("web")
    server.attach("c-web", ns, table.view(lambda: ["front"]))
    assert resolve(ns, "web") == ["10.31.0.2"]
    assert resolve(ns, "www", "AAAA") == ["fd31::2"]
    assert resolve(ns, "api.front", tcp=True) == ["10.31.0.3"]
    assert resolve(ns, "api", "AAAA") == []  # ours, no IPv6: empty NOERROR, not forwarded
    assert resolve(ns, dns.reversename.from_address("10.31.0.3").to_text(), "PTR") == ["api.front."]
    # not ours: forwarded to the host's loopback resolver (which Docker cannot reach), UDP and TCP
    upstream = lab.upstreams[0]
    assert resolve(ns, "example.com") == ["192.0.2.1"]
    assert resolve(ns, "example.com", tcp=True) == ["192.0.2.1"]
    assert resolve(ns, "db") == ["192.0.2.1"]  # db is on "back" only
    assert [(t, q.question[0].name.to_text()) for t, q in upstream.queries] == [
        ("udp", "example.com."), ("tcp", "example.com."), ("udp", "db.")]


def test_two_views_in_two_namespaces(lab: Lab, server: EmbeddedDns, table: NameTable) -> None:
    web, db = lab.netns("web"), lab.netns("db")
    server.attach("c-web", web, table.view(lambda: ["front"]))
    server.attach("c-db", db, table.view(lambda: ["back"]))
    assert resolve(web, "api") == ["10.31.0.3"]
    assert resolve(db, "api") == ["10.32.0.3"]
    assert resolve(db, "web") == ["192.0.2.1"]  # forwarded: web is not on "back"
    assert sorted(server.attached()) == ["c-db", "c-web"]
    # a record added later is seen at once
    table.set("back", "c-new", name="late", addresses=["10.32.0.9"])
    assert resolve(db, "late") == ["10.32.0.9"]
    table.remove("back", "c-new")
    assert resolve(db, "late") == ["192.0.2.1"]


def test_container_dns_servers_replace_the_hosts(lab: Lab, server: EmbeddedDns, table: NameTable) -> None:
    """A container's own servers are asked from inside its namespace (as Docker's ``--dns``): a server
    on the container's loopback answers, one on the same address of the host's loopback is not asked."""
    ns = lab.netns("dns")
    for _ in range(20):
        address = loopback_address()
        try:
            decoy = FakeUpstream(address, 53, answer_a("198.51.100.99"))  # the daemon's namespace
        except OSError:
            continue
        break
    else:
        raise OSError("no free 127.x address for an upstream")
    lab.upstreams.append(decoy)
    own = inside(ns, lambda: FakeUpstream(address, 53, answer_a("198.51.100.7")))
    lab.upstreams.append(own)
    server.attach("c-web", ns, table.view(lambda: ["front"]), [address])
    assert resolve(ns, "example.org") == ["198.51.100.7"]
    assert resolve(ns, "example.net", tcp=True) == ["198.51.100.7"]
    assert [t for t, _ in own.queries] == ["udp", "tcp"]
    assert resolve(ns, "web") == ["10.31.0.2"]
    assert lab.upstreams[0].queries == [] and decoy.queries == []
    # no upstream at all (a container on internal networks only): SERVFAIL, names still answered
    server.attach("c-web", ns, table.view(lambda: ["front"]), [])
    assert ask(ns, "example.org").rcode() == dns.rcode.SERVFAIL
    assert resolve(ns, "web") == ["10.31.0.2"]


def test_host_resolv_conf_changes_are_followed(lab: Lab, server: EmbeddedDns, host_file: Path,
                                               table: NameTable) -> None:
    ns = lab.netns("follow")
    server.attach("c", ns, table.view(lambda: ["front"]))
    assert resolve(ns, "example.com") == ["192.0.2.1"]
    second = lab.upstream("203.0.113.5")
    host_file.write_text(f"nameserver {second.address}\n")
    assert resolve(ns, "example.com") == ["203.0.113.5"]


def test_no_upstream_answering_is_servfail(lab: Lab, server: EmbeddedDns, table: NameTable) -> None:
    lab.upstreams[0].handler = lambda q, t: []
    ns = lab.netns("silent")
    server.attach("c", ns, table.view(lambda: ["front"]))
    started = time.monotonic()
    assert ask(ns, "example.com", timeout=5).rcode() == dns.rcode.SERVFAIL
    assert 0.9 < time.monotonic() - started < 3
    assert resolve(ns, "web") == ["10.31.0.2"]


def test_detach_frees_the_port_and_attach_again(lab: Lab, server: EmbeddedDns, table: NameTable) -> None:
    ns = lab.netns("again")
    assert bindable(ns)
    server.attach("c", ns, table.view(lambda: ["front"]))
    assert not bindable(ns)
    with pytest.raises(DockyardError, match="127.0.0.11:53"):
        server.attach("other-key", ns, table.view(lambda: ["back"]))  # one server per namespace
    assert "other-key" not in server.attached()
    server.detach("c")
    server.detach("c")
    assert bindable(ns)
    with pytest.raises(dns.exception.Timeout):
        ask(ns, "web", timeout=0.5)
    server.attach("c", ns, table.view(lambda: ["back"]))
    assert resolve(ns, "db") == ["10.32.0.2"]
    server.close()
    assert bindable(ns)
    server.close()


def test_a_process_namespace_with_loopback_down(lab: Lab, server: EmbeddedDns,
                                                  table: NameTable) -> None:
    """/proc/<pid>/ns/net works as well as a pinned file, whose lo is still down; the daemon's own
    namespace and a missing one are refused."""
    proc = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    lab.processes.append(proc)
    path = Path(f"/proc/{proc.pid}/ns/net")
    for _ in range(200):
        if netns.identity(path) != netns.identity(netns.HOST):
            break
        time.sleep(0.01)
    server.attach("c-proc", path, table.view(lambda: ["front"]))  # brings lo up: answers come from .11
    assert resolve(path, "web") == ["10.31.0.2"]
    server.detach("c-proc")
    with pytest.raises(InvalidParameter, match="daemon's own network namespace"):
        server.attach("c-host", Path("/proc/self/ns/net"), table.view(lambda: []))
    with pytest.raises(DockyardError, match="cannot enter network namespace"):
        server.attach("c-gone", lab.root / "no-such-namespace", table.view(lambda: []))
    assert server.attached() == []


def test_hostile_packets_from_inside(lab: Lab, server: EmbeddedDns, table: NameTable) -> None:
    ns = lab.netns("hostile")
    server.attach("c", ns, table.view(lambda: ["front"]))
    udp = inside(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    good = dns.message.make_query("web", "A").to_wire()
    try:
        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.one_of(st.binary(max_size=700),
                         st.tuples(st.integers(0, len(good)), st.binary(max_size=20)).map(
                             lambda t: good[:t[0]] + t[1] + good[t[0]:])))
        def send(packet: bytes) -> None:
            udp.sendto(packet, ("127.0.0.11", 53))
        send()
        for size in (0, 1, 11, 12, 13, 512, 4096, 65000):
            udp.sendto(os.urandom(size), ("127.0.0.11", 53))
        # a flood of forwards (each waits for the upstream), and TCP abuse
        lab.upstreams[0].handler = lambda q, t: []
        for i in range(400):
            udp.sendto(dns.message.make_query(f"flood{i}.example", "A").to_wire(), ("127.0.0.11", 53))
        conns = [inside(ns, lambda: socket.create_connection(("127.0.0.11", 53), timeout=2)) for _ in range(24)]
        for i, c in enumerate(conns):
            c.sendall([b"\x00", b"\xff\xff", os.urandom(30), struct.pack("!H", 5) + b"abcde"][i % 4])
    finally:
        udp.close()
    assert resolve(ns, "web") == ["10.31.0.2"]
    # 16 TCP connections per container: the 17th and later are closed at once; UDP is not affected
    with pytest.raises((dns.exception.DNSException, OSError, EOFError)):
        ask(ns, "web", tcp=True)
    for c in conns:
        c.close()
    deadline = time.monotonic() + 5
    while True:  # the server sees the connections end
        try:
            assert resolve(ns, "web", tcp=True) == ["10.31.0.2"]
            break
        except dns.exception.DNSException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_attach_and_detach_are_cheap(lab: Lab, server: EmbeddedDns, table: NameTable) -> None:
    spaces = [lab.netns(f"t{i}") for i in range(10)]
    view = table.view(lambda: ["front"])
    server.attach("warm", spaces[0], view)
    server.detach("warm")
    attach_ms, detach_ms = [], []
    for _ in range(5):
        for i, path in enumerate(spaces):
            started = time.perf_counter()
            server.attach(f"c{i}", path, view)
            attach_ms.append((time.perf_counter() - started) * 1000)
        assert resolve(spaces[-1], "web") == ["10.31.0.2"]
        for i in range(len(spaces)):
            started = time.perf_counter()
            server.detach(f"c{i}")
            detach_ms.append((time.perf_counter() - started) * 1000)
    print(f"\nembedded DNS: attach median {statistics.median(attach_ms):.2f} ms "
          f"(max {max(attach_ms):.2f}), detach median {statistics.median(detach_ms):.2f} ms "
          f"(max {max(detach_ms):.2f})")
    assert statistics.median(attach_ms) < 5
    assert statistics.median(detach_ms) < 5


def known_names(names: dict[str, str]) -> Callable[[dns.message.Message, str], list[bytes]]:
    """An upstream handler: A records for ``names`` (absolute, lowercase), NXDOMAIN for the rest."""
    def handle(query: dns.message.Message, transport: str) -> list[bytes]:
        response = dns.message.make_response(query)
        question = query.question[0]
        address = names.get(question.name.to_text().lower())
        if address is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(question.name, 30, "IN", "A", address))
        return [response.to_wire()]
    return handle


def getent(ns: Path, resolv_conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """glibc's resolver in the namespace, reading ``resolv_conf`` as /etc/resolv.conf (bind-mounted in a
    mount namespace of its own), as a container's programs do."""
    script = 'mount --bind "$0" /etc/resolv.conf && exec getent "$@"'
    return subprocess.run(["nsenter", f"--net={ns}", "unshare", "--mount", "--propagation", "private",
                           "sh", "-c", script, str(resolv_conf), *args], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("options", [None, ["ndots:2"]])
def test_glibc_with_the_resolv_conf_we_write(lab: Lab, server: EmbeddedDns, table: NameTable, host_file: Path,
                                             tmp_path: Path, options: list[str] | None) -> None:
    """A container's resolv.conf from container_resolv_conf, read by glibc: our names (A and AAAA asked
    at once on one socket), PTR, and a name found only through the host's search domain upstream."""
    host_text = host_file.read_text()
    lab.upstreams[0].handler = known_names({"known.example.test.": "192.0.2.77"})
    resolv = tmp_path / "container-resolv.conf"
    resolv.write_text(container_resolv_conf(host_text, None, options))
    assert "search example.test\n" in resolv.read_text()
    ns = lab.netns("glibc")
    # an eth0 with the container's addresses (a veth pair made and left inside the namespace): glibc
    # asks for an address family only when the host has an address of it
    for argv in (["link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"],
                 ["addr", "add", "10.31.0.2/24", "dev", "eth0"], ["addr", "add", "fd31::2/64", "dev", "eth0", "nodad"],
                 ["link", "set", "eth0p", "up"], ["link", "set", "eth0", "up"]):
        subprocess.run(["nsenter", f"--net={ns}", "ip", *argv], check=True)
    server.attach("c-web", ns, table.view(lambda: ["front"]), ndots_set=sets_ndots(host_text, options))
    got = getent(ns, resolv, "ahosts", "web")
    assert got.returncode == 0, got.stderr
    assert {line.split()[0] for line in got.stdout.splitlines()} == {"10.31.0.2", "fd31::2"}
    got = getent(ns, resolv, "hosts", "api.front")
    assert got.stdout.split()[0] == "10.31.0.3"
    got = getent(ns, resolv, "hosts", "10.31.0.2")
    assert got.stdout.split() == ["10.31.0.2", "web.front"]
    got = getent(ns, resolv, "ahostsv4", "known")  # only known.example.test exists upstream
    assert got.returncode == 0 and got.stdout.split()[0] == "192.0.2.77", got
    assert getent(ns, resolv, "ahostsv4", "nowhere").returncode == 2
    asked = [q.question[0].name.to_text() for _, q in lab.upstreams[0].queries]
    assert "known.example.test." in asked and "nowhere.example.test." in asked
    assert "web." not in asked  # ours: never forwarded
    if options:
        # ndots:2: glibc tries the search domain first for a single label (forwarded: NXDOMAIN), then the
        # name itself; and with ndots set, a single label that is not ours is answered empty, here
        assert "web.example.test." in asked
        assert "nowhere." not in asked and "known." not in asked
    else:
        assert "web.example.test." not in asked
        assert "nowhere." in asked and "known." in asked
