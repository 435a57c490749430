"""Forwarding to upstreams (dns_forward) against fake upstreams on the host's loopback, and the whole
embedded DNS server (dns.EmbeddedDns) serving sockets on 127.0.0.1 — no root, no namespaces."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.resolver
import dns.rrset
import pytest

from dockyard.errors import InvalidParameter
from dockyard.networks.dns import EmbeddedDns
from dockyard.networks.dns_forward import (
    Forwarder,
    HostResolvers,
    Upstream,
    container_upstreams,
    parse_upstream,
)
from dockyard.networks.dns_names import NameTable
from tests.fake_dns import FakeUpstream, answer_a


@pytest.fixture()
def upstreams() -> Iterator[list[FakeUpstream]]:
    made = [FakeUpstream(), FakeUpstream(handler=answer_a("192.0.2.2"))]
    try:
        yield made
    finally:
        for u in made:
            u.close()


def forward(wire: bytes, ups: list[FakeUpstream], *, tcp: bool = False, limit: int = 512,
            timeout: float = 0.5, max_in_flight: int = 8) -> dns.message.Message:
    query = dns.message.from_wire(wire)

    async def run() -> bytes:
        return await Forwarder(timeout=timeout, max_in_flight=max_in_flight).forward(
            query, wire, [parse_upstream(u.spec) for u in ups], tcp=tcp, limit=limit)

    return dns.message.from_wire(asyncio.run(run()))


def a_of(msg: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in msg.answer for rd in rrset)


def test_parse_upstream() -> None:
    assert parse_upstream("10.0.0.1") == Upstream("10.0.0.1")
    assert parse_upstream("2001:DB8::1") == Upstream("2001:db8::1")
    assert parse_upstream("127.0.0.1:5353") == Upstream("127.0.0.1", 5353)
    assert parse_upstream("[::1]:5353") == Upstream("::1", 5353)
    for bad in ("example.com", "10.0.0.1:0", "10.0.0.1:70000", "::1:53x", "", "[10.0.0.1"):
        with pytest.raises(InvalidParameter):
            parse_upstream(bad)
    assert Upstream("10.0.0.1").sockaddr() == ("10.0.0.1", 53)
    assert Upstream("::1", 5353).sockaddr() == ("::1", 5353, 0, 0)
    assert parse_upstream("fe80::1%lo").sockaddr() == ("fe80::1", 53, 0, socket.if_nametoindex("lo"))
    assert parse_upstream("[fe80::1%3]:5353").sockaddr() == ("fe80::1", 5353, 0, 3)
    assert container_upstreams(["127.0.0.11", "1.1.1.1", "8.8.8.8", "9.9.9.9", "8.8.4.4"]) == [
        Upstream("1.1.1.1"), Upstream("8.8.8.8"), Upstream("9.9.9.9")]


def test_forwarded_answer_keeps_the_clients_id(upstreams: list[FakeUpstream]) -> None:
    q = dns.message.make_query("example.com", "A")
    q.id = 4242
    got = forward(q.to_wire(), upstreams)
    assert got.id == 4242 and a_of(got) == ["192.0.2.1"]
    transport, seen = upstreams[0].queries[-1]
    assert transport == "udp" and seen.question == q.question
    assert len(upstreams[1].queries) == 0


def test_sockets_come_from_the_opener(upstreams: list[FakeUpstream]) -> None:
    """The server chooses the namespace a forward leaves from by the opener: every socket of a
    forward, over UDP and TCP, is the opener's."""
    opened: list[tuple[str, socket.SocketKind]] = []

    async def opener(upstream: Upstream, kind: socket.SocketKind) -> tuple[socket.socket, tuple[object, ...]]:
        opened.append((str(upstream), kind))
        return socket.socket(upstream.family, kind), upstream.sockaddr()

    query = dns.message.make_query("example.org", "A")
    wire = query.to_wire()

    async def run(tcp: bool) -> bytes:
        return await Forwarder(timeout=0.5).forward(query, wire, [parse_upstream(upstreams[1].spec)], tcp=tcp,
                                                    limit=512, opener=opener)

    assert a_of(dns.message.from_wire(asyncio.run(run(False)))) == ["192.0.2.2"]
    assert a_of(dns.message.from_wire(asyncio.run(run(True)))) == ["192.0.2.2"]
    assert opened == [(upstreams[1].spec, socket.SOCK_DGRAM), (upstreams[1].spec, socket.SOCK_STREAM)]


def test_an_ipv6_upstream_over_udp_and_tcp() -> None:
    with FakeUpstream("::1", handler=answer_a("192.0.2.6")) as v6:
        q = dns.message.make_query("example.com", "A")
        assert a_of(forward(q.to_wire(), [v6])) == ["192.0.2.6"]
        assert a_of(forward(q.to_wire(), [v6], tcp=True, limit=65535)) == ["192.0.2.6"]
        assert [t for t, _ in v6.queries] == ["udp", "tcp"]


def test_a_silent_or_failing_upstream_is_skipped(upstreams: list[FakeUpstream]) -> None:
    upstreams[0].handler = lambda q, t: []
    started = time.monotonic()
    assert a_of(forward(dns.message.make_query("example.com", "A").to_wire(), upstreams)) == ["192.0.2.2"]
    assert 0.4 < time.monotonic() - started < 2

    def servfail(q: dns.message.Message, t: str) -> list[bytes]:
        r = dns.message.make_response(q)
        r.set_rcode(dns.rcode.SERVFAIL)
        return [r.to_wire()]

    upstreams[0].handler = servfail
    assert a_of(forward(dns.message.make_query("example.com", "A").to_wire(), upstreams)) == ["192.0.2.2"]


def test_nxdomain_is_an_answer(upstreams: list[FakeUpstream]) -> None:
    def nxdomain(q: dns.message.Message, t: str) -> list[bytes]:
        r = dns.message.make_response(q)
        r.set_rcode(dns.rcode.NXDOMAIN)
        return [r.to_wire()]

    upstreams[0].handler = nxdomain
    assert forward(dns.message.make_query("nope.example", "A").to_wire(), upstreams).rcode() == dns.rcode.NXDOMAIN
    assert upstreams[1].queries == []


def test_no_answer_in_time_is_servfail(upstreams: list[FakeUpstream]) -> None:
    for u in upstreams:
        u.handler = lambda q, t: []
    started = time.monotonic()
    got = forward(dns.message.make_query("example.com", "A").to_wire(), upstreams, timeout=0.3)
    assert got.rcode() == dns.rcode.SERVFAIL
    assert time.monotonic() - started < 1.5


def test_a_refused_connection_is_skipped_at_once(upstreams: list[FakeUpstream]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    q = dns.message.make_query("example.com", "A")

    async def run() -> bytes:
        return await Forwarder(timeout=3).forward(q, q.to_wire(), [Upstream("127.0.0.1", closed),
                                                                   parse_upstream(upstreams[1].spec)],
                                                  tcp=False, limit=512)

    started = time.monotonic()
    assert a_of(dns.message.from_wire(asyncio.run(run()))) == ["192.0.2.2"]
    assert time.monotonic() - started < 1


def test_forged_and_stray_replies_are_ignored(upstreams: list[FakeUpstream]) -> None:
    def forger(q: dns.message.Message, t: str) -> list[bytes]:
        wrong_id = dns.message.make_response(q)
        wrong_id.id = (q.id + 1) % 65536
        wrong_id.answer.append(dns.rrset.from_text(q.question[0].name, 30, "IN", "A", "6.6.6.6"))
        other = dns.message.make_response(dns.message.make_query("evil.example", "A", id=q.id))
        other.answer.append(dns.rrset.from_text("evil.example.", 30, "IN", "A", "6.6.6.7"))
        right = dns.message.make_response(q)
        right.answer.append(dns.rrset.from_text(q.question[0].name, 30, "IN", "A", "192.0.2.9"))
        return [wrong_id.to_wire(), b"\x00garbage", other.to_wire(), right.to_wire()]

    upstreams[0].handler = forger
    assert a_of(forward(dns.message.make_query("example.com", "A").to_wire(), upstreams)) == ["192.0.2.9"]


def big_answer(q: dns.message.Message, count: int) -> dns.message.Message:
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text(q.question[0].name, 30, "IN", "A",
                                        *[f"198.51.100.{i}" for i in range(1, count + 1)]))
    return r


def test_truncated_udp_answers_are_asked_again_over_tcp(upstreams: list[FakeUpstream]) -> None:
    def small_udp(q: dns.message.Message, t: str) -> list[bytes]:
        if t == "udp":  # this upstream truncates everything over UDP
            r = dns.message.make_response(q)
            r.flags |= dns.flags.TC
            return [r.to_wire()]
        return [big_answer(q, 40).to_wire()]

    upstreams[0].handler = small_udp
    q = dns.message.make_query("many.example", "A", use_edns=0, payload=4096)
    got = forward(q.to_wire(), upstreams, limit=4096)
    assert len(a_of(got)) == 40 and not got.flags & dns.flags.TC
    assert [t for t, _ in upstreams[0].queries] == ["udp", "tcp"]
    # the whole answer does not fit the client's 512 bytes: it gets the truncated one, and asks over TCP
    upstreams[0].queries.clear()
    got = forward(dns.message.make_query("many.example", "A").to_wire(), upstreams, limit=512)
    assert got.flags & dns.flags.TC and a_of(got) == []
    assert len(a_of(forward(dns.message.make_query("many.example", "A").to_wire(), upstreams, tcp=True,
                            limit=65535))) == 40
    assert [t for t, _ in upstreams[0].queries] == ["udp", "tcp", "tcp"]


def test_bounded_forwards_refuse_the_excess(upstreams: list[FakeUpstream]) -> None:
    upstreams[0].handler = lambda q, t: []
    forwarder = Forwarder(timeout=1.0, max_in_flight=2, slot_wait=0.2)

    async def run() -> list[int]:
        async def one(i: int) -> int:
            q = dns.message.make_query(f"n{i}.example", "A")
            wire = await forwarder.forward(q, q.to_wire(), [parse_upstream(upstreams[0].spec)], tcp=False, limit=512)
            return dns.message.from_wire(wire).rcode()
        return await asyncio.gather(*(one(i) for i in range(6)))

    started = time.monotonic()
    codes = asyncio.run(run())
    assert 1.0 <= time.monotonic() - started < 2
    assert codes.count(dns.rcode.SERVFAIL) == 2 and codes.count(dns.rcode.REFUSED) == 4


def test_host_resolvers_follow_the_file(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    resolvers = HostResolvers(path)
    assert resolvers.current() == []
    path.write_text("nameserver 127.0.0.53\nnameserver ::1\nnameserver 10.0.0.1\nnameserver 10.0.0.2\n")
    assert resolvers.current() == [Upstream("127.0.0.53"), Upstream("::1"), Upstream("10.0.0.1")]
    path.write_text("nameserver 10.9.9.9\n")
    os.utime(path, ns=(1, 1))  # even with an old mtime: the size changed
    assert resolvers.current() == [Upstream("10.9.9.9")]
    replacement = tmp_path / "new"
    replacement.write_text("nameserver 10.8.8.8\n")
    os.utime(replacement, ns=(1, 1))
    replacement.rename(path)  # same size and mtime, another inode
    assert resolvers.current() == [Upstream("10.8.8.8")]


# -- the whole server, on sockets of the test's own (what attach binds inside a namespace) -----------


def listeners() -> tuple[socket.socket, socket.socket, int]:
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind(("127.0.0.1", udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(8)
        udp.setblocking(False)
        tcp.setblocking(False)
        return udp, tcp, udp.getsockname()[1]
    raise OSError("no free port")


@pytest.fixture()
def server(tmp_path: Path, upstreams: list[FakeUpstream]) -> Iterator[EmbeddedDns]:
    host = tmp_path / "resolv.conf"
    host.write_text(f"nameserver {upstreams[0].address}\n")  # port 53: nothing there, refused at once
    server = EmbeddedDns(host_resolv_conf=host, timeout=0.5)
    try:
        yield server
    finally:
        server.close()


def resolver_for(port: int) -> dns.resolver.Resolver:
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = port
    r.lifetime = 3
    return r


def test_server_answers_and_forwards(server: EmbeddedDns, upstreams: list[FakeUpstream]) -> None:
    table = NameTable()
    table.set("mynet", "c1", name="web", addresses=["10.5.0.2"])
    udp, tcp, port = listeners()
    server.attach_sockets("c0", udp, tcp, table.view(lambda: ["mynet"]), [parse_upstream(upstreams[1].spec)])
    r = resolver_for(port)
    assert [a.to_text() for a in r.resolve("web.", "A")] == ["10.5.0.2"]
    assert [a.to_text() for a in r.resolve("web.mynet.", "A", tcp=True)] == ["10.5.0.2"]
    assert [a.to_text() for a in r.resolve("example.com.", "A")] == ["192.0.2.2"]
    assert [a.to_text() for a in r.resolve("example.com.", "A", tcp=True)] == ["192.0.2.2"]
    assert [t for t, _ in upstreams[1].queries] == ["udp", "tcp"]
    assert server.attached() == ["c0"]
    server.detach("c0")
    server.detach("c0")
    assert server.attached() == []
    with pytest.raises(dns.resolver.LifetimeTimeout):
        r.lifetime = 0.5
        r.resolve("web.", "A")


def test_server_without_upstreams_says_servfail(server: EmbeddedDns) -> None:
    udp, tcp, port = listeners()
    server.attach_sockets("c0", udp, tcp, NameTable().view(lambda: []), [])
    q = dns.message.make_query("example.com", "A")
    assert dns.query.udp(q, "127.0.0.1", port=port, timeout=2).rcode() == dns.rcode.SERVFAIL


def test_server_survives_hostile_clients(server: EmbeddedDns, upstreams: list[FakeUpstream]) -> None:
    table = NameTable()
    table.set("mynet", "c1", name="web", addresses=["10.5.0.2"])
    udp, tcp, port = listeners()
    server.attach_sockets("c0", udp, tcp, table.view(lambda: ["mynet"]), [parse_upstream(upstreams[0].spec)])
    good = dns.message.make_query("web", "A").to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(300):
            s.sendto(os.urandom(i % 70) if i % 3 else good[: i % 40] + os.urandom(i % 13), ("127.0.0.1", port))
    # TCP: a stalled length, a short message then EOF, an oversized length, garbage, many connections
    conns = []
    for payload in (b"\x00", b"\x00\x20abc", b"\xff\xff" + os.urandom(100), os.urandom(50), b""):
        c = socket.create_connection(("127.0.0.1", port), timeout=2)
        c.sendall(payload)
        conns.append(c)
    for c in conns[1:3]:
        c.close()
    got = dns.query.tcp(dns.message.make_query("web", "A"), "127.0.0.1", port=port, timeout=3)
    assert a_of(got) == ["10.5.0.2"]
    got = dns.query.udp(dns.message.make_query("web", "A"), "127.0.0.1", port=port, timeout=3)
    assert a_of(got) == ["10.5.0.2"]
    # two queries pipelined on one connection are both answered
    with socket.create_connection(("127.0.0.1", port), timeout=3) as c:
        for name in ("web", "example.com"):
            wire = dns.message.make_query(name, "A").to_wire()
            c.sendall(struct.pack("!H", len(wire)) + wire)
        answers = []
        for _ in range(2):
            size = struct.unpack("!H", c.recv(2, socket.MSG_WAITALL))[0]
            answers.append(a_of(dns.message.from_wire(c.recv(size, socket.MSG_WAITALL))))
        assert answers == [["10.5.0.2"], ["192.0.2.1"]]
    for c in conns:
        c.close()


def test_close_is_idempotent_and_final(tmp_path: Path) -> None:
    server = EmbeddedDns(host_resolv_conf=tmp_path / "none")
    server.close()  # never started
    server.close()
    udp, tcp, _ = listeners()
    with pytest.raises(Exception, match="closed"):
        server.attach_sockets("c0", udp, tcp, NameTable().view(lambda: []))
    assert udp.fileno() == -1 and tcp.fileno() == -1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_serving_thread_that_ended_is_started_again(server: EmbeddedDns) -> None:
    table = NameTable()
    table.set("mynet", "c1", name="web", addresses=["10.5.0.2"])
    first = listeners()
    server.attach_sockets("c1", first[0], first[1], table.view(lambda: ["mynet"]), [])
    assert a_of(dns.query.udp(dns.message.make_query("web", "A"), "127.0.0.1", port=first[2], timeout=2)) == [
        "10.5.0.2"]
    thread, loop = server._thread, server._loop
    assert thread is not None and loop is not None

    def end() -> None:
        raise SystemExit  # what no callback does: the one way out of the loop besides close()

    loop.call_soon_threadsafe(end)
    thread.join(5)
    assert not thread.is_alive()
    second = listeners()
    server.attach_sockets("c2", second[0], second[1], table.view(lambda: ["mynet"]), [])
    for port in (first[2], second[2]):
        got = dns.query.udp(dns.message.make_query("web", "A"), "127.0.0.1", port=port, timeout=2)
        assert a_of(got) == ["10.5.0.2"]


def test_one_container_cannot_queue_forwards_without_bound(server: EmbeddedDns,
                                                           upstreams: list[FakeUpstream]) -> None:
    """128 forwards per container wait or fly at once; the rest are REFUSED at once (then SERVFAIL for
    those that waited on a silent upstream)."""
    upstreams[0].handler = lambda q, t: []
    udp, tcp, port = listeners()
    server.attach_sockets("c0", udp, tcp, NameTable().view(lambda: []), [parse_upstream(upstreams[0].spec)])
    codes: list[int] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        for i in range(200):
            s.sendto(dns.message.make_query(f"n{i}.example", "A").to_wire(), ("127.0.0.1", port))
        s.settimeout(3)
        while len(codes) < 200:
            codes.append(dns.message.from_wire(s.recvfrom(65535)[0]).rcode())
    assert codes.count(dns.rcode.REFUSED) == 72 and codes.count(dns.rcode.SERVFAIL) == 128
    assert codes[:72] == [dns.rcode.REFUSED] * 72  # refused before the others time out
