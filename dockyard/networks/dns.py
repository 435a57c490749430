"""Docker's embedded DNS server: 127.0.0.11:53 inside each container on a user-defined network.

Terms:

- an *attachment*: one container's listeners — a UDP socket and a listening TCP socket bound to
  127.0.0.11:53 inside the container's network namespace (made by a thread that joined it, see
  ``netns.run_in``; a socket keeps the namespace it was made in) — with its *view* (the names it may
  resolve, :class:`NameView`) and its upstreams. Attachments are named by a *key* of the caller's
  (the container's ID). An attachment holds its namespace alive: detach it when the container stops.
- the *serving thread*: one thread per daemon running an asyncio loop of its own (never the daemon's),
  started at the first attach. It reads every attachment's sockets, answers from the views
  (``dns_answer``) and forwards the rest (``dns_forward``). It stays in the daemon's namespace, so
  forwards to the host's resolvers reach its loopback ones (127.0.0.53), which Docker's cannot.
- a *namespace worker*: a thread sitting in an attachment's namespace (``netns.Worker``), made at
  the first forward to the container's own ``--dns`` servers and ended with the attachment. Those
  forwards leave from the container's namespace, as Docker's do (its ``ExecFunc``): ``--dns
  127.0.0.1`` means a resolver on the container's loopback, and a server reachable only from the
  container's networks is reached.

Bounds (a container may be hostile): at most 128 forwards waiting or in flight per container, 256 in
flight in all, 16 TCP connections per container, each closed after 10 s idle; a reply that cannot be
sent at once over UDP is dropped. No input ends the serving thread: each packet's handling is guarded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.rcode

from dockyard.errors import DockyardError, InvalidParameter
from dockyard.networks import netns as netns_mod
from dockyard.networks.dns_answer import Forward, NameView, Reply, ScopedNameView, decide, reply_with, to_wire
from dockyard.networks.dns_forward import (
    MAX_IN_FLIGHT,
    TIMEOUT,
    Forwarder,
    HostResolvers,
    Opener,
    Upstream,
    container_upstreams,
    open_here,
)
from dockyard.networks.resolv_conf import INTERNAL_NAMESERVER, container_resolv_conf, sets_ndots
from dockyard.runtime.loopback import loopback_up

__all__ = ["LISTEN_ADDRESS", "EmbeddedDns", "NameView", "ScopedNameView", "container_resolv_conf", "sets_ndots"]

log = logging.getLogger(__name__)

LISTEN_ADDRESS = INTERNAL_NAMESERVER
PORT = 53
MAX_PENDING_PER_CONTAINER = 128
MAX_TCP_PER_CONTAINER = 16
TCP_IDLE = 10.0
_BATCH = 64  # packets read per wake-up of one socket, so one busy container cannot starve the others


@dataclass(eq=False)
class _Attachment:
    key: str
    where: str
    view: NameView
    upstreams: list[Upstream] | None
    ndots_set: bool
    udp: socket.socket
    tcp: socket.socket
    netns: Path | None = None  # where forwards to the container's own servers leave from (None: here)
    worker: asyncio.Future[netns_mod.Worker] | None = None  # the namespace worker, once asked for
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    pending: int = 0
    tcp_open: int = 0
    closed: bool = False


def _listen(port: int) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets on 127.0.0.11:``port`` in the calling thread's namespace, non-blocking.

    ``lo`` is brought up first (as in every container's namespace): a socket bound to 127.0.0.11 while
    ``lo`` is down answers from 127.0.0.1 once it is up, and clients drop such answers."""
    loopback_up()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        udp.bind((LISTEN_ADDRESS, port))
        udp.setblocking(False)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((LISTEN_ADDRESS, port))
            tcp.listen(64)
            tcp.setblocking(False)
        except BaseException:
            tcp.close()
            raise
    except BaseException:
        udp.close()
        raise
    return udp, tcp


class EmbeddedDns:
    """One per daemon. Serves 127.0.0.11:53 over UDP and TCP inside each attached container's network
    namespace, from one serving thread of its own (never the daemon's asyncio loop).

    ``timeout``: seconds to wait for each upstream (Docker's 4); ``max_in_flight``: forwards
    outstanding at once, all containers together.
    """

    def __init__(self, *, host_resolv_conf: Path = Path("/etc/resolv.conf"), timeout: float = TIMEOUT,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.host_resolvers = HostResolvers(host_resolv_conf)
        self._forwarder = Forwarder(timeout=timeout, max_in_flight=max_in_flight)
        self._lock = threading.Lock()
        self._attached: dict[str, _Attachment] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- the caller's side (any thread) --------------------------------------------------------------

    def attach(self, key: str, netns: Path, view: NameView, upstreams: list[str] | None = None, *,
               ndots_set: bool = False) -> None:
        """Bind the listeners inside ``netns`` (a pinned netns path, or /proc/<pid>/ns/net) and serve
        queries with ``view``. ``upstreams``: the container's --dns servers, asked from inside ``netns``;
        None = the host's resolvers, asked from the daemon's namespace (``[]``: forward nothing, every name not ours gets SERVFAIL — a container on internal networks
        only). ``ndots_set``: the container's resolv.conf options name ndots (see ``sets_ndots``).
        Attaching a key again replaces its attachment. The daemon's own namespace is refused (a
        ``--network host`` container has no embedded DNS, as in Docker)."""
        parsed = None if upstreams is None else container_upstreams(upstreams)
        self.detach(key)

        def listen() -> tuple[socket.socket, socket.socket]:
            here = Path(f"/proc/self/task/{threading.get_native_id()}/ns/net")
            if netns_mod.identity(here) == netns_mod.identity(netns_mod.HOST):
                raise InvalidParameter(f"{netns} is the daemon's own network namespace: the embedded DNS "
                                       "server serves containers' namespaces only")
            return _listen(PORT)

        try:
            udp, tcp = netns_mod.run_in(Path(netns), listen)
        except OSError as exc:
            raise DockyardError(f"cannot serve DNS on {LISTEN_ADDRESS}:{PORT} in network namespace {netns}: "
                                f"{exc.strerror or exc}") from exc
        self.attach_sockets(key, udp, tcp, view, parsed, ndots_set=ndots_set, where=str(netns),
                            netns=Path(netns))

    def attach_sockets(self, key: str, udp: socket.socket, tcp: socket.socket, view: NameView,
                       upstreams: list[Upstream] | None = None, *, ndots_set: bool = False,
                       where: str = "", netns: Path | None = None) -> None:
        """Serve on sockets the caller made (a bound UDP socket and a listening TCP socket, both
        non-blocking, owned by the server from now on): what ``attach`` does after binding, and what
        tests without root use with sockets on the host's loopback. ``netns``: the namespace forwards
        to ``upstreams`` leave from (None: the serving thread's)."""
        att = _Attachment(key, where, view, upstreams, ndots_set, udp, tcp, netns)
        with self._lock:
            if self._closed:
                udp.close()
                tcp.close()
                raise DockyardError("the embedded DNS server is closed")
            loop = self._start()
            previous = self._attached.pop(key, None)
            self._attached[key] = att
        if previous is not None:
            self._in_loop(self._unregister, previous)
        loop.call_soon_threadsafe(self._register, att)

    def detach(self, key: str) -> None:
        """Close that container's listeners (and its forwards and TCP connections); nothing when it has
        none. On return the port is free."""
        with self._lock:
            att = self._attached.pop(key, None)
        if att is not None:
            self._in_loop(self._unregister, att)

    def close(self) -> None:
        """Detach everything and stop the serving thread; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            attached = list(self._attached.values())
            self._attached.clear()
            loop, thread = self._loop, self._thread
        for att in attached:
            self._in_loop(self._unregister, att)
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()

    def attached(self) -> list[str]:
        """The keys served now."""
        with self._lock:
            return list(self._attached)

    def _start(self) -> asyncio.AbstractEventLoop:
        """The serving loop, started on first use — and again, with every attachment, should the
        thread ever have ended (call with the lock held)."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            return self._loop
        if self._thread is not None:
            log.error("embedded DNS: the serving thread had ended; starting it again")
        loop = asyncio.new_event_loop()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        thread = threading.Thread(target=self._serve, args=(loop, ready), name="embedded-dns", daemon=True)
        thread.start()
        ready.result()
        self._loop, self._thread = loop, thread
        for att in self._attached.values():
            att.tasks.clear()
            att.pending = att.tcp_open = 0
            loop.call_soon_threadsafe(self._register, att)
        return loop

    def _in_loop(self, fn: Callable[[_Attachment], None], att: _Attachment) -> None:
        """Run ``fn(att)`` in the serving thread and wait for it (directly when already there)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            fn(att)
            return
        if threading.current_thread() is thread:
            fn(att)
            return
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def job() -> None:
            try:
                fn(att)
                done.set_result(None)
            except BaseException as exc:
                done.set_exception(exc)

        loop.call_soon_threadsafe(job)
        done.result(timeout=30)

    # -- the serving thread --------------------------------------------------------------------------

    def _serve(self, loop: asyncio.AbstractEventLoop, ready: concurrent.futures.Future[None]) -> None:
        try:
            # Forwards must leave from the daemon's namespace, whatever thread made this server.
            here = Path(f"/proc/self/task/{threading.get_native_id()}/ns/net")
            if netns_mod.identity(here) != netns_mod.identity(netns_mod.HOST):
                netns_mod.enter(netns_mod.HOST)
            asyncio.set_event_loop(loop)
        except BaseException as exc:
            ready.set_exception(exc)
            loop.close()
            return
        ready.set_result(None)
        try:
            loop.run_forever()
        finally:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    def _register(self, att: _Attachment) -> None:
        if att.closed:
            return
        loop = asyncio.get_running_loop()
        loop.add_reader(att.udp.fileno(), self._on_udp, att)
        loop.add_reader(att.tcp.fileno(), self._on_accept, att)

    def _unregister(self, att: _Attachment) -> None:
        if att.closed:
            return
        att.closed = True
        loop = self._loop if self._thread is not None and threading.current_thread() is self._thread else None
        for sock in (att.udp, att.tcp):
            if loop is not None and sock.fileno() >= 0:
                loop.remove_reader(sock.fileno())
            sock.close()
        for task in list(att.tasks):
            task.cancel()
        if att.worker is not None:
            if att.worker.done() and not att.worker.cancelled() and att.worker.exception() is None:
                att.worker.result().close()
            else:
                att.worker.add_done_callback(_close_worker)

    def _spawn(self, att: _Attachment, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        att.tasks.add(task)
        task.add_done_callback(att.tasks.discard)

    def _upstreams(self, att: _Attachment) -> tuple[list[Upstream], Opener]:
        """Where the attachment's forwards go, and the opener of their sockets: the container's own
        servers from its namespace, the host's resolvers from the daemon's."""
        if att.upstreams is None:
            return self.host_resolvers.current(), open_here
        if att.netns is None:
            return att.upstreams, open_here

        async def open_inside(upstream: Upstream, kind: socket.SocketKind) -> tuple[socket.socket, tuple[Any, ...]]:
            try:
                worker = await self._worker(att)
                return await asyncio.wrap_future(worker.submit(lambda: (socket.socket(upstream.family, kind),
                                                                        upstream.sockaddr())))
            except DockyardError as exc:  # the namespace is gone: this upstream fails, as a refusal would
                if att.worker is not None and att.worker.done():
                    att.worker = None  # asked again at the next forward
                raise OSError(str(exc)) from exc

        return att.upstreams, open_inside

    def _worker(self, att: _Attachment) -> asyncio.Future[netns_mod.Worker]:
        """The attachment's namespace worker, made once (off the serving thread: it joins a namespace)."""
        if att.worker is None:
            assert att.netns is not None
            path = att.netns
            att.worker = asyncio.ensure_future(
                asyncio.get_running_loop().run_in_executor(None, lambda: netns_mod.Worker(path, "dns-upstream")))
        return att.worker

    def _on_udp(self, att: _Attachment) -> None:
        for _ in range(_BATCH):
            if att.closed:
                return
            try:
                data, peer = att.udp.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("embedded DNS %s: %s", att.key, exc)
                return
            try:
                self._datagram(att, data, peer)
            except Exception:
                log.exception("embedded DNS %s: a query from %s failed", att.key, peer)

    def _datagram(self, att: _Attachment, data: bytes, peer: Any) -> None:
        decision = decide(data, att.view, tcp=False, ndots_set=att.ndots_set)
        if isinstance(decision, Reply):
            self._send(att, decision.wire, peer)
        elif isinstance(decision, Forward):
            if att.pending >= MAX_PENDING_PER_CONTAINER:
                self._send(att, _refused(decision), peer)
                return
            att.pending += 1  # counted now: the rest of this batch sees it
            self._spawn(att, self._forward_udp(att, decision, peer))

    async def _forward_udp(self, att: _Attachment, decision: Forward, peer: Any) -> None:
        try:
            upstreams, opener = self._upstreams(att)
            wire = await self._forwarder.forward(decision.query, decision.wire, upstreams, tcp=False,
                                                 limit=decision.limit, opener=opener)
        except Exception:
            log.exception("embedded DNS %s: forwarding %s failed", att.key, decision.query.question[0])
            wire = _servfail(decision)
        finally:
            att.pending -= 1
        self._send(att, wire, peer)

    def _send(self, att: _Attachment, wire: bytes, peer: Any) -> None:
        if att.closed:
            return
        try:
            att.udp.sendto(wire, peer)
        except OSError as exc:  # a full buffer or a vanished peer: UDP may lose a reply
            log.debug("embedded DNS %s: reply to %s lost: %s", att.key, peer, exc)

    def _on_accept(self, att: _Attachment) -> None:
        for _ in range(_BATCH):
            if att.closed:
                return
            try:
                conn, _ = att.tcp.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("embedded DNS %s: accept: %s", att.key, exc)
                return
            if att.tcp_open >= MAX_TCP_PER_CONTAINER:
                conn.close()
                continue
            conn.setblocking(False)
            att.tcp_open += 1
            self._spawn(att, self._tcp_session(att, conn))

    async def _tcp_session(self, att: _Attachment, conn: socket.socket) -> None:
        """Length-prefixed queries on one connection, answered in turn, until EOF or 10 s idle."""
        loop = asyncio.get_running_loop()
        try:
            while not att.closed:
                size = struct.unpack("!H", await _read(conn, 2))[0]
                wire = await _read(conn, size)
                decision = decide(wire, att.view, tcp=True, ndots_set=att.ndots_set)
                if decision is None:
                    continue
                if isinstance(decision, Reply):
                    out = decision.wire
                elif att.pending >= MAX_PENDING_PER_CONTAINER:
                    out = _refused(decision)
                else:
                    att.pending += 1
                    try:
                        upstreams, opener = self._upstreams(att)
                        out = await self._forwarder.forward(decision.query, decision.wire, upstreams,
                                                            tcp=True, limit=decision.limit, opener=opener)
                    finally:
                        att.pending -= 1
                await asyncio.wait_for(loop.sock_sendall(conn, struct.pack("!H", len(out)) + out), TCP_IDLE)
        except (OSError, EOFError, TimeoutError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("embedded DNS %s: a TCP query failed", att.key)
        finally:
            conn.close()
            att.tcp_open -= 1


async def _read(conn: socket.socket, size: int) -> bytes:
    """Exactly ``size`` bytes from ``conn``, each read within the idle timeout."""
    loop = asyncio.get_running_loop()
    chunks = bytearray()
    while len(chunks) < size:
        data = await asyncio.wait_for(loop.sock_recv(conn, size - len(chunks)), TCP_IDLE)
        if not data:
            raise EOFError
        chunks += data
    return bytes(chunks)


def _close_worker(made: asyncio.Future[netns_mod.Worker]) -> None:
    """A namespace worker that came after its attachment was closed ends at once."""
    if not made.cancelled() and made.exception() is None:
        made.result().close()


def _refused(decision: Forward) -> bytes:
    return to_wire(reply_with(decision.query, dns.rcode.REFUSED, recursion_available=False), decision.limit)


def _servfail(decision: Forward) -> bytes:
    return to_wire(reply_with(decision.query, dns.rcode.SERVFAIL, recursion_available=False), decision.limit)

