"""HostConfig fields dockerd accepts at create (device cgroup rules, OOM score, swappiness, CpuCount,
UsernsMode, VolumeDriver, volume subpaths) and the HostConfig defaults inspect shows, without a daemon."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from dockyard.cli.failure import FlagError
from dockyard.cli.flags import FlagSet
from dockyard.cli.options import resources as resource_flags
from dockyard.cli.options import security as security_flags
from dockyard.containers import mounts
from dockyard.containers.config import build_host_config
from dockyard.containers.resources import Machine, resources_of, validate, validate_devices
from dockyard.errors import InvalidParameter, NotFound
from dockyard.runtime import limits
from dockyard.runtime.devices import cgroup_rules, check_rule
from dockyard.runtime.mounts import open_beneath

V1 = Machine(version="1", ncpu=2, controllers={"memory", "cpu", "cpuset", "pids", "devices"}, swappiness=True)
V2 = Machine(version="2", ncpu=2, controllers={"memory", "cpu", "cpuset", "pids"}, swap=True)


@pytest.mark.parametrize("rule", ["c 1:3 rwm", "b *:* m", "a 7:* r", "c 10:229 rw", "c *:1 w"])
def test_device_rule_accepted(rule: str) -> None:
    assert check_rule(rule) == rule


@pytest.mark.parametrize("rule", ["x 1:3 rwm", "c 1:3", "c 1:3 rwmx", "c 1 3 rwm", "c -1:3 r", " c 1:3 r",
                                  "c 1:3 r\n", "c 1:3 q", "c 99999999999999999999:1 r"])
def test_device_rule_refused_with_dockerds_message(rule: str) -> None:
    with pytest.raises(ValueError, match=r"invalid (major value in )?device cgroup rule format"):
        check_rule(rule)
    with pytest.raises(InvalidParameter, match="device cgroup rule format"):
        validate_devices({"DeviceCgroupRules": [rule]})


def test_device_rules_follow_the_defaults_and_a_means_char_and_block() -> None:
    writes = cgroup_rules([], False, ["c 10:229 rw", "a 7:0 r"])
    assert writes[0] == ("devices.deny", "a *:* rwm")
    assert writes[-3:] == [("devices.allow", "c 10:229 rw"), ("devices.allow", "c 7:0 r"),
                           ("devices.allow", "b 7:0 r")]
    # v1 reads any "a ..." line as "allow everything": none may reach it but the privileged one
    assert all(not rule.startswith("a ") for name, rule in writes if name == "devices.allow")
    assert cgroup_rules([], True, ["c 1:1 r"]) == [("devices.allow", "a *:* rwm")]
    with pytest.raises(InvalidParameter, match="expected a list of strings"):
        validate_devices({"DeviceCgroupRules": "c 1:3 r"})


def test_memory_swappiness_as_dockerd() -> None:
    host: dict[str, Any] = {"MemorySwappiness": -1}
    assert validate(host, V1) == [] and host["MemorySwappiness"] is None
    host = {"MemorySwappiness": 30}
    assert validate(host, V1) == [] and host["MemorySwappiness"] == 30
    assert ("memory", "memory.swappiness", "30") in limits.files(resources_of(host), "1")
    assert not any(name == "memory.swappiness" for _, name, _ in limits.files(resources_of({}), "1"))
    assert not any(name == "memory.swappiness" for _, name, _ in limits.files(resources_of(host), "2"))
    with pytest.raises(InvalidParameter, match="Invalid value: 101, valid memory swappiness range is 0-100"):
        validate({"MemorySwappiness": 101}, V1)
    host = {"MemorySwappiness": 0}
    validate(host, V1)
    assert ("memory", "memory.swappiness", "0") in limits.files(resources_of(host), "1")
    # cgroup v2 has no swappiness: discarded with dockerd's warning, before the range check
    host = {"MemorySwappiness": 200}
    assert validate(host, V2) == ["Your kernel does not support memory swappiness capabilities or the cgroup is "
                                  "not mounted. Memory swappiness discarded."]
    assert host["MemorySwappiness"] is None


def test_oom_score_adj_range_and_cpu_count() -> None:
    for value in (-1000, 0, 1000):
        validate({"OomScoreAdj": value}, V1)
    for value in (-1001, 1001):
        with pytest.raises(InvalidParameter, match=rf"Invalid value {value}, range for oom score adj is "
                                                   r"\[-1000, 1000\]"):
            validate({"OomScoreAdj": value}, V1)
    host = build_host_config({"CpuCount": 3, "OomScoreAdj": 5, "DeviceCgroupRules": ["c 1:3 r"],
                              "MemorySwappiness": 10})
    assert validate(host, V1) == []
    assert (host["CpuCount"], host["OomScoreAdj"]) == (3, 5)  # CpuCount: kept and ignored, as dockerd on Linux
    with pytest.raises(InvalidParameter, match="CpuCount"):
        validate({"CpuCount": "3"}, V1)


def test_userns_mode_and_defaults_in_effect() -> None:
    for mode in ("", "host"):
        assert build_host_config({"UsernsMode": mode})["UsernsMode"] == mode
    with pytest.raises(InvalidParameter, match="only \"host\" is accepted"):
        build_host_config({"UsernsMode": "private"})
    host = build_host_config({"ShmSize": 0, "CgroupnsMode": ""})
    assert (host["ShmSize"], host["CgroupnsMode"], host["OomKillDisable"]) == (67108864, "host", False)
    assert build_host_config({})["LogConfig"] == {"Type": "", "Config": {}}


def test_volume_driver_names_the_driver_of_binds_and_image_volumes_only() -> None:
    host = {"VolumeDriver": "foo", "Binds": ["named:/a", "/tmp:/b", "/c"],
            "Mounts": [{"Type": "volume", "Source": "other", "Target": "/d"}]}
    planned = {m["Destination"]: m for m in mounts.plan(host, {}, ["/e"], lambda ref: None)}
    assert {d: m.get("Driver") for d, m in planned.items()} == {"/a": "foo", "/b": None, "/c": "foo",
                                                                "/d": "local", "/e": "foo"}
    with pytest.raises(InvalidParameter, match="VolumeDriver"):
        mounts.plan({"VolumeDriver": 1}, {}, [], lambda ref: None)


@pytest.mark.parametrize(("path", "local"), [("a", True), ("a/b", True), (".", True), ("a/..", True),
                                             ("a/../b", True), ("..", False), ("../a", False), ("a/../..", False),
                                             ("/a", False), ("", False)])
def test_is_local_as_go(path: str, local: bool) -> None:
    assert mounts.is_local(path) is local


def test_subpath_parsing() -> None:
    def volume_mount(source: str, subpath: str) -> dict[str, Any]:
        return {"Type": "volume", "Source": source, "Target": "/m", "VolumeOptions": {"Subpath": subpath}}

    assert mounts.parse_mount(volume_mount("vol", "a/b"))["Subpath"] == "a/b"
    with pytest.raises(InvalidParameter, match='"volume": must not set Subpath when using anonymous volumes'):
        mounts.parse_mount(volume_mount("", "a"))
    for bad in ("../a", "/etc", "a/../.."):
        with pytest.raises(InvalidParameter, match='"volume": subpath must be a relative path within the volume'):
            mounts.parse_mount(volume_mount("vol", bad))


def test_subpath_resolution_stays_in_the_volume(tmp_path: Path) -> None:
    base = tmp_path / "_data"
    (base / "sub" / "deeper").mkdir(parents=True)
    (base / "inner").symlink_to("sub")
    (base / "root").symlink_to("/")
    (base / "sub" / "up").symlink_to("../..")
    (base / "abs").symlink_to(str(base / "sub"))
    assert mounts.resolve_subpath(str(base), "sub/deeper") == "sub/deeper"
    assert mounts.resolve_subpath(str(base), "inner/deeper") == "sub/deeper"
    assert mounts.resolve_subpath(str(base), ".") == "."
    for escaping in ("root", "root/etc", "sub/up"):
        with pytest.raises(InvalidParameter, match="path concatenation escapes the base directory"):
            mounts.resolve_subpath(str(base), escaping)
    with pytest.raises(NotFound, match=r"cannot access path .*/nosuch: .*no such file or directory"):
        mounts.resolve_subpath(str(base), "nosuch")


def test_runtime_opens_the_subpath_without_following_symlinks(tmp_path: Path) -> None:
    """The runtime's second look: what the daemon resolved is opened again with no symlink allowed,
    so a symlink swapped in after the daemon's check fails instead of leading out of the volume."""
    base = tmp_path / "_data"
    (base / "sub").mkdir(parents=True)
    fd = open_beneath(str(base), "sub")
    try:
        assert os.path.samefile(f"/proc/self/fd/{fd}", base / "sub")
    finally:
        os.close(fd)
    (base / "sub").rmdir()
    (base / "sub").symlink_to("/")
    for path in ("sub", "../..", "sub/etc"):
        with pytest.raises(OSError, match="cannot access path") as caught:
            open_beneath(str(base), path)
        assert caught.value.errno in (errno.ELOOP, errno.EXDEV)
    (tmp_path / "link").symlink_to(base)
    with pytest.raises(OSError):
        open_beneath(str(tmp_path / "link"), ".")  # the volume's own directory may not be a symlink


def _cli(*argv: str) -> dict[str, Any]:
    parsed = FlagSet([*resource_flags.FLAGS, *security_flags.FLAGS]).parse(list(argv))
    body: dict[str, Any] = {}
    resource_flags.apply(parsed, body)
    security_flags.apply(parsed, body)
    return dict(body["HostConfig"])


def test_cli_flags() -> None:
    host = _cli("--device-cgroup-rule", "c 1:3 rw", "--device-cgroup-rule=b *:* m", "--oom-score-adj", "-500",
                "--memory-swappiness", "0", "--userns", "host")
    assert host == {"DeviceCgroupRules": ["c 1:3 rw", "b *:* m"], "OomScoreAdj": -500, "MemorySwappiness": 0,
                    "UsernsMode": "host"}
    assert _cli() == {}
    with pytest.raises(FlagError, match="invalid argument \"x 1:3 r\" for \"--device-cgroup-rule\" flag: invalid "
                                        "device cgroup format 'x 1:3 r'"):
        _cli("--device-cgroup-rule", "x 1:3 r")
    with pytest.raises(FlagError, match="invalid value: 101. Valid memory swappiness range is 0-100"):
        _cli("--memory-swappiness", "101")
    assert _cli("--memory-swappiness", "-1") == {"MemorySwappiness": -1}
    with pytest.raises(FlagError, match="--userns: invalid USER mode"):
        _cli("--userns", "private")
