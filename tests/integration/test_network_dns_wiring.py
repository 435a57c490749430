"""The embedded DNS server through the real daemon: containers on user networks resolve each other's
names, aliases, short IDs and ``name.network`` at 127.0.0.11 (only on the networks they share), PTR,
names not ours forwarded to the host's resolvers (a fake upstream of the test's own, named by the
daemon's host resolv.conf, ``DOCKYARD_HOST_RESOLV_CONF``) or to ``--dns``; live connect/disconnect; a
daemon restart; and our CLI end to end.

The daemon is this module's own (it is restarted). Traffic stays on the host's loopback and inside the
containers' namespaces; everything made is removed, even on failure.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dockyard.networks import netns
from tests.fake_dns import FakeUpstream
from tests.integration.daemon_harness import Daemon

pytestmark = pytest.mark.root

EXTERNAL = "external.example."
EXTERNAL_IP = "192.0.2.44"
VIA_DNS_FLAG_IP = "192.0.2.55"
T = TypeVar("T")


def _upstream_handler(answer: str) -> Any:
    """A upstream knowing one name, ``EXTERNAL`` (A → ``answer``); NXDOMAIN for every other."""
    def handle(query: dns.message.Message, transport: str) -> list[bytes]:
        response = dns.message.make_response(query)
        question = query.question[0]
        if question.name.to_text().lower() == EXTERNAL:
            if question.rdtype == dns.rdatatype.A:
                response.answer.append(dns.rrset.from_text(question.name, 30, "IN", "A", answer))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return [response.to_wire()]
    return handle


def _loopback_upstream(answer: str) -> FakeUpstream:
    """A fake nameserver on port 53 of a random 127.53.x.y (a resolv.conf line names no port)."""
    for _ in range(20):
        address = f"127.53.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}"
        try:
            return FakeUpstream(address, 53, _upstream_handler(answer))
        except OSError:
            continue
    raise RuntimeError("no free 127.53.x.y:53")


class Env:
    def __init__(self, daemon: Daemon, upstream: FakeUpstream, resolv: Path) -> None:
        self.d = daemon
        self.upstream = upstream
        self.resolv = resolv


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Iterator[Env]:
    upstream = _loopback_upstream(EXTERNAL_IP)
    root = tmp_path_factory.mktemp("dockyard-dns")
    resolv = root / "host-resolv.conf"
    resolv.write_text(f"# the test's host file\nnameserver {upstream.address}\nsearch corp.test\n")
    d = None
    try:
        d = Daemon(root / "d", prefix=("env", f"DOCKYARD_HOST_RESOLV_CONF={resolv}"))
        d.import_busybox(busybox_tar)
        yield Env(d, upstream, resolv)
    finally:
        try:
            if d is not None:
                for name in d.docker("network", "ls", "-q", "--filter", "type=custom").stdout.split():
                    d.docker("network", "rm", name)
                d.close()
        finally:
            upstream.close()


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def docker(e: Env, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return e.d.docker(*args, check=check, timeout=timeout)


def inspect(e: Env, ref: str) -> dict[str, Any]:
    return json.loads(docker(e, "inspect", ref).stdout)[0]  # type: ignore[no-any-return]


def ip_on(e: Env, container: str, network: str) -> str:
    return str(inspect(e, container)["NetworkSettings"]["Networks"][network]["IPAddress"])


def lookup(e: Env, container: str, name: str) -> list[str]:
    """``nslookup name 127.0.0.11`` inside ``container``: the addresses answered ([] for none)."""
    out = docker(e, "exec", container, "nslookup", "-type=a", name, "127.0.0.11", check=False).stdout
    # busybox prints the server first ("Server: 127.0.0.11", "Address: 127.0.0.11:53"), then answers
    answers = out.split("\nName:", 1)[1] if "\nName:" in out else ""
    return [line.split()[-1] for line in answers.splitlines() if line.startswith("Address:")]


def assert_nothing_listens(e: Env, container: str) -> None:
    """No DNS server on 127.0.0.11:53 in the container (busybox: the port refuses, or no answer)."""
    out = docker(e, "exec", container, "nslookup", "-timeout=1", "-retry=1", "x", "127.0.0.11", check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and ("Connection refused" in text or "no servers could be reached" in text), text


@pytest.fixture()
def nets(env: Env) -> Iterator[tuple[str, str]]:
    a, b = _name("dna"), _name("dnb")
    docker(env, "network", "create", a)
    docker(env, "network", "create", b)
    try:
        yield a, b
    finally:
        ids = docker(env, "ps", "-aq", check=False).stdout.split()
        if ids:
            docker(env, "rm", "-f", *ids, check=False)
        for n in (a, b):
            docker(env, "network", "rm", n, check=False)


def sleeper(e: Env, name: str, *args: str) -> str:
    return docker(e, "run", "-d", "--name", name, *args, "busybox", "sleep", "600").stdout.strip()


def test_names_aliases_short_id_and_network_scope(env: Env, nets: tuple[str, str]) -> None:
    net_a, net_b = nets
    web, client, other = _name("web"), _name("cli"), _name("oth")
    web_id = sleeper(env, web, "--network", net_a, "--network-alias", "svc")
    sleeper(env, client, "--network", net_a)
    sleeper(env, other, "--network", net_b)
    web_ip = ip_on(env, web, net_a)

    assert lookup(env, client, web) == [web_ip]
    assert lookup(env, client, "svc") == [web_ip]
    assert lookup(env, client, web_id[:12]) == [web_ip]
    assert lookup(env, client, f"{web}.{net_a}") == [web_ip]
    assert lookup(env, client, web.upper()) == [web_ip]
    ping = docker(env, "exec", client, "ping", "-c1", "-W1", web, check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert f"({web_ip})" in ping.stdout
    # The other network's container knows none of them; the name goes to the upstream (NXDOMAIN).
    assert lookup(env, other, web) == []
    assert lookup(env, other, "svc") == []
    assert lookup(env, other, f"{web}.{net_a}") == []
    assert docker(env, "exec", other, "ping", "-c1", "-W1", web, check=False).returncode != 0
    # PTR: <container name>.<network>
    ptr = docker(env, "exec", client, "nslookup", web_ip, "127.0.0.11", check=False).stdout
    assert f"{web}.{net_a}" in ptr, ptr
    # The container's resolv.conf is Docker 28's: the embedded server, the host's upstream named.
    resolv = docker(env, "exec", client, "cat", "/etc/resolv.conf").stdout
    assert "nameserver 127.0.0.11\n" in resolv
    assert "search corp.test\n" in resolv and "options ndots:0\n" in resolv
    assert f"# ExtServers: [host({env.upstream.address})]" in resolv
    assert f"# Based on host file: '{env.resolv}' (internal resolver)" in resolv


def test_forwarded_to_host_resolvers_and_to_dns_flag(env: Env, nets: tuple[str, str]) -> None:
    net_a, _ = nets
    c = _name("fwd")
    sleeper(env, c, "--network", net_a)
    before = len(env.upstream.queries)
    assert lookup(env, c, EXTERNAL.rstrip(".")) == [EXTERNAL_IP]
    assert any(q.question[0].name.to_text().lower() == EXTERNAL for _, q in env.upstream.queries[before:])
    # the host file changing is followed without a restart
    other = _loopback_upstream("192.0.2.66")
    try:
        old = env.resolv.read_text()
        env.resolv.write_text(f"nameserver {other.address}\n")
        try:
            deadline = time.monotonic() + 10
            while lookup(env, c, EXTERNAL.rstrip(".")) != ["192.0.2.66"]:
                assert time.monotonic() < deadline, "the host file's change was not followed"
                time.sleep(0.3)
        finally:
            env.resolv.write_text(old)
    finally:
        other.close()


def in_namespace_of(e: Env, container: str, make: Callable[[], T]) -> T:
    """``make()`` run in a thread that joined ``container``'s network namespace (for sockets there)."""
    pid = inspect(e, container)["State"]["Pid"]
    return netns.run_in(Path(f"/proc/{pid}/ns/net"), make)



def _wait_until_bridge_empty(bridge: str) -> None:
    """Wait (5 s at most) until no port is left on ``bridge``: a stopped container's namespace was let go."""
    deadline = time.monotonic() + 5
    while ports_of(bridge):
        assert time.monotonic() < deadline, f"{ports_of(bridge)} stayed on {bridge}: the namespace was held"
        time.sleep(0.1)


def test_dns_flag_servers_are_asked_from_the_containers_namespace(env: Env) -> None:
    """``--dns 127.0.0.1``: the embedded server forwards to a resolver on the *container's* loopback
    (Docker dials ``--dns`` servers inside the sandbox; only the host file's servers are reached from
    the host's namespace). The resolv.conf names 127.0.0.11 and the server in its comment."""
    net_a, bridge = _name("fwn"), "dyt" + secrets.token_hex(3)
    docker(env, "network", "create", "-o", f"com.docker.network.bridge.name={bridge}", net_a)
    d = _name("fwd")
    try:
        _dns_flag_in_namespace(env, net_a, d)
        # the namespace worker that made those sockets must not hold the namespace after a stop
        docker(env, "stop", "-t", "0", d)
        _wait_until_bridge_empty(bridge)
    finally:
        docker(env, "rm", "-f", d, check=False)
        docker(env, "network", "rm", net_a, check=False)


def _dns_flag_in_namespace(env: Env, net_a: str, d: str) -> None:
    sleeper(env, d, "--network", net_a, "--dns", "127.0.0.1")
    resolv = docker(env, "exec", d, "cat", "/etc/resolv.conf").stdout
    assert "nameserver 127.0.0.11\n" in resolv and "127.0.0.1\n" not in resolv.split("\n\n")[0]
    assert "# ExtServers: [127.0.0.1]" in resolv
    own = in_namespace_of(env, d, lambda: FakeUpstream("127.0.0.1", 53, _upstream_handler(VIA_DNS_FLAG_IP)))
    try:
        assert lookup(env, d, EXTERNAL.rstrip(".")) == [VIA_DNS_FLAG_IP]
        assert any(q.question[0].name.to_text().lower() == EXTERNAL for _, q in own.queries)
        assert lookup(env, d, d) == [ip_on(env, d, net_a)]  # names of ours stay ours
        # over TCP too (busybox asks over UDP: dnspython from inside the namespace)
        query = dns.message.make_query(EXTERNAL, "A")
        answer = in_namespace_of(env, d, lambda: dns.query.tcp(query, "127.0.0.11", timeout=5))
        assert [rd.to_text() for rrset in answer.answer for rd in rrset] == [VIA_DNS_FLAG_IP]
        assert any(t == "tcp" for t, _ in own.queries)  # a TCP query is forwarded over TCP
    finally:
        own.close()
    # the host's 127.0.0.1:53 does not answer for it (the daemon's namespace was not asked)
    try:
        host_answer = dns.query.udp(dns.message.make_query(EXTERNAL, "A"), "127.0.0.1", timeout=1)
        assert VIA_DNS_FLAG_IP not in host_answer.to_text()
    except (OSError, dns.exception.Timeout):
        pass


def test_dns_flag_servers_on_an_internal_network(env: Env) -> None:
    """A container on internal networks only forwards nothing to the host's resolvers, but its own
    ``--dns`` servers are still asked from its namespace (Docker's resolver without external access
    skips only host-namespace servers)."""
    internal, c = _name("ind"), _name("ind")
    docker(env, "network", "create", "--internal", internal)
    try:
        sleeper(env, c, "--network", internal, "--dns", "127.0.0.1")
        own = in_namespace_of(env, c, lambda: FakeUpstream("127.0.0.1", 53, _upstream_handler(VIA_DNS_FLAG_IP)))
        try:
            assert lookup(env, c, EXTERNAL.rstrip(".")) == [VIA_DNS_FLAG_IP]
        finally:
            own.close()
    finally:
        docker(env, "rm", "-f", c, check=False)
        docker(env, "network", "rm", internal, check=False)


def test_ndots_set_keeps_unknown_single_labels_home(env: Env, nets: tuple[str, str]) -> None:
    """With ndots named in its options (``--dns-option ndots:2``), a container's unknown single-label
    names are answered empty by the embedded server, not forwarded (Docker's NdotsSet); without it they
    are forwarded."""
    net_a, _ = nets
    plain, dotted = _name("nd"), _name("nd")
    sleeper(env, plain, "--network", net_a)
    sleeper(env, dotted, "--network", net_a, "--dns-option", "ndots:2")
    assert "options ndots:2\n" in docker(env, "exec", dotted, "cat", "/etc/resolv.conf").stdout

    def forwarded(label: str) -> bool:
        return any(q.question[0].name.to_text().lower() == f"{label}." for _, q in env.upstream.queries)

    first, second = f"zz{secrets.token_hex(3)}", f"zz{secrets.token_hex(3)}"
    assert lookup(env, plain, first) == []
    assert forwarded(first)
    assert lookup(env, dotted, second) == []
    assert not forwarded(second)
    assert lookup(env, dotted, plain) == [ip_on(env, plain, net_a)]  # names of ours still answered


def test_internal_network_names_only(env: Env) -> None:
    """A container on internal networks only resolves the names of ours and forwards nothing (Docker
    26+); once connected to a routed network it forwards."""
    internal, routed, a, b = _name("in"), _name("rt"), _name("ia"), _name("ib")
    docker(env, "network", "create", "--internal", internal)
    docker(env, "network", "create", routed)
    try:
        sleeper(env, a, "--network", internal)
        sleeper(env, b, "--network", internal)
        assert lookup(env, a, b) == [ip_on(env, b, internal)]
        label = f"yy{secrets.token_hex(3)}.example"
        assert lookup(env, a, label) == []
        assert not any(q.question[0].name.to_text().lower() == f"{label}." for _, q in env.upstream.queries)
        docker(env, "network", "connect", routed, a)
        assert lookup(env, a, EXTERNAL.rstrip(".")) == [EXTERNAL_IP]
    finally:
        docker(env, "rm", "-f", a, b, check=False)
        docker(env, "network", "rm", internal, routed, check=False)


def test_connect_and_disconnect_live(env: Env, nets: tuple[str, str]) -> None:
    net_a, net_b = nets
    a, b = _name("la"), _name("lb")
    sleeper(env, a, "--network", net_a)
    sleeper(env, b, "--network", net_b)
    assert lookup(env, a, b) == []
    docker(env, "network", "connect", "--alias", "late", net_a, b)
    b_ip = ip_on(env, b, net_a)
    assert lookup(env, a, b) == [b_ip]
    assert lookup(env, a, "late") == [b_ip]
    assert lookup(env, b, a) == [ip_on(env, a, net_a)]  # and b now sees a's network
    docker(env, "network", "disconnect", net_a, b)
    assert lookup(env, a, "late") == []
    assert lookup(env, b, a) == []
    assert lookup(env, b, b) == [ip_on(env, b, net_b)]  # still served on its own network
    # no user network left: as dockerd's, the resolver stays and forwards; no names of ours
    docker(env, "network", "disconnect", net_b, b)
    assert lookup(env, b, b) == []
    assert lookup(env, b, EXTERNAL.rstrip(".")) == [EXTERNAL_IP]



def test_a_runs_end_lets_its_namespace_go(env: Env) -> None:
    """The listeners hold the container's namespace while open: a stop must close them, or the
    namespace (and its veth on the bridge, which the kernel deletes with it) would stay."""
    net, bridge, a = _name("gn"), "dyt" + secrets.token_hex(3), _name("ga")
    docker(env, "network", "create", "-o", f"com.docker.network.bridge.name={bridge}", net)
    try:
        sleeper(env, a, "--network", net)
        assert lookup(env, a, a) == [ip_on(env, a, net)]
        before = ports_of(bridge)
        assert len(before) == 1
        docker(env, "stop", "-t", "0", a)
        _wait_until_bridge_empty(bridge)
    finally:
        docker(env, "rm", "-f", a, check=False)
        docker(env, "network", "rm", net, check=False)


def ports_of(bridge: str) -> list[str]:
    links = json.loads(subprocess.run(["ip", "-j", "link", "show", "master", bridge], capture_output=True,
                                      text=True, check=True).stdout or "[]")
    return [str(link["ifname"]) for link in links]


def test_container_restart_and_stop(env: Env, nets: tuple[str, str]) -> None:
    net_a, _ = nets
    a, b = _name("sa"), _name("sb")
    sleeper(env, a, "--network", net_a, "--network-alias", "ay")
    sleeper(env, b, "--network", net_a)
    assert lookup(env, a, a) == [ip_on(env, a, net_a)]  # its own name too
    docker(env, "restart", "-t", "0", a)
    assert lookup(env, b, "ay") == [ip_on(env, a, net_a)]
    assert lookup(env, a, b) == [ip_on(env, b, net_a)]  # served again in its new namespace
    docker(env, "stop", "-t", "0", a)
    assert lookup(env, b, a) == [] and lookup(env, b, "ay") == []


def test_default_bridge_container_connected_to_a_user_network(env: Env, nets: tuple[str, str]) -> None:
    net_a, _ = nets
    a, b = _name("ua"), _name("ub")
    sleeper(env, a, "--network", net_a)
    sleeper(env, b)  # the default bridge: the host's servers in its resolv.conf
    assert "127.0.0.11" not in docker(env, "exec", b, "cat", "/etc/resolv.conf").stdout
    docker(env, "network", "connect", net_a, b)
    resolv = docker(env, "exec", b, "cat", "/etc/resolv.conf").stdout  # rewritten, as dockerd does
    assert "nameserver 127.0.0.11\n" in resolv and f"# ExtServers: [host({env.upstream.address})]" in resolv
    assert lookup(env, b, a) == [ip_on(env, a, net_a)]
    got = docker(env, "exec", b, "ping", "-c1", "-W1", a, check=False)
    assert got.returncode == 0, got.stdout + got.stderr
    # a file the user changed is left alone
    c = _name("uc")
    sleeper(env, c)
    docker(env, "exec", c, "sh", "-c", "echo 'nameserver 192.0.2.9' > /etc/resolv.conf")
    docker(env, "network", "connect", net_a, c)
    assert docker(env, "exec", c, "cat", "/etc/resolv.conf").stdout == "nameserver 192.0.2.9\n"


def test_default_bridge_has_no_embedded_dns(env: Env, nets: tuple[str, str]) -> None:
    a = _name("br")
    sleeper(env, a)
    resolv = docker(env, "exec", a, "cat", "/etc/resolv.conf").stdout
    assert "127.0.0.11" not in resolv
    assert_nothing_listens(env, a)


def test_daemon_restart_keeps_resolution(env: Env, nets: tuple[str, str]) -> None:
    net_a, _ = nets
    a, b = _name("ra"), _name("rb")
    sleeper(env, a, "--network", net_a)
    sleeper(env, b, "--network", net_a, "--network-alias", "bee")
    b_ip = ip_on(env, b, net_a)
    assert lookup(env, a, "bee") == [b_ip]
    env.d.stop()
    env.d.start()
    assert lookup(env, a, "bee") == [b_ip]
    assert lookup(env, a, b) == [b_ip]
    assert lookup(env, a, EXTERNAL.rstrip(".")) == [EXTERNAL_IP]
    env.d.kill9()  # a daemon that died: its listeners went with it; the next one binds again
    env.d.start()
    assert lookup(env, a, "bee") == [b_ip]
    docker(env, "rm", "-f", b)  # teardown after the restart still takes the name away
    assert lookup(env, a, "bee") == []


def test_daemon_restart_serves_containers_left_without_user_networks(env: Env, nets: tuple[str, str]) -> None:
    """A daemon killed and started again serves every running container whose sandbox had the
    resolver, also those that disconnected from their last user network before (dockerd keeps the
    sandbox's resolver): one started on a user network, one started on the default bridge and
    connected to one (its resolv.conf rewritten to 127.0.0.11). A default-bridge container that never
    joined one gets none."""
    net_a, _ = nets
    a, b, plain = _name("ka"), _name("kb"), _name("kp")
    sleeper(env, a, "--network", net_a)
    sleeper(env, b)
    sleeper(env, plain)
    docker(env, "network", "connect", net_a, b)
    docker(env, "network", "disconnect", net_a, a)
    docker(env, "network", "disconnect", net_a, b)
    for c in (a, b):
        assert lookup(env, c, EXTERNAL.rstrip(".")) == [EXTERNAL_IP]
    env.d.kill9()
    env.d.start()
    for c in (a, b):
        assert "nameserver 127.0.0.11\n" in docker(env, "exec", c, "cat", "/etc/resolv.conf").stdout
        assert lookup(env, c, EXTERNAL.rstrip(".")) == [EXTERNAL_IP], c
        assert lookup(env, c, c) == []  # no names of ours: it is on no user network
    assert_nothing_listens(env, plain)
    # a connect after the restart gives names again on the same attachment; a stop lets it go
    docker(env, "network", "connect", net_a, a)
    assert lookup(env, a, a) == [ip_on(env, a, net_a)]
    docker(env, "restart", "-t", "0", b)  # a new run on the default bridge only: no resolver
    assert_nothing_listens(env, b)


def test_links_on_a_user_network_are_aliases_of_the_linking_container(env: Env, nets: tuple[str, str]) -> None:
    """``--link name:alias`` on a user network (Docker's CLI sends it as the network's
    ``EndpointSettings.Links``) is, as in Docker, no hosts entry and no environment but a DNS alias only
    the linking container resolves, to what the linked name answers there; ``network connect --link``
    too; inspect shows them in ``NetworkSettings.Networks[net].Links``; a daemon restart keeps them;
    ``HostConfig.Links`` alone (an API client's) is ignored there, as by dockerd."""
    net_a, net_b = nets
    web, linker, other, late, lone, api_only = (_name(p) for p in ("web", "lnk", "oth", "lat", "lon", "api"))
    sleeper(env, web, "--network", net_a)
    sleeper(env, linker, "--network", net_a, "--link", f"{web}:db", "--link", lone)
    sleeper(env, other, "--network", net_a)
    sleeper(env, lone, "--network", net_b)  # on no network the linker is on
    web_ip = ip_on(env, web, net_a)
    assert lookup(env, linker, "db") == [web_ip]
    assert lookup(env, linker, "DB") == [web_ip]
    assert lookup(env, linker, f"db.{net_a}") == [web_ip]
    assert lookup(env, linker, web) == [web_ip]  # the linked name itself, as on any shared network
    assert lookup(env, linker, lone) == []
    assert lookup(env, other, "db") == [] and lookup(env, web, "db") == []  # the linker's alone
    got = docker(env, "exec", linker, "ping", "-c1", "-W1", "db", check=False)
    assert got.returncode == 0 and f"({web_ip})" in got.stdout, got.stdout + got.stderr
    assert "db" not in docker(env, "exec", linker, "cat", "/etc/hosts").stdout.split()
    assert "DB_NAME=" not in docker(env, "exec", linker, "env").stdout
    assert inspect(env, linker)["NetworkSettings"]["Networks"][net_a]["Links"] == [f"{web}:db", lone]
    assert inspect(env, linker)["HostConfig"]["Links"] is None  # no legacy link, as dockerd shows
    # the alias follows the linked container: restarted, it answers its address then
    docker(env, "restart", "-t", "0", web)
    assert lookup(env, linker, "db") == [ip_on(env, web, net_a)]
    web_ip = ip_on(env, web, net_a)
    # network connect --link: an alias on that network only, for that container
    sleeper(env, late, "--network", net_b)
    docker(env, "network", "connect", "--link", f"{web}:dbx", net_a, late)
    assert lookup(env, late, "dbx") == [web_ip]
    assert lookup(env, linker, "dbx") == []
    assert inspect(env, late)["NetworkSettings"]["Networks"][net_a]["Links"] == [f"{web}:dbx"]
    assert inspect(env, late)["NetworkSettings"]["Networks"][net_b]["Links"] is None
    # HostConfig.Links alone on a user network: nothing (dockerd registers no legacy link there)
    api = env.d.client().api
    try:
        made = api.create_container("busybox", ["sleep", "600"], name=api_only,
                                    host_config=api.create_host_config(network_mode=net_a, links={web: "hdb"}))
        api.start(made["Id"])
    finally:
        api.close()
    assert lookup(env, api_only, "hdb") == []
    # a daemon restart keeps the links (the endpoints' records)
    env.d.kill9()
    env.d.start()
    assert lookup(env, linker, "db") == [web_ip]
    assert lookup(env, late, "dbx") == [web_ip]
    docker(env, "network", "disconnect", net_a, late)
    assert lookup(env, late, "dbx") == []
    # a bad link fails the start, as dockerd's ParseLink
    bad = _name("bad")
    made = env.d.client().api
    try:
        cid = made.create_container("busybox", ["sleep", "600"], name=bad, host_config=made.create_host_config(
            network_mode=net_a), networking_config={"EndpointsConfig": {net_a: {"Links": ["a:b:c"]}}})["Id"]
        failed = docker(env, "start", cid, check=False)
    finally:
        made.close()
    assert failed.returncode != 0 and "bad format for links: a:b:c" in failed.stderr, failed.stderr


def test_our_cli_end_to_end(env: Env, tmp_path: Path) -> None:
    d = env.d
    net, server, web = _name("cn"), _name("srv"), _name("www")

    def cli(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return d.cli(*args, check=check, timeout=timeout)

    site = tmp_path / "www"
    site.mkdir()
    (site / "index.html").write_text("hello from dockyard\n")
    try:
        assert cli("network", "create", net).stdout.strip()
        cli("run", "-d", "--network", net, "--name", server, "busybox", "sleep", "600")
        server_ip = json.loads(cli("inspect", server).stdout)[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
        # (--dns-search .: busybox's nslookup tries only the search domains of a bare name)
        got = cli("run", "--rm", "--network", net, "--dns-search", ".", "busybox", "nslookup", server)
        assert server_ip in got.stdout.split("\nName:", 1)[1], got.stdout
        cli("run", "-d", "--name", web, "-v", f"{site}:/www:ro", "-p", "127.0.0.1::80", "busybox",
            "httpd", "-f", "-p", "80", "-h", "/www")
        port = cli("port", web).stdout.strip()
        assert port.startswith("80/tcp -> 127.0.0.1:"), port
        host_port = port.rsplit(":", 1)[1]
        deadline = time.monotonic() + 10
        while True:
            fetched = subprocess.run(["curl", "-sS", "--max-time", "2", f"http://127.0.0.1:{host_port}/index.html"],
                                     capture_output=True, text=True)
            if fetched.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert fetched.stdout == "hello from dockyard\n", fetched.stderr
        info = json.loads(cli("network", "inspect", net).stdout)[0]
        assert info["Name"] == net and info["Driver"] == "bridge"
        assert any(c["Name"] == server for c in info["Containers"].values())
        busy = cli("network", "rm", net, check=False)
        assert busy.returncode != 0
        assert f"Error response from daemon: error while removing network: network {net} id {info['Id']} " \
               "has active endpoints" in busy.stderr, busy.stderr
        cli("rm", "-f", server)
        spare = _name("spare")
        cli("network", "create", spare)
        pruned = cli("network", "prune", "-f").stdout
        assert "Deleted Networks:" in pruned and net in pruned and spare in pruned, pruned
        listed = cli("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert net not in listed and spare not in listed and "bridge" in listed
    finally:
        cli("rm", "-f", server, web, check=False)
        cli("network", "rm", net, check=False)

