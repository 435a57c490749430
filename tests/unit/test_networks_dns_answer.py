"""The embedded DNS server's query logic (dns_answer.decide) against an in-memory view: Docker's
answers for names, aliases, name.network, PTR, MX, AAAA of a v4-only name, ndots; what is forwarded;
truncation; and hostile packets, fuzzed."""

from __future__ import annotations

import ipaddress
import struct

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.networks.dns_answer import (
    Forward,
    Reply,
    client_limit,
    decide,
    family_answer_wire,
    reply_with,
    to_wire,
)
from dockyard.networks.dns_names import NameTable


@pytest.fixture()
def table() -> NameTable:
    t = NameTable()
    t.set("mynet", "c1", name="web", aliases=["www", "Front"], addresses=["10.5.0.2", "fd00::2"])
    t.set("mynet", "c2", name="db", addresses=["10.5.0.3"])
    t.set("mynet", "c3", name="web2", aliases=["www"], addresses=["10.5.0.4"])
    t.set("my.dotted", "c4", name="api", addresses=["10.6.0.2"])
    t.set("other", "c5", name="hidden", addresses=["10.7.0.2"])
    t.set("other", "c6", name="web", addresses=["10.7.0.9"])
    return t


def query(name: str, rdtype: str = "A", **kw: object) -> bytes:
    return dns.message.make_query(name, rdtype, **kw).to_wire()  # type: ignore[arg-type]


def reply(decision: object) -> dns.message.Message:
    assert isinstance(decision, Reply), decision
    return dns.message.from_wire(decision.wire)


def addresses(msg: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in msg.answer for rd in rrset)


def test_a_and_aaaa_of_a_container_name(table: NameTable) -> None:
    view = table.view(lambda: ["mynet"])
    got = reply(decide(query("web."), view, tcp=False))
    assert got.rcode() == dns.rcode.NOERROR and got.flags & dns.flags.RA and got.flags & dns.flags.QR
    assert addresses(got) == ["10.5.0.2"]
    assert got.answer[0].ttl == 600
    assert addresses(reply(decide(query("web.", "AAAA"), view, tcp=False))) == ["fd00::2"]


def test_names_match_case_insensitively_and_keep_the_query_case(table: NameTable) -> None:
    got = reply(decide(query("WEB."), table.view(lambda: ["mynet"]), tcp=False))
    assert addresses(got) == ["10.5.0.2"]
    assert got.answer[0].name.to_text() == "WEB."
    assert addresses(reply(decide(query("front"), table.view(lambda: ["mynet"]), tcp=False))) == ["10.5.0.2"]


def test_an_alias_of_two_containers_gives_both(table: NameTable) -> None:
    got = reply(decide(query("www"), table.view(lambda: ["mynet"]), tcp=False))
    assert addresses(got) == ["10.5.0.2", "10.5.0.4"]


def test_aaaa_of_a_v4_only_name_is_an_empty_noerror(table: NameTable) -> None:
    got = reply(decide(query("db", "AAAA"), table.view(lambda: ["mynet"]), tcp=False))
    assert got.rcode() == dns.rcode.NOERROR and got.answer == []


def test_names_of_other_networks_are_not_ours(table: NameTable) -> None:
    view = table.view(lambda: ["mynet"])
    assert isinstance(decide(query("hidden"), view, tcp=False), Forward)
    # the first of the container's networks that knows a name answers
    assert addresses(reply(decide(query("web"), table.view(lambda: ["other", "mynet"]), tcp=False))) == ["10.7.0.9"]


def test_name_dot_network(table: NameTable) -> None:
    view = table.view(lambda: ["mynet", "my.dotted"])
    assert addresses(reply(decide(query("web.mynet"), view, tcp=False))) == ["10.5.0.2"]
    assert addresses(reply(decide(query("api.my.dotted."), view, tcp=False))) == ["10.6.0.2"]
    assert isinstance(decide(query("db.my.dotted"), view, tcp=False), Forward)  # db is on mynet only
    assert isinstance(decide(query("hidden.other"), view, tcp=False), Forward)  # not on that network


def test_a_view_without_network_scope_answers_whole_names_only() -> None:
    class Plain:
        def addresses(self, name: str) -> list[str] | None:
            return ["10.9.0.2"] if name == "web" else None

        def name_of(self, address: str) -> str | None:
            return None

    assert addresses(reply(decide(query("web"), Plain(), tcp=False))) == ["10.9.0.2"]
    assert isinstance(decide(query("web.mynet"), Plain(), tcp=False), Forward)


def test_search_domains_are_the_clients_business(table: NameTable) -> None:
    """With ndots:0 a client asks for ``web.`` first (ours); ``web.<search domain>`` is forwarded."""
    view = table.view(lambda: ["mynet"])
    assert isinstance(decide(query("web.example.com"), view, tcp=False), Forward)
    assert isinstance(decide(query("unknown.example.com"), view, tcp=False), Forward)


def test_ndots_set_keeps_unknown_single_labels_home(table: NameTable) -> None:
    view = table.view(lambda: ["mynet"])
    got = reply(decide(query("unknown"), view, tcp=False, ndots_set=True))
    assert got.rcode() == dns.rcode.NOERROR and got.answer == []
    assert isinstance(decide(query("unknown"), view, tcp=False), Forward)
    assert isinstance(decide(query("unknown.example.com"), view, tcp=False, ndots_set=True), Forward)
    assert isinstance(decide(query("unknown", "TXT"), view, tcp=False, ndots_set=True), Forward)
    assert addresses(reply(decide(query("web"), view, tcp=False, ndots_set=True))) == ["10.5.0.2"]


def test_mx_of_our_name_is_empty_other_types_are_forwarded(table: NameTable) -> None:
    view = table.view(lambda: ["mynet"])
    got = reply(decide(query("web", "MX"), view, tcp=False))
    assert got.rcode() == dns.rcode.NOERROR and got.answer == []
    assert isinstance(decide(query("nothere", "MX"), view, tcp=False), Forward)
    for rdtype in ("TXT", "SRV", "HTTPS", "ANY", "CNAME"):
        assert isinstance(decide(query("web", rdtype), view, tcp=False), Forward)
    chaos = reply(decide(dns.message.make_query("web", "A", rdclass="CH").to_wire(), view, tcp=False))
    assert addresses(chaos) == ["10.5.0.2"]  # Docker does not look at the class
    assert chaos.question[0].rdclass == dns.rdataclass.CH and chaos.answer[0].rdclass == dns.rdataclass.IN


@pytest.mark.parametrize(("address", "name"), [("10.5.0.2", "web.mynet."), ("fd00::2", "web.mynet."),
                                               ("10.6.0.2", "api.my.dotted.")])
def test_ptr_of_our_addresses(table: NameTable, address: str, name: str) -> None:
    view = table.view(lambda: ["mynet", "my.dotted"])
    got = reply(decide(query(dns.reversename.from_address(address).to_text(), "PTR"), view, tcp=False))
    assert [rd.to_text() for rrset in got.answer for rd in rrset] == [name]
    assert got.answer[0].ttl == 600


def test_ptr_not_ours_is_forwarded(table: NameTable) -> None:
    view = table.view(lambda: ["mynet"])
    for name in ("2.0.7.10.in-addr.arpa.", "9.9.9.9.in-addr.arpa.", "5.10.in-addr.arpa.", "example.com.",
                 "x.2.0.5.10.in-addr.arpa."):
        assert isinstance(decide(query(name, "PTR"), view, tcp=False), Forward), name


def test_many_addresses_are_truncated_over_udp_and_whole_over_tcp() -> None:
    t = NameTable()
    for i in range(100):
        t.set("big", f"c{i}", name=f"n{i}", aliases=["many"], addresses=[f"10.8.{i // 250}.{i % 250 + 2}"])
    view = t.view(lambda: ["big"])
    udp = decide(query("many", use_edns=False), view, tcp=False)
    assert isinstance(udp, Reply) and len(udp.wire) <= 512
    got = dns.message.from_wire(udp.wire)
    assert got.flags & dns.flags.TC and 0 < len(addresses(got)) < 100
    edns = decide(query("many", use_edns=0, payload=1232), view, tcp=False)
    assert isinstance(edns, Reply) and 512 < len(edns.wire) <= 1232
    assert len(addresses(reply(decide(query("many"), view, tcp=True)))) == 100


def test_a_failing_view_gets_servfail() -> None:
    class Broken:
        def addresses(self, name: str) -> list[str] | None:
            raise RuntimeError("boom")

        def name_of(self, address: str) -> str | None:
            raise RuntimeError("boom")

    got = reply(decide(query("web"), Broken(), tcp=False))
    assert got.rcode() == dns.rcode.SERVFAIL


def test_hostile_packets(table: NameTable) -> None:
    view = table.view(lambda: ["mynet"])
    good = query("web")
    assert decide(b"", view, tcp=False) is None
    assert decide(good[:11], view, tcp=False) is None
    assert decide(good[:12], view, tcp=False) is None  # a header announcing a question it lacks
    response = bytearray(good)
    response[2] |= 0x80  # QR: a response is never answered (no reflection loops)
    assert decide(bytes(response), view, tcp=False) is None

    def rcode_of(wire: bytes) -> int:
        decision = decide(wire, view, tcp=False)
        assert isinstance(decision, Reply)
        ident, flags = struct.unpack_from("!2H", decision.wire)
        assert ident == struct.unpack_from("!H", wire)[0] and flags & 0x8000
        return flags & 0xF

    update = dns.message.make_query("web", "A")
    update.set_opcode(dns.opcode.UPDATE)
    assert rcode_of(update.to_wire()) == dns.rcode.NOTIMP
    assert rcode_of(good[:4] + b"\x00\x02" + good[6:]) == dns.rcode.FORMERR  # two questions announced
    assert rcode_of(good[:4] + b"\x00\x00" + good[6:]) == dns.rcode.FORMERR  # none
    assert rcode_of(good[:12] + b"\x3fabc") == dns.rcode.FORMERR  # a name cut short
    assert addresses(reply(decide(good + b"junk", view, tcp=False))) == ["10.5.0.2"]  # ignored, as Docker
    elsewhere = query("example.com")
    junk_forward = decide(elsewhere + b"junk", view, tcp=False)
    assert isinstance(junk_forward, Forward) and junk_forward.wire == elsewhere  # forwarded without the junk
    loop = good[:12] + b"\xc0\x0c\x00\x01\x00\x01"  # a compression pointer to itself
    assert rcode_of(loop) == dns.rcode.FORMERR
    assert rcode_of(query("example.com", "AXFR")) == dns.rcode.REFUSED
    assert rcode_of(query("example.com", "IXFR")) == dns.rcode.REFUSED


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(table: NameTable, wire: bytes) -> None:
    decision = decide(wire, table.view(lambda: ["mynet"]), tcp=False)
    if isinstance(decision, Reply):
        ident, flags = struct.unpack_from("!2H", decision.wire)
        assert ident == struct.unpack_from("!H", wire)[0] and flags & 0x8000
    elif decision is not None:
        assert isinstance(decision, Forward)


_labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-_.", min_size=1, max_size=30)
_types = st.sampled_from(["A", "AAAA", "PTR", "MX", "TXT", "SRV", "ANY", "HTTPS", "SOA"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_labels, _types, st.booleans(), st.booleans(), st.integers(0, 65535), st.binary(max_size=16),
       st.integers(0, 200))
def test_fuzz_queries_and_mutations(table: NameTable, label: str, rdtype: str, tcp: bool, ndots: bool,
                                    payload: int, noise: bytes, at: int) -> None:
    view = table.view(lambda: ["mynet", "my.dotted"])
    try:
        wire = dns.message.make_query(label.strip("."), rdtype, use_edns=0, payload=payload).to_wire()
    except (dns.name.EmptyLabel, dns.name.LabelTooLong, dns.name.NameTooLong):
        return
    for candidate in (wire, wire[:at] + noise + wire[at:], wire[:at]):
        decision = decide(candidate, view, tcp=tcp, ndots_set=ndots)
        if isinstance(decision, Reply):
            assert len(decision.wire) <= (65535 if tcp else max(512, payload))
            dns.message.from_wire(decision.wire)  # every reply we make parses
        elif isinstance(decision, Forward):
            assert candidate.startswith(decision.wire[:2])
            assert dns.message.from_wire(decision.wire).question == decision.query.question


def answer_by_dnspython(query_: dns.message.Message, packed: list[bytes], rdtype: int) -> dns.message.Message:
    response = reply_with(query_, dns.rcode.NOERROR)
    if packed:
        rrset = response.find_rrset(response.answer, query_.question[0].name, dns.rdataclass.IN,
                                    dns.rdatatype.RdataType.make(rdtype), create=True)
        rrset.update_ttl(600)
        for raw in packed:
            rrset.add(dns.rdata.from_text("IN", rdtype, str(ipaddress.ip_address(raw))))
    return response


@settings(max_examples=300, deadline=None)
@given(_labels, st.sampled_from(["A", "AAAA"]), st.integers(0, 40), st.one_of(st.none(), st.integers(0, 4096)),
       st.booleans(), st.booleans())
def test_the_written_answer_is_dnspythons(label: str, rdtype: str, count: int, payload: int | None, rd: bool,
                                          tcp: bool) -> None:
    """The hot path (family_answer_wire) says what the dnspython-built answer says, fitted the same way."""
    try:
        q = dns.message.make_query(label.strip(".").upper(), rdtype, use_edns=payload is not None,
                                   payload=payload or 0)
    except (dns.name.EmptyLabel, dns.name.LabelTooLong, dns.name.NameTooLong):
        return
    if not rd:
        q.flags &= ~dns.flags.RD
    q.flags |= dns.flags.CD if count % 2 else 0
    query_ = dns.message.from_wire(q.to_wire())
    kind = dns.rdatatype.from_text(rdtype)
    size = 4 if rdtype == "A" else 16
    packed = [i.to_bytes(size, "big") for i in range(1, count + 1)]
    limit = client_limit(query_, tcp)
    fast = dns.message.from_wire(family_answer_wire(query_, packed, kind, limit))
    slow = dns.message.from_wire(to_wire(answer_by_dnspython(query_, packed, kind), limit))
    assert len(family_answer_wire(query_, packed, kind, limit)) <= limit
    assert (fast.id, fast.flags, fast.question, fast.edns, fast.payload) == (
        slow.id, slow.flags, slow.question, slow.edns, slow.payload)
    assert fast.answer == slow.answer
    assert [rrset.ttl for rrset in fast.answer] == [rrset.ttl for rrset in slow.answer]
    assert fast.answer == [] or fast.answer[0].name.to_text() == q.question[0].name.to_text()
