"""rtnl.RtnlSocket without root: what it sends (pyroute2's encoding, our flags and sequence numbers)
and how it reads the kernel's answer (the ACK of its own request; an errno as RtnlError)."""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

import pytest

from dockyard.networks import rtnl
from dockyard.networks.rtnl import RtnlError, RtnlSocket, random_mac

HEADER = struct.Struct("=IHHII")


def answer(seq: int, error: int = 0, kind: int = rtnl.NLMSG_ERROR) -> bytes:
    """An nlmsgerr: header, the error, and (as the kernel does) the request's header echoed."""
    body = struct.pack("=i", error) + HEADER.pack(16, 0, 0, seq, 0)
    return HEADER.pack(HEADER.size + len(body), kind, 0, seq, 0) + body


class FakeKernel:
    def __init__(self, replies: list[bytes]) -> None:
        self.sent: list[bytes] = []
        self.replies = replies

    def send(self, data: bytes) -> int:
        self.sent.append(bytes(data))
        return len(data)

    def recv(self, size: int) -> bytes:
        return self.replies.pop(0)

    def close(self) -> None:
        pass

    def fileno(self) -> int:
        return -1


def fake_socket(replies: list[bytes]) -> tuple[RtnlSocket, FakeKernel]:
    sock = RtnlSocket.__new__(RtnlSocket)
    kernel = FakeKernel(replies)
    sock._sock = kernel  # type: ignore[assignment]
    sock._seq = 0
    return sock, kernel


def attrs(data: bytes, offset: int) -> dict[int, bytes]:
    """The netlink attributes from ``offset`` on: type (with its flags) -> payload."""
    found = {}
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found[kind] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def test_an_ack_ends_the_request_and_an_errno_raises() -> None:
    sock, kernel = fake_socket([answer(1), answer(2, -errno.EEXIST)])
    sock.set_up(7, "eth0")
    with pytest.raises(RtnlError, match="cannot create veth v1: File exists") as caught:
        sock.add_veth("v1", "eth0", peer_netns_fd=5, peer_mac="02:00:00:00:00:01", mtu=1500, master=3)
    assert caught.value.errno == errno.EEXIST
    length, kind, flags, seq, _ = HEADER.unpack_from(kernel.sent[0])
    assert (kind, seq, length) == (rtnl.RTM_NEWLINK, 1, len(kernel.sent[0]))
    assert flags == rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK
    _, _, flags, seq, _ = HEADER.unpack_from(kernel.sent[1])
    assert seq == 2 and flags & rtnl.NLM_F_CREATE and flags & rtnl.NLM_F_EXCL


def test_answers_to_other_requests_are_skipped() -> None:
    """A stale ACK (an earlier sequence number) and other messages in the same datagram are not
    taken for this request's answer."""
    stale = answer(0, -errno.ENODEV)
    other = HEADER.pack(HEADER.size, 3, 0, 1, 0)  # NLMSG_DONE with our number: not an answer
    sock, _ = fake_socket([stale + other, answer(1)])
    sock.set_down(4, "eth0")
    sock2, _ = fake_socket([stale + answer(1, -errno.ENODEV)])
    with pytest.raises(RtnlError) as caught:
        sock2.set_down(4, "eth0")
    assert caught.value.errno == errno.ENODEV


def test_hairpin_is_a_nested_bridge_port_attribute() -> None:
    """The kernel reads IFLA_PROTINFO as port settings only when NLA_F_NESTED is set (otherwise as
    a bare port state): the request must carry the flag."""
    sock, kernel = fake_socket([answer(1)])
    sock.set_hairpin(9, "dyv1")
    sent = kernel.sent[0]
    family, _, index = struct.unpack_from("=BxHi", sent, HEADER.size)
    assert family == socket.AF_BRIDGE and index == 9
    protinfo = attrs(sent, HEADER.size + 16)[rtnl.NLA_F_NESTED | 12]  # IFLA_PROTINFO
    assert attrs(protinfo, 0)[4][:1] == b"\x01"  # IFLA_BRPORT_MODE: hairpin


def test_a_veth_made_ahead_is_down_and_on_no_bridge() -> None:
    sock, kernel = fake_socket([answer(1), answer(2)])
    sock.add_veth("v1", "eth0", peer_netns_fd=5, peer_mac="02:00:00:00:00:01", mtu=1400, master=None)
    sock.add_veth("v2", "eth0", peer_netns_fd=5, peer_mac="02:00:00:00:00:02", mtu=1400, master=3)
    for data, master in zip(kernel.sent, (None, 3), strict=True):
        _, _, _, ifi_flags, change = struct.unpack_from("=BxHiII", data, HEADER.size)
        found = attrs(data, HEADER.size + 16)
        assert found[3].rstrip(b"\0") in (b"v1", b"v2") and struct.unpack("=I", found[4])[0] == 1400
        if master is None:
            assert 10 not in found and ifi_flags & rtnl.IFF_UP == 0  # IFLA_MASTER
        else:
            assert struct.unpack("=I", found[10])[0] == 3 and ifi_flags & change & rtnl.IFF_UP


def test_addresses_and_routes_of_both_families() -> None:
    sock, kernel = fake_socket([answer(n) for n in range(1, 5)])
    sock.add_address(2, ipaddress.IPv4Interface("10.0.0.2/24"), "eth0")
    sock.add_address(2, ipaddress.IPv6Interface("fd00::2/64"), "eth0", flags=0x02)
    sock.add_default_route("10.0.0.1", 2, "eth0")
    sock.add_default_route("fd00::1", 2, "eth0")
    family, prefix, flags, _, index = struct.unpack_from("=BBBBI", kernel.sent[0], HEADER.size)
    assert (family, prefix, index) == (socket.AF_INET, 24, 2)
    assert attrs(kernel.sent[0], HEADER.size + 8)[2] == socket.inet_aton("10.0.0.2")  # IFA_LOCAL
    family, prefix, flags, _, index = struct.unpack_from("=BBBBI", kernel.sent[1], HEADER.size)
    assert (family, prefix, flags) == (socket.AF_INET6, 64, 0x02)
    for data, family, gateway in ((kernel.sent[2], socket.AF_INET, socket.inet_aton("10.0.0.1")),
                                  (kernel.sent[3], socket.AF_INET6, socket.inet_pton(socket.AF_INET6, "fd00::1"))):
        assert data[HEADER.size] == family and data[HEADER.size + 1] == 0  # a default route: dst_len 0
        found = attrs(data, HEADER.size + 12)
        assert found[5] == gateway and struct.unpack("=I", found[4])[0] == 2  # RTA_GATEWAY, RTA_OIF


def test_random_macs_are_unicast_and_locally_administered() -> None:
    macs = {random_mac() for _ in range(200)}
    assert len(macs) == 200
    for mac in macs:
        first = int(mac.split(":")[0], 16)
        assert first & 0x01 == 0 and first & 0x02 and len(mac) == 17
