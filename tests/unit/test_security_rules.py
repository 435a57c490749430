"""Capability sets, seccomp profile compilation, HostConfig security checks and the CLI's security
flags (no root; nothing is applied to a process here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.cli.failure import FlagError
from dockyard.cli.flags import FlagSet
from dockyard.cli.options import security as cli_security
from dockyard.containers import security as rules
from dockyard.containers.config import build_host_config
from dockyard.errors import InvalidParameter
from dockyard.runtime import capabilities as caps
from dockyard.runtime import seccomp

DEFAULT = list(caps.DEFAULT_CAPABILITIES)


def test_default_mask_is_dockers() -> None:
    assert caps.mask(DEFAULT) == 0xA80425FB
    assert caps.effective_set(None, None) == sorted(DEFAULT, key=caps.CAPABILITIES.__getitem__)


@pytest.mark.parametrize("add, drop, expected", [
    (["net_admin"], None, {*DEFAULT, "CAP_NET_ADMIN"}),
    (None, ["CAP_CHOWN", "Mknod"], set(DEFAULT) - {"CAP_CHOWN", "CAP_MKNOD"}),
    (["CHOWN"], ["ALL"], {"CAP_CHOWN"}),
    (["CHOWN"], ["CHOWN"], set(DEFAULT)),  # drops first, then adds
])
def test_cap_add_drop_order(add: list[str] | None, drop: list[str] | None, expected: set[str]) -> None:
    assert set(caps.effective_set(add, drop)) == expected


def test_cap_add_all_minus_drops_and_privileged() -> None:
    every = set(caps.supported())
    assert set(caps.effective_set(["ALL"], ["NET_RAW"])) == every - {"CAP_NET_RAW"}
    assert set(caps.effective_set(["CHOWN"], ["ALL"], privileged=True)) == every


def test_unknown_capability() -> None:
    with pytest.raises(InvalidParameter, match='unknown capability: "CAP_BOGUS"'):
        caps.normalize("bogus")


def _names(flt: seccomp.Filter, action: int) -> set[str]:
    return {r.syscall for r in flt.rules if r.action == action}


ALLOW = 0x7FFF0000


def test_default_profile_blocks_the_dangerous_calls() -> None:
    flt = seccomp.compile_profile(seccomp.read_default(), DEFAULT, machine="x86_64", kernel="6.1.0")
    allowed = _names(flt, ALLOW)
    assert flt.default_action == 0x00050000 | 1  # ERRNO(EPERM)
    assert flt.arches == ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")
    for name in ("keyctl", "add_key", "request_key", "mount", "umount2", "kexec_load", "open_by_handle_at",
                 "bpf", "perf_event_open", "unshare", "setns", "reboot", "swapon", "init_module",
                 "finit_module", "delete_module", "acct", "pivot_root"):
        assert name not in allowed, name
    assert {"read", "execve", "arch_prctl", "ptrace", "chroot"} <= allowed
    clone = [r for r in flt.rules if r.syscall == "clone"]
    assert clone == [seccomp.Rule("clone", ALLOW, ((0, 7, 0x7E020000, 0),))]  # no namespace flags
    assert seccomp.Rule("clone3", 0x00050000 | 38) in flt.rules  # ENOSYS: libc falls back to clone


def test_capability_conditional_rules() -> None:
    flt = seccomp.compile_profile(seccomp.read_default(), [*DEFAULT, "CAP_SYS_ADMIN"], machine="x86_64",
                                  kernel="6.1.0")
    allowed = _names(flt, ALLOW)
    assert {"mount", "unshare", "setns", "clone"} <= allowed
    assert all(not r.args for r in flt.rules if r.syscall == "clone")
    old = seccomp.compile_profile(seccomp.read_default(), DEFAULT, machine="x86_64", kernel="4.4.0")
    assert "ptrace" not in _names(old, ALLOW)


def test_profile_format_details() -> None:
    profile = json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                          "syscalls": [
                              {"name": "mkdir", "action": "SCMP_ACT_ERRNO"},
                              {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                               "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                                        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
                              {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]})
    flt = seccomp.compile_profile(profile, DEFAULT, machine="x86_64")
    assert flt.rules == (
        seccomp.Rule("mkdir", 0x00050000 | 1),
        seccomp.Rule("personality", 0x00050000 | 22, ((0, 4, 1, 0),)),  # same index: alternatives
        seccomp.Rule("personality", 0x00050000 | 22, ((0, 4, 2, 0),)),
    )  # the getpid rule repeats the default action and is left out
    with pytest.raises(InvalidParameter, match="Decoding seccomp profile failed"):
        seccomp.parse("{not json")
    with pytest.raises(InvalidParameter, match="unsupported action"):
        seccomp.parse(json.dumps({"defaultAction": "SCMP_ACT_NOPE"}))


def test_host_config_defaults_as_docker_shows_them() -> None:
    host = build_host_config({})
    assert host["CapAdd"] is None and host["CapDrop"] is None and host["Privileged"] is False
    assert host["IpcMode"] == "private" and host["PidMode"] == "" and host["UTSMode"] == ""
    assert "/proc/kcore" in host["MaskedPaths"] and "/proc/sysrq-trigger" in host["ReadonlyPaths"]
    privileged = build_host_config({"Privileged": True})
    assert privileged["MaskedPaths"] is None and privileged["ReadonlyPaths"] is None
    spec = rules.security_spec(build_host_config({"SecurityOpt": ["no-new-privileges:true"]}))
    assert spec.no_new_privileges and spec.seccomp == "" and spec.masked_paths


@pytest.mark.parametrize("host, message", [
    ({"CapAdd": ["FOO"]}, 'unknown capability: "CAP_FOO"'),
    ({"SecurityOpt": ["bogus"]}, 'invalid --security-opt 1: "bogus"'),
    ({"SecurityOpt": ["foo=bar"]}, 'invalid --security-opt 2: "foo=bar"'),
    ({"SecurityOpt": ["no-new-privileges=maybe"]}, 'invalid --security-opt 2'),
    ({"SecurityOpt": ["seccomp={"]}, "Decoding seccomp profile failed"),
    ({"IpcMode": "weird"}, "invalid IPC mode: weird"),
    ({"IpcMode": "container:abc"}, "not supported by dockyard yet"),
    ({"PidMode": "private"}, "invalid PID mode: private"),
    ({"UTSMode": "x"}, "invalid UTS mode: x"),
    ({"Sysctls": {"kernel.hostname": "x"}}, 'sysctl "kernel.hostname" is not in a separate kernel namespace'),
    ({"Sysctls": {"net.ipv4.ip_forward": "1"}, "NetworkMode": "host"}, "not allowed in host network namespace"),
    ({"Ulimits": [{"Name": "nofile", "Soft": 3, "Hard": 2}]}, "soft limit must be less than or equal"),
    ({"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 2}]}, "invalid ulimit type: bogus"),
])
def test_host_config_errors(host: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message.replace("(", r"\(")):
        build_host_config(host)


def test_uts_host_conflicts_with_hostname() -> None:
    with pytest.raises(InvalidParameter, match="Conflicting options: hostname and the UTS mode"):
        rules.check_request({"Hostname": "x"}, {"UTSMode": "host"})


def _cli(*argv: str) -> dict[str, object]:
    parsed = FlagSet(cli_security.FLAGS).parse(list(argv))
    body: dict[str, object] = {}
    cli_security.apply(parsed, body)
    return body["HostConfig"]  # type: ignore[return-value]


def test_cli_flags_fill_host_config(tmp_path: Path) -> None:
    profile = tmp_path / "p.json"
    profile.write_text('{\n  "defaultAction": "SCMP_ACT_ALLOW"\n}\n')
    host = _cli("--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "--privileged", "--read-only", "--group-add", "10",
                "--ulimit", "nofile=10:20", "--ulimit", "core=0", "--sysctl", "net.ipv4.ip_forward=1",
                "--ipc", "host", "--pid", "host", "--uts", "host",
                "--security-opt", f"seccomp={profile}", "--security-opt", "no-new-privileges")
    assert host == {
        "CapAdd": ["NET_ADMIN"], "CapDrop": ["ALL"], "Privileged": True, "ReadonlyRootfs": True,
        "GroupAdd": ["10"], "Ulimits": [{"Name": "nofile", "Hard": 20, "Soft": 10},
                                        {"Name": "core", "Hard": 0, "Soft": 0}],
        "Sysctls": {"net.ipv4.ip_forward": "1"}, "IpcMode": "host", "PidMode": "host", "UTSMode": "host",
        "SecurityOpt": ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}', "no-new-privileges"],
    }


@pytest.mark.parametrize("argv, message", [
    (["--ulimit", "nofile"], 'invalid argument "nofile" for "--ulimit" flag: invalid ulimit argument: nofile'),
    (["--ulimit", "bogus=1"], "invalid ulimit type: bogus"),
    (["--ulimit", "nofile=5:4"], "ulimit soft limit must be less than or equal to hard limit: 5 > 4"),
    (["--sysctl", "kernel.hostname=x"], "sysctl 'kernel.hostname=x' is not allowed"),
    (["--security-opt", "seccomp"], 'Invalid --security-opt: "seccomp"'),
    (["--security-opt", "seccomp=/nonexistent/p.json"], "opening seccomp profile (/nonexistent/p.json) failed"),
])
def test_cli_flag_errors(argv: list[str], message: str) -> None:
    with pytest.raises(FlagError) as info:
        _cli(*argv)
    assert message in info.value.message
    assert info.value.status == 125
