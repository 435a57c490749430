"""Bring the loopback interface of the current network namespace up (``ip link set lo up``).

Done with the SIOCGIFFLAGS/SIOCSIFFLAGS ioctls on a datagram socket rather than netlink, so it is
only ever called *after* ``unshare(CLONE_NEWNET)`` and cannot touch the host's interfaces.
"""

from __future__ import annotations

import fcntl
import socket
import struct

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFF_RUNNING = 0x40
IFREQ = struct.Struct("16sH22x")  # struct ifreq: name, then ifr_flags in a 24-byte union


def loopback_up() -> None:
    """Set IFF_UP on ``lo`` of the calling process's network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        raw = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, IFREQ.pack(b"lo", 0))
        flags = IFREQ.unpack(raw)[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, IFREQ.pack(b"lo", flags | IFF_UP | IFF_RUNNING))
