"""Forwarding a container's query to its upstream nameservers.

Terms:

- an *upstream*: a nameserver the embedded DNS server asks for names that are not ours — the
  container's ``--dns`` servers, else the host's (the ``nameserver`` lines of the daemon's
  ``/etc/resolv.conf``, loopback ones such as systemd-resolved's 127.0.0.53 included). At most the
  first three are used, one after the other, as Docker does.
- an *opener* (:data:`Opener`): makes the socket a forward goes out on, and so chooses the network
  namespace it leaves from. The default makes it in the calling thread (the daemon's namespace, where
  the host's resolvers listen); the server gives a container's ``--dns`` servers an opener that makes
  it inside the container's namespace, as Docker does (``--dns 127.0.0.1`` is a resolver on the
  container's own loopback; only the host file's servers are reached from the host's namespace).
- :class:`HostResolvers` reads the host's file again whenever it changes (its inode, size or mtime).
- :class:`Forwarder` runs in the DNS server's event loop: over UDP a query goes out with an ID of its
  own (the client's is put back on the reply), only a reply matching it is taken, a truncated one is
  asked again over TCP (the whole answer is sent if it fits the client's limit, else the truncated
  one); a query that came over TCP goes over TCP. An upstream that does not answer within the timeout,
  refuses the connection or answers SERVFAIL/REFUSED is skipped; when none answers the client gets
  SERVFAIL. At most ``max_in_flight`` forwards are outstanding at once (the daemon's sockets are
  finite); a query that waits longer than ``slot_wait`` (the timeout) for a slot gets REFUSED, as in
  Docker.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import secrets
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.rcode

from dockyard.errors import InvalidParameter
from dockyard.networks.dns_answer import reply_with, to_wire
from dockyard.networks.resolv_conf import INTERNAL_NAMESERVER, nameservers

log = logging.getLogger(__name__)

MAX_UPSTREAMS = 3  # Docker's maxExtDNS
TIMEOUT = 4.0  # seconds per upstream, Docker's extIOTimeout
MAX_IN_FLIGHT = 256

# (upstream, SOCK_DGRAM | SOCK_STREAM) -> a new blocking-or-not socket and the address to connect it to
Opener = Callable[["Upstream", socket.SocketKind], Awaitable[tuple[socket.socket, tuple[Any, ...]]]]


@dataclass(frozen=True)
class Upstream:
    """A nameserver to forward to: an IP literal (an IPv6 one may carry a ``%zone``) and a port."""

    address: str
    port: int = 53

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.address else socket.AF_INET

    def sockaddr(self) -> tuple[str, int] | tuple[str, int, int, int]:
        """The address for ``connect``: an IPv6 zone (``%eth0``, an interface of the namespace of the
        calling thread, or its index) becomes the scope ID, which Python does not read from the text."""
        if self.family == socket.AF_INET:
            return self.address, self.port
        host, _, zone = self.address.partition("%")
        scope = (int(zone) if zone.isdigit() else socket.if_nametoindex(zone)) if zone else 0
        return host, self.port, 0, scope

    def __str__(self) -> str:
        if self.port == 53:
            return self.address
        return f"[{self.address}]:{self.port}" if self.family == socket.AF_INET6 else f"{self.address}:{self.port}"


async def open_here(upstream: Upstream, kind: socket.SocketKind) -> tuple[socket.socket, tuple[Any, ...]]:
    """The default :data:`Opener`: a socket of the calling thread's namespace."""
    return socket.socket(upstream.family, kind), upstream.sockaddr()


def parse_upstream(text: str) -> Upstream:
    """``1.2.3.4``, ``2001:db8::1``, ``fe80::1%eth0``, or with a port: ``1.2.3.4:5353``, ``[::1]:5353``."""
    text = text.strip()
    try:
        return Upstream(str(ipaddress.ip_address(text)))
    except ValueError:
        pass
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        addr = ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise InvalidParameter(f"invalid DNS server address {text!r}") from None
    if not sep or not 0 < number < 65536 or (":" in host and not text.startswith("[")):
        raise InvalidParameter(f"invalid DNS server address {text!r}")
    return Upstream(str(addr), number)


def container_upstreams(servers: Sequence[str]) -> list[Upstream]:
    """The container's ``--dns`` servers as upstreams: the embedded server's own address dropped
    (Docker's ``filterExtServers``), at most three."""
    parsed = [parse_upstream(s) for s in servers]
    return [u for u in parsed if not (u.address == INTERNAL_NAMESERVER and u.port == 53)][:MAX_UPSTREAMS]


class HostResolvers:
    """The host's nameservers, from its resolv.conf, read again whenever the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._seen: tuple[int, ...] | None = None
        self._upstreams: list[Upstream] = []

    def current(self) -> list[Upstream]:
        """The first three nameservers of the file as it is now ([] when it is missing or names none)."""
        try:
            st = os.stat(self.path)
            seen: tuple[int, ...] = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except OSError:
            seen = ()
        if seen != self._seen:
            try:
                text = self.path.read_text(errors="replace")
            except OSError:
                text = ""
            self._upstreams = [Upstream(a) for a in nameservers(text)][:MAX_UPSTREAMS]
            self._seen = seen
        return list(self._upstreams)


class Forwarder:
    """Forwards queries to upstreams from the event loop it is used in (see the module's docstring)."""

    def __init__(self, *, timeout: float = TIMEOUT, max_in_flight: int = MAX_IN_FLIGHT,
                 slot_wait: float | None = None) -> None:
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.slot_wait = timeout if slot_wait is None else slot_wait
        self._slots: asyncio.Semaphore | None = None
        self._last_full_warning = 0.0

    async def forward(self, query: dns.message.Message, wire: bytes, upstreams: Sequence[Upstream], *,
                      tcp: bool, limit: int, opener: Opener = open_here) -> bytes:
        """The reply to send the client: an upstream's (with the client's ID), else SERVFAIL/REFUSED.
        ``opener`` makes the sockets (see the module's terms)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_in_flight)
        for upstream in upstreams[:MAX_UPSTREAMS]:
            try:
                if self._slots.locked():
                    async with asyncio.timeout(self.slot_wait):
                        await self._slots.acquire()
                else:
                    await self._slots.acquire()  # free: no timer needed
            except TimeoutError:
                now = time.monotonic()
                if now - self._last_full_warning > 2:
                    self._last_full_warning = now
                    log.warning("embedded DNS: more than %d queries forwarded at once", self.max_in_flight)
                return to_wire(reply_with(query, dns.rcode.REFUSED, recursion_available=False), limit)
            try:
                answer = await self._ask(upstream, query, wire, tcp=tcp, limit=limit, opener=opener)
            finally:
                self._slots.release()
            if answer is not None:
                return wire[:2] + answer[2:]
        return to_wire(reply_with(query, dns.rcode.SERVFAIL, recursion_available=False), limit)

    async def _ask(self, upstream: Upstream, query: dns.message.Message, wire: bytes, *, tcp: bool,
                   limit: int, opener: Opener) -> bytes | None:
        ident = secrets.randbits(16)
        out = struct.pack("!H", ident) + wire[2:]
        deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            if tcp:
                return _usable(await _tcp_exchange(upstream, out, deadline, opener), query, ident)
            async with asyncio.timeout_at(deadline):
                answer = await _udp_exchange(upstream, out, query, ident, opener)
            if answer is None or not _truncated(answer):
                return answer
            whole = _usable(await _tcp_exchange(upstream, out, loop_time() + self.timeout, opener), query, ident)
            return whole if whole is not None and len(whole) <= limit else answer
        except (OSError, TimeoutError, EOFError) as exc:
            log.debug("embedded DNS: upstream %s: %s", upstream, exc)
            return None


def loop_time() -> float:
    return asyncio.get_running_loop().time()


def _truncated(wire: bytes) -> bool:
    return bool(struct.unpack_from("!H", wire, 2)[0] & dns.flags.TC)


def _parse_reply(wire: bytes) -> dns.message.Message | None:
    """The header and question of a reply (the rest is passed on as the upstream sent it)."""
    try:
        return dns.message.from_wire(wire, question_only=True)
    except Exception:
        return None


def _matches(response: dns.message.Message, query: dns.message.Message, ident: int) -> bool:
    if response.id != ident or not response.flags & dns.flags.QR or response.opcode() != query.opcode():
        return False
    if not response.question:  # a server may omit the question when it rejects the message
        return response.rcode() in (dns.rcode.FORMERR, dns.rcode.NOTIMP, dns.rcode.SERVFAIL, dns.rcode.REFUSED)
    return response.question == query.question


def _failed(response: dns.message.Message) -> bool:
    """SERVFAIL and REFUSED send Docker on to the next upstream."""
    return response.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED)


def _usable(wire: bytes, query: dns.message.Message, ident: int) -> bytes | None:
    """``wire`` when it answers ``query`` (sent with ID ``ident``) and is not a failure."""
    response = _parse_reply(wire)
    if response is None or not _matches(response, query, ident) or _failed(response):
        return None
    return wire


async def _udp_exchange(upstream: Upstream, out: bytes, query: dns.message.Message, ident: int,
                        opener: Opener) -> bytes | None:
    """The upstream's reply to ``out`` (None: it failed); the caller bounds the time."""
    loop = asyncio.get_running_loop()
    sock, address = await opener(upstream, socket.SOCK_DGRAM)
    with sock:
        sock.setblocking(False)
        sock.connect(address)
        await loop.sock_sendall(sock, out)
        while True:  # datagrams that are not the answer (late, forged, garbled) are skipped
            data = await loop.sock_recv(sock, 65535)
            response = _parse_reply(data)
            if response is None or not _matches(response, query, ident):
                continue
            return None if _failed(response) else data


async def _read_exactly(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    chunks = bytearray()
    while len(chunks) < size:
        data = await loop.sock_recv(sock, size - len(chunks))
        if not data:
            raise EOFError("connection closed")
        chunks += data
    return bytes(chunks)


async def _tcp_exchange(upstream: Upstream, out: bytes, deadline: float, opener: Opener) -> bytes:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout_at(deadline):
        sock, address = await opener(upstream, socket.SOCK_STREAM)
    with sock:
        sock.setblocking(False)
        async with asyncio.timeout_at(deadline):
            await loop.sock_connect(sock, address)
            await loop.sock_sendall(sock, struct.pack("!H", len(out)) + out)
            size = struct.unpack("!H", await _read_exactly(sock, 2))[0]
            return await _read_exactly(sock, size)
