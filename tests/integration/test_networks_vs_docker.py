"""Network answers compared with a private dockerd (20.10, ``--iptables=false``): the network object,
a container's ``NetworkSettings`` and endpoint, the list's ``Ports``, and the status codes of Docker's
network errors. Keys newer APIs added (``EnableIPv4``, ``GwPriority``, ``DNSNames``) are ours only.

dockerd's user network makes a bridge on the host (no iptables rules): removed at the end of the test.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
import pytest

from tests.integration.daemon_harness import Daemon, free_port
from tests.integration.test_cli_against_dockerd import Dockerd, dockerd  # noqa: F401 - the fixture

pytestmark = [pytest.mark.root, pytest.mark.docker_cli]

NEWER = {"EnableIPv4", "GwPriority", "DNSNames"}


def _status(call: Callable[[], object]) -> tuple[int, str]:
    try:
        call()
    except docker.errors.APIError as err:
        return err.status_code or 0, str(err.explanation)
    return 200, ""


def _keys(value: dict[str, Any]) -> set[str]:
    return set(value) - NEWER


def _observe(host: str, subnet: str) -> dict[str, Any]:
    api = docker.APIClient(base_url=host, version="1.41", timeout=60)
    name = f"cmp-{secrets.token_hex(3)}"
    made = api.create_network(name, driver="bridge", labels={"k": "v"}, check_duplicate=True,
                              ipam={"Driver": "default", "Config": [{"Subnet": subnet}]})
    out: dict[str, Any] = {}
    cid = None
    port = free_port()
    try:
        cid = api.create_container("busybox", ["sleep", "600"], ports=[80, 90],
                                   host_config=api.create_host_config(network_mode=name, port_bindings={80: port}),
                                   networking_config=api.create_networking_config(
                                       {name: api.create_endpoint_config(aliases=["al"])}))["Id"]
        api.start(cid)
        out["network"] = api.inspect_network(made["Id"])
        out["settings"] = api.inspect_container(cid)["NetworkSettings"]
        out["summary"] = next(c for c in api.containers() if c["Id"] == cid)
        out["port"] = port
        out["errors"] = {
            "duplicate": _status(lambda: api.create_network(name, check_duplicate=True)),
            "overlap": _status(lambda: api.create_network(f"{name}-2", ipam={"Driver": "default",
                                                                           "Config": [{"Subnet": subnet}]})),
            "missing": _status(lambda: api.inspect_network("no-such-network")),
            "predefined": _status(lambda: api.remove_network("none")),
            "in use": _status(lambda: api.remove_network(name)),
            "connected twice": _status(lambda: api.connect_container_to_network(cid, name)),
            "not connected": _status(lambda: api.disconnect_container_from_network(cid, "none")),
        }
    finally:
        if cid:
            api.remove_container(cid, force=True)
        for net in api.networks(names=[name, f"{name}-2"]):
            api.remove_network(net["Id"])
    return out


def test_network_shapes_and_errors_as_dockerd(daemon: Daemon, dockerd: Dockerd) -> None:  # noqa: F811
    ours = _observe(daemon.host, "10.236.2.0/24")
    theirs = _observe(dockerd.host, "10.236.1.0/24")
    assert _keys(ours["network"]) == _keys(theirs["network"])
    assert ours["network"]["IPAM"] == {**theirs["network"]["IPAM"], "Config": [{"Subnet": "10.236.2.0/24"}]}
    assert theirs["network"]["IPAM"]["Config"] == [{"Subnet": "10.236.1.0/24"}]
    ((_, mine),), ((_, other),) = ours["network"]["Containers"].items(), theirs["network"]["Containers"].items()
    assert set(mine) == set(other)
    assert _keys(ours["settings"]) == _keys(theirs["settings"])
    (ep,), (their_ep,) = ours["settings"]["Networks"].values(), theirs["settings"]["Networks"].values()
    assert _keys(ep) == _keys(their_ep)
    assert ep["Aliases"] == ["al"] and their_ep["Aliases"][0] == "al"  # 20.10 appends the short ID
    # 0.0.0.0 and [::] (dockerd's userland proxy, our relay), one host port
    assert ours["settings"]["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(ours["port"])},
                                                    {"HostIp": "::", "HostPort": str(ours["port"])}],
                                         "90/tcp": None}
    assert theirs["settings"]["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(theirs["port"])},
                                                      {"HostIp": "::", "HostPort": str(theirs["port"])}],
                                           "90/tcp": None}
    assert sorted(ours["summary"]["Ports"], key=str) == sorted(
        [{**p, "PublicPort": ours["port"]} if "PublicPort" in p else p for p in theirs["summary"]["Ports"]], key=str)
    assert set(ours["summary"]["NetworkSettings"]["Networks"]) == {ours["network"]["Name"]}
    for case, (status, message) in theirs["errors"].items():
        assert ours["errors"][case][0] == status, (case, ours["errors"][case], (status, message))


def _observe_ipv6(host: str, subnet: str, subnet6: str) -> dict[str, Any]:
    api = docker.APIClient(base_url=host, version="1.41", timeout=60)
    name = f"cmp6-{secrets.token_hex(3)}"
    made = api.create_network(name, driver="bridge", enable_ipv6=True, check_duplicate=True,
                              ipam={"Driver": "default", "Config": [{"Subnet": subnet}, {"Subnet": subnet6}]})
    out: dict[str, Any] = {}
    cid = None
    port = free_port()
    try:
        cid = api.create_container("busybox", ["sleep", "600"], ports=[80],
                                   host_config=api.create_host_config(network_mode=name, port_bindings={80: port}))["Id"]
        api.start(cid)
        out["network"] = api.inspect_network(made["Id"])
        out["settings"] = api.inspect_container(cid)["NetworkSettings"]
        out["port"] = port
    finally:
        if cid:
            api.remove_container(cid, force=True)
        api.remove_network(made["Id"])
    return out


def test_ipv6_network_shapes_as_dockerd(daemon: Daemon, dockerd: Dockerd) -> None:  # noqa: F811
    ours = _observe_ipv6(daemon.host, "10.236.4.0/24", "fd42:4242:21::/64")
    theirs = _observe_ipv6(dockerd.host, "10.236.3.0/24", "fd42:4242:20::/64")
    assert ours["network"]["EnableIPv6"] is theirs["network"]["EnableIPv6"] is True
    assert theirs["network"]["IPAM"]["Config"] == [{"Subnet": "10.236.3.0/24"}, {"Subnet": "fd42:4242:20::/64"}]
    assert ours["network"]["IPAM"]["Config"] == [{"Subnet": "10.236.4.0/24"}, {"Subnet": "fd42:4242:21::/64"}]
    (mine,), (other,) = ours["network"]["Containers"].values(), theirs["network"]["Containers"].values()
    assert (mine["IPv4Address"], mine["IPv6Address"]) == ("10.236.4.2/24", "fd42:4242:21::2/64")
    assert (other["IPv4Address"], other["IPv6Address"]) == ("10.236.3.2/24", "fd42:4242:20::2/64")
    (ep,), (their_ep,) = ours["settings"]["Networks"].values(), theirs["settings"]["Networks"].values()
    for key, mine_v, their_v in (("GlobalIPv6Address", "fd42:4242:21::2", "fd42:4242:20::2"),
                                 ("IPv6Gateway", "fd42:4242:21::1", "fd42:4242:20::1"),
                                 ("GlobalIPv6PrefixLen", 64, 64)):
        assert (ep[key], their_ep[key]) == (mine_v, their_v), key
    assert ours["settings"]["Ports"]["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(ours["port"])},
                                                   {"HostIp": "::", "HostPort": str(ours["port"])}]
    assert theirs["settings"]["Ports"]["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(theirs["port"])},
                                                     {"HostIp": "::", "HostPort": str(theirs["port"])}]
