"""The loopback relay: the host's own connections to ``[::1]:PORT`` of a port published over IPv6.

Terms:

- Published ports are nft DNAT elements (:mod:`firewall`). For IPv4 the host's own ``127.0.0.1`` is
  DNATed too (``route_localnet``); IPv6 has no such switch — the kernel drops a packet from ``::1``
  that leaves by another link —, so the IPv6 table leaves ``::1`` alone and this relay answers there.
- *relay*: one thread of the daemon with an asyncio loop of its own, serving every such port (no
  process per port, unlike dockerd's ``docker-proxy``): a listener on ``[::1]:<host port>`` for each
  port (TCP or UDP) published with the host address ``::`` or ``::1`` to an IPv6 container address; a
  TCP connection to it is joined to ``[<container address>]:<container port>``.
- *proxied* port (``PortForward.proxied``): an IPv6 host address (``::`` by default) published to a
  container with no IPv6 address, as dockerd's userland proxy publishes it: no DNAT can cross the
  families, so the relay listens on that address (``[::]``: every IPv6 address of the host) and joins
  each connection to the container's IPv4 address.
- UDP: a *session* per client address (a socket connected to the container's address; its replies
  go back from the listening socket), closed after :data:`UDP_IDLE` seconds without traffic; at most
  :data:`UDP_SESSIONS` per port, as docker-proxy's UDP proxy keeps a table of connections.
- Its sockets are made in the namespace the relay is given (the daemon's, by default), so its
  listeners and its connections to containers are the host's.

A port some other process holds on ``[::1]`` is skipped with a warning (the DNAT serves every other
address). Listeners go with :meth:`LoopbackRelay.drop` (the container's ports are withdrawn) and
:meth:`LoopbackRelay.close` (the daemon stops); a daemon start serves the ports it finds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.networks import netns as ns
from dockyard.networks.firewall import PortForward

log = logging.getLogger("dockyard.networks.relay")

LOOPBACK6 = "::1"
CHUNK = 64 * 1024
UDP_IDLE = 90.0  # seconds a UDP session lives without traffic (docker-proxy: 90 s)
UDP_SESSIONS = 1024  # UDP sessions per port at most


def relayed(forward: PortForward) -> bool:
    """Whether the relay serves ``forward``: proxied, or IPv6 on every host address or ``::1``."""
    return forward.proxied or (forward.family == 6 and (forward.any_address() or forward.host_ip == LOOPBACK6))


def listen_address(forward: PortForward) -> str:
    """Where the relay listens for ``forward``: its host address when proxied (``::`` for every one),
    else ``::1`` (the DNAT serves the others)."""
    if forward.proxied:
        return "::" if forward.any_address() else forward.host_ip
    return LOOPBACK6


class _UdpSession(asyncio.DatagramProtocol):
    """One UDP client's traffic: a socket connected to the container's address."""

    def __init__(self, port: _UdpPort, client: Any) -> None:
        self.port = port
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: list[bytes] = []
        self.last = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        for data in self.pending:
            self.transport.sendto(data)  # type: ignore[union-attr]
        self.pending.clear()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.last = time.monotonic()
        if self.port.transport is not None:
            self.port.transport.sendto(data, self.client)

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable: keep the session
        pass

    def send(self, data: bytes) -> None:
        self.last = time.monotonic()
        if self.transport is None:
            self.pending.append(data)
        else:
            self.transport.sendto(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _UdpPort(asyncio.DatagramProtocol):
    """One relayed UDP port: the listening socket and its sessions by client address."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[Any, _UdpSession] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._sweeper = asyncio.get_running_loop().call_later(UDP_IDLE / 3, self._sweep)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        session = self.sessions.get(addr)
        if session is None:
            if len(self.sessions) >= UDP_SESSIONS:
                return
            session = self.sessions[addr] = _UdpSession(self, addr)
            asyncio.ensure_future(self._connect(session))
        session.send(data)

    def error_received(self, exc: Exception) -> None:
        pass

    async def _connect(self, session: _UdpSession) -> None:
        try:
            await asyncio.get_running_loop().create_datagram_endpoint(lambda: session, remote_addr=self.target)
        except OSError as exc:
            log.warning("loopback relay: UDP to %s: %s", self.target, exc)
            self.sessions.pop(session.client, None)

    def _sweep(self) -> None:
        now = time.monotonic()
        for addr, session in list(self.sessions.items()):
            if now - session.last > UDP_IDLE:
                session.close()
                del self.sessions[addr]
        if self.transport is not None:
            self._sweeper = asyncio.get_running_loop().call_later(UDP_IDLE / 3, self._sweep)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()
        if self.transport is not None:
            self.transport.close()
            self.transport = None


@dataclass
class _Listener:
    """One relayed port: a TCP server or a UDP port."""

    port: int
    server: asyncio.Server | None = None
    udp: _UdpPort | None = None

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.udp is not None:
            self.udp.close()

    async def wait_closed(self) -> None:
        if self.server is not None:
            await self.server.wait_closed()


class LoopbackRelay:
    """The relay of one daemon (see the module); its sockets live in the namespace ``netns``."""

    def __init__(self, netns: Path = ns.HOST) -> None:
        self.netns = Path(netns)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: dict[str, list[_Listener]] = {}  # owner → its listeners

    # -- the serving thread ------------------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is not None:
                return self._loop
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                if self.netns != ns.HOST:
                    ns.enter(self.netns)  # this thread is the relay's own
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            self._thread = threading.Thread(target=serve, name="loopback relay", daemon=True)
            self._thread.start()
            ready.wait(10)
            self._loop = loop
            return loop

    def _call(self, coro: object) -> object:
        loop = self._ensure_loop()
        return asyncio.run_coroutine_threadsafe(coro, loop).result(30)  # type: ignore[arg-type]

    # -- what the network service calls ----------------------------------------------------------

    def serve(self, owner: str, forwards: Iterable[PortForward]) -> None:
        """Listen for ``owner``'s forwards the relay serves (see :func:`relayed`); others are ignored."""
        wanted = [f for f in forwards if relayed(f)]
        if wanted:
            self._call(self._listen(owner, wanted))

    def drop(self, owner: str) -> None:
        """Close ``owner``'s listeners (nothing when it has none); connections already made go on."""
        with self._lock:
            servers = self._servers.pop(owner, [])
            loop = self._loop
        if servers and loop is not None:
            asyncio.run_coroutine_threadsafe(self._close(servers), loop).result(30)

    def ports(self) -> dict[str, list[int]]:
        """The ports listened on, by owner (for tests and logs)."""
        with self._lock:
            return {owner: sorted(s.port for s in servers) for owner, servers in self._servers.items()}

    def close(self) -> None:
        """Close every listener and stop the thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            servers = [s for ss in self._servers.values() for s in ss]
            self._servers.clear()
            self._loop = self._thread = None
        if loop is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close(servers), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(10)
        loop.close()

    # -- on the loop -------------------------------------------------------------------------------

    async def _listen(self, owner: str, forwards: list[PortForward]) -> None:
        made: list[_Listener] = []
        for forward in forwards:
            kind = socket.SOCK_STREAM if forward.proto == "tcp" else socket.SOCK_DGRAM
            sock = socket.socket(socket.AF_INET6, kind)
            where = listen_address(forward)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((where, forward.host_port))
            except OSError as exc:
                sock.close()
                log.warning("loopback relay: cannot listen on [%s]:%d: %s", where, forward.host_port, exc)
                continue
            target = (forward.container_ip, forward.container_port)
            if forward.proto == "udp":
                udp = _UdpPort(target)
                await asyncio.get_running_loop().create_datagram_endpoint(lambda udp=udp: udp, sock=sock)  # type: ignore[misc]
                made.append(_Listener(forward.host_port, udp=udp))
                continue

            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                             target: tuple[str, int] = target) -> None:
                await self._join(reader, writer, target)

            made.append(_Listener(forward.host_port, server=await asyncio.start_server(handle, sock=sock)))
        with self._lock:
            self._servers.setdefault(owner, []).extend(made)

    @staticmethod
    async def _close(servers: list[_Listener]) -> None:
        for server in servers:
            server.close()
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1)

    @staticmethod
    async def _join(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: tuple[str, int]) -> None:
        """Copy both ways between the client and the container until both sides are done."""
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*target), 10)
        except (TimeoutError, OSError):
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(CHUNK):
                    dst.write(data)
                    await dst.drain()
                if dst.can_write_eof():
                    dst.write_eof()
            except OSError:
                dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()
