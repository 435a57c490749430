"""Our embedded DNS server and a real dockerd's, asked the same questions, answer the same.

A dockerd (``--bridge=none --iptables=false``, its own root, socket and a short exec root) runs in a
namespace of the test's own standing for its host; it gets two user networks (``mynet`` and
``my.dotted``) and three busybox containers: ``web`` (alias ``www``) on mynet, ``api`` on my.dotted,
and ``client`` on both. Docker's resolver is asked from inside ``client``'s namespace; ours from a
namespace of the test's own, with a view of the same names and addresses (read from ``docker
inspect``). Names not ours are forwarded: the client's ``--dns`` is an upstream of the test's own in
the dockerd's host namespace (on mynet's gateway), ours forwards to the same kind of upstream on a
127.x address inside our namespace (a container's own servers are asked from its namespace). The dockerd here is Debian's 20.10; the behaviour compared is the same in 28
(libnetwork's resolver.go).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename
import dns.rrset
import pytest

from dockyard.networks import netns
from dockyard.networks.dns import EmbeddedDns
from dockyard.networks.dns_names import NameTable
from tests.fake_dns import FakeUpstream
from tests.integration.daemon_harness import DOCKER

pytestmark = [pytest.mark.root, pytest.mark.timeout(240)]

DOCKERD = "/usr/sbin/dockerd"


@dataclass
class DockerWorld:
    client_ns: Path  # the client container's namespace (/proc/<pid>/ns/net)
    table: NameTable  # the same names and addresses, for our server


def upstream_names(query: dns.message.Message, transport: str) -> list[bytes]:
    """The upstream both servers forward to (Docker's in its host's namespace, ours on 127.x): an A
    record for known.example, TXT for any TXT question, SERVFAIL for fail.example, else NXDOMAIN."""
    response = dns.message.make_response(query)
    question = query.question[0]
    name = question.name.to_text().lower()
    if name == "fail.example.":
        response.set_rcode(dns.rcode.SERVFAIL)
    elif question.rdtype == dns.rdatatype.TXT:
        response.answer.append(dns.rrset.from_text(question.name, 77, "IN", "TXT", '"from upstream"'))
    elif name == "known.example." and question.rdtype == dns.rdatatype.A:
        response.answer.append(dns.rrset.from_text(question.name, 77, "IN", "A", "192.0.2.77"))
    elif name != "known.example.":
        response.set_rcode(dns.rcode.NXDOMAIN)
    return [response.to_wire()]


def _docker(sock: Path, *args: str, timeout: float = 60) -> str:
    out = subprocess.run([DOCKER, "-H", f"unix://{sock}", *args], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"docker {' '.join(args)}: {out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def docker_world(busybox_tar: Path) -> Iterator[DockerWorld]:
    root = Path(tempfile.mkdtemp(prefix="dyd-", dir="/tmp"))  # short: containerd's socket path must fit
    host = root / "host-ns"
    sock = root / "docker.sock"
    process = None
    upstream: FakeUpstream | None = None
    try:
        netns.create(host)
        log = open(root / "dockerd.log", "wb")  # noqa: SIM115 - closed below
        argv = ["nsenter", f"--net={host}", "unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"', "sh",
                DOCKERD, "--data-root", str(root / "data"), "--exec-root", str(root / "exec"), "-H", f"unix://{sock}",
                "--pidfile", str(root / "pid"), "--bridge=none", "--iptables=false", "--ip6tables=false",
                "--storage-driver=vfs"]
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        for _ in range(150):
            if process.poll() is not None or subprocess.run([DOCKER, "-H", f"unix://{sock}", "version"],
                                                            capture_output=True).returncode == 0:
                break
            threading.Event().wait(0.2)
        assert process.poll() is None, (root / "dockerd.log").read_text(errors="replace")[-2000:]
        _docker(sock, "import", str(busybox_tar), "busybox:latest")
        _docker(sock, "network", "create", "mynet")
        _docker(sock, "network", "create", "my.dotted")
        _docker(sock, "run", "-d", "--name", "web", "--network", "mynet", "--network-alias", "www", "busybox",
                "sleep", "600")
        _docker(sock, "run", "-d", "--name", "api", "--network", "my.dotted", "busybox", "sleep", "600")
        # the client's --dns: an upstream in the dockerd's host namespace, on mynet's gateway address
        gateway = json.loads(_docker(sock, "network", "inspect", "mynet"))[0]["IPAM"]["Config"][0]["Gateway"]
        upstream = netns.run_in(host, lambda: FakeUpstream(gateway, 53, upstream_names))
        _docker(sock, "run", "-d", "--name", "client", "--network", "mynet", "--dns", gateway, "busybox",
                "sleep", "600")
        _docker(sock, "network", "connect", "my.dotted", "client")
        table = NameTable()
        for name in ("web", "api", "client"):
            info: dict[str, Any] = json.loads(_docker(sock, "inspect", name))[0]
            for network, endpoint in info["NetworkSettings"]["Networks"].items():
                table.set(network, name, name=name, aliases=endpoint.get("Aliases") or [],
                          addresses=[endpoint["IPAddress"]])
        pid = json.loads(_docker(sock, "inspect", "client"))[0]["State"]["Pid"]
        yield DockerWorld(Path(f"/proc/{pid}/ns/net"), table)
    finally:
        if process is not None:
            if process.poll() is None:
                subprocess.run([DOCKER, "-H", f"unix://{sock}", "rm", "-f", "web", "api", "client"],
                               capture_output=True, timeout=60)
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, 9)
                    process.wait(10)
        if upstream is not None:
            upstream.close()
        netns.remove(host)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def ours(docker_world: DockerWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A namespace where our server answers for the client, with Docker's names and addresses."""
    path = tmp_path_factory.mktemp("dns-vs-docker") / f"ns-{secrets.token_hex(2)}"
    netns.create(path)
    server = EmbeddedDns(host_resolv_conf=path.parent / "no-resolv.conf")
    upstream = None
    try:
        # the client's --dns server, inside its namespace: our server asks a container's own servers there
        address = f"127.{random.randint(60, 250)}.{random.randint(0, 255)}.9"
        upstream = netns.run_in(path, lambda: FakeUpstream(address, 53, upstream_names))
        # Docker's endpoint order for two plain user networks: by network name
        server.attach("client", path, docker_world.table.view(lambda: ["my.dotted", "mynet"]), [upstream.address])
        yield path
    finally:
        server.close()
        if upstream is not None:
            upstream.close()
        netns.remove(path)


def _summary(msg: dns.message.Message) -> tuple[object, ...]:
    answers = sorted((rrset.name.to_text(), rrset.ttl, rrset.rdclass, rrset.rdtype, rd.to_text())
                     for rrset in msg.answer for rd in rrset)
    return (dns.rcode.to_text(msg.rcode()), dns.flags.to_text(msg.flags), msg.edns,
            [q.to_text() for q in msg.question], answers)


def _ask(path: Path, query: dns.message.Message, tcp: bool = False) -> tuple[object, ...]:
    if tcp:
        return _summary(netns.run_in(path, lambda: dns.query.tcp(query, "127.0.0.11", timeout=5)))
    return _summary(netns.run_in(path, lambda: dns.query.udp(query, "127.0.0.11", timeout=5)))


def _raw(path: Path, wire: bytes) -> tuple[int, ...] | None:
    """The header of the reply to raw bytes (None: no reply within a second)."""
    def send() -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1)
            s.sendto(wire, ("127.0.0.11", 53))
            try:
                return s.recvfrom(65535)[0]
            except TimeoutError:
                return None
    got = netns.run_in(path, send)
    return None if got is None else struct.unpack("!6H", got[:12])


def _query(name: str, rdtype: str = "A", **kw: Any) -> dns.message.Message:
    return dns.message.make_query(name, rdtype, **kw)


def _cd(q: dns.message.Message) -> dns.message.Message:
    q.flags |= dns.flags.CD
    return q


def _no_rd(q: dns.message.Message) -> dns.message.Message:
    q.flags &= ~dns.flags.RD
    return q


QUESTIONS = {
    "name": lambda world: _query("web"),
    "name in capitals": lambda world: _query("WEB"),
    "network alias": lambda world: _query("www"),
    "name.network": lambda world: _query("web.mynet."),
    "name.dotted.network": lambda world: _query("api.my.dotted"),
    "other network's container": lambda world: _query("api"),
    "a name on both networks": lambda world: _query("client"),
    "a name on both, by network": lambda world: _query("client.mynet"),
    "AAAA of a v4-only name": lambda world: _query("web", "AAAA"),
    "MX of our name": lambda world: _query("web", "MX"),
    "EDNS query": lambda world: _query("web", use_edns=0, payload=1232, want_dnssec=True),
    "CD set, RD clear": lambda world: _cd(_no_rd(_query("client"))),
    "class CH": lambda world: _query("web", rdclass="CH"),
    "PTR of a container": lambda world: _query(
        dns.reversename.from_address(world.table.lookup("mynet", "web")[0]).to_text(), "PTR"),
    "PTR on the dotted network": lambda world: _query(
        dns.reversename.from_address(world.table.lookup("my.dotted", "api")[0]).to_text(), "PTR"),
    # forwarded: the upstream's answers come back as it gave them
    "forwarded A": lambda world: _query("known.example"),
    "forwarded AAAA, empty": lambda world: _query("known.example", "AAAA"),
    "forwarded NXDOMAIN": lambda world: _query("nosuchname"),
    "forwarded, EDNS": lambda world: _query("known.example", use_edns=0, payload=1232),
    "TXT of our name: forwarded": lambda world: _query("web", "TXT"),
    "name.unknown-network: forwarded": lambda world: _query("web.other"),
    "PTR not ours: forwarded": lambda world: _query("4.3.2.1.in-addr.arpa", "PTR"),
    "upstream SERVFAIL": lambda world: _query("fail.example"),
}


@pytest.mark.parametrize("case", list(QUESTIONS))
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_same_answers(docker_world: DockerWorld, ours: Path, case: str, tcp: bool) -> None:
    query = QUESTIONS[case](docker_world)
    assert _ask(ours, query, tcp) == _ask(docker_world.client_ns, query, tcp)


def _packets() -> dict[str, bytes]:
    good = _query("web").to_wire()
    update = _query("web")
    update.set_opcode(dns.opcode.UPDATE)
    response = bytearray(good)
    response[2] |= 0x80
    return {
        "two questions": good[:4] + b"\x00\x02" + good[6:],
        "no question": good[:4] + b"\x00\x00" + good[6:],
        "a name cut short": good[:12] + b"\x3fabc",
        "bytes after the message": good + b"junk",
        "UPDATE": update.to_wire(),
        "a response": bytes(response),
        "a header only": good[:12],
    }


@pytest.mark.parametrize("case", list(_packets()))
def test_same_replies_to_bad_packets(docker_world: DockerWorld, ours: Path, case: str) -> None:
    wire = _packets()[case]
    theirs = _raw(docker_world.client_ns, wire)
    mine = _raw(ours, wire)
    # the ID is the packet's; compare flags and counts
    assert (mine or (None,))[1:] == (theirs or (None,))[1:]
