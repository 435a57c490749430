"""HostConfig fields that dockerd accepts at create, acted on by dockyard and compared with a real
dockerd: device cgroup rules, the OOM score adjustment, memory swappiness, CpuCount, UsernsMode,
VolumeDriver, volume subpaths, and the ``HostConfig`` inspect shows for a default create.

Uses the private dockerd of ``test_cli_against_dockerd.py`` (Debian's dockerd 20.10, API 1.41: it
predates volume subpaths, so those are checked against dockerd's source instead; see
``containers/mounts.py``) and the shared dockyard ``daemon``. Requests go to both engines' sockets
at the same API version; every container made here is removed, also when a check fails.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from dockyard.containers.resources import Machine
from dockyard.runtime.cgroups import Cgroup
from tests.integration.daemon_harness import Daemon
from tests.integration.test_cli_against_dockerd import Dockerd, dockerd  # noqa: F401 - the fixture

pytestmark = [pytest.mark.root, pytest.mark.docker_cli]

API = "v1.41"  # what dockerd 20.10 speaks; Docker's 28.x CLI negotiates down to it


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(60)
        s.connect(self.unix_path)
        self.sock = s


class Engine:
    """One engine's API socket, with the containers and volumes a test made there."""

    def __init__(self, sock: str) -> None:
        self.sock = sock
        self.made: list[str] = []
        self.volumes: list[str] = []

    def call(self, method: str, path: str, body: Any = None, version: str = API) -> tuple[int, Any]:
        conn = _Unix(self.sock)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, f"/{version}{path}", body=data, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw.strip() else None
        finally:
            conn.close()

    def create(self, host_config: dict[str, Any], cmd: list[str] | None = None, version: str = API,
               **config: Any) -> tuple[int, Any]:
        host_config = {"NetworkMode": "none", **host_config}  # no bridge: no warning about it from dockyard
        body = {"Image": "busybox", "Cmd": cmd or ["true"], "HostConfig": host_config, **config}
        status, answer = self.call("POST", "/containers/create", body, version)
        if status == 201:
            self.made.append(answer["Id"])
        return status, answer

    def inspect(self, cid: str) -> dict[str, Any]:
        status, answer = self.call("GET", f"/containers/{cid}/json")
        assert status == 200, answer
        return dict(answer)

    def clean(self) -> None:
        for cid in self.made:
            self.call("DELETE", f"/containers/{cid}?force=1&v=1")
        for name in self.volumes:
            self.call("DELETE", f"/volumes/{name}?force=1")


@pytest.fixture()
def engines(daemon: Daemon, dockerd: Dockerd) -> Iterator[tuple[Engine, Engine]]:  # noqa: F811
    ours, theirs = Engine(str(daemon.sock)), Engine(str(dockerd.root / "docker.sock"))
    try:
        yield ours, theirs
    finally:
        ours.clean()
        theirs.clean()


Outcome = tuple[int, str, str]
"""A container's exit status and logged stdout, and the ``run -d`` error (or its stderr log)."""


def _outcome(docker: Callable[..., subprocess.CompletedProcess[str]], *args: str) -> Outcome:
    """``docker run -d --network none ARGS``, waited for, read from its log and removed; a container
    that failed to start is removed too (no ``--rm``: its outcome is read after it exits)."""
    name = f"create-fields-{uuid.uuid4().hex[:12]}"
    try:
        started = docker("run", "-d", "--name", name, "--network", "none", *args)
        if started.returncode != 0:  # a container that failed to start stays, created
            return started.returncode, "", started.stderr
        status = docker("wait", name).stdout.strip()
        logs = docker("logs", name)
        return int(status), logs.stdout, logs.stderr
    finally:
        docker("rm", "-f", name)


def _both(daemon: Daemon, dockerd: Dockerd, *args: str) -> tuple[Outcome, Outcome]:  # noqa: F811
    """The outcome of the same ``docker run`` against dockyard and against dockerd."""
    return _outcome(daemon.docker, *args), _outcome(dockerd.docker, *args)


# -- DeviceCgroupRules -------------------------------------------------------------------------------

# /dev/kmsg (char 1:11) exists on every kernel; opening it write-only needs no capability (reading
# may), so only the devices cgroup decides. Nothing is written to it.
KMSG = "mknod /tmp/kmsg c 1 11 && ((exec 3>/tmp/kmsg) 2>/dev/null && echo write-open-ok || echo write-open-denied)"


@pytest.mark.parametrize("rules", [(), ("c 1:11 w",), ("c 1:11 r",), ("c 1:* rwm",), ("b *:* rwm",)],
                         ids=["none", "write", "read-only", "major-wildcard", "block-only"])
def test_device_cgroup_rule_decides_like_dockerd(daemon: Daemon, dockerd: Dockerd,  # noqa: F811
                                                 rules: tuple[str, ...]) -> None:
    flags = [arg for rule in rules for arg in ("--device-cgroup-rule", rule)]
    ours, theirs = _both(daemon, dockerd, *flags, "busybox", "sh", "-c", KMSG)
    assert theirs[0] == 0, theirs
    assert ours == theirs
    allowed = any(rule.startswith("c 1:") and "w" in rule for rule in rules)
    assert ours[1] == ("write-open-ok\n" if allowed else "write-open-denied\n")


def test_device_cgroup_rule_of_type_a_is_char_and_block(daemon: Daemon) -> None:
    """``a 1:11 w`` means both types with those numbers, and no other device. (cgroup v1's kernel
    reads any ``a`` line as "allow all devices" and runc writes it as is, so dockerd's container on
    v1 gets every device; cgroup v2's device program, like dockyard, matches the numbers.)"""
    script = KMSG + "; mknod /tmp/fuse c 10 229; exec 3<>/tmp/fuse"
    status, out, err = _outcome(daemon.docker, "--device-cgroup-rule", "a 1:11 w", "busybox", "sh", "-c", script)
    assert out == "write-open-ok\n", err
    assert status != 0 and "can't create /tmp/fuse: Operation not permitted" in err


def test_bad_device_cgroup_rule(engines: tuple[Engine, Engine]) -> None:
    """dockerd checks rules when it starts the container, dockyard already at create; same text."""
    ours, theirs = engines
    bad = {"DeviceCgroupRules": ["c 1:3 rwx"]}
    status, answer = ours.create(bad)
    assert (status, answer["message"]) == (400, "invalid device cgroup rule format: 'c 1:3 rwx'")
    status, created = theirs.create(bad)
    assert status == 201
    status, answer = theirs.call("POST", f"/containers/{created['Id']}/start")
    assert answer["message"] == "invalid device cgroup rule format: 'c 1:3 rwx'"  # a 500 from dockerd 20.10


# -- OomScoreAdj -----------------------------------------------------------------------------------------

def _has_cap_sys_resource() -> bool:
    status = Path("/proc/self/status").read_text()
    effective = int(next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:")), 16)
    return bool(effective & (1 << 24))


def test_oom_score_adj_like_dockerd(daemon: Daemon, dockerd: Dockerd) -> None:  # noqa: F811
    script = "cat /proc/self/oom_score_adj /proc/1/oom_score_adj"
    for flags in ((), ("--oom-score-adj", "500"), ("--oom-score-adj", "1000")):
        ours, theirs = _both(daemon, dockerd, *flags, "busybox", "sh", "-c", script)
        assert theirs[0] == 0, theirs
        assert ours == theirs
        assert ours[1] == 2 * f"{flags[1] if flags else 0}\n"
    ours, theirs = _both(daemon, dockerd, "--oom-score-adj", "1001", "busybox", "true")
    assert ours[0] == theirs[0] == 125
    assert "Invalid value 1001, range for oom score adj is [-1000, 1000]" in ours[2]
    assert "Invalid value 1001, range for oom score adj is [-1000, 1000]" in theirs[2]


def test_negative_oom_score_adj(daemon: Daemon) -> None:
    """Lowering the score needs CAP_SYS_RESOURCE. Without it dockerd's runc fails obscurely; dockyard
    names the reason, and ``--rm`` removes the container that could not start, as dockerd does."""
    if _has_cap_sys_resource():
        assert _outcome(daemon.docker, "--oom-score-adj", "-500", "busybox", "cat", "/proc/self/oom_score_adj")[:2] \
            == (0, "-500\n")
        return
    result = daemon.docker("run", "--rm", "--name", "oom-negative", "--network", "none", "--oom-score-adj", "-500",
                           "busybox", "true", timeout=60)
    assert result.returncode == 125
    assert "lowering it needs CAP_SYS_RESOURCE" in result.stderr
    assert "oom-negative" not in daemon.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()


# -- MemorySwappiness, CpuCount, UsernsMode ---------------------------------------------------------------

def test_memory_swappiness(engines: tuple[Engine, Engine], daemon: Daemon) -> None:
    ours, theirs = engines
    machine = Machine.probe()
    for value in (-1, 0, 60):
        status_ours, created = ours.create({"MemorySwappiness": value})
        status_theirs, reference = theirs.create({"MemorySwappiness": value})
        assert status_ours == status_theirs == 201
        if machine.version == "1":
            assert created["Warnings"] == reference["Warnings"] == []
        shown = ours.inspect(created["Id"])["HostConfig"]["MemorySwappiness"]
        assert shown == theirs.inspect(reference["Id"])["HostConfig"]["MemorySwappiness"]
        assert shown == (None if value == -1 or machine.version == "2" else value)
    for value in (101, -2):
        status_ours, answer = ours.create({"MemorySwappiness": value})
        status_theirs, reference = theirs.create({"MemorySwappiness": value})
        if machine.version == "1":
            assert status_ours == status_theirs == 400
            assert answer["message"] == reference["message"] == (f"Invalid value: {value}, valid memory swappiness "
                                                                 "range is 0-100")
    if machine.version != "1":
        return
    started = daemon.docker("run", "-d", "--network", "none", "--memory-swappiness", "7", "busybox", "sleep", "60")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    ours.made.append(cid)
    assert Cgroup.of(cid).read("memory", "memory.swappiness").strip() == "7"


def test_cpu_count_and_userns_mode(engines: tuple[Engine, Engine]) -> None:
    ours, theirs = engines
    host = {"CpuCount": 3, "UsernsMode": "host"}
    status_ours, created = ours.create(host)
    status_theirs, reference = theirs.create(host)
    assert status_ours == status_theirs == 201
    assert created["Warnings"] == reference["Warnings"] == []
    fields = ("CpuCount", "UsernsMode")
    assert ({k: ours.inspect(created["Id"])["HostConfig"][k] for k in fields}
            == {k: theirs.inspect(reference["Id"])["HostConfig"][k] for k in fields} == host)
    # dockerd without userns-remap accepts any other mode and ignores it; dockyard refuses it.
    status, answer = ours.create({"UsernsMode": "private"})
    assert status == 400 and "only \"host\" is accepted" in answer["message"]


# -- VolumeDriver ----------------------------------------------------------------------------------------

def test_volume_driver_errors_only_when_a_volume_needs_it(engines: tuple[Engine, Engine]) -> None:
    ours, theirs = engines
    ours.volumes += ["vd-named", "vd-mount"]
    theirs.volumes += ["vd-named", "vd-mount"]
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"VolumeDriver": "nosuchdriver"}, {}),
        ({"VolumeDriver": "nosuchdriver", "Binds": ["/tmp:/host-tmp"]}, {}),
        ({"VolumeDriver": "nosuchdriver", "Mounts": [{"Type": "volume", "Source": "vd-mount", "Target": "/m"}]}, {}),
        ({"VolumeDriver": "local", "Binds": ["vd-named:/v"]}, {}),
        ({"VolumeDriver": "nosuchdriver", "Binds": ["vd-other:/v"]}, {}),
        ({"VolumeDriver": "nosuchdriver"}, {"Volumes": {"/anon": {}}}),
    ]
    for host, config in cases:
        status_ours, answer_ours = ours.create(host, **config)
        status_theirs, answer_theirs = theirs.create(host, **config)
        assert status_ours == status_theirs, (host, answer_ours, answer_theirs)
        if status_ours == 201:
            shown = ours.inspect(answer_ours["Id"])["HostConfig"]["VolumeDriver"]
            assert shown == theirs.inspect(answer_theirs["Id"])["HostConfig"]["VolumeDriver"] == host["VolumeDriver"]
        else:
            # "create NAME: error looking up volume plugin ...": an anonymous volume's name is random
            assert answer_ours["message"].split(":", 1)[1] == answer_theirs["message"].split(":", 1)[1]
            if "Binds" in host:
                assert answer_ours["message"] == answer_theirs["message"]


# -- Volume subpaths (API >= 1.45; dockerd 20.10 has none: dockerd's source is the reference) ---------------

@pytest.fixture()
def subpath_volume(daemon: Daemon) -> Iterator[str]:
    name = "subpath-vol"
    setup = ("mkdir -p /v/sub/deeper && echo inside > /v/sub/file && ln -s / /v/to-root && ln -s sub /v/to-sub "
             "&& ln -s ../.. /v/sub/up && ln -s /etc /v/abs-etc")
    try:
        made = _outcome(daemon.docker, "-v", f"{name}:/v", "busybox", "sh", "-c", setup)
        assert made[0] == 0, made
        yield name
    finally:
        removed = daemon.docker("volume", "rm", "-f", name)
        assert removed.returncode == 0, removed.stderr


def _with_subpath(daemon: Daemon, volume: str, subpath: str, script: str, readonly: bool = False) -> Outcome:
    spec = f"type=volume,src={volume},dst=/m,volume-subpath={subpath}" + (",readonly" if readonly else "")
    return _outcome(daemon.docker, "--mount", spec, "busybox", "sh", "-c", script)


def test_volume_subpath_mounts_that_directory(daemon: Daemon, subpath_volume: str) -> None:
    status, out, err = _with_subpath(daemon, subpath_volume, "sub", "ls /m; cat /m/file; echo new > /m/written")
    assert (status, out) == (0, "deeper\nfile\nup\ninside\n"), err
    assert _outcome(daemon.docker, "-v", f"{subpath_volume}:/v", "busybox", "cat", "/v/sub/written")[1] == "new\n"
    for inside in ("to-sub", "sub/../sub", "to-sub/deeper/.."):  # symlinks that stay inside are followed
        assert _with_subpath(daemon, subpath_volume, inside, "cat /m/file")[:2] == (0, "inside\n"), inside
    status, out, err = _with_subpath(daemon, subpath_volume, "sub", "touch /m/x", readonly=True)
    assert status != 0 and "Read-only file system" in err


@pytest.mark.parametrize("subpath", ["to-root", "to-root/etc", "sub/up", "sub/up/etc", "abs-etc"])
def test_volume_subpath_never_leaves_the_volume(daemon: Daemon, subpath_volume: str, subpath: str) -> None:
    """A security property: a symlink the container put in the volume must not mount the host.
    Resolved as dockerd's ``safepath`` resolves it: outside the volume is refused; a path that leaves
    it and does not exist (``sub/up/etc``) is "cannot access", as in dockerd."""
    status, out, err = _with_subpath(daemon, subpath_volume, subpath, "ls /m; cat /m/hostname /m/passwd")
    assert status in (125, 127) and out == "", (status, out)
    assert ("path concatenation escapes the base directory" in err
            or (subpath == "sub/up/etc" and "cannot access path" in err and "no such file or directory" in err)), err


def test_volume_subpath_errors(subpath_volume: str, engines: tuple[Engine, Engine]) -> None:
    """(``subpath_volume`` first: its teardown runs after the containers made here are removed.)"""
    ours, _ = engines

    def mount(source: str, subpath: str) -> dict[str, Any]:
        return {"Mounts": [{"Type": "volume", "Source": source, "Target": "/m", "VolumeOptions": {"Subpath": subpath}}]}

    status, answer = ours.create(mount(subpath_volume, "sub"), version="v1.44")
    assert (status, answer["message"]) == (400, "VolumeOptions.Subpath needs API v1.45 or newer")
    for subpath in ("../x", "/etc", "sub/../.."):
        status, answer = ours.create(mount(subpath_volume, subpath), version="v1.45")
        assert (status, answer["message"]) == (400, 'invalid mount config for type "volume": subpath must be a '
                                                    "relative path within the volume")
    status, answer = ours.create(mount("", "sub"), version="v1.45")
    assert (status, answer["message"]) == (400, 'invalid mount config for type "volume": must not set Subpath '
                                                "when using anonymous volumes")
    status, created = ours.create(mount(subpath_volume, "nosuch"), version="v1.45")
    assert status == 201
    status, answer = ours.call("POST", f"/containers/{created['Id']}/start", version="v1.45")
    assert status == 404
    assert answer["message"].startswith("cannot access path ") and answer["message"].endswith(
        "/_data/nosuch: no such file or directory")
    assert ours.inspect(created["Id"])["State"]["Status"] == "created"


# -- The HostConfig of a default create --------------------------------------------------------------------

# Keys whose value differs between dockerd 20.10 and the Docker 28 this compatibility targets:
# Annotations (API 1.43), KernelMemory* (removed in 25), MaskedPaths (28 masks powercap too), and
# RestartPolicy (dockerd >= 25 shows "no" for a policy not given, 20.10 "").
VERSION_DEPENDENT = {"Annotations", "KernelMemory", "KernelMemoryTCP", "MaskedPaths", "RestartPolicy"}


def _comparable(host_config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in host_config.items() if k not in VERSION_DEPENDENT}


def test_default_host_config_as_dockerd_shows_it(daemon: Daemon, dockerd: Dockerd) -> None:  # noqa: F811
    shown = []
    for engine in (daemon, dockerd):
        created = engine.docker("create", "--name", "default-hostconfig", "busybox", "true")
        assert created.returncode == 0, created.stderr
        try:
            out = engine.docker("inspect", "-f", "{{json .HostConfig}}", "default-hostconfig").stdout
            shown.append(_comparable(json.loads(out)))
        finally:
            engine.docker("rm", "-f", "default-hostconfig")
    assert shown[0] == shown[1]
    assert shown[0]["LogConfig"] == {"Type": "json-file", "Config": {}}


def test_docker_py_host_config_as_dockerd_shows_it(daemon: Daemon, dockerd: Dockerd) -> None:  # noqa: F811
    shown = []
    for host in (daemon.host, dockerd.host):
        client = docker.APIClient(base_url=host, version="1.41", timeout=60)
        try:
            cid = client.create_container("busybox", "true", host_config=client.create_host_config())["Id"]
            try:
                shown.append(_comparable(client.inspect_container(cid)["HostConfig"]))
            finally:
                client.remove_container(cid, force=True)
        finally:
            client.close()
    assert shown[0] == shown[1]
    assert shown[0]["Dns"] is None and shown[0]["Devices"] is None and shown[0]["PortBindings"] is None
