"""Resource limits on real cgroups: memory/OOM, pids, cpu, cpuset, devices, stats, update, pause.

Every test removes its containers (``rm -f`` in ``finally``) and checks that no cgroup directory of
the container remains under ``/sys/fs/cgroup``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.containers import stats as statistics
from dockyard.runtime.cgroups import Cgroup
from tests.integration.daemon_harness import DOCKER_20, Daemon

pytestmark = pytest.mark.root


@pytest.fixture()
def name(daemon: Daemon) -> Iterator[str]:
    """A container name; the container is removed (forced) and its cgroups checked gone after the test."""
    value = "res-" + secrets.token_hex(4)
    yield value
    r = daemon.cli("inspect", "--format", "{{.Id}}", value)
    cid = r.stdout.strip()
    daemon.cli("rm", "-f", value)
    if cid:
        assert not Cgroup.of(cid).exists(), f"cgroup of {cid[:12]} left behind"


def _id(daemon: Daemon, name: str) -> str:
    return daemon.cli("inspect", "--format", "{{.Id}}", name, check=True).stdout.strip()


def _inspect(daemon: Daemon, name: str) -> dict:
    return json.loads(daemon.cli("inspect", name, check=True).stdout)[0]


def _file(cid: str, controller: str, filename: str) -> str:
    return Cgroup.of(cid).read(controller, filename).strip()


def test_memory_limit_oom_kills_with_137(daemon: Daemon, name: str) -> None:
    r = daemon.cli("run", "--name", name, "-m", "16m", "busybox", "sh", "-c", "x=a; while true; do x=$x$x; done",
                   timeout=60)
    assert r.returncode == 137, r.stderr
    state = _inspect(daemon, name)["State"]
    assert state["OOMKilled"] is True
    assert state["ExitCode"] == 137
    host = _inspect(daemon, name)["HostConfig"]
    assert host["Memory"] == 16 * 1024 * 1024
    assert host["MemorySwap"] == 32 * 1024 * 1024  # Docker's default: twice the memory
    assert not Cgroup.of(_id(daemon, name)).exists()  # removed at exit, not only at rm


def test_memory_files_and_swap_rules(daemon: Daemon, name: str) -> None:
    daemon.cli("run", "-d", "--name", name, "-m", "64m", "--memory-swap", "-1", "--memory-reservation", "32m",
               "busybox", "sleep", "60", check=True)
    cid = _id(daemon, name)
    assert _file(cid, "memory", "memory.limit_in_bytes") == str(64 * 1024 * 1024)
    assert _file(cid, "memory", "memory.soft_limit_in_bytes") == str(32 * 1024 * 1024)
    assert int(_file(cid, "memory", "memory.memsw.limit_in_bytes")) > 1 << 60  # unlimited
    bad = daemon.cli("run", "--rm", "-m", "64m", "--memory-swap", "32m", "busybox", "true")
    assert bad.returncode == 125
    assert "Minimum memoryswap limit should be larger than memory limit, see usage" in bad.stderr
    small = daemon.cli("run", "--rm", "-m", "1m", "busybox", "true")
    assert "Minimum memory limit allowed is 6MB" in small.stderr


def test_pids_limit_makes_fork_fail(daemon: Daemon, name: str) -> None:
    r = daemon.cli("run", "--name", name, "--pids-limit", "4", "busybox", "sh", "-c",
                   "for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; echo end", timeout=60)
    assert "can't fork" in r.stderr or "Resource temporarily unavailable" in r.stderr, (r.stdout, r.stderr)


def test_cpu_files_hold_dockers_values(daemon: Daemon, name: str) -> None:
    daemon.cli("run", "-d", "--name", name, "--cpus", "0.5", "--cpu-shares", "512", "--cpuset-cpus", "0",
               "--cpuset-mems", "0", "--pids-limit", "50", "busybox", "sleep", "60", check=True)
    cid = _id(daemon, name)
    assert _file(cid, "cpu", "cpu.cfs_period_us") == "100000"
    assert _file(cid, "cpu", "cpu.cfs_quota_us") == "50000"
    assert _file(cid, "cpu", "cpu.shares") == "512"
    assert _file(cid, "cpuset", "cpuset.cpus") == "0"
    assert _file(cid, "pids", "pids.max") == "50"
    host = _inspect(daemon, name)["HostConfig"]
    assert host["NanoCpus"] == 500_000_000 and host["CpuShares"] == 512
    # the container's processes are in it
    pid = _inspect(daemon, name)["State"]["Pid"]
    assert pid in Cgroup.of(cid).pids()
    bad = daemon.cli("run", "--rm", "--cpuset-cpus", "0-4096", "busybox", "true")
    assert "Requested CPUs are not available" in bad.stderr
    both = daemon.cli("run", "--rm", "--cpus", "1", "--cpu-quota", "50000", "busybox", "true")
    assert "Conflicting options: Nano CPUs and CPU Quota cannot both be set" in both.stderr


def test_update_changes_files_live(daemon: Daemon, name: str) -> None:
    daemon.cli("run", "-d", "--name", name, "-m", "64m", "busybox", "sleep", "60", check=True)
    cid = _id(daemon, name)
    r = daemon.docker("update", "-m", "128m", "--memory-swap", "256m", "--cpu-shares", "256", "--pids-limit", "20",
                      name)
    assert r.returncode == 0, r.stderr
    assert _file(cid, "memory", "memory.limit_in_bytes") == str(128 * 1024 * 1024)
    assert _file(cid, "memory", "memory.memsw.limit_in_bytes") == str(256 * 1024 * 1024)
    assert _file(cid, "cpu", "cpu.shares") == "256"
    assert _file(cid, "pids", "pids.max") == "20"
    host = _inspect(daemon, name)["HostConfig"]
    assert host["Memory"] == 128 * 1024 * 1024 and host["PidsLimit"] == 20
    r = daemon.cli("update", "--cpus", "1.5", name)
    assert r.returncode == 0, r.stderr
    assert _file(cid, "cpu", "cpu.cfs_quota_us") == "150000"
    r = daemon.cli("update", "-m", "512m", name)
    assert "Memory limit should be smaller than already set memoryswap limit" in r.stderr


def test_stats_no_stream_with_docker_28(daemon: Daemon, name: str) -> None:
    daemon.cli("run", "-d", "--name", name, "-m", "64m", "busybox", "sleep", "60", check=True)
    r = daemon.docker("stats", "--no-stream", name, timeout=60)
    assert r.returncode == 0, r.stderr
    header, row = r.stdout.splitlines()[:2]
    assert header.split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%",
                              "NET", "I/O", "BLOCK", "I/O", "PIDS"]
    assert name in row and "/ 64MiB" in row
    ours = daemon.cli("stats", "--no-stream", name, timeout=60)
    assert ours.returncode == 0, ours.stderr
    assert name in ours.stdout and "/ 64MiB" in ours.stdout
    api = daemon.client().api
    sample = api.stats(name, stream=False)
    assert sample["memory_stats"]["limit"] == 64 * 1024 * 1024
    assert sample["pids_stats"]["current"] >= 1
    assert sample["cpu_stats"]["system_cpu_usage"] > sample["precpu_stats"]["system_cpu_usage"] > 0
    assert set(sample["networks"]) == {"eth0"}  # the default bridge's veth, as with dockerd
    stream = api.stats(name, decode=True, stream=True)
    first, second = next(stream), next(stream)
    assert second["preread"] == first["read"]
    assert second["precpu_stats"]["cpu_usage"]["total_usage"] == first["cpu_stats"]["cpu_usage"]["total_usage"]
    every = daemon.cli("stats", "--no-stream", timeout=60)  # no names: every running container
    assert every.returncode == 0 and name in every.stdout, every.stderr
    old = daemon.docker("stats", "--no-stream", name, client=DOCKER_20, timeout=60)
    assert old.returncode == 0 and "/ 64MiB" in old.stdout, old.stderr


def test_stats_networks_are_the_containers_own_interfaces(daemon: Daemon, name: str) -> None:
    # A veth pair made inside the container's own network namespace (NET_ADMIN there touches no host
    # interface): Docker's shape, keyed by interface name, without lo; traffic on it shows.
    script = ("ip link add v0 type veth && for i in $(ls /sys/class/net); do ip link set $i up; done && "
              "ip addr add 10.77.0.1/24 dev v0 && cat /proc/net/dev > /tmp/before && "
              "touch /tmp/ready && sleep 60")
    daemon.cli("run", "-d", "--name", name, "--cap-add", "NET_ADMIN", "busybox", "sh", "-c", script, check=True)
    plain = daemon.cli("run", "-d", "--network", "none", "busybox", "sleep", "60", check=True).stdout.strip()
    host = daemon.cli("run", "-d", "--network", "host", "busybox", "sleep", "60", check=True).stdout.strip()
    try:
        api = daemon.client().api
        deadline = time.monotonic() + 20
        while daemon.cli("exec", name, "test", "-e", "/tmp/ready").returncode != 0:
            assert time.monotonic() < deadline, "the container did not set up its veth pair"
            time.sleep(0.1)
        before = daemon.cli("exec", name, "cat", "/tmp/before", check=True).stdout
        names = {line.split(":")[0].strip() for line in before.splitlines()[2:]}
        networks = api.stats(name, stream=False, one_shot=True)["networks"]
        assert set(networks) == names - {"lo"} and {"v0"} < set(networks)
        keys = {f"{d}_{k}" for d in ("rx", "tx") for k in ("bytes", "packets", "errors", "dropped")}
        assert all(set(counters) == keys for counters in networks.values())
        earlier = statistics.parse_net_dev(before)
        assert all(networks[n][k] >= earlier[n][k] for n in networks for k in keys)  # counters only grow
        daemon.cli("exec", name, "ping", "-c", "3", "-W", "1", "10.77.0.2")  # sent out of v0, unanswered
        later = api.stats(name, stream=False, one_shot=True)["networks"]
        assert later["v0"]["tx_packets"] >= networks["v0"]["tx_packets"] + 1
        for other in (plain, host):  # only lo, or the host's namespace: no networks, as with dockerd
            assert "networks" not in api.stats(other, stream=False, one_shot=True)
    finally:
        daemon.cli("rm", "-f", plain, host)


def _counter(daemon: Daemon, cid: str) -> int:
    root = Path(_inspect(daemon, cid)["GraphDriver"]["Data"]["UpperDir"])
    try:
        return len((root / "tmp" / "count").read_text())
    except FileNotFoundError:
        return 0


def test_pause_unpause_docker_cli_and_docker_py(daemon: Daemon, name: str) -> None:
    daemon.cli("run", "-d", "--name", name, "busybox", "sh", "-c",
               "while true; do echo -n x >> /tmp/count; sleep 0.05; done", check=True)
    cid = _id(daemon, name)
    r = daemon.docker("pause", name)
    assert r.returncode == 0, r.stderr
    assert _inspect(daemon, name)["State"]["Status"] == "paused"
    assert _file(cid, "freezer", "freezer.state") == "FROZEN"
    before = _counter(daemon, cid)
    time.sleep(0.5)
    assert _counter(daemon, cid) == before  # frozen: the counter stops advancing
    again = daemon.docker("pause", name)
    assert f"Container {cid} is already paused" in again.stderr
    r = daemon.docker("unpause", name)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 10
    while _counter(daemon, cid) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _counter(daemon, cid) > before
    assert f"Container {cid} is not paused" in daemon.docker("unpause", name).stderr
    container = daemon.client().containers.get(name)
    container.pause()
    container.reload()
    assert container.status == "paused"
    container.unpause()
    container.reload()
    assert container.status == "running"
    # a paused container is killed and removed with rm -f (thawed after SIGKILL)
    daemon.cli("pause", name, check=True)
    r = daemon.cli("rm", "-f", name, timeout=30)
    assert r.returncode == 0, r.stderr
    assert not Cgroup.of(cid).exists()


def test_kill_and_stop_of_paused_container(daemon: Daemon, name: str) -> None:
    daemon.cli("run", "-d", "--name", name, "busybox", "sleep", "60", check=True)
    daemon.cli("pause", name, check=True)
    r = daemon.docker("kill", name)
    assert r.returncode == 0, r.stderr
    state = _inspect(daemon, name)["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137
    assert "is not running" in daemon.cli("pause", name).stderr


def test_device_mapping_and_device_cgroup(daemon: Daemon, name: str) -> None:
    r = daemon.cli("run", "--name", name, "--device", "/dev/null:/dev/mynull", "busybox", "sh", "-c",
                   "echo hi > /dev/mynull && ls -l /dev/mynull", timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("crw")
    blocks = sorted(Path("/sys/dev/block").iterdir())
    # With no block device on the host, loop0's number: the devices cgroup must refuse it all the same.
    major, minor = blocks[0].name.split(":") if blocks else ("7", "0")
    r = daemon.cli("run", "--rm", "busybox", "sh", "-c",
                   f"mknod /tmp/blk b {major} {minor} && head -c 1 /tmp/blk >/dev/null", timeout=60)
    assert r.returncode != 0
    assert "Operation not permitted" in r.stderr
    bad = daemon.cli("run", "--rm", "--device", "/etc/passwd", "busybox", "true")
    assert "error gathering device information" in bad.stderr


def test_info_reports_cgroup_features(daemon: Daemon) -> None:
    info = daemon.client().info()
    assert info["MemoryLimit"] is True and info["CpuCfsQuota"] is True and info["PidsLimit"] is True
    assert info["CgroupVersion"] == Cgroup.of("x").version


def test_cgroup_removed_after_daemon_restart(fresh_daemon: Daemon) -> None:
    d = fresh_daemon
    d.cli("run", "-d", "--name", "keep", "-m", "32m", "busybox", "sleep", "60", check=True)
    d.cli("run", "-d", "--name", "ends", "-m", "16m", "busybox", "sh", "-c",
          "sleep 1; x=a; while true; do x=$x$x; done", check=True)
    keep, ends = _id(d, "keep"), _id(d, "ends")
    try:
        d.kill9()
        deadline = time.monotonic() + 30
        while Cgroup.of(ends).pids() and time.monotonic() < deadline:  # OOM-killed while no daemon runs
            time.sleep(0.1)
        d.start()
        state = _inspect(d, "ends")["State"]
        assert state["Status"] == "exited" and state["OOMKilled"] is True
        assert not Cgroup.of(ends).exists()
        assert Cgroup.of(keep).exists()
        d.cli("rm", "-f", "keep", check=True)
        assert not Cgroup.of(keep).exists()
    finally:
        d.cli("rm", "-f", "keep", "ends")
        for cid in (keep, ends):
            Cgroup.of(cid).remove()
