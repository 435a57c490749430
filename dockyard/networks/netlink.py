"""Links, addresses and routes through netlink (pyroute2), always in a namespace named by the caller.

Terms:

- *host namespace*: the daemon's own network namespace, :data:`dockyard.networks.netns.HOST`
  (``/proc/self/ns/net``). Every host-side function takes ``netns=`` (default: that) so a caller or a
  test can aim it at another namespace, and nothing is ever done "wherever the thread happens to be".
- *handle*: an ``IPRoute`` living in a worker thread that joined one namespace before opening its
  netlink socket (pyroute2 opens one socket per thread, in that thread's namespace, so every call on a
  handle runs in its worker). The host's handle is kept open for the daemon's life (``handle()``); a
  container's namespace gets a short-lived one for the few calls of :func:`attach_veth`. pyroute2's own
  ``netns=`` is not used: it forks a process for each socket.
- *namespace guard*: before any change, the namespace of the netlink socket itself (``SIOCGSKNS``)
  is compared with the namespace file asked for, by ``(st_dev, st_ino)``; a mismatch raises
  :class:`NamespaceMismatch` and nothing is changed.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dockyard.errors import DockyardError
from dockyard.networks import netns as ns
from dockyard.networks.rtnl import RtnlError, RtnlSocket, random_mac

if TYPE_CHECKING:
    from pyroute2 import IPRoute

T = TypeVar("T")
S = TypeVar("S", "IPRoute", RtnlSocket)

SIOCGSKNS = 0x894C  # ioctl: an fd of the network namespace a socket belongs to
IFA_F_NODAD = 0x02  # an IPv6 address usable at once: no duplicate address detection (as dockerd adds them)


def set_ipv6(ifname: str, enabled: bool) -> None:
    """``net.ipv6.conf.<ifname>.disable_ipv6`` of the *calling thread's* namespace (only call it from
    a thread that joined the namespace meant): 0 when ``enabled``, else 1. Docker 28 turns IPv6 off on
    an interface of a network without IPv6 (no link-local address, no multicast groups)."""
    path = Path("/proc/sys/net/ipv6/conf") / ifname / "disable_ipv6"
    value = "0" if enabled else "1"
    try:
        if path.read_text().strip() != value:
            path.write_text(value)
    except FileNotFoundError:
        if enabled:  # a kernel without IPv6
            raise DockyardError("IPv6 is not available in this kernel") from None


class NamespaceMismatch(DockyardError):
    """A netlink socket is not in the namespace an operation names: the operation was refused."""


def check_namespace(actual: tuple[int, int], expected: tuple[int, int], what: str) -> None:
    """The namespace guard's rule: raise :class:`NamespaceMismatch` unless the identities are equal.

    Identities are ``(st_dev, st_ino)`` of namespace files (see :func:`netns.identity`).
    """
    if tuple(actual) != tuple(expected):
        raise NamespaceMismatch(f"refusing {what}: the netlink socket is in network namespace "
                                f"{actual[1]}, not {expected[1]} as asked")


def socket_namespace(fd: int) -> tuple[int, int]:
    """The identity of the network namespace the socket ``fd`` belongs to."""
    nsfd = fcntl.ioctl(fd, SIOCGSKNS)
    try:
        st = os.fstat(nsfd)
        return st.st_dev, st.st_ino
    finally:
        os.close(nsfd)


def _iproute() -> IPRoute:
    """A new ``IPRoute`` in the calling thread's namespace (pyroute2 is imported on first use: it
    takes ~0.1 s, which the daemon's start need not pay)."""
    from pyroute2 import IPRoute

    return IPRoute()


def guard(sock: IPRoute | RtnlSocket, expected: tuple[int, int], what: str) -> None:
    """The namespace guard: refuse unless the netlink socket ``sock`` is in the namespace ``expected``."""
    check_namespace(socket_namespace(sock.fileno()), expected, what)


class Handle:
    """One namespace's ``IPRoute``, made and used only in a :class:`netns.Worker` pinned there.

    ``call(fn, what)`` runs ``fn(ipr)`` in the worker after the namespace guard; ``read(fn)``
    runs it without the guard (queries only).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.expected = ns.identity(self.path)
        self._worker = ns.Worker(self.path, name=f"netlink {path}")
        self._rtnl: RtnlSocket | None = None
        try:
            self._ipr: IPRoute = self._worker.call(lambda: self._open(_iproute))
        except BaseException:
            self._worker.close()
            raise

    def _open(self, make: Callable[[], S]) -> S:
        """A socket made by ``make`` (in the worker), closed again unless it passes the guard."""
        sock = make()
        try:
            guard(sock, self.expected, "opening a netlink socket")
        except BaseException:
            sock.close()
            raise
        return sock

    def request(self, fn: Callable[[RtnlSocket], T], what: str) -> T:
        """``fn(sock)`` in the worker on its :class:`RtnlSocket` (opened on first use), after the
        namespace guard: for the requests of a container's start and exit (see :mod:`rtnl`)."""
        return self.submit_request(fn, what).result()

    def submit_request(self, fn: Callable[[RtnlSocket], T], what: str) -> Future[T]:
        """:meth:`request` without waiting: the outcome is the future's."""
        def guarded() -> T:
            if self._rtnl is None:
                self._rtnl = self._open(RtnlSocket)
            guard(self._rtnl, self.expected, what)
            return fn(self._rtnl)

        return self._worker.submit(guarded)

    @property
    def alive(self) -> bool:
        return self._worker.alive

    def read(self, fn: Callable[[IPRoute], T]) -> T:
        return self._worker.call(lambda: fn(self._ipr))

    def call(self, fn: Callable[[IPRoute], T], what: str) -> T:
        return self._worker.call(self._guarded(fn, what))

    def _guarded(self, fn: Callable[[IPRoute], T], what: str) -> Callable[[], T]:
        def guarded() -> T:
            guard(self._ipr, self.expected, what)
            return fn(self._ipr)

        return guarded

    def close(self) -> None:
        if self._worker.alive:
            self._worker.call(self._ipr.close)
            if self._rtnl is not None:
                self._worker.call(self._rtnl.close)
            self._worker.close()

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_pool: dict[tuple[int, int], Handle] = {}
_pool_lock = threading.Lock()


def handle(path: Path = ns.HOST) -> Handle:
    """The pooled (kept open) handle for the namespace at ``path``, opened on first use."""
    key = ns.identity(path)
    with _pool_lock:
        h = _pool.get(key)
        if h is None or not h.alive:
            h = _pool[key] = Handle(path)
        return h


def close_pool() -> None:
    """Close every pooled handle (daemon shutdown, tests)."""
    with _pool_lock:
        handles = list(_pool.values())
        _pool.clear()
    for h in handles:
        h.close()


def _get(ipr: IPRoute, name: str) -> Any | None:
    """The link ``name`` (one RTM_GETLINK, no dump), or None."""
    try:
        return ipr.link("get", ifname=name)[0]
    except Exception as exc:
        if _missing(exc):
            return None
        raise


def _index(ipr: IPRoute, name: str) -> int | None:
    link = _get(ipr, name)
    return None if link is None else int(link["index"])


def _missing(exc: Exception) -> bool:
    """Whether ``exc`` is pyroute2's NetlinkError for "no such device"."""
    return type(exc).__name__ == "NetlinkError" and getattr(exc, "code", None) in (errno.ENODEV, errno.ENOENT)


def _index_here(name: str) -> int | None:
    """The index of the link ``name`` in the calling thread's namespace (an ioctl), or None."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def link_exists(name: str, *, netns: Path = ns.HOST) -> bool:
    return handle(netns).read(lambda _: _index_here(name) is not None)


def ensure_bridge(name: str, gateway_cidr: str, mtu: int = 1500, *, gateway6_cidr: str | None = None,
                  netns: Path = ns.HOST) -> None:
    """A bridge ``name`` with the address ``gateway_cidr`` (e.g. ``172.18.0.1/16``), up. Idempotent.

    ``gateway6_cidr`` (a network with IPv6): IPv6 is turned on for the bridge and it gets that address
    too, without duplicate address detection. An existing link of that name that is not a bridge is
    an error (never taken over).
    """
    iface = ipaddress.IPv4Interface(gateway_cidr)
    iface6 = ipaddress.IPv6Interface(gateway6_cidr) if gateway6_cidr else None

    def make(ipr: IPRoute) -> None:
        idx = _index(ipr, name)
        if idx is None:
            ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
            idx = _index(ipr, name)
            assert idx is not None
        else:
            (link,) = ipr.get_links(idx)
            if link.get(("linkinfo", "kind")) != "bridge":
                raise DockyardError(f"cannot create bridge {name}: a link of that name exists and is not a bridge")
        have = {(a.get("address"), a["prefixlen"]) for a in ipr.get_addr(index=idx, family=socket.AF_INET)}
        if (str(iface.ip), iface.network.prefixlen) not in have:
            ipr.addr("add", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        if iface6 is None:
            ipr.link("set", index=idx, state="up")

    def address6(ipr: IPRoute) -> None:
        assert iface6 is not None
        idx = _index(ipr, name)
        assert idx is not None
        have6 = {(a.get("address"), a["prefixlen"]) for a in ipr.get_addr(index=idx, family=socket.AF_INET6)}
        if (str(iface6.ip), iface6.network.prefixlen) not in have6:
            ipr.addr("add", index=idx, address=str(iface6.ip), prefixlen=iface6.network.prefixlen, flags=IFA_F_NODAD)
        ipr.link("set", index=idx, state="up")

    handle(netns).call(make, f"creating bridge {name}")
    if iface6 is not None:
        # the bridge is ours (made or checked above): IPv6 on before its address goes on
        ns.run_in(netns, lambda: set_ipv6(name, True))
        handle(netns).call(address6, f"addressing bridge {name}")


def delete_link(name: str, *, netns: Path = ns.HOST) -> None:
    """Delete the link ``name`` (a bridge, a veth and its peer); nothing to do if it is gone."""

    def delete(ipr: IPRoute) -> None:
        idx = _index(ipr, name)
        if idx is None:
            return
        try:
            ipr.link("del", index=idx)
        except Exception as exc:
            if not _missing(exc):
                raise

    handle(netns).call(delete, f"deleting link {name}")


def link_down(name: str, *, netns: Path = ns.HOST) -> None:
    """Set the link ``name`` down (a bridge port stops forwarding at once); nothing to do if it is gone.

    For a veth whose other end sits in a namespace about to go: deleting the pair costs the kernel an
    RCU grace period (~25 ms here), while the namespace's own teardown deletes it in the background."""

    handle(netns).request(_set_down(name), f"setting {name} down")


def link_down_soon(name: str, *, netns: Path = ns.HOST) -> Future[None]:
    """:func:`link_down` queued on the namespace's handle: the caller goes on while the kernel takes
    the port down (a few ms: the bridge waits for an RCU grace period)."""
    return handle(netns).submit_request(_set_down(name), f"setting {name} down")


def _set_down(name: str) -> Callable[[RtnlSocket], None]:
    def down(sock: RtnlSocket) -> None:
        index = _index_here(name)
        if index is None:
            return
        try:
            sock.set_down(index, name)
        except RtnlError as exc:
            if exc.errno not in (errno.ENODEV, errno.ENOENT):
                raise

    return down


def detach_veth(host_ifname: str, *, netns: Path = ns.HOST) -> None:
    """Delete a container's veth by its host end (the end in the container goes with it). Idempotent."""
    delete_link(host_ifname, netns=netns)


def attach_veth(netns_path: Path, bridge: str, host_ifname: str, ifname: str, address_cidr: str,
                gateway: str | None, mac: str | None, mtu: int = 1500, *, hairpin: bool = True,
                address6_cidr: str | None = None, gateway6: str | None = None,
                host_netns: Path = ns.HOST, join: bool = True) -> str:
    """Connect the namespace at ``netns_path`` to ``bridge`` with a veth pair; returns the MAC inside.

    The host end ``host_ifname`` joins the bridge and comes up (hairpin mode on, so a container can
    reach itself through a published port); the other end is created directly inside the namespace as
    ``ifname`` with ``address_cidr``, ``mac`` (or a random one, as the kernel would pick) and ``mtu``,
    comes up, and gets a default route via ``gateway`` when one is given. ``address6_cidr`` (a network
    with IPv6): IPv6 on for ``ifname``, that address without duplicate address detection (usable at
    once, as dockerd adds it) and a default IPv6 route via ``gateway6`` when given; without it IPv6 is
    off on ``ifname``, as Docker 28 does. On failure the pair is deleted.

    With ``join`` false the host end stays down and on no bridge (the namespace is made ahead, and
    nothing reaches it): :func:`join_bridge` puts it there when a container takes it.

    The requests go through :class:`rtnl.RtnlSocket` (a container's start waits for them), each
    after the namespace guard.
    """
    iface = ipaddress.IPv4Interface(address_cidr)
    iface6 = ipaddress.IPv6Interface(address6_cidr) if address6_cidr else None
    mac = mac or random_mac()
    host = handle(host_netns)
    target = ns.identity(netns_path)
    nsfd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        def create(sock: RtnlSocket) -> None:
            master = _index_here(bridge)
            if master is None:
                raise DockyardError(f"bridge {bridge} not found")
            sock.add_veth(host_ifname, ifname, peer_netns_fd=nsfd, peer_mac=mac, mtu=mtu,
                          master=master if join else None)
            if hairpin and join:
                index = _index_here(host_ifname)
                if index is None:
                    raise DockyardError(f"veth {host_ifname} did not appear")
                sock.set_hairpin(index, host_ifname)

        host.request(create, f"creating veth {host_ifname}")
    finally:
        os.close(nsfd)

    def configure() -> None:
        with RtnlSocket() as sock:
            guard(sock, target, f"configuring {ifname}")
            index = _index_here(ifname)
            if index is None:
                raise DockyardError(f"{ifname} did not appear in network namespace {netns_path}")
            set_ipv6(ifname, iface6 is not None)  # this thread is in the container's namespace
            sock.add_address(index, iface, ifname)
            if iface6 is not None:
                sock.add_address(index, iface6, ifname, flags=IFA_F_NODAD)
            sock.set_up(index, ifname)
            if gateway:
                sock.add_default_route(gateway, index, ifname)
            if iface6 is not None and gateway6:
                sock.add_default_route(gateway6, index, ifname)

    try:
        ns.run_in(netns_path, configure)
    except BaseException:
        detach_veth(host_ifname, netns=host_netns)
        raise
    return mac


def join_bridge(bridge: str, host_ifname: str, *, hairpin: bool = True, netns: Path = ns.HOST) -> None:
    """Put the host end of a veth made with ``attach_veth(join=False)`` on ``bridge``, up, hairpin
    mode on as :func:`attach_veth` sets it."""

    def join(sock: RtnlSocket) -> None:
        master, index = _index_here(bridge), _index_here(host_ifname)
        if master is None:
            raise DockyardError(f"bridge {bridge} not found")
        if index is None:
            raise DockyardError(f"veth {host_ifname} not found")
        sock.join_bridge(index, master, host_ifname)
        if hairpin:
            sock.set_hairpin(index, host_ifname)

    handle(netns).request(join, f"putting {host_ifname} on {bridge}")


def host_routes(*, netns: Path = ns.HOST) -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the namespace already uses: route destinations (all tables, not the
    default route) and the networks of its addresses. For choosing subnets that clash with nothing."""
    return [n for n in _used_networks(socket.AF_INET, netns) if isinstance(n, ipaddress.IPv4Network)]


def host_routes6(*, netns: Path = ns.HOST) -> list[ipaddress.IPv6Network]:
    """:func:`host_routes` for IPv6 (link-local and multicast routes left out: they are on every link)."""
    return [n for n in _used_networks(socket.AF_INET6, netns) if isinstance(n, ipaddress.IPv6Network)
            and not (n.is_link_local or n.is_multicast)]


def _used_networks(family: int, netns: Path) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    def collect(ipr: IPRoute) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        found: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = set()
        for route in ipr.route("dump", family=family):
            dst, length = route.get("dst"), route["dst_len"]
            if dst and length:
                found.add(ipaddress.ip_network(f"{dst}/{length}", strict=False))
        for addr in ipr.get_addr(family=family):
            found.add(ipaddress.ip_network(f"{addr.get('address')}/{addr['prefixlen']}", strict=False))
        return sorted(found, key=lambda n: (n.network_address, n.prefixlen))

    return handle(netns).read(collect)
