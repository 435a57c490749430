"""The network service in-process, with real namespaces: the DNS hook's entries, IPAM across a
restart of the service, --ip-range, cleanup of what a dead container left. Everything it makes is
taken down by the fixture (``reset``), whatever happens."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.errors import Forbidden
from dockyard.metadata import registry
from dockyard.networks import netlink
from dockyard.networks.service import EndpointRequest, NetworkService

pytestmark = pytest.mark.root


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[NetworkService]:
    svc = NetworkService(tmp_path / "root")
    try:
        yield svc
    finally:
        for pin in svc.netns_dir.glob("*"):
            svc.release(pin.name)
        svc.reset()
        svc.close()
        shutil.rmtree(svc.naming.run_dir, ignore_errors=True)
        registry.forget(tmp_path / "root")


def test_names_ip_range_and_a_restart_of_the_service(service: NetworkService, tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    service.names.listeners.append(lambda what, e: seen.append((what, e.ip)))
    made = service.create({"Name": "n1", "IPAM": {"Config": [{"Subnet": "10.234.1.0/24", "IPRange": "10.234.1.128/25",
                                                             "AuxiliaryAddresses": {"router": "10.234.1.128"}}]}})
    net = service.get("n1")
    assert net.id == made["Id"] and net.ip_range == "10.234.1.128/25"
    sandbox = service.create_sandbox("a" * 64)
    ep = service.connect(net, "a" * 64, "web", sandbox, EndpointRequest(aliases=["w"], upstreams=["10.0.0.2"]),
                         True, ["web", "w", "a" * 12])
    assert ep.ip == "10.234.1.129"  # the range's first address is an aux address
    assert service.inspect("n1")["IPAM"]["Config"][0]["AuxiliaryAddresses"] == {"router": "10.234.1.128"}
    assert service.names.lookup({net.id}, "w") == [ep.ip] and seen == [("register", ep.ip)]
    assert service.names.entries()[0].upstreams == ("10.0.0.2",) and service.names.entries()[0].netns == str(sandbox)
    with pytest.raises(Forbidden, match="has active endpoints"):
        service.remove("n1")
    # a second service on the same root (a daemon restart) keeps the address taken
    service.close()
    again = NetworkService(tmp_path / "root")
    try:
        again.start()
        again.cleanup({"a" * 64})
        assert again.names.lookup({net.id}, "web") == [ep.ip]
        other = again.create_sandbox("b" * 64)
        ep2 = again.connect(again.get("n1"), "b" * 64, "db", other, EndpointRequest(ipv4="10.234.1.5"), True, ["db"])
        assert ep2.ip == "10.234.1.5" and ep2.ip != ep.ip
        with pytest.raises(Forbidden, match="Address already in use"):
            again.connect(again.get("n1"), "c" * 64, "x", other, EndpointRequest(ipv4=ep.ip), False, [])
        # "b" dies while nobody watches: the next start's cleanup takes its endpoint, namespace and veth
        again.close()
        third = NetworkService(tmp_path / "root")
        third.start()
        third.cleanup({"a" * 64})
        assert [e.container_id for e in third.store.endpoints()] == ["a" * 64]
        assert not (third.netns_dir / ("b" * 64)).exists()
        assert not netlink.link_exists(ep2.host_ifname)
        third.release("a" * 64)
        assert third.names.entries() == []
        third.remove("n1")
        assert not netlink.link_exists(net.bridge)
        # a network whose record went while its bridge stayed (a crash in the middle of a remove)
        third.create({"Name": "n2"})
        lost = third.get("n2")
        third.store.delete_network(lost.id)
        third.close()
        fourth = NetworkService(tmp_path / "root")
        fourth.cleanup(set())
        assert not netlink.link_exists(lost.bridge) and lost.bridge not in fourth.firewall.bridges()
        fourth.close()
    finally:
        again.close()


def test_an_address_given_back_at_exit_is_free_for_the_next_connect(service: NetworkService) -> None:
    """A released run's port goes down in the background; a connect right after waits for it, so
    the address is free again at once, as a synchronous release would leave it (the lowest free
    address, and the same static address twice in a row)."""
    service.create({"Name": "quick", "IPAM": {"Config": [{"Subnet": "10.234.7.0/24"}]}})
    net = service.get("quick")
    sandboxes = {str(n) * 64: service.create_sandbox(str(n) * 64) for n in range(6)}  # made ahead: no gap
    ips = []
    for n, (cid, sandbox) in enumerate(list(sandboxes.items())[:3]):
        ips.append(service.connect(net, cid, f"c{n}", sandbox, EndpointRequest(), True, []).ip)
        service.release(cid)
    assert ips == ["10.234.7.2"] * 3
    for n, (cid, sandbox) in enumerate(list(sandboxes.items())[3:]):
        assert service.connect(net, cid, f"s{n}", sandbox, EndpointRequest(ipv4="10.234.7.9"), True, []).ip == "10.234.7.9"
        service.release(cid)
    service.remove("quick")
