"""A DNS server of the tests' own, standing for an upstream nameserver: UDP and TCP on one port of a
loopback address, in the namespace of the thread that makes it, answering through a handler the test
sets (the default answers every A query with 192.0.2.1)."""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from collections.abc import Callable

import dns.message
import dns.rdataclass
import dns.rdatatype
import dns.rrset

# (query, "udp" | "tcp") -> the wire replies to send (none: stay silent)
Handler = Callable[[dns.message.Message, str], list[bytes]]


def answer_a(address: str, ttl: int = 30) -> Handler:
    """A handler answering A queries with ``address`` and everything else with an empty NOERROR."""
    def handle(query: dns.message.Message, transport: str) -> list[bytes]:
        response = dns.message.make_response(query)
        question = query.question[0]
        if question.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(question.name, ttl, "IN", "A", address))
        return [response.to_wire()]
    return handle


class FakeUpstream:
    def __init__(self, address: str = "127.0.0.1", port: int = 0, handler: Handler | None = None) -> None:
        self.address = address
        self.handler: Handler = handler or answer_a("192.0.2.1")
        self.queries: list[tuple[str, dns.message.Message]] = []
        self.udp, self.tcp = self._bind(address, port)
        self.port = self.udp.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-dns", daemon=True)
        self._thread.start()

    @staticmethod
    def _bind(address: str, port: int) -> tuple[socket.socket, socket.socket]:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        for _ in range(50):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            udp.bind((address, port))
            tcp = socket.socket(family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((address, udp.getsockname()[1]))
            except OSError:
                udp.close()
                tcp.close()
                if port:
                    raise
                continue
            tcp.listen(16)
            return udp, tcp
        raise OSError("no port free for UDP and TCP at once")

    @property
    def spec(self) -> str:
        """The upstream as ``attach``/``parse_upstream`` take it."""
        if self.port == 53:
            return self.address
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"

    def _replies(self, wire: bytes, transport: str) -> list[bytes]:
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return []
        self.queries.append((transport, query))
        return self.handler(query, transport)

    def _serve(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.udp, selectors.EVENT_READ)
            sel.register(self.tcp, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in sel.select(0.1):
                    if key.fileobj is self.udp:
                        try:
                            wire, peer = self.udp.recvfrom(65535)
                        except OSError:
                            continue
                        for reply in self._replies(wire, "udp"):
                            self.udp.sendto(reply, peer)
                    else:
                        try:
                            conn, _ = self.tcp.accept()
                        except OSError:
                            continue
                        self._tcp(conn)

    def _tcp(self, conn: socket.socket) -> None:
        conn.settimeout(2)
        try:
            with conn:
                head = conn.recv(2, socket.MSG_WAITALL)
                if len(head) < 2:
                    return
                wire = conn.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)
                for reply in self._replies(wire, "tcp"):
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.udp.close()
        self.tcp.close()

    def __enter__(self) -> FakeUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
