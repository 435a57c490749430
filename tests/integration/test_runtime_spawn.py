"""Real containers: spawn() + go() on the busybox rootfs, under the C shim. Needs root.

Every test leaves no process behind: the ``containers`` fixture kills and reaps whatever a test
started, and ``no_children`` asserts the test process has no children left afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dockyard.errors import DockyardError, InvalidParameter
from dockyard.runtime import syscalls as sc
from dockyard.runtime.security import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS
from dockyard.runtime.shim import STDOUT, AttachClient, ExitRecord, read_exit_record
from dockyard.runtime.spawn import Spawned, reap, spawn
from dockyard.runtime.spec import ContainerSpec, ProcessSpec

pytestmark = pytest.mark.root

ID = "c0ffee" + "0" * 58


def children_of(pid: int) -> set[int]:
    out: set[int] = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out |= {int(p) for p in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()}
        except FileNotFoundError:
            pass
    return out


@pytest.fixture(autouse=True)
def no_children() -> Iterator[None]:
    before = children_of(os.getpid())
    yield
    left = children_of(os.getpid()) - before
    assert not left, f"processes left behind: {left}"


class Harness:
    """Builds specs in a tmp dir and tracks spawned containers for cleanup."""

    def __init__(self, tmp: Path, lower: Path) -> None:
        self.tmp = tmp
        self.lower = lower
        self.spawned: list[Spawned] = []
        self.count = 0

    def spec(self, args: list[str], *, tty: bool = False, stdin: bool = False, user: str = "",
             cwd: str = "", env: list[str] | None = None, network: str = "none",
             lowers: list[Path] | None = None, **kw: object) -> ContainerSpec:
        self.count += 1
        base = self.tmp / f"c{self.count}"
        for name in ("state", "upper", "work", "merged"):
            (base / name).mkdir(parents=True)
        proc = ProcessSpec(args=args, env=env or [], cwd=cwd, user=user, tty=tty, open_stdin=stdin)
        return ContainerSpec(id=ID, state_dir=base / "state", lowerdirs=lowers or [self.lower],
                             upperdir=base / "upper", workdir=base / "work", rootfs=base / "merged",
                             hostname=str(kw.pop("hostname", "box")), network=network, process=proc,
                             log_path=base / "state" / f"{ID}-json.log", **kw)  # type: ignore[arg-type]

    def spawn(self, spec: ContainerSpec) -> Spawned:
        s = spawn(spec)
        self.spawned.append(s)
        return s

    def wait(self, s: Spawned, spec: ContainerSpec, timeout: float = 20.0) -> ExitRecord:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if reap(s.shim_pid) is not None:
                record = read_exit_record(spec.state_dir)
                assert record is not None, (spec.state_dir / "shim.log").read_text()
                return record
            time.sleep(0.005)
        raise AssertionError("container did not exit in time")

    def run(self, args: list[str], **kw: object) -> tuple[ExitRecord, str, ContainerSpec]:
        spec = self.spec(args, **kw)  # type: ignore[arg-type]
        s = self.spawn(spec)
        s.go()
        record = self.wait(s, spec)
        return record, stdout_of(spec), spec

    def cleanup(self) -> None:
        for s in self.spawned:
            try:
                fd = sc.pidfd_open(s.pid)
                try:
                    sc.pidfd_send_signal(fd, signal.SIGKILL)
                finally:
                    os.close(fd)
            except OSError:
                pass
            try:
                os.waitpid(s.shim_pid, 0)
            except ChildProcessError:
                pass


def log_records(spec: ContainerSpec) -> list[dict[str, str]]:
    return [json.loads(line) for line in spec.log_path.read_text().splitlines()]


def stdout_of(spec: ContainerSpec) -> str:
    return "".join(r["log"] for r in log_records(spec) if r["stream"] == "stdout")


@pytest.fixture
def h(tmp_path: Path, busybox_rootfs: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, busybox_rootfs)
    yield harness
    harness.cleanup()


def host_mountinfo() -> str:
    return Path("/proc/self/mountinfo").read_text()


def test_echo_hello(h: Harness) -> None:
    record, out, spec = h.run(["echo", "hello"])
    assert record.exit_code == 0 and record.signal == 0
    recs = log_records(spec)
    assert [(r["log"], r["stream"]) for r in recs] == [("hello\n", "stdout")]
    assert str(spec.rootfs) not in host_mountinfo()
    assert not any(spec.rootfs.iterdir()), "the overlay leaked onto the host's rootfs dir"


def test_pid1_hostname_env_and_proc(h: Harness) -> None:
    record, out, _ = h.run(["sh", "-c", "echo $$; hostname; env | sort; exec ls /proc"], hostname="web-1")
    lines = out.splitlines()
    assert lines[0] == "1"
    assert lines[1] == "web-1"
    assert "HOSTNAME=web-1" in lines and "HOME=/root" in lines
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in lines
    pids = [name for name in lines[2:] if name.isdigit()]
    assert pids == ["1"], "other processes are visible inside the container"
    assert record.exit_code == 0


def test_ps_shows_only_the_container(h: Harness) -> None:
    # `exec ps`: ps is PID 1, the background sleep PID 2, and nothing else is visible
    _, out, _ = h.run(["sh", "-c", "sleep 5 & sleep 0.2; exec ps -o pid,args"])
    rows = sorted((int(pid), args) for pid, args in (line.split(None, 1) for line in out.strip().splitlines()[1:]))
    assert [pid for pid, _ in rows] == [1, 2], out
    assert "ps -o pid,args" in rows[0][1] and rows[1][1] == "sleep 5", out


def test_network_none_has_only_lo_up(h: Harness) -> None:
    _, out, _ = h.run(["sh", "-c", "ls /sys/class/net; ip link show lo"])
    lines = out.splitlines()
    assert lines[0] == "lo" and not lines[1].startswith(" ") and ",UP" in lines[1], out


def test_network_host_sees_host_interfaces(h: Harness) -> None:
    _, out, _ = h.run(["ls", "/sys/class/net"], network="host")
    assert set(out.split()) == set(os.listdir("/sys/class/net"))


def test_mountinfo_shows_only_container_mounts(h: Harness, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost box\n")
    record, out, spec = h.run(["sh", "-c", "cat /proc/self/mountinfo; cat /etc/hosts"],
                              etc_files={"/etc/hosts": hosts})
    mounts = [line.split() for line in out.splitlines() if " - " in line]
    points = {m[4]: m[m.index("-") + 1] for m in mounts}
    assert points["/"] == "overlay"
    confined = set(DEFAULT_MASKED_PATHS) | set(DEFAULT_READONLY_PATHS)  # runtime/security.py
    assert set(points) - confined == {"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                                      "/etc/hosts"}
    assert points["/proc"] == "proc" and points["/dev/pts"] == "devpts" and points["/sys"] == "sysfs"
    assert "127.0.0.1 localhost box" in out
    assert record.exit_code == 0


def test_etc_file_symlink_cannot_escape(h: Harness, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    layer = tmp_path / "evil-layer" / "etc"
    layer.mkdir(parents=True)
    os.symlink("../../../../../../../../.." + str(victim), layer / "hosts")
    src = tmp_path / "hosts-src"
    src.write_text("container hosts\n")
    record, out, _ = h.run(["cat", "/etc/hosts"], etc_files={"/etc/hosts": src},
                           lowers=[tmp_path / "evil-layer", h.lower])
    assert out == "container hosts\n"
    assert victim.read_text() == "untouched\n"


def test_bad_layer_fails_setup_with_the_mount_error(h: Harness, tmp_path: Path) -> None:
    spec = h.spec(["true"], lowers=[tmp_path / "no-such-layer"])
    with pytest.raises(DockyardError, match="mount.*overlay"):
        h.spawn(spec)
    assert read_exit_record(spec.state_dir) is None


def test_exit_code_is_kept(h: Harness) -> None:
    record, _, _ = h.run(["sh", "-c", "exit 3"])
    assert (record.exit_code, record.signal) == (3, 0)


def test_sigkill_gives_137(h: Harness) -> None:
    spec = h.spec(["sleep", "100"])
    s = h.spawn(spec)
    s.go()
    fd = sc.pidfd_open(s.pid)
    try:
        sc.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        os.close(fd)
    record = h.wait(s, spec)
    assert (record.exit_code, record.signal) == (137, 9)


def test_sigterm_with_a_handler_gives_143(h: Harness) -> None:
    # PID 1 ignores signals it has no handler for (as under Docker), so the image's init traps TERM.
    spec = h.spec(["sh", "-c", "trap 'exit 143' TERM; echo up; while :; do sleep 0.05; done"])
    s = h.spawn(spec)
    s.go()
    deadline = time.monotonic() + 10
    while "up" not in (spec.log_path.read_text() if spec.log_path.exists() else ""):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(s.pid, signal.SIGTERM)
    record = h.wait(s, spec)
    assert record.exit_code == 143


@pytest.mark.parametrize(("arg0", "code", "message"), [
    ("nosuchcmd", 127, 'exec: "nosuchcmd": executable file not found in $PATH'),
    ("/bin/nope", 127, 'exec: "/bin/nope": stat /bin/nope: no such file or directory'),
    ("/etc/passwd", 126, 'exec: "/etc/passwd": permission denied'),
])
def test_exec_failures(h: Harness, arg0: str, code: int, message: str) -> None:
    spec = h.spec([arg0, "x"])
    s = h.spawn(spec)
    with pytest.raises(InvalidParameter) as info:
        s.go()
    assert (info.value.message, info.value.exit_code) == (message, code)
    record = h.wait(s, spec)
    assert record.exit_code == code


@pytest.mark.parametrize("tty", [False, True])
def test_unknown_user_fails_setup_and_leaves_nothing(h: Harness, tty: bool) -> None:
    spec = h.spec(["id"], user="ghost", tty=tty)
    before = children_of(os.getpid())  # other fixtures of the session may have children of their own
    with pytest.raises(DockyardError, match="unable to find user ghost: no matching entries in passwd file"):
        h.spawn(spec)
    assert not children_of(os.getpid()) - before
    assert read_exit_record(spec.state_dir) is None
    assert not (spec.state_dir / "attach.sock").exists()


def test_user_nobody_and_created_workdir(h: Harness) -> None:
    record, out, spec = h.run(["sh", "-c", "id; pwd; stat -c %u:%g /srv/app; echo $HOME"],
                              user="nobody", cwd="/srv/app")
    lines = out.splitlines()
    assert lines[0].startswith("uid=65534(nobody) gid=65534(nogroup)")
    assert lines[1:] == ["/srv/app", "65534:65534", "/home"]


def test_tty_and_resize(h: Harness) -> None:
    spec = h.spec(["sh", "-c", "tty; stty size; echo TERM=$TERM"], tty=True)
    s = h.spawn(spec)
    with AttachClient(spec.state_dir) as client:
        client.resize(33, 101)
        s.go()
        got = client.read_until_closed()
    text = got[STDOUT].decode()
    assert "/dev/pts/0\r\n" in text
    assert "33 101\r\n" in text
    assert "TERM=xterm" in text
    assert h.wait(s, spec).exit_code == 0
    assert "/dev/pts/0" in stdout_of(spec)


def test_a_client_connected_before_go_gets_all_output_even_if_the_shim_is_late(h: Harness) -> None:
    """The daemon connects attachers before "go"; a busy shim may not have accepted them when the
    container has already written and exited. It must accept them before it reads that output."""
    spec = h.spec(["echo", "attached before go"])
    s = h.spawn(spec)
    def wait_for_state(pid: int, state: str) -> None:
        deadline = time.monotonic() + 20
        while Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != state:
            assert time.monotonic() < deadline, f"process {pid} never reached state {state}"
            time.sleep(0.002)

    os.kill(s.shim_pid, signal.SIGSTOP)
    try:
        wait_for_state(s.shim_pid, "T")
        client = AttachClient(spec.state_dir)  # connect() completes in the listen backlog
        s.go()
        wait_for_state(s.pid, "Z")  # the container wrote, exited, and is not reaped yet
    finally:
        os.kill(s.shim_pid, signal.SIGCONT)
    with client:
        got = client.read_until_closed()
    assert got[STDOUT] == b"attached before go\n"
    assert h.wait(s, spec).exit_code == 0


def test_stdin_through_attach(h: Harness) -> None:
    spec = h.spec(["cat"], stdin=True)
    s = h.spawn(spec)
    with AttachClient(spec.state_dir) as client:
        s.go()
        client.send_stdin(b"hello through stdin\n")
        client.send_stdin(b"second")
        client.close_stdin()
        got = client.read_until_closed()
    assert got[STDOUT] == b"hello through stdin\nsecond"
    assert h.wait(s, spec).exit_code == 0


def test_interactive_tty_shell(h: Harness) -> None:
    spec = h.spec(["sh"], tty=True, stdin=True)
    s = h.spawn(spec)
    with AttachClient(spec.state_dir) as client:
        s.go()
        client.send_stdin(b"echo $((6*7))\n")
        client.send_stdin(b"exit 5\n")
        got = client.read_until_closed()
    assert b"42\r\n" in got[STDOUT]
    assert h.wait(s, spec).exit_code == 5


def test_abort_before_go_leaves_nothing(h: Harness) -> None:
    spec = h.spec(["sh", "-c", "echo should-not-run"])
    before = children_of(os.getpid())
    s = h.spawn(spec)
    pidfd = sc.pidfd_open(s.pid)
    try:
        s.abort()
        assert not children_of(os.getpid()) - before
        with pytest.raises(ProcessLookupError):
            sc.pidfd_send_signal(pidfd, 0)
    finally:
        os.close(pidfd)
    assert read_exit_record(spec.state_dir) is None
    assert "should-not-run" not in (spec.log_path.read_text() if spec.log_path.exists() else "")


def test_shim_outlives_its_parent(h: Harness) -> None:
    """A forked helper (standing in for the daemon) spawns the container and is SIGKILLed; the
    container keeps running and its exit record appears later. A subreaper between test and helper
    adopts the orphaned shim and exits once every descendant is gone."""
    spec = h.spec(["sh", "-c", "sleep 0.5; echo survived"])
    info_r, info_w = os.pipe()
    reaper = os.fork()
    if reaper == 0:
        try:
            os.close(info_r)
            sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
            helper = os.fork()
            if helper == 0:
                try:
                    s = spawn(spec)
                    s.go()
                    os.write(info_w, f"{s.pid}\n".encode())
                    time.sleep(60)
                finally:
                    os._exit(1)
            os.close(info_w)
            while True:
                try:
                    os.wait()
                except ChildProcessError:
                    break
        finally:
            os._exit(0)
    os.close(info_w)
    try:
        line = os.read(info_r, 64)
        assert line, "the helper failed to spawn"
        pid = int(line)
        pidfd = sc.pidfd_open(pid)
        (helper,) = children_of(reaper)  # the shim is the helper's child until the helper dies
        os.kill(helper, signal.SIGKILL)
        try:
            time.sleep(0.1)
            sc.pidfd_send_signal(pidfd, 0)  # still running without its parent
        finally:
            os.close(pidfd)
        deadline = time.monotonic() + 10
        while read_exit_record(spec.state_dir) is None:
            assert time.monotonic() < deadline, "no exit record"
            time.sleep(0.02)
        assert read_exit_record(spec.state_dir).exit_code == 0  # type: ignore[union-attr]
        assert stdout_of(spec) == "survived\n"
        _, status = os.waitpid(reaper, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(info_r)
        try:
            if os.waitpid(reaper, os.WNOHANG)[0] == 0:
                os.kill(reaper, signal.SIGKILL)
                os.waitpid(reaper, 0)
        except ChildProcessError:
            pass


def test_concurrent_spawns_do_not_hold_each_others_pipes(h: Harness) -> None:
    """Spawned from several threads at once, then released one by one in order: each go() must
    return at once (a leaked copy of one container's status pipe in another's init would make it
    wait until that other container execs)."""
    specs = [h.spec(["sh", "-c", f"echo n{i}"], hostname=f"h{i}") for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        spawned = list(pool.map(h.spawn, specs))
    for s in spawned:
        start = time.monotonic()
        s.go(timeout=5)
        assert time.monotonic() - start < 2
    for i, (s, spec) in enumerate(zip(spawned, specs, strict=True)):
        assert h.wait(s, spec).exit_code == 0
        assert stdout_of(spec) == f"n{i}\n"


def test_shim_is_small(h: Harness) -> None:
    spec = h.spec(["sleep", "2"])
    s = h.spawn(spec)
    s.go()
    status = Path(f"/proc/{s.shim_pid}/status").read_text()
    rss_kb = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
    print(f"shim VmRSS: {rss_kb} kB")
    assert rss_kb < 4096
    os.kill(s.pid, signal.SIGKILL)
    h.wait(s, spec)


def test_spawn_latency(h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    """spawn() + go() until the container's exec, median of 20 (`true` as the command)."""
    times = []
    for _ in range(20):
        spec = h.spec(["true"])
        start = time.perf_counter()
        s = h.spawn(spec)
        s.go()  # returns when the status pipe hits EOF, i.e. right after the successful execve
        times.append(time.perf_counter() - start)
        assert h.wait(s, spec).exit_code == 0
        shutil.rmtree(spec.upperdir.parent)
    median = statistics.median(times)
    with capsys.disabled():
        print(f"\nspawn()+go() to exec: median {median * 1000:.1f} ms, "
              f"min {min(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms (n=20)")
    assert median < 1.0


def test_spawned_through_the_spawner(h: Harness) -> None:
    """With the spawner started (as the daemon does), P0 is the spawner's child, not ours: the
    container runs the same (seccomp from the daemon's compiled program, no pipe end of ours left
    open in it, ``go`` returning once it exec'd) and the spawner reaps the shim."""
    from dockyard.runtime import spawner

    assert spawner.default.start()
    try:
        spec = h.spec(["sh", "-c", "echo hi; grep '^Seccomp:' /proc/self/status; ls /proc/self/fd; exit 3"])
        s = h.spawn(spec)
        assert s.shim_pid not in children_of(os.getpid())
        s.go()
        deadline = time.monotonic() + 20
        while (record := read_exit_record(spec.state_dir)) is None:
            assert time.monotonic() < deadline, "the container did not exit in time"
            time.sleep(0.005)
        assert record.exit_code == 3
        lines = stdout_of(spec).split()
        assert lines[:3] == ["hi", "Seccomp:", "2"]
        assert sorted(lines[3:]) == ["0", "1", "2", "3"]  # stdio and ls's own directory: nothing leaked
        assert reap(s.shim_pid) is None  # not ours to reap
    finally:
        spawner.default.close()


def test_a_dead_spawner_is_started_again(h: Harness) -> None:
    """The spawner killed between two starts: the next one starts a new spawner and runs as before."""
    from dockyard.runtime import spawner

    assert spawner.default.start()
    try:
        first = spawner.default._proc
        assert first is not None
        first.kill()
        first.wait(5)
        spec = h.spec(["echo", "again"])
        s = h.spawn(spec)
        s.go()
        deadline = time.monotonic() + 20
        while read_exit_record(spec.state_dir) is None:
            assert time.monotonic() < deadline, "the container did not exit in time"
            time.sleep(0.005)
        assert stdout_of(spec) == "again\n"
        assert spawner.default._proc is not None and spawner.default._proc is not first
    finally:
        spawner.default.close()
