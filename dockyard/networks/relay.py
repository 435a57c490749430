"""The loopback relay: the host's own connections to ``[::1]:PORT`` of a port published over IPv6.

Terms:

- Published ports are nft DNAT elements (:mod:`firewall`). For IPv4 the host's own ``127.0.0.1`` is
  DNATed too (``route_localnet``); IPv6 has no such switch — the kernel drops a packet from ``::1``
  that leaves by another link —, so the IPv6 table leaves ``::1`` alone and this relay answers there.
- *relay*: one thread of the daemon with an asyncio loop of its own, serving every such port (no
  process per port, unlike dockerd's ``docker-proxy``): a listener on ``[::1]:<host port>`` for each
  published TCP port whose host address is ``::`` or ``::1`` and whose container address is IPv6; a
  connection to it is joined to ``[<container address>]:<container port>``.
- *proxied* port (``PortForward.proxied``): an IPv6 host address (``::`` by default) published to a
  container with no IPv6 address, as dockerd's userland proxy publishes it: no DNAT can cross the
  families, so the relay listens on that address (``[::]``: every IPv6 address of the host) and joins
  each connection to the container's IPv4 address. UDP is not relayed (nor published so).
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
from collections.abc import Iterable
from pathlib import Path

from dockyard.networks import netns as ns
from dockyard.networks.firewall import PortForward

log = logging.getLogger("dockyard.networks.relay")

LOOPBACK6 = "::1"
CHUNK = 64 * 1024


def relayed(forward: PortForward) -> bool:
    """Whether the relay serves ``forward``: TCP, and proxied or IPv6 on every host address or ``::1``."""
    return forward.proto == "tcp" and (forward.proxied or (
        forward.family == 6 and (forward.any_address() or forward.host_ip == LOOPBACK6)))


def listen_address(forward: PortForward) -> str:
    """Where the relay listens for ``forward``: its host address when proxied (``::`` for every one),
    else ``::1`` (the DNAT serves the others)."""
    if forward.proxied:
        return "::" if forward.any_address() else forward.host_ip
    return LOOPBACK6


class LoopbackRelay:
    """The relay of one daemon (see the module); its sockets live in the namespace ``netns``."""

    def __init__(self, netns: Path = ns.HOST) -> None:
        self.netns = Path(netns)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: dict[str, list[asyncio.Server]] = {}  # owner → its listeners

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
            return {owner: sorted(s.sockets[0].getsockname()[1] for s in servers if s.sockets)
                    for owner, servers in self._servers.items()}

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
        made: list[asyncio.Server] = []
        for forward in forwards:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
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

            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                             target: tuple[str, int] = target) -> None:
                await self._join(reader, writer, target)

            made.append(await asyncio.start_server(handle, sock=sock))
        with self._lock:
            self._servers.setdefault(owner, []).extend(made)

    @staticmethod
    async def _close(servers: list[asyncio.Server]) -> None:
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
