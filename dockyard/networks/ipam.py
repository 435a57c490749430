"""IP address management for networks: choosing a subnet and handing out addresses in it. Pure.

Terms (as in Docker's libnetwork):

- *pool*: the candidate subnets a network may get when it names none. Docker's defaults
  (:func:`default_pool`) are 172.17.0.0/16 … 172.31.0.0/16 whole, then 192.168.0.0/16 cut into /20s.
- *taken*: networks already in use (host routes and addresses, other networks); a candidate that
  overlaps any of them is skipped.
- *ip range* (``--ip-range``): the part of the subnet automatic addresses come from; an address asked
  for explicitly (``--ip``) may be anywhere in the subnet.
- The network address, the broadcast address (subnets larger than /31) and the gateway are never
  handed out. In an IPv6 subnet the first address (the subnet-router anycast address) and the gateway
  are never handed out; there is no broadcast address.
- *ULA pool* (:func:`ula_pool`): where IPv6 subnets come from when a network names none, as Docker 28
  derives it (``deriveULABaseNetwork``): a /48 in ``fd00::/8`` whose 40-bit global ID is the low 40 bits
  of the first 8 bytes of sha256(the engine's ID), cut into /64s.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from dockyard.errors import Forbidden, InvalidParameter, NotFound, Unavailable

Subnet = IPv4Network | IPv6Network  # a network's subnet of either family

# Subnets other engines on the same host use by default (dockerd's docker0, podman's network):
# never picked automatically, so dockyard can run beside them.
AVOID = (IPv4Network("172.17.0.0/16"), IPv4Network("10.88.0.0/16"))

# Docker's default address pools: (base, size of the subnets cut from it).
DEFAULT_POOLS = tuple((IPv4Network(f"172.{n}.0.0/16"), 16) for n in range(17, 32)) + (
    (IPv4Network("192.168.0.0/16"), 20),
)

NO_POOL = ("could not find an available, non-overlapping IPv4 address pool among the defaults to assign "
           "to the network")
NO_POOL6 = NO_POOL.replace("IPv4", "IPv6")


def default_pool(pools: Iterable[tuple[IPv4Network, int]] = DEFAULT_POOLS) -> list[IPv4Network]:
    """The candidate subnets of ``pools`` ((base, size) pairs, as dockerd's ``default-address-pools``)."""
    out: list[IPv4Network] = []
    for base, size in pools:
        out.extend(base.subnets(new_prefix=size) if size > base.prefixlen else [base])
    return out


def pick_subnet(taken: list[IPv4Network], pool: list[IPv4Network], *,
                avoid: Iterable[IPv4Network] = AVOID) -> IPv4Network:
    """The first subnet of ``pool`` that overlaps nothing in ``taken`` nor ``avoid``.

    Raises :class:`NotFound` with Docker's words when every candidate overlaps something.
    """
    busy = [*taken, *avoid]
    for candidate in pool:
        if not any(candidate.overlaps(other) for other in busy):
            return candidate
    raise NotFound(NO_POOL)


def ula_base(host_id: str) -> IPv6Network:
    """The /48 Docker 28 derives from the engine's ID ``host_id`` for IPv6 subnets (see the module)."""
    gid = int.from_bytes(hashlib.sha256(host_id.encode()).digest()[:8], "big") & ((1 << 40) - 1)
    return IPv6Network((int(IPv6Address("fd00::")) + (gid << 80), 48))


def ula_pool(host_id: str) -> Iterator[IPv6Network]:
    """The candidate IPv6 subnets: the /64s of :func:`ula_base`, in order (lazily: there are 65536)."""
    return ula_base(host_id).subnets(new_prefix=64)


def pick_subnet6(taken: Iterable[Subnet], pool: Iterable[IPv6Network]) -> IPv6Network:
    """The first IPv6 subnet of ``pool`` that overlaps nothing in ``taken`` (IPv4 entries are ignored);
    Docker's words when none is left."""
    busy = [t for t in taken if t.version == 6]
    for candidate in pool:
        if not any(candidate.overlaps(other) for other in busy):  # type: ignore[arg-type]
            return candidate
    raise NotFound(NO_POOL6)


def default_gateway(subnet: Subnet) -> str:
    """The address Docker gives a network's gateway when none is asked for: the subnet's first host."""
    return str(subnet.network_address + 1)


class AddressPool:
    """The addresses of one network: which are handed out, and the next free one.

    ``gateway`` (None for no gateway) and ``allocated`` (addresses already in use, e.g. read back at
    a restart) are reserved; ``ip_range`` narrows where automatic addresses come from.
    """

    def __init__(self, subnet: Subnet | str, gateway: str | None, ip_range: Subnet | str | None = None,
                 allocated: Iterable[str] = ()) -> None:
        self.subnet: Subnet = ipaddress.ip_network(subnet)
        self.version = self.subnet.version
        self.ip_range: Subnet | None = ipaddress.ip_network(ip_range) if ip_range is not None else None
        if self.ip_range is not None and (self.ip_range.version != self.version
                                          or not self.ip_range.subnet_of(self.subnet)):  # type: ignore[arg-type]
            raise InvalidParameter(f"no matching subnet for range {self.ip_range}")
        self.gateway = str(ipaddress.ip_address(gateway)) if gateway else None
        if self.gateway is not None and ipaddress.ip_address(self.gateway) not in self.subnet:
            raise InvalidParameter(f"no matching subnet for gateway {self.gateway}")
        self._allocated: set[str] = set()
        for ip in allocated:
            self._allocated.add(self._check_address(ip))
        self._reserved: set[IPv4Address | IPv6Address] = set()
        if self.version == 6:
            self._reserved = {self.subnet.network_address}  # the subnet-router anycast address
        elif self.subnet.prefixlen < 31:
            self._reserved = {self.subnet.network_address, self.subnet.broadcast_address}

    @property
    def allocated(self) -> set[str]:
        """The addresses handed out (the gateway is not one of them)."""
        return set(self._allocated)

    def _check_address(self, ip: str) -> str:
        try:
            address = (IPv4Address if self.version == 4 else IPv6Address)(ip)
        except ipaddress.AddressValueError:
            raise InvalidParameter(f"invalid IPv{self.version} address: {ip}") from None
        if address not in self.subnet:
            raise InvalidParameter("Requested address is out of range")
        return str(address)

    def _free(self, address: IPv4Address | IPv6Address) -> bool:
        text = str(address)
        return address not in self._reserved and text != self.gateway and text not in self._allocated

    def allocate(self, requested: str | None = None) -> str:
        """Hand out ``requested`` (anywhere in the subnet) or the lowest free address of the range.

        Docker's errors: "Address already in use" (409) when ``requested`` is taken or reserved,
        "Requested address is out of range" (400) outside the subnet, "No available addresses on this
        pool" (503) when none is left.
        """
        if requested is not None:
            text = self._check_address(requested)
            if not self._free(ipaddress.ip_address(text)):
                raise Forbidden("Address already in use")
            self._allocated.add(text)
            return text
        space = self.ip_range or self.subnet
        for address in space:
            if self._free(address):
                self._allocated.add(str(address))
                return str(address)
        raise Unavailable("No available addresses on this pool")

    def release(self, ip: str) -> None:
        """Give ``ip`` back; an address not handed out is ignored."""
        self._allocated.discard(ip)
