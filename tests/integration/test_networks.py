"""Networks through the real daemon: the default bridge, user networks, published ports, connect and
disconnect, Docker's errors, and the real Docker CLI and docker-py against our socket.

Traffic goes only between the tests' containers and to the host's loopback. Every network and
container a test makes is removed by it (the daemon fixture removes containers; the harness removes
the bridges and nft table of its root), and conftest's session guard checks the host is unchanged.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_harness import Daemon, free_port

pytestmark = pytest.mark.root


NC_MOUNTS = ("-v", "/bin/nc.openbsd:/nc:ro", "-v", "/lib:/lib:ro", "-v", "/lib64:/lib64:ro",
             "-v", "/usr/lib:/usr/lib:ro")


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def run(d: Daemon, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return d.docker(*args, check=check, timeout=timeout)


def inspect(d: Daemon, kind: str, ref: str) -> dict[str, Any]:
    return json.loads(run(d, kind, "inspect", ref).stdout)[0]  # type: ignore[no-any-return]


@pytest.fixture()
def net(daemon: Daemon) -> Iterator[str]:
    name = _name("n")
    run(daemon, "network", "create", name)
    yield name
    run(daemon, "network", "rm", name, check=False)


def bridge_ports(bridge: str) -> list[str]:
    links = json.loads(subprocess.run(["ip", "-j", "link", "show", "master", bridge], capture_output=True,
                                      text=True, check=True).stdout or "[]")
    return [link["ifname"] for link in links]


def wait_http(url: str, deadline: float = 10) -> str:
    end = time.monotonic() + deadline
    while True:
        got = subprocess.run(["curl", "-sS", "--max-time", "2", url], capture_output=True, text=True)
        if got.returncode == 0:
            return got.stdout
        if time.monotonic() > end:
            raise AssertionError(f"curl {url}: {got.stderr}")
        time.sleep(0.1)


def test_default_bridge_address_route_and_files(daemon: Daemon) -> None:
    name = _name("c")
    run(daemon, "run", "-d", "--name", name, "--hostname", "web", "--domainname", "example.org",
        "--add-host", "db:10.1.2.3", "--add-host", "gw:host-gateway", "--dns-search", "corp.test",
        "--dns-option", "timeout:2", "busybox", "sleep", "600")
    try:
        bridge = inspect(daemon, "network", "bridge")
        subnet = ipaddress.IPv4Network(bridge["IPAM"]["Config"][0]["Subnet"])
        gateway = bridge["IPAM"]["Config"][0]["Gateway"]
        assert not subnet.overlaps(ipaddress.IPv4Network("172.17.0.0/16"))
        c = inspect(daemon, "container", name)
        settings = c["NetworkSettings"]
        ip = settings["Networks"]["bridge"]["IPAddress"]
        assert ipaddress.IPv4Address(ip) in subnet and settings["IPAddress"] == ip
        assert settings["Gateway"] == gateway and settings["Networks"]["bridge"]["NetworkID"] == bridge["Id"]
        assert settings["SandboxKey"] and settings["MacAddress"]
        assert bridge["Containers"][c["Id"]]["IPv4Address"] == f"{ip}/{subnet.prefixlen}"
        addr = run(daemon, "exec", name, "ip", "-o", "-4", "addr", "show", "eth0").stdout
        assert f"{ip}/{subnet.prefixlen}" in addr
        route = run(daemon, "exec", name, "ip", "route").stdout
        assert f"default via {gateway}" in route
        hosts = run(daemon, "exec", name, "cat", "/etc/hosts").stdout
        assert f"{ip}\tweb.example.org web\n" in hosts and "10.1.2.3\tdb\n" in hosts and f"{gateway}\tgw\n" in hosts
        resolv = run(daemon, "exec", name, "cat", "/etc/resolv.conf").stdout
        assert "search corp.test" in resolv and "options timeout:2" in resolv
        assert "nameserver 127." not in resolv
        assert run(daemon, "exec", name, "hostname").stdout.strip() == "web"
        # the gateway (the host's bridge address) answers
        assert run(daemon, "exec", name, "ping", "-c1", "-W2", gateway, check=False).returncode == 0
        sandbox = Path(settings["SandboxKey"])
        assert sandbox.exists()
        ports_on_bridge = bridge_ports(bridge["Options"]["com.docker.network.bridge.name"])
        assert len(ports_on_bridge) == 1
    finally:
        run(daemon, "rm", "-f", name)
    assert not sandbox.exists()
    assert c["Id"] not in inspect(daemon, "network", "bridge")["Containers"]
    deadline = time.monotonic() + 5  # the kernel deletes the veth with the namespace, in the background
    while ports_on_bridge[0] in bridge_ports(bridge["Options"]["com.docker.network.bridge.name"]):
        assert time.monotonic() < deadline, "the container's veth outlived it"
        time.sleep(0.05)


def test_user_network_talks_inside_not_across(daemon: Daemon, net: str) -> None:
    other = _name("o")
    run(daemon, "network", "create", "--subnet", "10.231.7.0/24", "--gateway", "10.231.7.254", other)
    names = [_name("a"), _name("b"), _name("x")]
    try:
        run(daemon, "run", "-d", "--name", names[0], "--network", net, "busybox", "sleep", "600")
        run(daemon, "run", "-d", "--name", names[1], "--network", net, "--network-alias", "buddy",
            "busybox", "sleep", "600")
        run(daemon, "run", "-d", "--name", names[2], "--network", other, "--ip", "10.231.7.9",
            "busybox", "sleep", "600")
        ips = [inspect(daemon, "container", n)["NetworkSettings"]["Networks"] for n in names]
        on_net = run(daemon, "ps", "--filter", f"network={net}", "--format", "{{.Names}}").stdout.split()
        assert sorted(on_net) == sorted(names[:2])
        a_ip, b_ip = ips[0][net]["IPAddress"], ips[1][net]["IPAddress"]
        x = ips[2][other]
        assert x["IPAddress"] == "10.231.7.9" and x["Gateway"] == "10.231.7.254"
        assert x["IPAMConfig"] == {"IPv4Address": "10.231.7.9"}
        assert ips[1][net]["Aliases"] == ["buddy"] and "buddy" in ips[1][net]["DNSNames"]
        assert run(daemon, "exec", names[0], "ping", "-c1", "-W2", b_ip, check=False).returncode == 0
        assert run(daemon, "exec", names[1], "ping", "-c1", "-W2", a_ip, check=False).returncode == 0
        assert run(daemon, "exec", names[2], "ping", "-c1", "-W1", a_ip, check=False).returncode != 0
        assert run(daemon, "exec", names[0], "ping", "-c1", "-W1", "10.231.7.9", check=False).returncode != 0
        resolv = run(daemon, "exec", names[0], "cat", "/etc/resolv.conf").stdout
        assert "nameserver 127.0.0.11" in resolv and "ndots:0" in resolv
        # connect x to net live: now it reaches a, with an alias; disconnect: no more
        run(daemon, "network", "connect", "--alias", "late", net, names[2])
        got = inspect(daemon, "container", names[2])["NetworkSettings"]["Networks"]
        assert set(got) == {other, net} and got[net]["Aliases"] == ["late"]
        assert run(daemon, "exec", names[2], "ping", "-c1", "-W2", a_ip, check=False).returncode == 0
        run(daemon, "network", "connect", "--ip", "10.231.7.20", other, names[0])
        on_other = inspect(daemon, "container", names[0])["NetworkSettings"]["Networks"][other]
        assert on_other["IPAddress"] == "10.231.7.20" and on_other["IPAMConfig"] == {"IPv4Address": "10.231.7.20"}
        assert run(daemon, "exec", names[0], "ping", "-c1", "-W2", "10.231.7.9", check=False).returncode == 0
        run(daemon, "network", "disconnect", net, names[2])
        assert set(inspect(daemon, "container", names[2])["NetworkSettings"]["Networks"]) == {other}
        assert run(daemon, "exec", names[2], "ping", "-c1", "-W1", a_ip, check=False).returncode != 0
        # in use: Docker's error
        rm = run(daemon, "network", "rm", other, check=False)
        assert rm.returncode != 0 and "has active endpoints" in rm.stderr
    finally:
        run(daemon, "rm", "-f", *names, check=False)
        run(daemon, "network", "rm", other, check=False)


def test_internal_network_has_no_way_out(daemon: Daemon) -> None:
    internal = _name("i")
    run(daemon, "network", "create", "--internal", internal)
    names = [_name("p"), _name("q")]
    try:
        for n in names:
            run(daemon, "run", "-d", "--name", n, "--network", internal, "busybox", "sleep", "600")
        peer = inspect(daemon, "container", names[1])["NetworkSettings"]["Networks"][internal]["IPAddress"]
        assert run(daemon, "exec", names[0], "ping", "-c1", "-W2", peer, check=False).returncode == 0
        route = run(daemon, "exec", names[0], "ip", "route").stdout
        assert "default" not in route
        gateway = inspect(daemon, "network", internal)["IPAM"]["Config"][0]["Gateway"]
        bridge_gw = inspect(daemon, "network", "bridge")["IPAM"]["Config"][0]["Gateway"]
        # no route out, and even the host's addresses are not reachable through the bridge
        assert run(daemon, "exec", names[0], "ping", "-c1", "-W1", bridge_gw, check=False).returncode != 0
        assert inspect(daemon, "network", internal)["Internal"] is True and gateway
    finally:
        run(daemon, "rm", "-f", *names, check=False)
        run(daemon, "network", "rm", internal, check=False)


def test_published_tcp_and_udp_from_host_loopback(daemon: Daemon, tmp_path: Path) -> None:
    name, listener = _name("web"), _name("udp")
    tcp, udp = free_port(), free_port()
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello through -p\n")
    run(daemon, "run", "-d", "--name", name, "-p", f"{tcp}:80", "-p", "8081", "-v", f"{www}:/www:ro",
        "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
    # busybox has no UDP listener: the host's netcat-openbsd with its libraries, read-only
    run(daemon, "run", "-d", "--name", listener, "-p", f"127.0.0.1:{udp}:5353/udp", *NC_MOUNTS,
        "busybox", "/nc", "-u", "-l", "-k", "5353")
    try:
        assert wait_http(f"http://127.0.0.1:{tcp}/index.html") == "hello through -p\n"
        ports = inspect(daemon, "container", name)["NetworkSettings"]["Ports"]
        # as Docker 28 with its userland proxy: [::] too, served by the relay at the IPv4 address
        assert ports["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(tcp)}, {"HostIp": "::", "HostPort": str(tcp)}]
        assert wait_http(f"http://[::1]:{tcp}/index.html") == "hello through -p\n"
        random_port = int(ports["8081/tcp"][0]["HostPort"])
        assert random_port > 1024 and ports["8081/tcp"][1] == {"HostIp": "::", "HostPort": str(random_port)}
        assert inspect(daemon, "container", listener)["NetworkSettings"]["Ports"]["5353/udp"] == [
            {"HostIp": "127.0.0.1", "HostPort": str(udp)}]
        shown = run(daemon, "port", name).stdout.splitlines()
        assert f"80/tcp -> 0.0.0.0:{tcp}" in shown and f"8081/tcp -> 0.0.0.0:{random_port}" in shown
        assert f"80/tcp -> [::]:{tcp}" in shown
        assert run(daemon, "port", name, "80").stdout.split() == [f"0.0.0.0:{tcp}", f"[::]:{tcp}"]
        listed = json.loads(run(daemon, "ps", "--filter", f"name={name}", "--format", "{{json .}}").stdout)
        assert f"0.0.0.0:{tcp}->80/tcp" in listed["Ports"]
        deadline = time.monotonic() + 10
        while "ping-udp" not in run(daemon, "logs", listener).stdout:
            assert time.monotonic() < deadline, "the UDP datagram did not arrive"
            subprocess.run(["nc", "-u", "-w1", "127.0.0.1", str(udp)], input="ping-udp\n", capture_output=True,
                           text=True, timeout=10)
        again = run(daemon, "run", "--rm", "-d", "-p", f"{tcp}:80", "busybox", "sleep", "5", check=False)
        assert again.returncode != 0 and f"Bind for 0.0.0.0:{tcp} failed: port is already allocated" in again.stderr
    finally:
        run(daemon, "rm", "-f", name, listener)
    assert subprocess.run(["curl", "-sS", "--max-time", "1", f"http://127.0.0.1:{tcp}/"],
                          capture_output=True).returncode != 0


def test_network_errors_as_docker(daemon: Daemon, net: str) -> None:
    subnet = inspect(daemon, "network", net)["IPAM"]["Config"][0]["Subnet"]
    overlap = run(daemon, "network", "create", "--subnet", subnet, _name("ov"), check=False)
    assert overlap.returncode != 0 and "Pool overlaps with other one on this address space" in overlap.stderr
    dup = run(daemon, "network", "create", net, check=False)
    assert dup.returncode != 0 and f"network with name {net} already exists" in dup.stderr
    missing = run(daemon, "network", "inspect", "no-such-net", check=False)
    assert missing.returncode != 0 and "network no-such-net not found" in missing.stderr
    # as dockerd: the create succeeds, the start fails (and --rm removes the container)
    gone = _name("gone")
    run_missing = run(daemon, "run", "--rm", "--name", gone, "--network", "no-such-net", "busybox", "true", check=False)
    assert run_missing.returncode != 0 and "network no-such-net not found" in run_missing.stderr
    assert run(daemon, "ps", "-aq", "--filter", f"name={gone}").stdout.strip() == ""
    predefined = run(daemon, "network", "rm", "bridge", check=False)
    assert "bridge is a pre-defined network and cannot be removed" in predefined.stderr
    ip_default = run(daemon, "run", "--rm", "--ip", "10.0.0.5", "busybox", "true", check=False)
    assert "user specified IP address is supported on user defined networks only" in ip_default.stderr
    ip_unconfigured = run(daemon, "run", "--rm", "--network", net, "--ip", "10.0.0.5", "busybox", "true", check=False)
    assert ("user specified IP address is supported only when connecting to networks with user configured "
            "subnets") in ip_unconfigured.stderr
    for args, message in [
        (("network", "create", "--subnet", "nope", _name("bad")), "Invalid subnet nope : invalid CIDR address: nope"),
        (("network", "create", "-d", "foo", _name("bad")), 'plugin "foo" not found'),
        (("network", "create", "-d", "host", _name("bad")), 'only one instance of "host" network is allowed'),
        (("network", "rm", "none"), "none is a pre-defined network and cannot be removed"),
    ]:
        got = run(daemon, *args, check=False)
        assert got.returncode != 0 and message in got.stderr, (args, got.stderr)
    c = _name("c")
    run(daemon, "run", "-d", "--name", c, "--network", net, "busybox", "sleep", "600")
    try:
        cid = inspect(daemon, "container", c)["Id"]
        for args, message in [
            (("network", "connect", net, c), f"endpoint with name {c} already exists in network {net}"),
            (("network", "disconnect", "none", c), f"container {cid} is not connected to network none"),
            (("network", "connect", "host", c),
             "container cannot be disconnected from host network or connected to host network"),
            (("network", "connect", "none", c),
             "container cannot be connected to multiple networks with one of the networks in private (none) mode"),
            (("run", "--rm", "--network", f"container:{c}", "-p", "80:80", "busybox", "true"),
             "conflicting options: port publishing and the container type network mode"),
            (("run", "--rm", "--network", f"container:{c}", "-h", "x", "busybox", "true"),
             "conflicting options: hostname and the network mode"),
            (("run", "--rm", "--network", "container:no-such-container", "busybox", "true"),
             "No such container: no-such-container"),
        ]:
            got = run(daemon, *args, check=False)
            assert got.returncode != 0 and message in got.stderr, (args, got.stderr)
        rm = run(daemon, "network", "rm", net, check=False)
        assert f"error while removing network: network {net} id " in rm.stderr and "has active endpoints" in rm.stderr
    finally:
        run(daemon, "rm", "-f", c)
    stopped = run(daemon, "create", "busybox", "true").stdout.strip()
    try:
        got = run(daemon, "run", "--rm", "--network", f"container:{stopped}", "busybox", "true", check=False)
        assert f"cannot join network of a non running container: {stopped}" in got.stderr
    finally:
        run(daemon, "rm", "-f", stopped)


def test_network_ls_inspect_filters_prune(daemon: Daemon) -> None:
    keep, gone = _name("keep"), _name("gone")
    run(daemon, "network", "create", "--label", "purpose=test", "-o", "com.docker.network.driver.mtu=1400", keep)
    run(daemon, "network", "create", gone)
    try:
        listed = run(daemon, "network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}").stdout.splitlines()
        assert {"bridge bridge local", "host host local", "none null local"} <= set(listed)
        assert f"{keep} bridge local" in listed
        labelled = run(daemon, "network", "ls", "-q", "--filter", "label=purpose=test").stdout.split()
        assert labelled == [inspect(daemon, "network", keep)["Id"][:12]]
        custom = run(daemon, "network", "ls", "--filter", "type=custom", "--format", "{{.Name}}").stdout.split()
        assert "bridge" not in custom and keep in custom
        shown = inspect(daemon, "network", keep)
        assert shown["Labels"] == {"purpose": "test"} and shown["Options"]["com.docker.network.driver.mtu"] == "1400"
        assert shown["Driver"] == "bridge" and shown["Scope"] == "local" and shown["Internal"] is False
        named = _name("nb")
        bridge = "dyt" + secrets.token_hex(3)
        run(daemon, "network", "create", "-o", f"com.docker.network.bridge.name={bridge}", named)
        try:
            assert bridge_ports(bridge) == []  # the bridge exists under that name (no port yet)
            clash = run(daemon, "network", "create", "-o", f"com.docker.network.bridge.name={bridge}", _name("x"),
                        check=False)
            assert clash.returncode != 0 and f"bridge name {bridge} is already in use" in clash.stderr
        finally:
            run(daemon, "network", "rm", named)
        assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode != 0
        pruned = run(daemon, "network", "prune", "-f", "--filter", "label!=purpose=test").stdout
        assert gone in pruned and keep not in pruned
        assert run(daemon, "network", "inspect", gone, check=False).returncode != 0
    finally:
        run(daemon, "network", "rm", keep, gone, check=False)


def test_container_mode_shares_the_namespace(daemon: Daemon) -> None:
    first, second = _name("pod"), _name("side")
    run(daemon, "run", "-d", "--name", first, "busybox", "sleep", "600")
    try:
        run(daemon, "run", "-d", "--name", second, "--network", f"container:{first}", "busybox", "sleep", "600")
        a = run(daemon, "exec", first, "ip", "-o", "-4", "addr", "show", "eth0").stdout.split()[3]
        b = run(daemon, "exec", second, "ip", "-o", "-4", "addr", "show", "eth0").stdout.split()[3]
        assert a == b
    finally:
        run(daemon, "rm", "-f", second, first, check=False)


def test_links_on_default_bridge(daemon: Daemon) -> None:
    target, client = _name("db"), _name("app")
    run(daemon, "run", "-d", "--name", target, "-e", "FOO=bar", "--expose", "5432", "--expose", "53/udp",
        "busybox", "sleep", "600")
    try:
        run(daemon, "run", "-d", "--name", client, "--link", f"{target}:db-alias", "-e", "DB_ALIAS_ENV_FOO=mine",
            "busybox", "sleep", "600")
        ip = inspect(daemon, "container", target)["NetworkSettings"]["IPAddress"]
        # kept in dockerd's form; a link to no container fails the create, in dockerd's words
        assert inspect(daemon, "container", client)["HostConfig"]["Links"] == [f"/{target}:/{client}/db-alias"]
        bad = run(daemon, "create", "--link", "no-such-db:db", "busybox", check=False)
        assert bad.returncode != 0 and "could not get container for no-such-db" in bad.stderr
        hosts = run(daemon, "exec", client, "cat", "/etc/hosts").stdout
        assert f"{ip}\tdb-alias " in hosts
        env = set(run(daemon, "exec", client, "env").stdout.splitlines())
        assert {f"DB_ALIAS_NAME=/{client}/db-alias", f"DB_ALIAS_PORT=udp://{ip}:53",
                f"DB_ALIAS_PORT_5432_TCP=tcp://{ip}:5432", f"DB_ALIAS_PORT_5432_TCP_ADDR={ip}",
                "DB_ALIAS_PORT_5432_TCP_PORT=5432", "DB_ALIAS_PORT_5432_TCP_PROTO=tcp",
                f"DB_ALIAS_PORT_53_UDP=udp://{ip}:53", "DB_ALIAS_ENV_FOO=mine"} <= env
        assert not any(e.startswith("DB_ALIAS_ENV_PATH=") for e in env)
        assert run(daemon, "exec", client, "ping", "-c1", "-W2", "db-alias", check=False).returncode == 0
    finally:
        run(daemon, "rm", "-f", client, target, check=False)


def test_docker_py_networks(daemon: Daemon) -> None:
    client = daemon.client()
    name = _name("py")
    network = client.networks.create(name, driver="bridge", labels={"k": "v"})
    try:
        c = client.containers.run("busybox", ["sleep", "600"], detach=True, network=name)
        try:
            network.reload()
            assert [x.id for x in network.containers] == [c.id]
            c.reload()
            assert c.attrs["NetworkSettings"]["Networks"][name]["IPAddress"]
        finally:
            c.remove(force=True)
        assert name in [n.name for n in client.networks.list()]
    finally:
        network.remove()
    assert name not in [n.name for n in client.networks.list()]


def test_restart_keeps_networks_addresses_and_ports(fresh_daemon: Daemon, tmp_path: Path) -> None:
    d = fresh_daemon
    net_name, web, dead = _name("keep"), _name("web"), _name("dead")
    port, dead_port = free_port(), free_port()
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("still here\n")
    run(d, "network", "create", "--subnet", "10.232.5.0/24", net_name)
    run(d, "run", "-d", "--name", web, "--network", net_name, "-p", f"{port}:80", "-v", f"{www}:/www:ro",
        "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
    run(d, "run", "-d", "--name", dead, "-p", f"{dead_port}:80", "busybox", "sleep", "600")
    assert wait_http(f"http://127.0.0.1:{port}/") == "still here\n"
    before = inspect(d, "container", web)["NetworkSettings"]
    dead_info = inspect(d, "container", dead)
    d.kill9()
    # while the daemon is away the container keeps serving, and one container dies
    assert wait_http(f"http://127.0.0.1:{port}/") == "still here\n"
    import os
    import signal

    os.kill(dead_info["State"]["Pid"], signal.SIGKILL)
    time.sleep(0.5)
    d.start()
    after = inspect(d, "container", web)["NetworkSettings"]
    assert after["Networks"][net_name]["IPAddress"] == before["Networks"][net_name]["IPAddress"]
    assert after["Ports"] == before["Ports"] and after["SandboxKey"] == before["SandboxKey"]
    assert wait_http(f"http://127.0.0.1:{port}/") == "still here\n"
    assert wait_http(f"http://[::1]:{port}/") == "still here\n"  # the relay serves [::] again
    shown = inspect(d, "network", net_name)
    assert list(shown["Containers"]) == [inspect(d, "container", web)["Id"]]
    # the dead container's port, endpoint and namespace are gone
    assert inspect(d, "container", dead)["State"]["Running"] is False
    assert dead_info["Id"] not in inspect(d, "network", "bridge")["Containers"]
    assert not Path(dead_info["NetworkSettings"]["SandboxKey"]).exists()
    taken = run(d, "run", "-d", "--rm", "-p", f"{dead_port}:80", "busybox", "sleep", "600")
    run(d, "rm", "-f", taken.stdout.strip())
    # a new container gets another address than the one kept
    other = run(d, "run", "-d", "--network", net_name, "busybox", "sleep", "600").stdout.strip()
    assert inspect(d, "container", other)["NetworkSettings"]["Networks"][net_name]["IPAddress"] != \
        after["Networks"][net_name]["IPAddress"]
    run(d, "rm", "-f", other, web)
    run(d, "network", "rm", net_name)


def test_system_prune_with_docker_cli_empties_the_store(fresh_daemon: Daemon) -> None:
    d = fresh_daemon
    net_name = _name("tmp")
    run(d, "network", "create", net_name)
    run(d, "run", "--name", _name("done"), "--network", net_name, "-v", "/data", "busybox", "true")
    out = run(d, "system", "prune", "-a", "--volumes", "-f", timeout=120)
    assert "Deleted Networks:" in out.stdout and net_name in out.stdout
    assert run(d, "ps", "-aq").stdout.strip() == ""
    assert run(d, "images", "-q").stdout.strip() == ""
    assert run(d, "volume", "ls", "-q").stdout.strip() == ""
    assert sorted(run(d, "network", "ls", "--format", "{{.Name}}").stdout.split()) == ["bridge", "host", "none"]


def test_compose_style_project(daemon: Daemon) -> None:
    """The calls docker compose makes for a project with two services on its default network, a
    second network connected before start, and a sidecar in `network_mode: service:web`."""
    import docker

    api = docker.APIClient(base_url=daemon.host, version="auto", timeout=60)
    project = _name("proj")
    labels = {"com.docker.compose.project": project, "com.docker.compose.network": "default"}
    made = []
    assert api.networks(filters={"label": [f"com.docker.compose.project={project}"]}) == []
    default = api.create_network(f"{project}_default", driver="bridge", labels=labels, check_duplicate=True,
                                 ipam={"Driver": "default", "Config": []}, internal=False, attachable=False,
                                 options={})
    back = api.create_network(f"{project}_back", driver="bridge", labels={**labels, "com.docker.compose.network": "back"})
    try:
        assert [n["Name"] for n in api.networks(filters={"label": [f"com.docker.compose.project={project}"]})] \
            in ([f"{project}_default", f"{project}_back"], [f"{project}_back", f"{project}_default"])
        for service in ("web", "db"):
            config = api.create_networking_config({f"{project}_default": api.create_endpoint_config(
                aliases=[service, f"{project}-{service}-1"])})
            c = api.create_container("busybox", ["sleep", "600"], name=f"{project}-{service}-1",
                                     host_config=api.create_host_config(network_mode=f"{project}_default"),
                                     networking_config=config, labels={"com.docker.compose.service": service})
            made.append(c["Id"])
        api.connect_container_to_network(made[1], back["Id"], aliases=["db"])
        for cid in made:
            api.start(cid)
        sidecar = api.create_container("busybox", ["sleep", "600"], name=f"{project}-side-1",
                                       host_config=api.create_host_config(network_mode=f"container:{made[0]}"))
        made.append(sidecar["Id"])
        api.start(sidecar["Id"])
        web = api.inspect_container(made[0])["NetworkSettings"]["Networks"][f"{project}_default"]
        db = api.inspect_container(made[1])["NetworkSettings"]["Networks"]
        assert web["Aliases"] == ["web", f"{project}-web-1"] and web["IPAddress"]
        assert set(db) == {f"{project}_default", f"{project}_back"} and db[f"{project}_back"]["IPAddress"]
        ping = api.exec_create(made[1], ["ping", "-c1", "-W2", web["IPAddress"]])
        api.exec_start(ping["Id"])
        assert api.exec_inspect(ping["Id"])["ExitCode"] == 0
        side = api.exec_create(sidecar["Id"], ["ip", "-o", "-4", "addr", "show", "eth0"])
        assert web["IPAddress"] in api.exec_start(side["Id"]).decode()
        assert set(api.inspect_network(default["Id"])["Containers"]) == set(made[:2])
    finally:
        for cid in reversed(made):
            api.remove_container(cid, force=True)
        api.remove_network(default["Id"])
        api.remove_network(back["Id"])
    assert api.networks(filters={"label": [f"com.docker.compose.project={project}"]}) == []


def test_network_events_mac_and_dns_flags(daemon: Daemon) -> None:
    since = str(time.time() - 1)
    name, c = _name("ev"), _name("mac")
    run(daemon, "network", "create", name)
    run(daemon, "run", "-d", "--name", c, "--network", name, "--mac-address", "02:42:ac:11:00:99",
        "--dns", "10.9.9.9", "--dns-search", "x.test", "busybox", "sleep", "600")
    try:
        mac = inspect(daemon, "container", c)["NetworkSettings"]["Networks"][name]["MacAddress"]
        assert mac == "02:42:ac:11:00:99"
        assert "02:42:ac:11:00:99" in run(daemon, "exec", c, "cat", "/sys/class/net/eth0/address").stdout
        resolv = run(daemon, "exec", c, "cat", "/etc/resolv.conf").stdout
        assert "nameserver 127.0.0.11" in resolv and "search x.test" in resolv  # --dns goes upstream
    finally:
        run(daemon, "rm", "-f", c)
    run(daemon, "network", "rm", name)
    until = str(time.time() + 1)
    events = run(daemon, "events", "--since", since, "--until", until, "--filter", "type=network",
                 "--filter", f"network={name}", "--format", "{{.Action}} {{.Actor.Attributes.name}}").stdout
    actions = [line.split()[0] for line in events.splitlines()]
    assert actions == ["create", "connect", "disconnect", "destroy"], events


def test_host_ports_held_ranges_and_daemon_json(daemon: Daemon, tmp_path: Path,
                                                busybox_tar: Path) -> None:
    import socket

    held = socket.socket()
    held.bind(("0.0.0.0", 0))
    held.listen()
    port = held.getsockname()[1]
    try:
        # userland-proxy (the default): a port some host process holds is refused as dockerd's proxy would
        got = run(daemon, "run", "--rm", "-p", f"{port}:80", "busybox", "true", check=False)
        assert got.returncode != 0 and f"failed to bind host port for 0.0.0.0:{port}:" in got.stderr
        assert "address already in use" in got.stderr
        # a range: the first port nobody holds
        name = _name("range")
        run(daemon, "run", "-d", "--name", name, "-p", f"{port}-{port + 1}:80", "busybox", "sleep", "600")
        try:
            ports = inspect(daemon, "container", name)["NetworkSettings"]["Ports"]
            assert ports["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(port + 1)},
                                       {"HostIp": "::", "HostPort": str(port + 1)}]
        finally:
            run(daemon, "rm", "-f", name)
        # daemon.json: "ip" is the default host address, and without the proxy the held port is not checked
        config = tmp_path / "daemon.json"
        config.write_text('{"ip": "127.0.0.1", "userland-proxy": false}')
        other = Daemon(tmp_path / "own", args=("--config-file", str(config)))
        try:
            other.import_busybox(busybox_tar)
            cid = run(other, "run", "-d", "-p", f"{port}:80", "-p", "81", "busybox", "sleep", "600").stdout.strip()
            ports = inspect(other, "container", cid)["NetworkSettings"]["Ports"]
            assert ports["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
            assert ports["81/tcp"][0]["HostIp"] == "127.0.0.1"
        finally:
            other.close()
    finally:
        held.close()


def test_a_stopped_idle_daemon_leaves_nothing_and_the_next_start_rebuilds(fresh_daemon: Daemon) -> None:
    from dockyard.networks.naming import Naming

    d = fresh_daemon
    naming = Naming(d.root / "data")
    name = _name("kept")
    run(d, "network", "create", "--subnet", "10.237.3.0/24", name)
    bridge = inspect(d, "network", name)["Options"].get("com.docker.network.bridge.name") or \
        naming.user_bridge(inspect(d, "network", name)["Id"])
    links = lambda: {link["ifname"] for link in json.loads(  # noqa: E731
        subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout)}
    assert {bridge, naming.default_bridge} <= links()
    d.stop()
    assert not {bridge, naming.default_bridge} & links()
    assert subprocess.run(["nft", "list", "table", "ip", naming.table], capture_output=True).returncode != 0
    d.start()
    assert inspect(d, "network", name)["IPAM"]["Config"] == [{"Subnet": "10.237.3.0/24"}]
    cid = run(d, "run", "-d", "--network", name, "busybox", "sleep", "600").stdout.strip()
    assert inspect(d, "container", cid)["NetworkSettings"]["Networks"][name]["IPAddress"].startswith("10.237.3.")
    run(d, "rm", "-f", cid)
    run(d, "network", "rm", name)
