"""What the embedded DNS server does with one query packet: drop it, answer it, or forward it.

Pure logic, no sockets: :func:`decide` takes the bytes a container sent and its :class:`NameView`, and
returns a :class:`Reply` (bytes to send back), a :class:`Forward` (the query, for the upstreams), or
None (send nothing). It follows Docker's embedded DNS (libnetwork ``resolver.go``):

- A / AAAA: the view's addresses of the name, of that family, shuffled, TTL 600; a name that is ours
  with no address of the family gets an empty NOERROR answer (never forwarded). A name with dots is
  also tried as *name.network*: for ``a.b.c``, ``a.b.c`` on any of the container's networks, then
  ``a.b`` on network ``c``, then ``a`` on network ``b.c`` (with a view that has ``addresses_on``).
- MX of a name that is ours: an empty NOERROR answer (RFC 5321's implicit MX).
- PTR under in-addr.arpa / ip6.arpa of an address the view names.
- Anything else, or a name the view does not know, is forwarded — except, when the container's
  options set ``ndots``, an A/AAAA query for a single-label name, which gets an empty NOERROR answer
  so the client goes on with its search domains.

Names are matched lowercased and without the final dot; search domains get no special treatment
(with ``options ndots:0`` a client asks for ``web.`` first, which is ours; ``web.example.com`` is
forwarded), as in Docker. As Docker's (checked against a dockerd's): the question's class is not
looked at (the answers are IN records), replies copy RD and CD and set RA, and carry no OPT record.
Hostile input: fewer than 12 bytes, a header alone or a response (QR set) is dropped; an opcode other than QUERY gets
NOTIMP; a packet that does not parse, or has other than one question, or more records than a query
carries, gets FORMERR; bytes after the message are ignored. Unlike Docker, zone transfers (AXFR/IXFR:
many messages) are not forwarded but REFUSED. The view raising gets SERVFAIL.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import struct
from dataclasses import dataclass
from typing import Protocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.PTR
import dns.reversename
import dns.rrset

log = logging.getLogger(__name__)

TTL = 600  # Docker's respTTL
UDP_MIN = 512  # a UDP reply's size limit without EDNS
TCP_MAX = 65535
_HEADER = struct.Struct("!6H")
_QR, _RD = 0x8000, 0x0100


class NameView(Protocol):
    """The names one container can resolve: those on its networks. Called from the DNS server's
    thread, so it must be thread-safe and quick (memory only)."""

    def addresses(self, name: str) -> list[str] | None:
        """IPv4/IPv6 addresses (strings) of a container name, alias or service name on the querying
        container's networks (lowercase, no trailing dot); None = not ours, forward upstream."""

    def name_of(self, address: str) -> str | None:
        """The PTR name for an address on those networks; None = forward upstream."""


class ScopedNameView(NameView, Protocol):
    """A view that can also answer for one of the container's networks, by the network's name: what
    makes Docker's ``name.network`` form work. Optional: a view without ``addresses_on`` only answers
    names as a whole."""

    def addresses_on(self, name: str, network: str) -> list[str] | None:
        """Like ``addresses``, but only on the container's network called ``network`` (None when the
        container is not on it or the name is not there)."""


@dataclass(frozen=True)
class Reply:
    """Send ``wire`` back to the client."""

    wire: bytes


@dataclass(frozen=True)
class Forward:
    """Ask the upstreams: ``query`` as parsed, ``wire`` as received, ``limit`` the largest reply the
    client takes over its transport (UDP: 512 or its EDNS size; TCP: 65535)."""

    query: dns.message.Message
    wire: bytes
    limit: int


Decision = Reply | Forward | None


def header_reply(wire: bytes, rcode: int) -> bytes:
    """A bare reply (no sections) to the packet whose header starts ``wire``: its ID, opcode and RD."""
    ident, flags = struct.unpack_from("!2H", wire)
    flags = _QR | (flags & 0x7800) | (flags & _RD) | (rcode & 0xF)
    return _HEADER.pack(ident, flags, 0, 0, 0, 0)


def reply_with(query: dns.message.Message, rcode: dns.rcode.Rcode, *, recursion_available: bool = True) -> dns.message.Message:
    """An empty reply to ``query`` carrying ``rcode`` (Docker's ``createRespMsg``/``SetRcode``: the
    question, RD and CD copied, no OPT record even when the query has one)."""
    response = dns.message.make_response(query)
    response.use_edns(False)
    response.flags |= query.flags & dns.flags.CD
    response.set_rcode(rcode)
    if recursion_available:
        response.flags |= dns.flags.RA
    else:
        response.flags &= ~dns.flags.RA
    return response


def to_wire(response: dns.message.Message, limit: int) -> bytes:
    """``response`` in at most ``limit`` bytes: when the answers do not fit, as many as fit, with TC set
    (as Docker's ``Msg.Truncate``)."""
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        pass
    answers = list(response.answer)
    response.answer = []
    response.authority = []
    response.additional = []
    response.flags |= dns.flags.TC
    records = [(rrset, rdata) for rrset in answers for rdata in rrset]
    wire = response.to_wire(max_size=limit)  # header, question and OPT fit: the query had them
    low, high = 0, len(records)
    while low < high:  # the largest count of records that fits
        middle = (low + high + 1) // 2
        try:
            candidate = _with_records(response, records[:middle]).to_wire(max_size=limit)
        except dns.exception.TooBig:
            high = middle - 1
        else:
            low, wire = middle, candidate
    return wire


def _with_records(response: dns.message.Message, records: list[tuple[dns.rrset.RRset, object]]) -> dns.message.Message:
    out = response
    out.answer = []
    for rrset, rdata in records:
        found = next((r for r in out.answer if r.name == rrset.name and r.rdtype == rrset.rdtype), None)
        if found is None:
            found = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype)
            found.update_ttl(rrset.ttl)
            out.answer.append(found)
        found.add(rdata)  # type: ignore[arg-type]
    return out


def name_text(name: dns.name.Name) -> str:
    """A query name as Docker matches it: presentation form, no final dot, the root as ''."""
    if name == dns.name.root:
        return ""
    return name.to_text(omit_final_dot=True)


def resolve_name(view: NameView, name: str) -> list[str] | None:
    """The addresses of ``name`` (no final dot) for ``view``, trying Docker's ``name.network`` splits."""
    if not name:
        return None
    found = view.addresses(name.lower())
    if found is not None:
        return found
    scoped = getattr(view, "addresses_on", None)
    if scoped is None:
        return None
    end = len(name)
    while (dot := name.rfind(".", 0, end)) > 0:
        found = scoped(name[:dot].lower(), name[dot + 1:])
        if found is not None:
            return list(found)
        end = dot
    return None


def _pick(addresses: list[str], rdtype: dns.rdatatype.RdataType, qname: dns.name.Name) -> list[bytes]:
    """The view's addresses of the asked family, packed, without duplicates, shuffled (as Docker)."""
    wanted = 4 if rdtype == dns.rdatatype.A else 6
    picked: list[bytes] = []
    for text in addresses:
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            log.warning("embedded DNS: the view gave %r for %s, not an address", text, qname)
            continue
        if addr.version == wanted and addr.packed not in picked:
            picked.append(addr.packed)
    random.shuffle(picked)
    return picked


_RR = struct.Struct("!HHIH")  # after the owner name: type, class, TTL, rdata length


def family_answer_wire(query: dns.message.Message, packed: list[bytes], rdtype: dns.rdatatype.RdataType,
                       limit: int) -> bytes:
    """The A/AAAA answer of ``packed`` addresses, written directly rather than built with dnspython
    (the hot path: 2-3x faster): Docker's flags (QR, RA, RD and CD copied), no OPT record, each record
    naming the question's name by a pointer to it; as many as fit ``limit``, TC if not all."""
    flags = 0x8000 | (query.flags & (_RD | dns.flags.CD)) | dns.flags.RA
    qname = query.question[0].name.to_wire()
    assert qname is not None  # to_wire() without a file returns the bytes
    question = qname + struct.pack("!HH", rdtype, query.question[0].rdclass)
    # the owner: a pointer to the question's name at offset 12 (the root is shorter written out)
    owner = b"\x00" if qname == b"\x00" else b"\xc0\x0c"
    records = [owner + _RR.pack(rdtype, dns.rdataclass.IN, TTL, len(raw)) + raw for raw in packed]
    room = limit - _HEADER.size - len(question)
    if records and sum(map(len, records)) > room:
        records = records[:max(0, room) // len(records[0])]
        flags |= dns.flags.TC
    header = _HEADER.pack(query.id, flags, 1, len(records), 0, 0)
    return header + question + b"".join(records)


def _ptr_answer(query: dns.message.Message, view: NameView) -> dns.message.Message | None:
    qname = query.question[0].name
    if not (qname.is_subdomain(dns.reversename.ipv4_reverse_domain)
            or qname.is_subdomain(dns.reversename.ipv6_reverse_domain)):
        return None
    try:
        address = str(ipaddress.ip_address(dns.reversename.to_address(qname)))
    except (dns.exception.DNSException, ValueError):
        return None  # not a whole address: maybe the upstreams know it
    host = view.name_of(address)
    if not host:
        return None
    try:
        target = dns.name.from_text(host)
    except dns.exception.DNSException:
        log.warning("embedded DNS: the view named %s %r, not a DNS name", address, host)
        return None
    response = reply_with(query, dns.rcode.NOERROR)
    rrset = response.find_rrset(response.answer, qname, dns.rdataclass.IN, dns.rdatatype.PTR, create=True)
    rrset.update_ttl(TTL)
    rrset.add(dns.rdtypes.ANY.PTR.PTR(dns.rdataclass.IN, dns.rdatatype.PTR, target))
    return response


def local_answer(query: dns.message.Message, view: NameView, *, ndots_set: bool,
                 tcp: bool = False) -> dns.message.Message | bytes | None:
    """Docker's answer from the view (a message, or its wire form already fitted to the client's
    limit), or None when the query must be forwarded."""
    question = query.question[0]
    rdtype = question.rdtype  # whatever the class, as Docker: the answers are IN records
    name = name_text(question.name)
    if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        found = resolve_name(view, name)
        if found is not None:
            return family_answer_wire(query, _pick(found, rdtype, question.name), rdtype, client_limit(query, tcp))
        if ndots_set and "." not in name:
            return reply_with(query, dns.rcode.NOERROR)
        return None
    if rdtype == dns.rdatatype.MX:
        return reply_with(query, dns.rcode.NOERROR) if resolve_name(view, name) is not None else None
    if rdtype == dns.rdatatype.PTR:
        return _ptr_answer(query, view)
    return None


def client_limit(query: dns.message.Message, tcp: bool) -> int:
    """The largest reply the client takes: 65535 over TCP, else 512 or its EDNS UDP size."""
    if tcp:
        return TCP_MAX
    return max(UDP_MIN, query.payload) if query.edns >= 0 else UDP_MIN


def decide(wire: bytes, view: NameView, *, tcp: bool, ndots_set: bool = False) -> Decision:
    """What to do with the packet ``wire`` a container sent (see the module's docstring)."""
    if len(wire) < _HEADER.size:
        return None
    _, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    if flags & _QR:
        return None
    if (flags >> 11) & 0xF != dns.opcode.QUERY:
        return Reply(header_reply(wire, dns.rcode.NOTIMP))
    if qdcount != 1 or ancount > 1 or nscount > 1 or arcount > 2:
        return Reply(header_reply(wire, dns.rcode.FORMERR))
    if len(wire) == _HEADER.size:
        return None  # a header alone parses as a message without a question: Docker ignores it
    try:
        query = dns.message.from_wire(wire)
    except dns.message.TrailingJunk:
        # Docker parses the message and ignores what follows it; forwarded, the query is re-encoded
        try:
            query = dns.message.from_wire(wire, ignore_trailing=True)
            wire = query.to_wire()
        except Exception:
            return Reply(header_reply(wire, dns.rcode.FORMERR))
    except Exception:  # any way the bytes fail to parse is the client's error
        return Reply(header_reply(wire, dns.rcode.FORMERR))
    if len(query.question) != 1:
        return Reply(header_reply(wire, dns.rcode.FORMERR))
    limit = client_limit(query, tcp)
    if query.question[0].rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
        return Reply(to_wire(reply_with(query, dns.rcode.REFUSED, recursion_available=False), limit))
    try:
        answer = local_answer(query, view, ndots_set=ndots_set, tcp=tcp)
    except Exception:
        log.exception("embedded DNS: the name view failed on %s", query.question[0])
        return Reply(to_wire(reply_with(query, dns.rcode.SERVFAIL, recursion_available=False), limit))
    if answer is None:
        return Forward(query, wire, limit)
    return Reply(answer if isinstance(answer, bytes) else to_wire(answer, limit))
