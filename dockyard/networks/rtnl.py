"""A small synchronous rtnetlink socket for the few requests on a container start's path.

Terms:

- *request*: one rtnetlink message (``RTM_NEWLINK``, ``RTM_SETLINK``, ``RTM_NEWADDR``, ``RTM_NEWROUTE``)
  encoded by pyroute2's message classes and sent with ``NLM_F_ACK``; the kernel's answer is an ACK
  (``NLMSG_ERROR`` with error 0) or an errno, and nothing else is read or decoded.

Why not pyroute2's ``IPRoute`` here: each of its calls goes through its asyncio core and decodes
the full answer (~0.4–0.5 ms of Python per call, ~0.8 ms to open one), which a veth, its addresses
and routes pay about ten times per container, all holding the GIL beside the runtime's start. Here a
request costs tens of microseconds; the encoding is still pyroute2's.

The socket belongs to the network namespace of the thread that made it (see :mod:`netns`); the
caller checks that namespace (``netlink.guard``) before the first request.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import struct
from typing import Any

from dockyard.errors import DockyardError

NETLINK_ROUTE = 0
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLA_F_NESTED = 0x8000
RTM_NEWLINK, RTM_SETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 19, 20, 24
IFF_UP = 0x1
BRIDGE_MODE_HAIRPIN = 1  # IFLA_BRPORT_MODE
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_ERROR = struct.Struct("=i")


class RtnlError(DockyardError):
    """The kernel refused a request; ``errno`` is its error number."""

    def __init__(self, message: str, errno: int) -> None:
        super().__init__(message)
        self.errno = errno


def random_mac() -> str:
    """A random unicast, locally administered MAC, as the kernel picks one for a new veth."""
    raw = bytearray(secrets.token_bytes(6))
    raw[0] = (raw[0] & 0xFE) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


class RtnlSocket:
    """A ``NETLINK_ROUTE`` socket of the calling thread's namespace; :meth:`request` and the helpers
    below raise :class:`RtnlError` when the kernel refuses."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        try:
            self._sock.bind((0, 0))
        except BaseException:
            self._sock.close()
            raise
        self._seq = 0

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> RtnlSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, msg: Any, kind: int, flags: int, what: str) -> None:
        """Send ``msg`` (a pyroute2 message) as ``kind`` and wait for its ACK."""
        self._seq += 1
        seq = self._seq
        msg["header"]["type"] = kind
        msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | flags
        msg["header"]["sequence_number"] = seq
        msg.encode()
        self._sock.send(msg.data)
        while True:
            data = self._sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, mtype, _, mseq, _ = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    break
                if mtype == NLMSG_ERROR and mseq == seq:
                    (error,) = _ERROR.unpack_from(data, offset + _HEADER.size)
                    if error:
                        raise RtnlError(f"{what}: {os.strerror(-error)}", -error)
                    return
                offset += (length + 3) & ~3

    # -- the requests of a container's endpoint -----------------------------------------------------

    def add_veth(self, name: str, peer: str, *, peer_netns_fd: int, peer_mac: str, mtu: int,
                 master: int | None) -> None:
        """A veth pair: ``name`` here, a port of the bridge with index ``master`` and up (with no
        ``master``: on no bridge, down), and ``peer`` made directly in the namespace of
        ``peer_netns_fd`` with ``peer_mac`` (down)."""
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

        msg = ifinfmsg()
        if master is not None:
            msg["flags"], msg["change"] = IFF_UP, IFF_UP
        peer_attrs = [("IFLA_IFNAME", peer), ("IFLA_MTU", mtu), ("IFLA_ADDRESS", peer_mac),
                      ("IFLA_NET_NS_FD", peer_netns_fd)]
        on_bridge = [("IFLA_MASTER", master)] if master is not None else []
        msg["attrs"] = [("IFLA_IFNAME", name), ("IFLA_MTU", mtu), *on_bridge,
                        ("IFLA_LINKINFO", {"attrs": [
                            ("IFLA_INFO_KIND", "veth"),
                            ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": peer_attrs})]})]})]
        self.request(msg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, f"cannot create veth {name}")

    def join_bridge(self, index: int, master: int, what: str) -> None:
        """The link ``index`` becomes a port of the bridge ``master`` and comes up."""
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

        msg = ifinfmsg()
        msg["index"], msg["flags"], msg["change"] = index, IFF_UP, IFF_UP
        msg["attrs"] = [("IFLA_MASTER", master)]
        self.request(msg, RTM_NEWLINK, 0, f"cannot put {what} on its bridge")

    def set_hairpin(self, index: int, what: str) -> None:
        """Hairpin mode on for the bridge port ``index`` (a frame may leave by the port it came in)."""
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

        msg = ifinfmsg()
        msg["family"], msg["index"] = socket.AF_BRIDGE, index
        msg["attrs"] = [("IFLA_PROTINFO", {"attrs": [("IFLA_BRPORT_MODE", BRIDGE_MODE_HAIRPIN)]}, NLA_F_NESTED)]
        self.request(msg, RTM_SETLINK, 0, f"cannot set hairpin mode on {what}")

    def set_up(self, index: int, what: str) -> None:
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

        msg = ifinfmsg()
        msg["index"], msg["flags"], msg["change"] = index, IFF_UP, IFF_UP
        self.request(msg, RTM_NEWLINK, 0, f"cannot set {what} up")

    def set_down(self, index: int, what: str) -> None:
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

        msg = ifinfmsg()
        msg["index"], msg["flags"], msg["change"] = index, 0, IFF_UP
        self.request(msg, RTM_NEWLINK, 0, f"cannot set {what} down")

    def add_address(self, index: int, iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface, what: str,
                    flags: int = 0) -> None:
        """``iface`` (address and prefix) on the link ``index``; ``flags``: ``IFA_F_*`` (e.g. NODAD)."""
        from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

        msg = ifaddrmsg()
        v6 = isinstance(iface, ipaddress.IPv6Interface)
        msg["family"] = socket.AF_INET6 if v6 else socket.AF_INET
        msg["prefixlen"], msg["index"], msg["flags"] = iface.network.prefixlen, index, flags
        address = str(iface.ip)
        msg["attrs"] = [("IFA_ADDRESS", address)] if v6 else [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
        self.request(msg, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, f"cannot add address {iface} to {what}")

    def add_default_route(self, gateway: str, index: int, what: str) -> None:
        """The default route (IPv4 or IPv6, by ``gateway``) via ``gateway`` out of the link ``index``."""
        from pyroute2.netlink.rtnl.rtmsg import rtmsg

        msg = rtmsg()
        v6 = ipaddress.ip_address(gateway).version == 6
        msg["family"] = socket.AF_INET6 if v6 else socket.AF_INET
        msg["table"], msg["proto"], msg["scope"], msg["type"] = RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST
        msg["attrs"] = [("RTA_GATEWAY", gateway), ("RTA_OIF", index)]
        self.request(msg, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, f"cannot add the default route via {gateway} to {what}")
