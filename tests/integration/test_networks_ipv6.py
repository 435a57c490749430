"""IPv6 on bridge networks through the real daemon (``network create --ipv6``), as Docker 28 does it:
addresses (a ULA /64 picked from the engine's pool, or the one asked for), ``eth0``'s IPv6 turned on
or off, the default IPv6 route, names over IPv6 (AAAA, PTR), ports published on ``::`` too and
reached through ``[::1]``, the inspect shapes, a daemon restart, and teardown.

Traffic goes only between the tests' containers and to the host's loopback and our own bridges.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from dockyard.networks.firewall import table_for_root
from tests.integration.daemon_harness import Daemon, free_port
from tests.integration.test_networks import _name, inspect, run, wait_http

pytestmark = pytest.mark.root


def nft_elements(table: str, family: str = "ip6") -> dict[str, list[Any]]:
    """The elements of each set and map of our table (empty when the table is gone)."""
    done = subprocess.run(["nft", "-j", "list", "table", family, table], capture_output=True, text=True)
    if done.returncode != 0:
        return {}
    out: dict[str, list[Any]] = {}
    for item in json.loads(done.stdout)["nftables"]:
        body = item.get("set") or item.get("map")
        if body:
            out[body["name"]] = body.get("elem", [])
    return out


def listening_on_loopback6(port: int) -> bool:
    return subprocess.run(["curl", "-sS", "-g", "--max-time", "1", f"http://[::1]:{port}/"],
                          capture_output=True).returncode == 0


def test_ipv6_network_addresses_routes_names_and_shapes(daemon: Daemon) -> None:
    net, v4net = _name("six"), _name("four")
    a, b, c = _name("a"), _name("b"), _name("c")
    run(daemon, "network", "create", "--ipv6", net)
    run(daemon, "network", "create", v4net)
    try:
        shown = inspect(daemon, "network", net)
        assert shown["EnableIPv6"] is True and shown["EnableIPv4"] is True
        v4cfg, v6cfg = shown["IPAM"]["Config"]
        subnet6 = ipaddress.IPv6Network(v6cfg["Subnet"])
        # Docker 28's pool: a /64 of a /48 ULA (fd00::/8), here away from the host's own fd00::/64
        assert subnet6.prefixlen == 64 and subnet6.subnet_of(ipaddress.IPv6Network("fd00::/8"))
        host_routes = json.loads(subprocess.run(["ip", "-6", "-j", "route"], capture_output=True, text=True).stdout)
        overlapping = [r["dst"] for r in host_routes if r["dst"] != "default"
                       and subnet6.overlaps(ipaddress.ip_network(r["dst"], strict=False))]
        assert overlapping == [str(subnet6)]  # only our bridge's own route
        assert v6cfg["Gateway"] == str(subnet6.network_address + 1) and "Subnet" in v4cfg
        assert inspect(daemon, "network", v4net)["EnableIPv6"] is False

        run(daemon, "run", "-d", "--name", a, "--network", net, "busybox", "sleep", "600")
        run(daemon, "run", "-d", "--name", b, "--network", net, "--hostname", "bee", "busybox", "sleep", "600")
        run(daemon, "run", "-d", "--name", c, "--network", v4net, "busybox", "sleep", "600")
        settings = inspect(daemon, "container", b)["NetworkSettings"]
        ep = settings["Networks"][net]
        b6 = ipaddress.IPv6Address(ep["GlobalIPv6Address"])
        assert b6 in subnet6 and ep["GlobalIPv6PrefixLen"] == 64 and ep["IPv6Gateway"] == v6cfg["Gateway"]
        assert settings["GlobalIPv6Address"] == ""  # the top-level fields are the default bridge's
        a6 = inspect(daemon, "container", a)["NetworkSettings"]["Networks"][net]["GlobalIPv6Address"]
        assert a6 == str(subnet6.network_address + 2) and str(b6) == str(subnet6.network_address + 3)
        members = inspect(daemon, "network", net)["Containers"]
        assert sorted(m["IPv6Address"] for m in members.values()) == sorted([f"{a6}/64", f"{b6}/64"])
        assert inspect(daemon, "container", c)["NetworkSettings"]["Networks"][v4net]["GlobalIPv6Address"] == ""

        # inside: the address (no DAD pending), the default route, IPv6 on for eth0 (off on a v4 network)
        addrs = run(daemon, "exec", b, "ip", "-6", "addr", "show", "dev", "eth0").stdout
        assert f"inet6 {b6}/64" in addrs and "tentative" not in addrs.split(str(b6))[1].split("\n")[0]
        assert f"default via {v6cfg['Gateway']} dev eth0" in run(daemon, "exec", b, "ip", "-6", "route").stdout
        assert run(daemon, "exec", b, "cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6").stdout.strip() == "0"
        assert run(daemon, "exec", c, "cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6").stdout.strip() == "1"
        assert "inet6" not in run(daemon, "exec", c, "ip", "-6", "addr", "show", "dev", "eth0").stdout
        hosts = run(daemon, "exec", b, "cat", "/etc/hosts").stdout
        assert "::1\tlocalhost ip6-localhost ip6-loopback\n" in hosts and f"{b6}\tbee\n" in hosts

        # by name over IPv6 (the embedded DNS answers AAAA, and PTR for the address)
        assert run(daemon, "exec", a, "ping6", "-c1", "-W3", b, check=False).returncode == 0
        assert run(daemon, "exec", b, "ping6", "-c1", "-W3", str(a6), check=False).returncode == 0
        looked = run(daemon, "exec", a, "nslookup", "-type=AAAA", b, "127.0.0.11").stdout
        assert str(b6) in looked
        ptr = run(daemon, "exec", a, "nslookup", str(b6), "127.0.0.11").stdout
        assert f"{b}.{net}" in ptr
        # the host reaches the container through our bridge's IPv6 address
        assert subprocess.run(["busybox", "ping6", "-c1", "-W3", str(b6)], capture_output=True).returncode == 0
        # not across networks
        assert run(daemon, "exec", c, "ping6", "-c1", "-W1", str(b6), check=False).returncode != 0
    finally:
        run(daemon, "rm", "-f", a, b, c, check=False)
    run(daemon, "network", "rm", net, v4net)
    table = table_for_root(daemon.root)
    elements = nft_elements(table)
    assert all(not v for v in elements.values()), elements
    assert not any(subnet6.overlaps(ipaddress.ip_network(r["dst"], strict=False))
                   for r in json.loads(subprocess.run(["ip", "-6", "-j", "route"], capture_output=True,
                                                      text=True).stdout) if r["dst"] != "default")


def test_ipv6_subnet_gateway_ip6_and_errors(daemon: Daemon) -> None:
    net = _name("six")
    run(daemon, "network", "create", "--ipv6", "--subnet", "10.233.9.0/24", "--subnet", "fd42:4242:9::/64",
        "--gateway", "fd42:4242:9::fe", "--ip-range", "fd42:4242:9::100/120", net)
    name, fixed = _name("r"), _name("f")
    try:
        cfg = inspect(daemon, "network", net)["IPAM"]["Config"]
        assert cfg == [{"Subnet": "10.233.9.0/24"},
                       {"Subnet": "fd42:4242:9::/64", "Gateway": "fd42:4242:9::fe", "IPRange": "fd42:4242:9::100/120"}]
        run(daemon, "run", "-d", "--name", name, "--network", net, "busybox", "sleep", "600")
        run(daemon, "run", "-d", "--name", fixed, "--network", net, "--ip6", "fd42:4242:9::42", "busybox", "sleep", "600")
        got = inspect(daemon, "container", name)["NetworkSettings"]["Networks"][net]
        assert got["GlobalIPv6Address"] == "fd42:4242:9::100" and got["IPv6Gateway"] == "fd42:4242:9::fe"
        fixed_ep = inspect(daemon, "container", fixed)["NetworkSettings"]["Networks"][net]
        assert fixed_ep["GlobalIPv6Address"] == "fd42:4242:9::42"
        assert fixed_ep["IPAMConfig"] == {"IPv6Address": "fd42:4242:9::42"}
        assert run(daemon, "exec", name, "ping6", "-c1", "-W3", "fd42:4242:9::42", check=False).returncode == 0
        taken = run(daemon, "run", "--rm", "--network", net, "--ip6", "fd42:4242:9::42", "busybox", "true", check=False)
        assert taken.returncode != 0 and "Address already in use" in taken.stderr
        overlap = run(daemon, "network", "create", "--ipv6", "--subnet", "fd42:4242:9::/48", _name("x"), check=False)
        assert overlap.returncode != 0 and "Pool overlaps" in overlap.stderr
        on_v4 = run(daemon, "run", "--rm", "--network", "bridge", "--ip6", "fd42::5", "busybox", "true", check=False)
        assert on_v4.returncode != 0 and "user defined networks only" in on_v4.stderr
    finally:
        run(daemon, "rm", "-f", name, fixed, check=False)
        run(daemon, "network", "rm", net, check=False)


def test_published_ports_over_ipv6_and_loopback(daemon: Daemon, tmp_path: Path) -> None:
    net, web, local = _name("six"), _name("web"), _name("loc")
    port, port6 = free_port(), free_port()
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello over v6\n")
    run(daemon, "network", "create", "--ipv6", "--subnet", "fd42:4242:10::/64", net)
    try:
        run(daemon, "run", "-d", "--name", web, "--network", net, "-p", f"{port}:80", "-v", f"{www}:/www:ro",
            "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
        run(daemon, "run", "-d", "--name", local, "--network", net, "-p", f"[::1]:{port6}:80",
            "-v", f"{www}:/www:ro", "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
        assert wait_http(f"http://127.0.0.1:{port}/index.html") == "hello over v6\n"
        got = subprocess.run(["curl", "-sS", "-g", "--max-time", "5", f"http://[::1]:{port}/index.html"],
                             capture_output=True, text=True)
        assert got.stdout == "hello over v6\n", got.stderr
        # by the DNAT (not the relay): our bridge's IPv6 address is a local address of the host
        via_bridge = subprocess.run(["curl", "-sS", "-g", "--max-time", "5",
                                     f"http://[fd42:4242:10::1]:{port}/index.html"], capture_output=True, text=True)
        assert via_bridge.stdout == "hello over v6\n", via_bridge.stderr
        # hairpin: the container reaches its own published port through the host's IPv6 address
        own = run(daemon, "exec", web, "sh", "-c",
                  f"printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 fd42:4242:10::1 {port}")
        assert own.stdout.endswith("hello over v6\n"), own.stdout
        assert wait_http(f"http://[::1]:{port6}/index.html") == "hello over v6\n"
        assert subprocess.run(["curl", "-sS", "--max-time", "1", f"http://127.0.0.1:{port6}/"],
                              capture_output=True).returncode != 0
        ports = inspect(daemon, "container", web)["NetworkSettings"]["Ports"]
        assert ports["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(port)}, {"HostIp": "::", "HostPort": str(port)}]
        assert inspect(daemon, "container", local)["NetworkSettings"]["Ports"]["80/tcp"] == [
            {"HostIp": "::1", "HostPort": str(port6)}]
        shown = run(daemon, "port", web).stdout.splitlines()
        assert shown == [f"80/tcp -> 0.0.0.0:{port}", f"80/tcp -> [::]:{port}"]
        listed = json.loads(run(daemon, "ps", "--filter", f"name={web}", "--format", "{{json .}}").stdout)
        assert listed["Ports"] == f"0.0.0.0:{port}->80/tcp, [::]:{port}->80/tcp"
        again = run(daemon, "run", "--rm", "--network", net, "-p", f"[::]:{port}:80", "busybox", "true", check=False)
        assert again.returncode != 0 and f"Bind for [::]:{port} failed: port is already allocated" in again.stderr
        # a random host port is one port for both families
        rnd = run(daemon, "run", "-d", "--network", net, "-p", "80", "busybox", "sleep", "600").stdout.strip()
        both = inspect(daemon, "container", rnd)["NetworkSettings"]["Ports"]["80/tcp"]
        assert [b["HostIp"] for b in both] == ["0.0.0.0", "::"] and both[0]["HostPort"] == both[1]["HostPort"]
        run(daemon, "rm", "-f", rnd)
    finally:
        run(daemon, "rm", "-f", web, local, check=False)
    assert not listening_on_loopback6(port) and not listening_on_loopback6(port6)
    table = table_for_root(daemon.root)
    assert not nft_elements(table).get("dnat_any") and not nft_elements(table).get("dnat_addr")
    run(daemon, "network", "rm", net)


def test_ipv6_survives_a_daemon_restart(fresh_daemon: Daemon, tmp_path: Path) -> None:
    d = fresh_daemon
    net, web = _name("six"), _name("web")
    port = free_port()
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("still v6\n")
    run(d, "network", "create", "--ipv6", net)
    run(d, "run", "-d", "--name", web, "--network", net, "-p", f"{port}:80", "-v", f"{www}:/www:ro",
        "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
    assert wait_http(f"http://[::1]:{port}/") == "still v6\n"
    before = inspect(d, "container", web)["NetworkSettings"]
    subnet6 = inspect(d, "network", net)["IPAM"]["Config"][1]["Subnet"]
    d.kill9()
    d.start()
    after = inspect(d, "container", web)["NetworkSettings"]
    assert after["Networks"][net]["GlobalIPv6Address"] == before["Networks"][net]["GlobalIPv6Address"]
    assert after["Ports"] == before["Ports"]
    assert inspect(d, "network", net)["IPAM"]["Config"][1]["Subnet"] == subnet6
    assert wait_http(f"http://[::1]:{port}/") == "still v6\n"
    # a new container does not get the address kept for the first
    other = run(d, "run", "-d", "--network", net, "busybox", "sleep", "600").stdout.strip()
    assert inspect(d, "container", other)["NetworkSettings"]["Networks"][net]["GlobalIPv6Address"] != \
        after["Networks"][net]["GlobalIPv6Address"]
    run(d, "rm", "-f", other, web)
    deadline = time.monotonic() + 5
    while listening_on_loopback6(port):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    run(d, "network", "rm", net)


def test_default_bridge_ipv6_from_daemon_json(tmp_path: Path, busybox_tar: Path) -> None:
    config = tmp_path / "daemon.json"
    config.write_text('{"ipv6": true, "fixed-cidr-v6": "fd42:4242:11::/64"}')
    d = Daemon(tmp_path / "own", args=("--config-file", str(config)))
    try:
        d.import_busybox(busybox_tar)
        bridge = inspect(d, "network", "bridge")
        assert bridge["EnableIPv6"] is True
        assert bridge["IPAM"]["Config"][1] == {"Subnet": "fd42:4242:11::/64", "Gateway": "fd42:4242:11::1"}
        port = free_port()
        cid = run(d, "run", "-d", "-p", f"{port}:80", "busybox", "sleep", "600").stdout.strip()
        settings = inspect(d, "container", cid)["NetworkSettings"]
        # the top-level fields are the default bridge's, as dockerd fills them
        assert settings["GlobalIPv6Address"] == "fd42:4242:11::2" and settings["GlobalIPv6PrefixLen"] == 64
        assert settings["IPv6Gateway"] == "fd42:4242:11::1"
        assert settings["Networks"]["bridge"]["GlobalIPv6Address"] == "fd42:4242:11::2"
        assert [b["HostIp"] for b in settings["Ports"]["80/tcp"]] == ["0.0.0.0", "::"]
        assert run(d, "exec", cid, "ping6", "-c1", "-W3", "fd42:4242:11::1", check=False).returncode == 0
        run(d, "rm", "-f", cid)
        # without "ipv6" the next start takes the bridge's IPv6 away (no container is on it)
        d.stop()
        config.write_text("{}")
        d.start()
        bridge = inspect(d, "network", "bridge")
        assert bridge["EnableIPv6"] is False and len(bridge["IPAM"]["Config"]) == 1
        cid = run(d, "run", "-d", "busybox", "sleep", "600").stdout.strip()
        assert inspect(d, "container", cid)["NetworkSettings"]["GlobalIPv6Address"] == ""
        assert run(d, "exec", cid, "cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6").stdout.strip() == "1"
        run(d, "rm", "-f", cid)
        # and back on with another subnet
        d.stop()
        config.write_text('{"ipv6": true, "fixed-cidr-v6": "fd42:4242:12::/64"}')
        d.start()
        assert inspect(d, "network", "bridge")["IPAM"]["Config"][1]["Subnet"] == "fd42:4242:12::/64"
        from dockyard.networks.naming import Naming

        on_bridge = subprocess.run(["ip", "-6", "addr", "show", "dev", Naming(d.root / "data").default_bridge],
                                   capture_output=True, text=True, check=True).stdout
        assert "fd42:4242:12::1/64" in on_bridge and "fd42:4242:11::" not in on_bridge
        cid = run(d, "run", "-d", "busybox", "sleep", "600").stdout.strip()
        assert inspect(d, "container", cid)["NetworkSettings"]["GlobalIPv6Address"] == "fd42:4242:12::2"
        run(d, "rm", "-f", cid)
    finally:
        d.close()


def test_internal_ipv6_live_connect_and_docker_py(daemon: Daemon) -> None:
    internal, routed = _name("i6"), _name("r6")
    client = daemon.client()
    client.networks.create(internal, driver="bridge", internal=True, enable_ipv6=True,
                           ipam={"Driver": "default", "Config": [{"Subnet": "fd42:4242:13::/64"}]})
    run(daemon, "network", "create", "--ipv6", "--subnet", "fd42:4242:14::/64", routed)
    p, q = _name("p"), _name("q")
    try:
        assert client.networks.get(internal).attrs["EnableIPv6"] is True
        for n in (p, q):
            run(daemon, "run", "-d", "--name", n, "--network", internal, "busybox", "sleep", "600")
        q6 = inspect(daemon, "container", q)["NetworkSettings"]["Networks"][internal]["GlobalIPv6Address"]
        assert q6.startswith("fd42:4242:13::")
        assert run(daemon, "exec", p, "ping6", "-c1", "-W3", q6, check=False).returncode == 0
        assert "default" not in run(daemon, "exec", p, "ip", "-6", "route").stdout
        assert run(daemon, "exec", p, "ping6", "-c1", "-W1", "fd42:4242:14::1", check=False).returncode != 0
        # connected live to a routed network with a fixed address: eth1, reachable by the host
        run(daemon, "network", "connect", "--ip6", "fd42:4242:14::77", routed, p)
        got = inspect(daemon, "container", p)["NetworkSettings"]["Networks"][routed]
        assert got["GlobalIPv6Address"] == "fd42:4242:14::77" and got["IPv6Gateway"] == "fd42:4242:14::1"
        assert "inet6 fd42:4242:14::77/64" in run(daemon, "exec", p, "ip", "-6", "addr", "show", "dev", "eth1").stdout
        assert subprocess.run(["busybox", "ping6", "-c1", "-W3", "fd42:4242:14::77"], capture_output=True).returncode == 0
        run(daemon, "network", "disconnect", routed, p)
        assert subprocess.run(["busybox", "ping6", "-c1", "-W1", "fd42:4242:14::77"], capture_output=True).returncode != 0
    finally:
        run(daemon, "rm", "-f", p, q, check=False)
        run(daemon, "network", "rm", internal, routed, check=False)


def test_udp_on_ipv6_to_an_ipv4_only_container(daemon: Daemon) -> None:
    from tests.integration.test_networks import NC_MOUNTS

    listener, udp = _name("udp"), free_port()
    run(daemon, "run", "-d", "--name", listener, "-p", f"{udp}:5353/udp", *NC_MOUNTS,
        "busybox", "/nc", "-u", "-l", "-k", "5353")
    try:
        assert inspect(daemon, "container", listener)["NetworkSettings"]["Ports"]["5353/udp"] == [
            {"HostIp": "0.0.0.0", "HostPort": str(udp)}, {"HostIp": "::", "HostPort": str(udp)}]
        deadline = time.monotonic() + 10
        while "ping-udp6" not in run(daemon, "logs", listener).stdout:
            assert time.monotonic() < deadline, "the UDP datagram did not arrive over [::1]"
            subprocess.run(["nc", "-6", "-u", "-w1", "::1", str(udp)], input="ping-udp6\n", capture_output=True,
                           text=True, timeout=10)
    finally:
        run(daemon, "rm", "-f", listener)
