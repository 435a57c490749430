"""The network service in-process, with real namespaces: the DNS hook's entries, IPAM across a
restart of the service, --ip-range, cleanup of what a dead container left. Everything it makes is
taken down by the fixture (``reset``), whatever happens."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.errors import Forbidden
from dockyard.metadata import registry
from dockyard.networks import netlink
from dockyard.networks.service import SPARE_PREFIX, EndpointRequest, NetworkService
from tests.integration.test_networks import bridge_ports

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


def _spares(service: NetworkService) -> list[Path]:
    return sorted(service.netns_dir.glob(f"{SPARE_PREFIX}*"))


def _host_link(name: str) -> dict[str, object] | None:
    got = subprocess.run(["ip", "-j", "link", "show", name], capture_output=True, text=True)
    return json.loads(got.stdout)[0] if got.returncode == 0 else None


def _inside(sandbox: Path) -> dict[str, object]:
    return json.loads(subprocess.run(["nsenter", f"--net={sandbox}", "ip", "-j", "addr", "show", "eth0"],
                                     capture_output=True, text=True, check=True).stdout)[0]


def test_a_namespace_made_ahead_on_the_default_bridge(service: NetworkService) -> None:
    """``refill_sandboxes`` makes a bare namespace and one whose eth0 is ready on the default bridge
    (an address of its pool, up, the default route) with the veth's host end down and on no bridge;
    a container that asks nothing particular of the bridge takes it and its veth joins the bridge.
    One that asks a MAC does not; an unclaimed one gives its address back; a stop leaves nothing."""
    service.start()
    bridge = service.get("bridge")
    service.refill_sandboxes()
    spares = _spares(service)
    assert len(spares) == 2
    ready = [s for s in spares if subprocess.run(["nsenter", f"--net={s}", "ip", "link", "show", "eth0"],
                                                 capture_output=True).returncode == 0]
    assert len(ready) == 1
    eth0 = _inside(ready[0])
    ip = [a["local"] for a in eth0["addr_info"] if a["family"] == "inet"][0]  # type: ignore[index]
    assert ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(bridge.subnet)
    assert f"default via {bridge.gateway} dev eth0" in subprocess.run(
        ["nsenter", f"--net={ready[0]}", "ip", "route"], capture_output=True, text=True).stdout
    host_end = next(name for name in service._host_links() if service.naming.is_veth(name))
    link = _host_link(host_end)
    assert link is not None and "master" not in link and "UP" not in link["flags"]  # type: ignore[operator]
    assert bridge_ports(bridge.bridge) == []

    # taken: the same namespace, its veth now a port of the bridge, the address the container's
    cid = "a" * 64
    sandbox = service.create_sandbox(cid, attached_to=bridge.id)
    assert not ready[0].exists()  # moved: the container's pin is that namespace (its eth0 is the one made ahead)
    ep = service.connect(bridge, cid, "web", sandbox, EndpointRequest(), True, [])
    assert (ep.ip, ep.host_ifname, ep.ifname, ep.mac) == (ip, host_end, "eth0", eth0["address"])
    assert bridge_ports(bridge.bridge) == [host_end]
    assert subprocess.run(["nsenter", f"--net={sandbox}", "/bin/busybox", "ping", "-c1", "-W2", bridge.gateway],
                          capture_output=True).returncode == 0
    assert [e.host_ifname for e in service.endpoints(cid)] == [host_end]

    # refilled; a container asking a MAC gets a veth of its own, the one made ahead stays
    service.refill_sandboxes()
    (second,) = [s for s in _spares(service) if subprocess.run(
        ["nsenter", f"--net={s}", "ip", "link", "show", "eth0"], capture_output=True).returncode == 0]
    kept_ip = [a["local"] for a in _inside(second)["addr_info"] if a["family"] == "inet"][0]  # type: ignore[index]
    assert kept_ip != ip
    other = service.create_sandbox("b" * 64)
    ep2 = service.connect(bridge, "b" * 64, "db", other, EndpointRequest(mac="02:42:0a:00:00:09"), True, [])
    assert ep2.mac == "02:42:0a:00:00:09" and ep2.ip not in (ip, kept_ip) and second.exists()

    # a start that fails before its connect: the address made ahead comes back
    service.create_sandbox("c" * 64, attached_to=bridge.id)
    assert not second.exists()
    service.release("c" * 64)
    service.release("b" * 64)
    service.release(cid)
    service.start()
    pool = service._pools[bridge.id]
    deadline = time.monotonic() + 5  # released ports go down in the background, then give their address back
    while pool.allocated:
        assert time.monotonic() < deadline, pool.allocated
        time.sleep(0.02)

    # a stop of the service: the spares' pins and veths go at once, and nothing is on the bridge
    before = set(service._host_links())
    service.refill_sandboxes()
    made_ahead = [n for n in service._host_links() if service.naming.is_veth(n) and n not in before]
    assert len(_spares(service)) == 2 and len(made_ahead) == 1
    service.close()
    assert _spares(service) == [] and all(_host_link(n) is None for n in made_ahead)


def test_a_crashed_daemons_spares_are_cleaned_up(tmp_path: Path) -> None:
    """The namespaces made ahead by a daemon that died (no close) go at the next start's cleanup:
    their pins and the veth made ahead."""
    root = tmp_path / "root"
    first = NetworkService(root)
    second: NetworkService | None = None
    try:
        first.refill_sandboxes()
        spares = _spares(first)
        veths = [n for n in first._host_links() if first.naming.is_veth(n)]
        assert len(spares) == 2 and len(veths) == 1
        second = NetworkService(root)  # a new daemon on the root, the old one gone without a word
        second.cleanup(set())
        assert all(not s.exists() for s in spares) and _host_link(veths[0]) is None
    finally:
        first.close()
        for svc in (second, first):
            if svc is not None:
                svc.reset()
                svc.close()
        shutil.rmtree(first.naming.run_dir, ignore_errors=True)
        registry.forget(root)
