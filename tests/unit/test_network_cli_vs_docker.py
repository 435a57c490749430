"""Our CLI and Docker 28's CLI given the same argv against one fake Engine API (``tests/fake_engine``):
the same requests (method, path, query, JSON body) and the same stdout, stderr and exit status.

What legitimately differs is normalised, and only that:

- the program's name (``dockyard`` where Docker says ``docker``);
- zero-valued fields of an ``EndpointSettings`` (Docker's client sends the whole Go struct; the
  daemon decodes a missing field as its zero value) and ``null`` values in the container create
  body's networking fields (Go's ``nil`` slice or map: the same as absent to the daemon);
- the order of ``IPAM.Config`` (Docker's CLI builds it from a Go map: random order) and of the
  ``Labels`` joined in ``network ls`` (a Go map too);
- requests other than the create in ``run -d`` (Docker's CLI also sends a ``wait`` there).

Docker's 28.x client is ``/usr/local/bin/docker`` (or ``DOCKYARD_TEST_DOCKER_28``); without one these
comparisons are skipped, loudly. Requests for create/run compare the networking fields only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import fake_engine

REPO = Path(__file__).resolve().parents[2]
DOCKER = os.environ.get("DOCKYARD_TEST_DOCKER_28", "/usr/local/bin/docker")


def _docker_28() -> bool:
    try:
        out = subprocess.run([DOCKER, "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return False
    return out.stdout.startswith("Docker version 28.")


pytestmark = pytest.mark.skipif(not _docker_28(), reason=f"no Docker 28.x CLI at {DOCKER} to compare with")


def _serve(api_version: str) -> Iterator[fake_engine.FakeEngine]:
    where = tempfile.mkdtemp(prefix="/tmp/netcli-fe-")  # a short socket path, whatever the basetemp
    served = fake_engine.start(where, api_version)
    try:
        yield served
    finally:
        fake_engine.stop(served)
        shutil.rmtree(where, ignore_errors=True)


@pytest.fixture(scope="module")
def engine() -> Iterator[fake_engine.FakeEngine]:
    yield from _serve(fake_engine.API_VERSION)


@pytest.fixture(scope="module")
def old_engine() -> Iterator[fake_engine.FakeEngine]:
    """A daemon speaking API 1.43: before per-network MAC addresses, with ``CheckDuplicate``."""
    yield from _serve("1.43")


Outcome = tuple[list[tuple[str, str, list[tuple[str, str]], Any]], str, str, int]


def run_cli(engine: fake_engine.FakeEngine, which: str, argv: list[str], stdin: str = "",
            config_json: str = "") -> Outcome:
    """Run one CLI against the fake engine: (requests, stdout, stderr, exit status); ``config_json``
    is the client's ``config.json`` (none by default: no user formats or aliases)."""
    config = tempfile.mkdtemp(prefix="/tmp/netcli-cfg-")
    if config_json:
        Path(config, "config.json").write_text(config_json)
    try:
        env = {**os.environ, "DOCKER_CONFIG": config, "HOME": config}
        env.pop("DOCKER_HOST", None)
        env.pop("DOCKYARD_HOST", None)
        program = [DOCKER] if which == "docker" else [sys.executable, "-m", "dockyard.cli.main"]
        engine.take()
        out = subprocess.run([*program, "-H", engine.host, *argv], capture_output=True, text=True,
                             input=stdin, env=env, cwd=REPO, timeout=60)
        requests = [r.key() for r in engine.take()]
    finally:
        shutil.rmtree(config, ignore_errors=True)
    stdout, stderr = out.stdout, out.stderr
    if which == "ours":
        stdout, stderr = stdout.replace("dockyard", "docker"), stderr.replace("dockyard", "docker")
    return requests, stdout, stderr, out.returncode


def without_zeros(value: Any) -> Any:
    """A Go struct's JSON without its zero-valued fields (recursively)."""
    if isinstance(value, dict):
        kept = {k: without_zeros(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, "", 0, False, [], {})}
    return value


NETWORKING_CONFIG = ("Hostname", "Domainname", "ExposedPorts", "MacAddress")
NETWORKING_HOST_CONFIG = ("NetworkMode", "PortBindings", "PublishAllPorts", "Dns", "DnsOptions", "DnsSearch",
                          "ExtraHosts", "Links")


def normalise(request: tuple[str, str, list[tuple[str, str]], Any]) -> tuple[str, str, list[tuple[str, str]], Any]:
    method, path, query, body = request
    if path == "/containers/create" and isinstance(body, dict):
        host_config = body.get("HostConfig") or {}
        projected: dict[str, Any] = {k: body[k] for k in NETWORKING_CONFIG if body.get(k) is not None}
        projected["HostConfig"] = {k: host_config[k] for k in NETWORKING_HOST_CONFIG
                                   if host_config.get(k) is not None}
        endpoints = ((body.get("NetworkingConfig") or {}).get("EndpointsConfig")) or {}
        projected["EndpointsConfig"] = {name: without_zeros(settings) for name, settings in endpoints.items()}
        body = projected
    elif path.endswith("/connect") and isinstance(body, dict):
        body = {**body, "EndpointConfig": without_zeros(body.get("EndpointConfig") or {})}
    elif path == "/networks/create" and isinstance(body, dict):
        ipam = dict(body.get("IPAM") or {})
        ipam["Config"] = sorted(ipam.get("Config") or [], key=lambda c: str(c.get("Subnet")))
        body = {**body, "IPAM": ipam}
    return method, path, query, body


def labels_in_order(text: str) -> str:
    return text.replace("tier=front,team=blue", "team=blue,tier=front")


def compare(engine: fake_engine.FakeEngine, argv: list[str], stdin: str = "", only_create: bool = False,
            config_json: str = "") -> None:
    theirs = run_cli(engine, "docker", argv, stdin, config_json)
    ours = run_cli(engine, "ours", argv, stdin, config_json)
    requests = []
    for outcome in (theirs, ours):
        sent = [normalise(r) for r in outcome[0]]
        if only_create:
            sent = [r for r in sent if r[1] == "/containers/create"]
        requests.append(sent)
    assert requests[1] == requests[0], f"requests differ for {argv}"
    assert labels_in_order(ours[1]) == labels_in_order(theirs[1]), f"stdout differs for {argv}"
    assert ours[2] == theirs[2], f"stderr differs for {argv}"
    assert ours[3] == theirs[3], f"exit status differs for {argv}"


NETWORK_CASES = [
    # ls / list
    "network", "network --help", "network ls", "network list --no-trunc", "network ls -q", "network ls -q --no-trunc",
    "network ls --format json", "network ls --format {{json~.}}", "network create --subnet \"a\"b x",
    "network ls --format table~{{.Name}}\\t{{.IPv4}}\\t{{.IPv6}}\\t{{.Internal}}\\t{{.Labels}}\\t{{.CreatedAt}}",
    "network ls --format {{.Name}}~{{.Label~\"team\"}}~{{.Label~\"nope\"}}",
    "network ls --format raw", "network ls -q --format raw", "network ls -q --format {{.Name}}",
    "network ls -q --format table~{{.Name}}", "network ls --format table",
    "network ls -f driver=bridge -f name=app -f label=team=blue -f ~Dangling~=~true",
    "network ls -f bogus", "network ls --format {{.Nope}}", "network ls --format {{.Name",
    "network ls extra", "network ls --bogus", "network ls --no-trunc=maybe",
    # inspect
    "network inspect appnet", "network inspect bridge appnet -f {{.Name}}~{{.Driver}}",
    "network inspect nope", "network inspect appnet nope bridge", "network inspect nope -f {{.Name}}",
    "network inspect -v appnet -f {{.Id}}", "network inspect ''", "network inspect appnet -f json",
    "network inspect appnet -f {{.Nope}}", "network inspect appnet -f {{.Name", "network inspect",
    "network inspect appnet ingress -f {{.IPAM.Config}}~{{.Labels}}~{{.Containers}}",
    "network inspect net9 -f {{json~.IPAM}}",
    "network inspect appnet ingress net10 -f {{.}}",
    "network inspect appnet ingress -f {{.Created}}~{{.ID}}~{{.ConfigFrom}}~{{.IPAM}}",
    "network inspect appnet -f {{json~.IPAM.Config}}~{{json~.Labels}}",
    "network inspect ingress -f {{json~.Labels}}~{{.Peers}}~{{.Services}}~{{json~.Containers}}",
    "network inspect appnet -f {{range~.IPAM.Config}}{{.Subnet}}~{{.AuxAddress}}{{end}}",
    "network inspect appnet -f {{range~$k,$v:=.Containers}}{{$k}}={{$v.Name}}~{{$v}}{{end}}",
    "network inspect appnet -f {{.Id}}~{{index~.Labels~\"team\"}}", "network inspect a~b {x} c/d",
    "network rm a~b", "network connect a~b we~b",
    "network inspect appnet ingress -f {{.Created}}~{{.ID}}~{{.Id}}~{{.ConfigFrom}}~{{.IPAM}}",
    "network inspect appnet -f {{range~.IPAM.Config}}{{.Nope}}{{end}}",
    "network inspect appnet -f {{~$v~:=~.IPAM~}}{{$v.Nope}}", "network ls --format {{.Name}}~{{.Nope}}",
    "container create --dns nope busybox", "container run -d -p foo busybox", "container create --cpus x busybox",
    "container create --network-alias a busybox", "run -d --network a --network a busybox",
    "container list extra", "container remove", "volume list extra", "volume remove", "network remove",
    "volume bogus", "container bogus", "image bogus", "system bogus", "network bogus x",
    # the generic inspect finds networks and volumes too
    "inspect appnet -f {{.Name}}~{{.Driver}}~{{.IPAM.Config}}", "inspect --type network appnet -f {{.Id}}",
    "inspect nope", "inspect --type network nope", "inspect --type bogus nope", "inspect --type '' nope",
    "inspect web appnet data -f {{.Name}}", "inspect data", "inspect --type volume data nope",
    # rm / remove
    "network rm appnet", "network rm appnet nope bridge other", "network rm -f nope appnet",
    "network remove appnet", "network rm", "network rm ''", "network rm ingress appnet",
    # prune
    "network prune -f", "network prune -f --filter until=24h --filter label=a=b", "network prune --filter bogus -f",
    "network prune extra",
    # connect / disconnect
    "network connect appnet web",
    "network connect --alias a --alias b,c --ip 10.30.0.7 --ip6 fd00::7 --link bare:b --link-local-ip "
    "169.254.0.9 --driver-opt com.x=y --driver-opt k~=~v~ appnet web",
    "network connect --driver-opt bad appnet web", "network connect --link a:b:c appnet web",
    "network connect appnet nope", "network connect nope web", "network connect appnet", "network connect '' web",
    "network connect --gw-priority 5 appnet web", "network connect --gw-priority x appnet web",
    "network connect --alias \"a,b\",c appnet web",
    "network disconnect appnet web", "network disconnect -f appnet web", "network disconnect appnet nope",
    "network disconnect appnet web extra", "network disconnect appnet ''",
    # create
    "network create -d bridge --subnet 10.40.0.0/16 --gateway 10.40.0.1 --ip-range 10.40.1.0/24 --internal "
    "--label a=b --label c -o com.docker.network.bridge.name=br9 -o mtu=1400 --ipv6 --attachable mynet",
    "network create --subnet 10.40.0.0/16,fd00::/64 --gateway 10.40.0.1 --gateway fd00::1 dual",
    "network create --subnet 10.40.0.0/16 --subnet 10.50.0.0/16 --gateway 10.50.0.1 --ip-range 10.40.8.0/24 two",
    "network create --ingress ingr", "network create --ipv4=false --ipv6 v6only", "network create --ipv6=false x",
    "network create --scope local --config-only --ipam-driver x --ipam-opt a=b --aux-address h1=10.40.0.5 "
    "--subnet 10.40.0.0/16 cfg",
    "network create --config-from cfg fromcfg", "network create --gateway 10.0.0.1 nosub",
    "network create --subnet 10.0.0.0/8 --subnet 10.1.0.0/16 overlap", "network create --subnet nope bad",
    "network create --subnet nope --gateway 10.0.0.1 bad",
    "network create --subnet 10.0.0.0/8 --ip-range nope bad",
    "network create --subnet 10.0.0.0/8 --ip-range 11.0.0.0/24 bad",
    "network create --subnet 10.0.0.0/8 --gateway 11.0.0.1 bad", "network create --subnet 10.0.0.0/8 --gateway nope bad",
    "network create --subnet 10.0.0.0/8 --ip-range 10.1.0.0/16 --ip-range 10.2.0.0/16 bad",
    "network create --subnet 10.0.0.0/8,192.168.0.0/16 --ip-range 10.1.0.0/16 --ip-range 10.2.0.0/16 bad",
    "network create --subnet 10.0.0.0/8,192.168.0.0/16 --gateway 10.0.0.1 --gateway 10.0.0.2 bad",
    "network create --subnet 10.0.0.0/8 --aux-address x=11.0.0.1 bad",
    "network create --subnet 10.0.0.0/8 --gateway ::ffff:10.0.0.1 mapped",
    "network create --subnet 10.0.0.0/8 --ip-range 10.1.2.3/16 hostbits", "network create --subnet 10.0.0.0/33 x",
    "network create --subnet 10.0.0.0/8 --ip-range 10.0.0.0/33 x", "network create --subnet fd00::/64 --ip-range 10.0.0.0/24 x",
    "network create bridge", "network create", "network create a b", "network create --label '' x",
    "network create --label a~b=c x", "network create -o '' x", "network create -o noeq x",
    "network create --internal=maybe x", "network create --subnet \"10.0.0.0/8 x",
]


def argv_of(case: str) -> list[str]:
    """A case's argv: words split at spaces, ``~`` standing for a space inside a word (``''``: an empty word)."""
    return ["" if word == "''" else word.replace("~", " ") for word in case.split(" ")]


@pytest.mark.parametrize("case", NETWORK_CASES)
def test_network_verbs_match_docker(engine: fake_engine.FakeEngine, case: str) -> None:
    compare(engine, argv_of(case))


@pytest.mark.parametrize("case", [
    "system prune -f", "system prune -f -a --volumes", "system prune -f --filter label=x",
    "system prune -a --volumes --filter label=a=b --filter until=1h", "image prune -f", "image prune -a -f",
    "volume prune -f",
])
def test_system_prune_matches_docker(engine: fake_engine.FakeEngine, case: str) -> None:
    """``system prune`` prunes networks too (after the containers), as Docker's does."""
    compare(engine, argv_of(case))


@pytest.mark.parametrize(("case", "stdin"), [
    ("system prune", ""), ("system prune -a --volumes --filter label=a=b --filter label!=c --filter label=a=b", ""),
    ("system prune --filter until=1h --filter dangling=true", "y\n"),
    ("network prune", ""), ("network prune", "y\n"), ("network prune", "Y\n"), ("network prune", "yes\n"),
    ("network prune", "n\n"), ("network rm ingress appnet", ""), ("network rm ingress", "y\n"),
])
def test_confirmation_prompts_match_docker(engine: fake_engine.FakeEngine, case: str, stdin: str) -> None:
    compare(engine, argv_of(case), stdin)


CREATE_CASES = [
    "", "-p 8080:80", "-p 127.0.0.1:8080:80", "-p 127.0.0.1::80", "-p 80", "-p 8000-8010:80-90",
    "-p 8000-8010:80-90/udp", "-p 8000-8001:80", "-p 8000-8002:80-81", "-p 80-81",
    "-p 53:53/udp -p 53:53/tcp -p 9:9/sctp", "-p [::1]:8080:80", "-p ::1:8080:80", "-p 8080:80/http",
    "-p published=8080,target=80,protocol=udp,mode=host", "-p published=8080,target=80", "-p target=80",
    "-p published=8080", "-p foo", "-p 127.0.0.1:foo:80", "-p 1.2.3:80:80", "-p 70000:80", "-p 0:80",
    "-p 80:0", "-p 8080:80 -p 8081:80", "-p 8080:80 --network host", "-P", "-P --expose 80 --expose 90-92/udp",
    "--expose 80/http", "--expose foo", "--expose 1-2-3", "--expose 80:90", "--expose 70000", "--expose 90-80",
    "-p 8080:80 -p 8080:80", "-p 8080:80-81", "-p 192.168.1.1:8080-8081:80-81/tcp", "-p :80", "-p :8080:80",
    "-p 8080:", "-p 0.0.0.0:8080:80", "-p 127.0.0.1:80", "-p [::]:8080:80/udp",
    "-p published=8080-8081,target=80-81", "-p mode=ingress,target=80",
    "-p target=80,published=8080,host_ip=127.0.0.1", "-p target=80,,published=1", "-p 80/TCP",
    "-p 80/Udp --expose 80/UDP", "--publish=8080:80 --publish-all", "-p 08080:080",
    "--mac-address 02:42:ac:11:00:02", "--mac-address 02:42:ac:11:00:02 --network appnet", "--mac-address zz",
    "--mac-address 02-42-ac-11-00-02", "--mac-address 0242.ac11.0002",
    "--network appnet", "--net appnet", "--network appnet --network-alias a --net-alias b", "--network-alias a",
    "--network-alias a --network host", "--network appnet --ip 10.30.0.9 --ip6 fd00::9", "--ip 10.30.0.9",
    "--ip nope", "--ip6 nope --network appnet", "--link web:w", "--link web", "--link web:w --network appnet",
    "--link a:b:c", "--link ''", "--network appnet --network other", "--network appnet --network appnet",
    "--network appnet --network host", "--network bridge --network host", "--network none --network host",
    "--network name=appnet,alias=x,ip=10.30.0.5,driver-opt=com.foo=bar,mac-address=02:42:ac:11:00:03,gw-priority=3",
    "--network name=appnet,alias=x --network-alias y", "--network name=appnet,ip=1.2.3.4 --ip 1.2.3.5",
    "--network name=appnet,ip6=fd00::1 --ip6 fd00::2", "--network name=appnet,link-local-ip=169.254.1.1 "
    "--link-local-ip 169.254.1.2", "--network name=appnet,mac-address=02:42:ac:11:00:03 --mac-address "
    "02:42:ac:11:00:04", "--network alias=x", "--network name=appnet,foo=bar", "--net name=appnet,foo=bar",
    "--network name=appnet,gw-priority=x", "--network name=appnet,gw-priority=99999999999999999999",
    "--network name=appnet,driver-opt=bad", "--network name=appnet,alias=X --network name=b,alias=y",
    "--network name=bridge,alias=x", "--network name=appnet,mac-address=nope", "--network container:web",
    "--net container:web -h foo", "--network ''", "--network ~,", "--network NAME=AppNet,ALIAS=Up",
    "--network name=a,alias=\"x,y\"", "--dns 8.8.8.8 --dns ::1 --dns ~1.1.1.1~", "--dns 127.0.0.53",
    "--dns nope", "--dns ::ffff:1.2.3.4", "--dns-search example.com --dns-search . --dns-search foo.com.~",
    "--dns-search -bad", "--dns-search 123", "--dns-search :a.b", "--dns-option ndots:2 --dns-opt timeout:1",
    "--add-host a:1.2.3.4 --add-host b=::1 --add-host c:host-gateway --add-host d=[::2] "
    "--add-host e:0:0:0:0:0:0:0:1", "--add-host nocolon", "--add-host a:nope", "--add-host :1.2.3.4",
    "--add-host a:b:1.2.3.4", "--add-host a=[1.2.3.4]", "--add-host a=host-gateway", "--add-host a=b=1.2.3.4",
    "-h myhost --domainname example.org", "--hostname=", "--link-local-ip 169.254.1.1 --network appnet",
    "--link-local-ip 169.254.1.1", "--link web:w --link bare --network appnet --network-alias x",
    # Docker's parse checks in its order, each printed with its hint
    "-p foo --restart always --rm", "--network-alias x --restart always --rm", "-p foo --mac-address zz",
    "-p foo --no-healthcheck --health-cmd true", "--health-interval -1s", "--log-driver none --log-opt a=b",
    "--restart :3", "--security-opt bogus", "-v ''",
    "-p [::1:8080:80", "-p [::1]x:8080:80", "-p [[::1]]:8080:80", "-p []:8080:80", "-p [1.2.3.4]:8080:80",
    "-p fe80::1%eth0:8080:80", "-p [fe80::1%eth0]:8080:80", "-p 8080:80/", "-p /udp", "-p 8080:/udp",
    "-p 1-2-3:1-2-3", "-p +80", "-p 65535:65535", "-p 65536", "--expose ''", "--expose /udp", "--expose 80/",
]


@pytest.mark.parametrize("case", CREATE_CASES)
def test_create_networking_matches_docker(engine: fake_engine.FakeEngine, case: str) -> None:
    compare(engine, ["create", *argv_of(case), "busybox"] if case else ["create", "busybox"])


@pytest.mark.parametrize("case", [
    "-p 8080:80 --network appnet --network-alias web", "--expose 1-2-3 -P", "--network name=bridge,alias=x",
    "--dns ::1", "-p 1.2.3:80:80",
])
@pytest.mark.parametrize("verb", [["run", "-d"], ["container", "run", "-d"], ["container", "create"]])
def test_run_and_container_verbs_match_docker(engine: fake_engine.FakeEngine, case: str, verb: list[str]) -> None:
    compare(engine, [*verb, *argv_of(case), "busybox"], only_create=True)


PORT_CASES = ["port web", "port web 80", "port web 80/tcp", "port web 53/udp", "port web 53", "port web 443",
              "port web 9000/sctp", "port web 22", "port web abc", "port web 70000", "port web 80/", "port bare",
              "port bare 80", "port nope", "port nope 80", "port", "port web 80 90", "container port web",
              "port web -1", "ps -a --format {{.Names}}|{{.Ports}}|{{.Networks}}",
              "ps -a --format table~{{.Names}}\\t{{.Ports}}",
              "ps -a -f publish=8080 -f expose=80/tcp -f network=appnet --format {{.Names}}"]


@pytest.mark.parametrize("case", PORT_CASES)
def test_port_and_ps_ports_match_docker(engine: fake_engine.FakeEngine, case: str) -> None:
    compare(engine, argv_of(case))


@pytest.mark.parametrize("case", [
    "create --mac-address 02:42:ac:11:00:02 busybox", "run -d --mac-address 02:42:ac:11:00:02 busybox",
    "create --network name=appnet,mac-address=02:42:ac:11:00:02 busybox", "network create foo",
    "create -p 80 --network appnet --network-alias a busybox", "network ls -q", "network prune -f",
])
def test_an_older_daemon_gets_what_docker_sends_it(old_engine: fake_engine.FakeEngine, case: str) -> None:
    compare(old_engine, argv_of(case), only_create=case.startswith("run"))


EDGE_ARGVS: list[list[str]] = [
 ["network", "create", "--subnet", "10.0.0.0/8", "--gateway", "10.0.0.0/8", "x"],
 ["network", "create", "--subnet", "10.0.0.0/8", "--gateway", "10.1.1.1/30", "x"],
 ["network", "create", "--subnet", "10.0.0.1/8", "--subnet", "10.0.0.2/8", "x"],
 ["network", "create", "--subnet", "fd00::/64", "--subnet", "fd00::/48", "x"],
 ["network", "create", "--subnet", "10.0.0.0/8", "--subnet", "nope", "x"],
 ["network", "create", "--subnet", "nope", "--subnet", "10.0.0.0/8", "x"],
 ["network", "create", "--subnet", "10.0.0.0/8", "--aux-address", "a=10.0.0.2", "--aux-address", "b=10.0.0.3", "x"],
 ["network", "create", "--subnet", "10.0.0.0/8", "--aux-address", "a", "x"],
 ["network", "create", "--subnet", "10.0.0.0/8", "--aux-address", "=10.0.0.1", "x"],
 ["network", "create", "--subnet", "", "x"],
 ["network", "create", "--subnet", ",", "x"],
 ["network", "create", "--subnet", "10.0.0.0/8,", "x"],
 ["network", "create", "--gateway", "", "x"],
 ["network", "create", "--label", " a=b", "x"],
 ["network", "create", "--label", "a b=c", "x"],
 ["network", "create", "--label", "a=b c", "x"],
 ["network", "create", "-d", "", "x"],
 ["network", "create", "--ipam-driver", "", "x"],
 ["network", "create", "--config-from", "", "x"],
 ["network", "create", "--scope", "swarm", "--attachable", "-d", "overlay", "x"],
 ["network", "create", "--ipv6=false", "--ipv4=true", "x"],
 ["network", "create", "--ipv4=0", "x"],
 ["network", "create", "--internal", "--internal=false", "x"],
 ["network", "create", "x", "--subnet", "10.0.0.0/8"],
 ["network", "create", "--", "-x"],
 ["network", "connect", "--alias", "", "appnet", "web"],
 ["network", "connect", "--alias", "a,,b", "appnet", "web"],
 ["network", "connect", "--link-local-ip", "a,b", "--ip", "nope", "appnet", "web"],
 ["network", "connect", "--driver-opt", "=x", "appnet", "web"],
 ["network", "connect", "--driver-opt", "A=B,c=d", "appnet", "web"],
 ["network", "connect", "--gw-priority", "-3", "appnet", "web"],
 ["network", "connect", "--gw-priority=", "appnet", "web"],
 ["network", "connect", "appnet", " web "],
 ["network", "connect", " appnet ", "web"],
 ["network", "disconnect", " appnet ", " web "],
 ["network", "inspect", " appnet "],
 ["network", "rm", " appnet "],
 ["network", "ls", "-f", "=x"],
 ["network", "ls", "-f", "name="],
 ["network", "ls", "-f", ""],
 ["network", "ls", "-f", "NAME=App"],
 ["network", "ls", "--format", ""],
 ["network", "ls", "--format", " table "],
 ["network", "ls", "--format", "table  {{.Name}}"],
 ["network", "ls", "--format", "{{.ID}}", "--no-trunc"],
 ["network", "ls", "--format", "{{upper .Name}} {{len .Labels}}"],
 ["network", "ls", "--format", "{{.CreatedAt}}"],
 ["network", "inspect", "-f", "{{.Name}}", "appnet", "-f", "{{.Driver}}"],
 ["network", "inspect", "--format=", "appnet"],
 ["network", "prune", "-f", "--filter", "label!=x", "--filter", "until=2020-01-01"],
 ["network", "prune", "--force=false"],
 ["network", "rm", "-f", "bridge"],
 ["network", "list", "-q", "extra"],
 ["network", "bogus"],
 ["network", "ls", "-x"],
 ["port", "web", "80/udp"],
 ["port", "web", "/tcp"],
 ["port", "web", "0"],
 ["port", "web", "080"],
]

# Odd values for the validated run/create flags, each given to ``create`` alone.
FLAG_VALUES: dict[str, list[str]] = {
 "--add-host": ["a:1.2.3.4", "a=1.2.3.4", "a:[::1]", "a=[::1]", "a:[1.2.3.4", "a=", "a:", "=1.2.3.4", "a b:1.2.3.4", "a:1.2.3.4 ", "a: 1.2.3.4", "a:::ffff:1.2.3.4", "a=host-gateway:1", "a:HOST-GATEWAY", "a:01.2.3.4", "a:1.2.3.4%x", "a[::1]"],
 "--dns-search": ["a", "a.", "a..", ".a", "a-", "-", "a_b", "xn--a.b", "a.b.c.", "a. ", " a", "1a", "a1", ":a", "a:b", "a.b:c", "*.a", "a" * 260, "ä.com"],
 "--dns": ["1.2.3.4", "::1", "1.2.3", "01.2.3.4", "::ffff:127.0.0.1", "fe80::1%eth0", " ", "1.2.3.4.5", "0:0:0:0:0:0:0:1", "127.1"],
 "--mac-address": ["02:42:AC:11:00:02", "02-42-ac-11-00-02", "0242.ac11.0002", "02:42:ac:11:00", "02:42:ac:11:00:02:03:04", "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", "02:42:ac:11:00:2", " 02:42:ac:11:00:02", "02:42:ac:11:00:02 "],
 "--network": ["name=a,alias=b", "NAME=A", "name=a,,alias=b", "name=a,alias", "name=a,=b", "name=a,ip=1.2.3.4,ip6=::1", "a=b", "name=,alias=x", "x=y,name=a", "name=a, alias=b", "name=a,driver-opt=x", "name=a,driver-opt==x", "name=a,gw-priority=-5", "name=a,gw-priority=+5", "name=a,gw-priority=9223372036854775808", "name=a,link-local-ip=169.254.1.1,link-local-ip=169.254.1.2", "name='a'", "container:x", "a=", "=a", "name=a\"", "name=a,mac-address=zz"],
 "--link": ["a", "a:b", "/a:/b/c", "a:", ":b", "a:b:c"],
 "--network-alias": ["x"],
}


@pytest.mark.parametrize("argv", EDGE_ARGVS, ids=" ".join)
def test_edge_command_lines_match_docker(engine: fake_engine.FakeEngine, argv: list[str]) -> None:
    compare(engine, argv)


@pytest.mark.parametrize(("flag", "value"), [(flag, value) for flag, values in FLAG_VALUES.items() for value in values])
def test_odd_flag_values_match_docker(engine: fake_engine.FakeEngine, flag: str, value: str) -> None:
    extra = ["--network", "appnet"] if flag == "--network-alias" else []
    compare(engine, ["create", flag, value, *extra, "busybox"])


@pytest.mark.parametrize("argv", [["network", "ls"], ["network", "ls", "-q"], ["network", "ls", "--format", "{{.ID}}"]])
def test_the_configured_networks_format_is_honoured(engine: fake_engine.FakeEngine, argv: list[str]) -> None:
    compare(engine, argv, config_json='{"networksFormat": "table {{.Name}}\\t{{.Driver}}\\t{{.Internal}}"}')


def test_template_errors_name_the_place_as_go_does(engine: fake_engine.FakeEngine) -> None:
    compare(engine, ["network", "inspect", "appnet", "-f", "{{.Name}}\n  {{- .Driver}} {{.Nope}}"])


def test_the_fake_engine_records_what_it_is_sent(engine: fake_engine.FakeEngine) -> None:
    """The comparisons above are only as good as the recording: a request body must arrive intact."""
    requests, stdout, _, status = run_cli(engine, "ours", ["network", "create", "--label", "x=y", "n1"])
    assert status == 0 and stdout == "f00d" * 16 + "\n"
    assert [(m, p) for m, p, _, _ in requests] == [("POST", "/networks/create")]
    assert json.loads(json.dumps(requests[0][3]))["Labels"] == {"x": "y"}
