"""IPAM (dockyard/networks/ipam.py): subnets picked around what is taken, addresses handed out as
libnetwork does, with its error words."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from dockyard.errors import Forbidden, InvalidParameter, NotFound, Unavailable
from dockyard.networks.ipam import AddressPool, default_gateway, default_pool, pick_subnet

N = IPv4Network


def test_default_pool_is_dockers() -> None:
    pool = default_pool()
    assert pool[0] == N("172.17.0.0/16") and pool[14] == N("172.31.0.0/16")
    assert pool[15] == N("192.168.0.0/20") and pool[-1] == N("192.168.240.0/20")
    assert len(pool) == 15 + 16


def test_pick_avoids_docker0_podman_and_host_routes() -> None:
    pool = default_pool()
    assert pick_subnet([], pool) == N("172.18.0.0/16")
    host = [N("172.18.5.0/24"), N("172.19.0.0/16"), N("10.0.0.0/8")]
    assert pick_subnet(host, pool) == N("172.20.0.0/16")
    assert pick_subnet([N("172.16.0.0/12")], pool) == N("192.168.0.0/20")
    assert pick_subnet([], [N("10.88.0.0/16"), N("10.89.0.0/16")]) == N("10.89.0.0/16")
    assert pick_subnet([], [N("172.17.0.0/16")], avoid=()) == N("172.17.0.0/16")


def test_pick_exhausted_is_dockers_error() -> None:
    with pytest.raises(NotFound) as caught:
        pick_subnet([N("0.0.0.0/0")], default_pool())
    assert caught.value.message == ("could not find an available, non-overlapping IPv4 address pool among the "
                                    "defaults to assign to the network")


def test_addresses_skip_network_gateway_and_broadcast() -> None:
    subnet = N("172.18.0.0/29")
    pool = AddressPool(subnet, default_gateway(subnet))
    assert pool.gateway == "172.18.0.1"
    got = [pool.allocate() for _ in range(5)]
    assert got == ["172.18.0.2", "172.18.0.3", "172.18.0.4", "172.18.0.5", "172.18.0.6"]
    with pytest.raises(Unavailable) as caught:
        pool.allocate()
    assert caught.value.message == "No available addresses on this pool"
    pool.release("172.18.0.4")
    pool.release("172.18.0.4")
    assert pool.allocate() == "172.18.0.4"
    assert pool.allocated == set(got)


def test_ip_range_bounds_automatic_addresses_not_requested_ones() -> None:
    pool = AddressPool("10.5.0.0/16", "10.5.0.1", ip_range="10.5.7.0/30")
    assert [pool.allocate() for _ in range(4)] == ["10.5.7.0", "10.5.7.1", "10.5.7.2", "10.5.7.3"]
    with pytest.raises(Unavailable):
        pool.allocate()
    assert pool.allocate("10.5.200.9") == "10.5.200.9"


def test_requested_addresses() -> None:
    pool = AddressPool("10.6.0.0/24", "10.6.0.1", allocated=["10.6.0.2"])
    assert pool.allocate() == "10.6.0.3"
    for taken in ("10.6.0.2", "10.6.0.1", "10.6.0.0", "10.6.0.255"):
        with pytest.raises(Forbidden) as caught:
            pool.allocate(taken)
        assert caught.value.message == "Address already in use"
    with pytest.raises(InvalidParameter) as out:
        pool.allocate("10.7.0.5")
    assert out.value.message == "Requested address is out of range"
    with pytest.raises(InvalidParameter):
        pool.allocate("not-an-ip")
    assert pool.allocate("10.6.0.200") == "10.6.0.200"
    assert pool.allocated == {"10.6.0.2", "10.6.0.3", "10.6.0.200"}


def test_gateway_and_range_must_lie_in_the_subnet() -> None:
    with pytest.raises(InvalidParameter) as caught:
        AddressPool("10.6.0.0/24", "10.9.0.1")
    assert caught.value.message == "no matching subnet for gateway 10.9.0.1"
    with pytest.raises(InvalidParameter) as caught:
        AddressPool("10.6.0.0/24", "10.6.0.1", ip_range="10.6.1.0/28")
    assert caught.value.message == "no matching subnet for range 10.6.1.0/28"


def test_no_gateway_and_point_to_point_subnets() -> None:
    pool = AddressPool("10.8.0.0/31", None)
    assert [pool.allocate(), pool.allocate()] == ["10.8.0.0", "10.8.0.1"]


# -- IPv6 ----------------------------------------------------------------------------------------------

def test_ula_pool_is_derived_from_the_engine_id_as_docker_28() -> None:
    import hashlib
    from ipaddress import IPv6Address, IPv6Network

    from dockyard.networks.ipam import ula_base, ula_pool

    host_id = "0f6a2a53-4b8e-4c4e-9d0d-2b0e5d0c6a11"
    base = ula_base(host_id)
    gid = int.from_bytes(hashlib.sha256(host_id.encode()).digest()[:8], "big") & ((1 << 40) - 1)
    assert base.prefixlen == 48 and base.subnet_of(IPv6Network("fd00::/8"))
    assert int(base.network_address) >> 80 == (0xfd << 40) | gid
    assert int(base.network_address) & ((1 << 80) - 1) == 0
    first, second = list(__import__("itertools").islice(ula_pool(host_id), 2))
    assert first == IPv6Network((base.network_address, 64))
    assert second.network_address == IPv6Address(int(base.network_address) + (1 << 64))
    assert ula_base("another engine") != base


def test_pick_subnet6_skips_taken_ones() -> None:
    from ipaddress import IPv6Network

    from dockyard.networks.ipam import NO_POOL6, pick_subnet6

    pool = [IPv6Network("fd11::/64"), IPv6Network("fd11:0:0:1::/64"), IPv6Network("fd11:0:0:2::/64")]
    assert pick_subnet6([], pool) == pool[0]
    assert pick_subnet6([N("10.0.0.0/8"), IPv6Network("fd11::/63")], pool) == pool[2]
    with pytest.raises(NotFound) as caught:
        pick_subnet6([IPv6Network("fd00::/8")], pool)
    assert caught.value.message == NO_POOL6 and "IPv6 address pool" in NO_POOL6


def test_ipv6_addresses_skip_the_anycast_address_and_gateway_only() -> None:
    pool = AddressPool("fd12:3456::/126", "fd12:3456::1")
    assert pool.version == 6 and default_gateway(pool.subnet) == "fd12:3456::1"
    assert [pool.allocate(), pool.allocate()] == ["fd12:3456::2", "fd12:3456::3"]  # no broadcast in v6
    with pytest.raises(Unavailable):
        pool.allocate()
    pool = AddressPool("fd12:3456::/64", "fd12:3456::1", ip_range="fd12:3456::100/120")
    assert pool.allocate() == "fd12:3456::100"
    assert pool.allocate("fd12:3456::0:0:abcd") == "fd12:3456::abcd"
    with pytest.raises(Forbidden):
        pool.allocate("fd12:3456::1")
    with pytest.raises(InvalidParameter) as caught:
        pool.allocate("fd99::2")
    assert caught.value.message == "Requested address is out of range"
    with pytest.raises(InvalidParameter):
        pool.allocate("10.0.0.2")
    with pytest.raises(InvalidParameter):
        AddressPool("fd12:3456::/64", None, ip_range="10.0.0.0/24")
