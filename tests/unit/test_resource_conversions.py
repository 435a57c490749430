"""Flag and value conversions of resource limits: CLI flags, Docker's validation, cgroup files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dockyard.cli import units as cli_units
from dockyard.cli.failure import FlagError
from dockyard.cli.flags import FlagSet
from dockyard.cli.options import resources as cli_resources
from dockyard.cli.verbs import stats as cli_stats
from dockyard.containers import stats as container_stats
from dockyard.containers.resources import Machine, parse_uint_list, resources_of, validate
from dockyard.errors import InvalidParameter
from dockyard.runtime import cgroups
from dockyard.runtime.devices import DeviceNode, cgroup_rules
from dockyard.runtime.limits import Resources, files, nano_cpus_to_cfs, shares_to_weight, swap_to_v2

MACHINE = Machine(version="1", cpus="0-3", mems="0", ncpu=4,
                  controllers={"cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer", "blkio"},
                  swap=True, oom_kill_disable=True)
MIB = 1024 * 1024


def _parse(*argv: str) -> Any:
    return FlagSet(cli_resources.FLAGS).parse(list(argv))


def test_ram_in_bytes_like_docker() -> None:
    assert cli_units.ram_in_bytes("64m") == 64 * MIB
    assert cli_units.ram_in_bytes("1.5g") == 1536 * MIB
    assert cli_units.ram_in_bytes("512kb") == 512 * 1024
    assert cli_units.ram_in_bytes("100") == 100
    assert cli_units.ram_in_bytes("lots") is None
    assert cli_units.ram_in_bytes("-1") is None


def test_resource_flags_fill_host_config() -> None:
    body: dict[str, Any] = {}
    cli_resources.apply(_parse("-m", "64m", "--memory-swap", "-1", "--cpus", "1.5", "-c", "512",
                               "--cpuset-cpus", "0,1", "--pids-limit", "10", "--oom-kill-disable",
                               "--device", "/dev/null:/dev/mynull:rw"), body)
    host = body["HostConfig"]
    assert host["Memory"] == 64 * MIB and host["MemorySwap"] == -1
    assert host["NanoCpus"] == 1_500_000_000 and host["CpuShares"] == 512
    assert host["CpusetCpus"] == "0,1" and host["PidsLimit"] == 10 and host["OomKillDisable"] is True
    assert host["Devices"] == [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",
                                "CgroupPermissions": "rw"}]


def test_bad_flag_values_use_dockers_words() -> None:
    with pytest.raises(FlagError, match=r"invalid argument \"x\" for \"-m, --memory\" flag: invalid size: 'x'"):
        cli_resources.apply(_parse("-m", "x"), {})
    with pytest.raises(FlagError, match="failed to parse abc as a rational number"):
        cli_resources.nano_cpus("abc")
    with pytest.raises(FlagError, match="invalid device mode: rwx"):
        cli_resources.parse_device("/dev/null:/dev/x:rwx")
    assert cli_resources.parse_device("/dev/fuse:rw") == {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse",
                                                           "CgroupPermissions": "rw"}


def test_swap_defaults_to_twice_memory_and_is_checked() -> None:
    host: dict[str, Any] = {"Memory": 64 * MIB}
    assert validate(host, MACHINE) == []
    assert host["MemorySwap"] == 128 * MIB
    with pytest.raises(InvalidParameter, match="Minimum memoryswap limit should be larger than memory limit"):
        validate({"Memory": 64 * MIB, "MemorySwap": 32 * MIB}, MACHINE)
    with pytest.raises(InvalidParameter, match="You should always set the Memory limit when using Memoryswap"):
        validate({"MemorySwap": 32 * MIB}, MACHINE)
    with pytest.raises(InvalidParameter, match="Minimum memory limit allowed is 6MB"):
        validate({"Memory": MIB}, MACHINE)
    with pytest.raises(InvalidParameter, match="Minimum memory limit can not be less than memory reservation"):
        validate({"Memory": 64 * MIB, "MemoryReservation": 128 * MIB}, MACHINE)
    unlimited: dict[str, Any] = {"Memory": 64 * MIB, "MemorySwap": -1}
    validate(unlimited, MACHINE)
    assert unlimited["MemorySwap"] == -1


def test_warnings_when_the_host_cannot() -> None:
    bare = Machine(version="2", cpus="0", mems="0", ncpu=1, controllers={"cpu"}, swap=False)
    host: dict[str, Any] = {"Memory": 64 * MIB, "PidsLimit": 5, "OomKillDisable": True}
    warnings = validate(host, bare)
    assert any("does not support memory limit" in w for w in warnings)
    assert any("pids limit" in w for w in warnings)
    assert any("OomKillDisable discarded" in w for w in warnings)
    assert host["Memory"] == 0 and host["PidsLimit"] is None and host["OomKillDisable"] is False


def test_cpu_rules() -> None:
    with pytest.raises(InvalidParameter, match="Range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs"):
        validate({"NanoCpus": 5_000_000_000}, MACHINE)
    with pytest.raises(InvalidParameter, match="Conflicting options: Nano CPUs and CPU Period"):
        validate({"NanoCpus": 1_000_000_000, "CpuPeriod": 50000}, MACHINE)
    with pytest.raises(InvalidParameter, match="CPU cfs period can not be less than 1ms"):
        validate({"CpuPeriod": 10}, MACHINE)
    with pytest.raises(InvalidParameter, match="Requested CPUs are not available - requested 5, available: 0-3"):
        validate({"CpusetCpus": "5"}, MACHINE)
    with pytest.raises(InvalidParameter, match="Invalid value 1-a for cpuset cpus: invalid format: 1-a"):
        validate({"CpusetCpus": "1-a"}, MACHINE)
    assert parse_uint_list("0-2,5") == {0, 1, 2, 5}


def test_pids_limit_zero_or_negative_is_unlimited() -> None:
    for value in (0, -1):
        host: dict[str, Any] = {"PidsLimit": value}
        validate(host, MACHINE)
        assert host["PidsLimit"] is None
        assert resources_of(host).pids_limit == 0


def test_cfs_and_weight_conversions() -> None:
    assert nano_cpus_to_cfs(1_500_000_000) == (100_000, 150_000)
    assert nano_cpus_to_cfs(10_000_000) == (100_000, 1_000)
    assert shares_to_weight(0) == 0
    assert shares_to_weight(2) == 1
    assert shares_to_weight(1024) == 39
    assert shares_to_weight(262144) == 10000
    assert swap_to_v2(-1, 64) == "max"
    assert swap_to_v2(128, 64) == "64"
    assert swap_to_v2(0, 64) is None


def test_cgroup_files_v1_and_v2() -> None:
    res = resources_of({"Memory": 64 * MIB, "MemorySwap": 128 * MIB, "NanoCpus": 500_000_000, "CpuShares": 1024,
                        "CpusetCpus": "0", "PidsLimit": 20, "OomKillDisable": True})
    v1 = files(res, "1")
    assert ("memory", "memory.limit_in_bytes", str(64 * MIB)) in v1
    assert ("memory", "memory.memsw.limit_in_bytes", str(128 * MIB)) in v1
    assert ("memory", "memory.oom_control", "1") in v1
    assert ("cpu", "cpu.cfs_quota_us", "50000") in v1 and ("cpu", "cpu.cfs_period_us", "100000") in v1
    assert ("cpu", "cpu.shares", "1024") in v1 and ("pids", "pids.max", "20") in v1
    v2 = files(res, "2")
    assert ("memory", "memory.max", str(64 * MIB)) in v2
    assert ("memory", "memory.swap.max", str(64 * MIB)) in v2
    assert ("cpu", "cpu.max", "50000 100000") in v2 and ("cpu", "cpu.weight", "39") in v2
    assert files(Resources(pids_limit=-1, cpu_quota=-1), "1") == [("cpu", "cpu.cfs_quota_us", "-1"),
                                                                  ("pids", "pids.max", "max")]


def test_device_rules() -> None:
    node = DeviceNode(path="/dev/mynull", kind="c", major=1, minor=3, mode=0o666, uid=0, gid=0, access="rw")
    rules = cgroup_rules([node], privileged=False)
    assert rules[0] == ("devices.deny", "a *:* rwm")
    assert ("devices.allow", "c 136:* rwm") in rules and ("devices.allow", "c 10:200 rwm") in rules
    assert rules[-1] == ("devices.allow", "c 1:3 rw")
    assert cgroup_rules([node], privileged=True) == [("devices.allow", "a *:* rwm")]


def test_mode_detection_treats_hybrid_as_v1(tmp_path: Path) -> None:
    (tmp_path / "unified").mkdir()  # hybrid: a tmpfs of v1 hierarchies, cgroup2 only at unified/
    (tmp_path / "unified" / "cgroup.controllers").write_text("")
    assert cgroups.mode(tmp_path) == "1"
    (tmp_path / "cgroup.controllers").write_text("")
    assert cgroups.mode(tmp_path) == "2"  # a unified hierarchy without controllers is still v2 (devices!)
    assert cgroups.Cgroup.of("abc", tmp_path).dirs == {"devices": tmp_path / "dockyard" / "abc"}
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    assert cgroups.mode(tmp_path) == "2"
    cg = cgroups.Cgroup.of("abc", tmp_path)
    assert cg.version == "2" and cg.dirs["memory"] == cg.dirs["devices"] == tmp_path / "dockyard" / "abc"


def test_v1_without_the_devices_hierarchy_refuses_rules(tmp_path: Path) -> None:
    cg = cgroups.Cgroup("abc", "1", {"memory": tmp_path / "memory" / "dockyard" / "abc"})
    with pytest.raises(OSError, match="devices cgroup"):
        cg.confine_devices(cgroup_rules([], privileged=False))
    cg.confine_devices(cgroup_rules([], privileged=True))  # allows everything: nothing to enforce
    with pytest.raises(OSError, match="invalid device rule"):
        cg.confine_devices([("devices.allow", "c 1:3 rwx")])


def test_v2_refused_device_program_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(directory: Path, program: bytes) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(cgroups, "attach_device_program", refuse)
    cg = cgroups.Cgroup("abc", "2", {"devices": tmp_path})
    with pytest.raises(OSError, match="cannot attach the device program"):
        cg.confine_devices(cgroup_rules([], privileged=False))


def test_stats_row_like_dockers_cli() -> None:
    sample = {
        "id": "a" * 64, "name": "/web", "read": "2024-01-01T00:00:01Z",
        "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
        "memory_stats": {"usage": 3 * MIB, "limit": 64 * MIB, "stats": {"total_inactive_file": MIB}},
        "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 1000}, {"op": "Write", "value": 0}]},
        "pids_stats": {"current": 3},
    }
    row = cli_stats.row(sample, trunc=True)
    assert row["ID"] == "a" * 12 and row["Name"] == "web"
    assert row["CPUPerc"] == "40.00%"
    assert row["MemUsage"] == "2MiB / 64MiB" and row["MemPerc"] == "3.12%"
    assert row["BlockIO"] == "1kB / 0B" and row["NetIO"] == "0B / 0B" and row["PIDs"] == "3"


def test_net_dev_counters_in_dockers_keys() -> None:
    text = ("Inter-|   Receive                                                |  Transmit\n"
            " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
            "    lo:     120       2    0    0    0     0          0         0      120       2    0    0    0     0       0          0\n"
            "  eth0:1234567      89    1    2    0     0          0         3     4321      21    4    5    0     0       0          0\n")
    assert container_stats.parse_net_dev(text) == {
        "lo": {"rx_bytes": 120, "rx_packets": 2, "rx_errors": 0, "rx_dropped": 0,
               "tx_bytes": 120, "tx_packets": 2, "tx_errors": 0, "tx_dropped": 0},
        "eth0": {"rx_bytes": 1234567, "rx_packets": 89, "rx_errors": 1, "rx_dropped": 2,
                 "tx_bytes": 4321, "tx_packets": 21, "tx_errors": 4, "tx_dropped": 5}}
