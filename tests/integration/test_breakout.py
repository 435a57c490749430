"""The breakout suite: a default container is as confined as a default Docker container.

Each test runs something a container escape would need inside a container of the shared
``daemon`` and checks that it fails (and, where it matters, that ``--privileged`` or the
matching option lifts it). *Probe*: ``syscall_probe.c``, compiled statically here and copied
into a created container's writable layer, calls one syscall with harmless arguments and prints
``OK`` or ``ERR <errno name>``.

Device nodes: the default set has CAP_MKNOD, so creating a block device node succeeds in Docker
too; only the device rules (v1's devices cgroup, or the device program on cgroup v2) keep the
container from *opening* it. Those tests run on this host's cgroups and on cgroup v2.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_harness import Daemon
from tests.integration.device_nodes import openable_block_device

pytestmark = pytest.mark.root

PROBE_SOURCE = Path(__file__).with_name("syscall_probe.c")
DOCKER_DEFAULT_CAPS = "00000000a80425fb"


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed to build the syscall probe: install.sh installs it")
    out = tmp_path_factory.mktemp("probe") / "syscall_probe"
    subprocess.run(["gcc", "-O2", "-static", "-o", str(out), str(PROBE_SOURCE)], check=True)
    return out


def run(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    """``dockyard run --rm ARGS`` (flags, then image and command)."""
    return daemon.cli("run", "--rm", *args, timeout=60)


def sh(daemon: Daemon, script: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return run(daemon, *flags, "busybox", "sh", "-c", script)


@pytest.fixture()
def probe_in(daemon: Daemon, probe: Path) -> Iterator[Callable[..., str]]:
    """``probe_in(name, *flags, arg="")``: the probe's output inside a container with ``flags``."""
    made: list[str] = []

    def call(name: str, *flags: str, arg: str = "") -> str:
        created = daemon.cli("create", *flags, "busybox", "/syscall_probe", name, *([arg] if arg else []),
                             check=True)
        cid = created.stdout.strip()
        made.append(cid)
        info = json.loads(daemon.cli("inspect", cid, check=True).stdout)[0]
        upper = Path(info["GraphDriver"]["Data"]["UpperDir"])
        shutil.copy(probe, upper / "syscall_probe")
        os.chmod(upper / "syscall_probe", 0o755)
        result = daemon.cli("start", "-a", cid, timeout=60)
        assert result.stdout.strip(), result.stderr
        return result.stdout.strip()

    yield call
    for cid in made:
        daemon.cli("rm", "-f", cid)


def status_field(text: str, name: str) -> str:
    match = re.search(rf"^{name}:\s*(\S+)", text, re.M)
    assert match, text
    return match.group(1)


# -- capabilities ------------------------------------------------------------------------------

def test_default_capabilities_are_dockers(daemon: Daemon) -> None:
    out = sh(daemon, "cat /proc/self/status").stdout
    assert status_field(out, "CapEff") == DOCKER_DEFAULT_CAPS
    assert status_field(out, "CapPrm") == DOCKER_DEFAULT_CAPS
    assert status_field(out, "CapBnd") == DOCKER_DEFAULT_CAPS
    assert status_field(out, "CapInh") == "0000000000000000"
    assert status_field(out, "CapAmb") == "0000000000000000"
    assert status_field(out, "Seccomp") == "2"
    assert status_field(out, "NoNewPrivs") == "0"


def test_non_root_user_keeps_only_the_bounding_set(daemon: Daemon) -> None:
    out = sh(daemon, "cat /proc/self/status", "--user", "1000:1000").stdout
    assert status_field(out, "CapEff") == "0000000000000000"
    assert status_field(out, "CapBnd") == DOCKER_DEFAULT_CAPS


def test_cap_drop_all_and_add(daemon: Daemon) -> None:
    out = sh(daemon, "grep CapEff /proc/self/status", "--cap-drop", "ALL", "--cap-add", "net_raw").stdout
    assert status_field(out, "CapEff") == f"{1 << 13:016x}"
    out = sh(daemon, "grep CapEff /proc/self/status", "--cap-drop", "CAP_CHOWN").stdout
    assert status_field(out, "CapEff") == f"{0xa80425fb & ~1:016x}"


def test_unknown_capability_is_refused(daemon: Daemon) -> None:
    result = sh(daemon, "true", "--cap-add", "NOPE")
    assert result.returncode == 125
    assert 'unknown capability: "CAP_NOPE"' in result.stderr


def test_chown_dropped_really_denies_chown(daemon: Daemon) -> None:
    result = sh(daemon, "touch /f && chown 1:1 /f", "--cap-drop", "chown")
    assert result.returncode != 0 and "Operation not permitted" in result.stderr


# -- processes, namespaces ---------------------------------------------------------------------

def test_cannot_see_host_processes(daemon: Daemon) -> None:
    out = sh(daemon, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo; ls -d /proc/[0-9]* | wc -l").stdout
    assert "dockyard.daemon.main" not in out
    assert int(out.split()[-1]) < 10


def test_cannot_ptrace_outside_itself(probe_in: Callable[..., str]) -> None:
    daemon_pid = str(os.getpid())  # a host pid: not in the container's pid namespace
    assert probe_in("ptrace", arg=daemon_pid) == "ERR ESRCH"


def test_hostname_change_stays_inside(daemon: Daemon) -> None:
    before = socket.gethostname()
    denied = sh(daemon, "hostname evil-default")
    assert denied.returncode != 0  # no CAP_SYS_ADMIN, as in Docker
    changed = sh(daemon, "hostname evil-privileged && hostname", "--privileged")
    assert changed.stdout.strip() == "evil-privileged", changed.stderr
    assert socket.gethostname() == before


def test_pid_and_uts_host(daemon: Daemon) -> None:
    out = sh(daemon, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo; hostname", "--pid", "host", "--uts", "host")
    assert "dockyard.daemon.main" in out.stdout
    assert out.stdout.split()[-1] == socket.gethostname()
    conflict = sh(daemon, "true", "--uts", "host", "--hostname", "x")
    assert conflict.returncode == 125 and "Conflicting options: hostname and the UTS mode" in conflict.stderr


def test_ipc_modes(daemon: Daemon) -> None:
    host_ipc = os.readlink("/proc/self/ns/ipc")
    assert sh(daemon, "readlink /proc/self/ns/ipc").stdout.strip() != host_ipc
    assert sh(daemon, "readlink /proc/self/ns/ipc", "--ipc", "host").stdout.strip() == host_ipc
    none = sh(daemon, "grep -c ' /dev/shm ' /proc/self/mountinfo", "--ipc", "none")
    assert none.stdout.strip() == "0"
    refused = sh(daemon, "true", "--ipc", "container:abc")
    assert refused.returncode == 125 and "not supported" in refused.stderr


# -- seccomp -----------------------------------------------------------------------------------

BLOCKED = ["keyctl", "add_key", "request_key", "bpf", "perf_event_open", "kexec_load", "init_module",
           "finit_module", "delete_module", "open_by_handle_at", "setns", "unshare_user", "pivot_root",
           "swapon", "acct", "reboot", "umount2", "mount", "clone_newns"]


@pytest.mark.parametrize("name", BLOCKED)
def test_dangerous_syscalls_are_blocked(probe_in: Callable[..., str], name: str) -> None:
    assert probe_in(name) == "ERR EPERM"


@pytest.mark.parametrize("name", ["keyctl", "unshare_user", "clone_newns"])
def test_privileged_lifts_seccomp(probe_in: Callable[..., str], name: str) -> None:
    assert probe_in(name, "--privileged") == "OK"


def test_seccomp_unconfined_lets_unshare_user_through(daemon: Daemon) -> None:
    assert sh(daemon, "unshare -U true").returncode != 0
    result = sh(daemon, "unshare -U true && grep Seccomp: /proc/self/status", "--security-opt",
                "seccomp=unconfined")
    assert result.returncode == 0, result.stderr
    assert status_field(result.stdout, "Seccomp") == "0"


def test_custom_seccomp_profile_file(daemon: Daemon, tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
    }))
    result = sh(daemon, "mkdir /x", "--security-opt", f"seccomp={profile}")
    assert result.returncode != 0 and "Permission denied" in result.stderr
    via_docker = daemon.docker("run", "--rm", "--security-opt", f"seccomp={profile}", "busybox", "mkdir", "/x")
    assert via_docker.returncode != 0 and "Permission denied" in via_docker.stderr
    missing = sh(daemon, "true", "--security-opt", f"seccomp={tmp_path}/none.json")
    assert missing.returncode == 125 and "opening seccomp profile" in missing.stderr


def test_no_new_privileges(daemon: Daemon) -> None:
    out = sh(daemon, "grep NoNewPrivs /proc/self/status", "--security-opt", "no-new-privileges").stdout
    assert status_field(out, "NoNewPrivs") == "1"


# -- filesystems -------------------------------------------------------------------------------

def test_cannot_mount(daemon: Daemon) -> None:
    result = sh(daemon, "mkdir -p /mnt && mount -t tmpfs t /mnt")
    assert result.returncode != 0
    assert sh(daemon, "mkdir -p /mnt && mount -t tmpfs t /mnt", "--privileged").returncode == 0


def test_cannot_load_modules(daemon: Daemon) -> None:
    result = sh(daemon, "echo not-a-module > /m.ko && insmod /m.ko")
    assert result.returncode != 0 and "Operation not permitted" in result.stderr
    # privileged, the kernel gets to look at the module (and rejects it as malformed)
    privileged = sh(daemon, "echo not-a-module > /m.ko && insmod /m.ko", "--privileged")
    assert privileged.returncode != 0 and "Operation not permitted" not in privileged.stderr


def test_cannot_write_sysrq_trigger_or_proc_sys(daemon: Daemon) -> None:
    result = sh(daemon, "echo x > /proc/sys/kernel/domainname")
    assert result.returncode != 0 and "Read-only file system" in result.stderr
    mounts = sh(daemon, "cat /proc/self/mountinfo").stdout
    for path in ("/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq"):
        assert re.search(rf"^\S+ \S+ \S+ \S+ {path} ro,", mounts, re.M), (path, mounts)
    result = sh(daemon, "echo h > /proc/sysrq-trigger")
    assert result.returncode != 0, "the container wrote /proc/sysrq-trigger"
    if os.path.exists("/proc/sysrq-trigger"):  # this kernel has it (CONFIG_MAGIC_SYSRQ): our read-only bind stops it
        assert "Read-only file system" in result.stderr


def test_masked_paths_are_empty(daemon: Daemon) -> None:
    out = sh(daemon, "cat /proc/keys /proc/timer_list | wc -c; ls -A /sys/firmware | wc -l")
    assert out.stdout.split() == ["0", "0"], out.stderr
    privileged = sh(daemon, "cat /proc/timer_list | wc -c; ls -A /sys/firmware | wc -l", "--privileged")
    assert [int(n) > 0 for n in privileged.stdout.split()] == [True, True], privileged.stderr


def test_cannot_read_kcore(daemon: Daemon) -> None:
    assert sh(daemon, "head -c 16 /proc/kcore | wc -c").stdout.strip() == "0"
    if os.path.exists("/proc/kcore"):  # this kernel has it (CONFIG_PROC_KCORE): masked unless privileged
        assert sh(daemon, "head -c 16 /proc/kcore | wc -c", "--privileged").stdout.strip() == "16"


def test_sys_is_read_only_unless_privileged(daemon: Daemon) -> None:
    assert " ro," in sh(daemon, "grep ' /sys ' /proc/self/mountinfo").stdout
    assert " rw," in sh(daemon, "grep ' /sys ' /proc/self/mountinfo", "--privileged").stdout


def test_privileged_sees_host_devices(daemon: Daemon) -> None:
    host_count = sum(1 for entry in os.scandir("/dev")
                     if stat.S_ISCHR(entry.stat(follow_symlinks=False).st_mode)
                     or stat.S_ISBLK(entry.stat(follow_symlinks=False).st_mode))
    count = int(sh(daemon, "ls /dev | wc -l", "--privileged").stdout)
    assert count >= host_count - 2  # ptmx and console are the container's own
    assert int(sh(daemon, "ls /dev | wc -l").stdout) < 20


@pytest.fixture(params=["host", "cgroup2"])
def any_cgroup_daemon(request: pytest.FixtureRequest) -> Daemon:
    """The shared daemon (this host's cgroups), then one that sees cgroup v2 at /sys/fs/cgroup, where
    device rules are a device program (BPF) rather than v1's devices controller."""
    daemon: Daemon = request.getfixturevalue("daemon" if request.param == "host" else "cgroup2_daemon")
    return daemon


def test_block_device_nodes(any_cgroup_daemon: Daemon) -> None:
    _, major, minor = openable_block_device()  # the host opens it: a denial comes from the container's rules
    made = sh(any_cgroup_daemon, f"mknod /tmp/blk b {major} {minor} && echo made")
    assert "made" in made.stdout  # CAP_MKNOD is in Docker's default set too
    opened = sh(any_cgroup_daemon, f"mknod /tmp/blk b {major} {minor} && dd if=/tmp/blk of=/dev/null count=1")
    assert opened.returncode != 0 and "Operation not permitted" in opened.stderr, (opened.returncode,
                                                                                    opened.stderr)
    privileged = sh(any_cgroup_daemon, f"mknod /tmp/blk b {major} {minor} && dd if=/tmp/blk of=/dev/null count=1",
                    "--privileged")
    assert privileged.returncode == 0, privileged.stderr


def test_char_device_nodes(any_cgroup_daemon: Daemon) -> None:
    """/dev/mem and /dev/kmsg are not in the default rules; /dev/null and /dev/zero are."""
    for node in ("c 1 1", "c 1 11"):
        denied = sh(any_cgroup_daemon, f"mknod /tmp/n {node} && head -c 1 /tmp/n")
        assert denied.returncode != 0 and "Operation not permitted" in denied.stderr, (node, denied.stderr)
    allowed = sh(any_cgroup_daemon, "mknod /tmp/null c 1 3 && echo x > /tmp/null && head -c 1 /dev/zero | wc -c")
    assert allowed.returncode == 0 and allowed.stdout.strip() == "1", allowed.stderr


def test_read_only_rootfs(daemon: Daemon) -> None:
    result = sh(daemon, "touch /dev/shm/ok && touch /x", "--read-only")
    assert result.returncode != 0 and "Read-only file system" in result.stderr
    assert sh(daemon, "touch /x").returncode == 0


# -- users, limits, sysctls, init -----------------------------------------------------------------

def test_user_with_group_add(daemon: Daemon) -> None:
    out = sh(daemon, "id", "--user", "1000:1000", "--group-add", "wheel", "--group-add", "4242").stdout
    assert "uid=1000 gid=1000" in out
    assert "10(wheel)" in out and "4242" in out
    bad = sh(daemon, "id", "--group-add", "no-such-group")
    assert bad.returncode != 0 and "Unable to find group no-such-group" in bad.stderr


def test_cannot_raise_limits(daemon: Daemon) -> None:
    result = sh(daemon, "ulimit -n $(( $(ulimit -Hn) + 1 ))")
    assert result.returncode != 0


def test_ulimit_flag(daemon: Daemon) -> None:
    out = sh(daemon, "ulimit -n; ulimit -Hn", "--ulimit", "nofile=100:200").stdout.split()
    assert out == ["100", "200"]
    hard = os.sysconf("SC_OPEN_MAX")
    too_high = sh(daemon, "true", "--ulimit", f"nofile={hard}:{hard * 4}")
    assert too_high.returncode != 0 and "CAP_SYS_RESOURCE" in too_high.stderr


def test_sysctl(daemon: Daemon) -> None:
    assert sh(daemon, "cat /proc/sys/kernel/shmmni", "--sysctl", "kernel.shmmni=1234").stdout.strip() == "1234"
    refused = sh(daemon, "true", "--sysctl", "kernel.hostname=x")
    assert refused.returncode == 125 and "is not allowed" in refused.stderr
    api = daemon.docker("run", "--rm", "--network", "host", "--sysctl", "net.ipv4.ip_forward=1", "busybox", "true")
    assert api.returncode != 0 and "not allowed in host network namespace" in api.stderr


def test_init_is_pid1_and_passes_the_exit_code(daemon: Daemon) -> None:
    out = sh(daemon, "cat /proc/1/cmdline | tr '\\0' ' '", "--init")
    assert out.stdout.startswith("/sbin/docker-init -- sh -c"), out.stderr
    assert sh(daemon, "exit 7", "--init").returncode == 7


def _descendants(pid: int) -> list[tuple[str, str]]:
    """(comm, state letter) of every descendant of host ``pid``."""
    found = []
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                status = Path(f"/proc/{child}/status").read_text()
            except OSError:
                continue
            found.append((status_field(status, "Name"), status_field(status, "State")))
            pending.append(int(child))
    return found


def test_init_reaps_orphans_and_forwards_signals(daemon: Daemon) -> None:
    # The orphan (sleep 0.1) is re-parented to PID 1; without an init that PID 1 would be
    # "sleep 30", which never reaps, and the orphan would stay a zombie.
    cid = daemon.cli("run", "-d", "--init", "busybox", "sh", "-c", "(sleep 0.1 &) ; exec sleep 30",
                     check=True).stdout.strip()
    try:
        pid = json.loads(daemon.cli("inspect", cid, check=True).stdout)[0]["State"]["Pid"]
        deadline = time.monotonic() + 15
        while True:
            sleeps = [state for name, state in _descendants(pid) if name == "sleep"]
            if sleeps == ["S"]:
                break
            assert time.monotonic() < deadline, f"orphan not reaped: {_descendants(pid)}"
            time.sleep(0.05)
        # SIGTERM reaches "sleep 30" through the init (a PID 1 sleep would ignore it): 143, not 137
        daemon.cli("stop", "-t", "30", cid, check=True)
        code = daemon.cli("inspect", "-f", "{{.State.ExitCode}}", cid, check=True).stdout.strip()
        assert code == "143"
    finally:
        daemon.cli("rm", "-f", cid)


def test_inspect_shows_the_settings(daemon: Daemon) -> None:
    cid = daemon.cli("create", "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD", "--read-only",
                     "--security-opt", "no-new-privileges", "--ulimit", "nofile=10:20", "busybox", "true", check=True
                     ).stdout.strip()
    try:
        host = json.loads(daemon.cli("inspect", cid, check=True).stdout)[0]["HostConfig"]
        assert host["CapAdd"] == ["NET_ADMIN"] and host["CapDrop"] == ["MKNOD"]
        assert host["ReadonlyRootfs"] is True and host["Privileged"] is False
        assert host["SecurityOpt"] == ["no-new-privileges"]
        assert host["Ulimits"] == [{"Name": "nofile", "Hard": 20, "Soft": 10}]
        assert "/proc/kcore" in host["MaskedPaths"] and "/proc/sys" in host["ReadonlyPaths"]
        assert host["IpcMode"] == "private"
    finally:
        daemon.cli("rm", "-f", cid)
