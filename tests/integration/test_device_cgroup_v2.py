"""Device rules on cgroup v2: the device program attached to real cgroup2 directories.

This machine may keep its controllers on v1; a device program needs none, and the kernel checks it
in addition to v1's devices controller. So each test mounts a cgroup2 hierarchy itself and uses the
runtime's own v2 code on it (``Cgroup.of(id, that mount)``: create, confine_devices, join, remove),
with a real process inside that mknods and opens device nodes. *Control*: the same probe run
outside the cgroup, so that a denial is known to come from the program (the probe's process stays
in v1's root devices cgroup, which allows everything). The daemon tests run containers on a daemon
that sees cgroup v2 at /sys/fs/cgroup (``cgroup2_daemon``): the real start path.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.runtime import bpf, device_bpf, syscalls
from dockyard.runtime.cgroups import PARENT, Cgroup
from dockyard.runtime.devices import cgroup_rules
from tests.integration.daemon_harness import Daemon
from tests.integration.device_nodes import openable_block_device

pytestmark = pytest.mark.root

PROBE = r"""
import errno, json, os, stat, sys

def attempt(call, *args):
    try:
        result = call(*args)
    except OSError as err:
        return errno.errorcode[err.errno]
    if isinstance(result, int):
        os.close(result)
    return "ok"

checks, scratch = json.loads(sys.argv[1]), sys.argv[2]
sys.stdin.readline()  # moved into the cgroup (or not, for the control run)
out = []
for path, kind, major, minor, access in checks:
    if access == "m":
        node = os.path.join(scratch, os.path.basename(path))
        out.append(attempt(os.mknod, node, 0o600 | (stat.S_IFBLK if kind == "b" else stat.S_IFCHR),
                           os.makedev(major, minor)))
    else:
        flags = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}[access]
        out.append(attempt(os.open, path, flags | os.O_NONBLOCK | os.O_NOCTTY))
print(json.dumps(out))
"""

# (kind, major, minor, access asked, allowed by Docker's default rules)
DEFAULT_CASES = [
    ("c", 1, 3, "rw", True), ("c", 1, 5, "r", True), ("c", 1, 7, "w", True), ("c", 1, 8, "r", True),
    ("c", 1, 9, "rw", True), ("c", 5, 0, "rw", True), ("c", 5, 1, "rw", True), ("c", 5, 2, "rw", True),
    ("c", 136, 0, "rw", True), ("c", 136, 9, "rw", True), ("c", 10, 200, "rw", True),
    ("b", 8, 0, "m", True), ("c", 1, 1, "m", True),     # mknod of anything, as in Docker
    ("b", 8, 0, "r", False), ("b", 7, 0, "r", False),   # a disk, a loop device
    ("c", 1, 1, "r", False), ("c", 1, 11, "r", False),  # /dev/mem, /dev/kmsg
    ("c", 10, 229, "rw", False), ("c", 4, 0, "rw", False),  # /dev/fuse, /dev/tty0
]
_names = itertools.count()


@pytest.fixture()
def cgroup2(tmp_path: Path) -> Iterator[Path]:
    """A cgroup2 hierarchy mounted by the test (the host's unified hierarchy, seen from here)."""
    mount = tmp_path / "cgroup2"
    mount.mkdir()
    syscalls.mount("cgroup2", mount, "cgroup2")
    try:
        yield mount
    finally:
        syscalls.umount2(mount, syscalls.MNT_DETACH)


@pytest.fixture()
def nodes(tmp_path: Path) -> Path:
    """A directory for device nodes made outside any cgroup (mknod is allowed there)."""
    directory = tmp_path / "nodes"
    directory.mkdir()
    return directory


def _node(directory: Path, kind: str, major: int, minor: int) -> str:
    path = directory / f"{kind}{major}_{minor}"
    if not path.exists():
        os.mknod(path, 0o600 | (0o060000 if kind == "b" else 0o020000), os.makedev(major, minor))
    return str(path)


def probe(directory: Path, cases: list[tuple[str, int, int, str, bool]], cg: Cgroup | None) -> list[str]:
    """Run the probe in ``cg`` (None: outside, the control); one result per case (``ok`` or an errno name)."""
    checks = [(_node(directory, k, major, minor), k, major, minor, access) for k, major, minor, access, _ in cases]
    scratch = directory.parent / f"scratch-{next(_names)}"
    scratch.mkdir()
    child = subprocess.Popen([sys.executable, "-c", PROBE, json.dumps(checks), str(scratch)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        if cg is not None:
            cg.join(child.pid)
        out, _ = child.communicate("go\n", timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0
    return list(json.loads(out))


def assert_rules_hold(directory: Path, cases: list[tuple[str, int, int, str, bool]], cg: Cgroup) -> None:
    control = probe(directory, cases, None)
    confined = probe(directory, cases, cg)
    assert control[0] == "ok", "the first case must work outside the cgroup, or the probe proves nothing"
    for case, base, got in zip(cases, control, confined, strict=True):
        if case[4]:
            assert got == base, f"{case}: {got} in the cgroup, {base} outside"
        else:
            assert got == "EPERM" and base != "EPERM", f"{case}: {got} in the cgroup, {base} outside"


@pytest.fixture()
def container_cgroup(cgroup2: Path) -> Iterator[Cgroup]:
    """A container-like cgroup (``dockyard/<id>``) on the test's cgroup2 mount; removed after."""
    cg = Cgroup.of(f"devicetest{os.getpid()}x{next(_names)}", cgroup2)
    assert cg.version == "2" and cg.has("devices")
    cg.create()
    try:
        yield cg
    finally:
        cg.remove()


def _programs(cg: Cgroup) -> list[int]:
    fd = os.open(cg.path("devices", ""), os.O_RDONLY | os.O_DIRECTORY)
    try:
        return bpf.attached_programs(fd)
    finally:
        os.close(fd)


def test_verifier_accepts_the_programs() -> None:
    many = [("devices.allow", f"{'bc'[i % 2]} {i}:{i * 7} {'rwm'[:1 + i % 3]}") for i in range(1, 600)]
    for writes in (cgroup_rules([], privileged=False), cgroup_rules([], privileged=True),
                   [("devices.allow", "a *:* rwm"), ("devices.deny", "b *:* rw"), ("devices.deny", "c 1:1 r")],
                   [("devices.deny", "a *:* rwm"), ("devices.allow", "a 7:* rw"), *many]):
        os.close(bpf.load_device_program(device_bpf.program_for(writes)))


def test_default_rules_in_a_real_cgroup2(container_cgroup: Cgroup, nodes: Path) -> None:
    container_cgroup.confine_devices(cgroup_rules([], privileged=False))
    assert len(_programs(container_cgroup)) == 1
    _, major, minor = openable_block_device()
    assert_rules_hold(nodes, [*DEFAULT_CASES, ("b", major, minor, "r", False)], container_cgroup)


def test_access_bits_and_mknod_in_a_real_cgroup2(container_cgroup: Cgroup, nodes: Path) -> None:
    container_cgroup.confine_devices([("devices.deny", "a *:* rwm"), ("devices.allow", "c 1:3 r"),
                                      ("devices.allow", "c 1:5 m")])
    assert_rules_hold(nodes, [("c", 1, 3, "r", True), ("c", 1, 3, "w", False), ("c", 1, 3, "rw", False),
                              ("c", 1, 3, "m", False), ("c", 1, 5, "m", True), ("c", 1, 5, "r", False),
                              ("b", 8, 0, "m", False)], container_cgroup)


def test_privileged_allows_every_device(container_cgroup: Cgroup, nodes: Path) -> None:
    container_cgroup.confine_devices(cgroup_rules([], privileged=True))
    _, major, minor = openable_block_device()
    cases = [(k, ma, mi, a, True) for k, ma, mi, a, _ in [*DEFAULT_CASES, ("b", major, minor, "r", False)]]
    assert_rules_hold(nodes, cases, container_cgroup)


def test_a_new_program_replaces_the_old_one(container_cgroup: Cgroup, nodes: Path) -> None:
    _, major, minor = openable_block_device()
    disk = [("c", 1, 3, "rw", True), ("b", major, minor, "r", False)]
    container_cgroup.confine_devices(cgroup_rules([], privileged=False))
    first = _programs(container_cgroup)
    container_cgroup.confine_devices(cgroup_rules([], privileged=True))
    second = _programs(container_cgroup)
    assert len(second) == 1 and second != first
    assert_rules_hold(nodes, [(k, ma, mi, a, True) for k, ma, mi, a, _ in disk], container_cgroup)
    container_cgroup.confine_devices(cgroup_rules([], privileged=False))
    assert len(_programs(container_cgroup)) == 1
    assert_rules_hold(nodes, disk, container_cgroup)


# -- the daemon's start path on a cgroup v2 host ---------------------------------------------------

def _sh(daemon: Daemon, script: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return daemon.cli("run", "--rm", *flags, "busybox", "sh", "-c", script, timeout=60)


def test_container_runs_in_a_v2_cgroup_with_its_device_program(cgroup2_daemon: Daemon, cgroup2: Path) -> None:
    result = _sh(cgroup2_daemon, "cat /proc/self/cgroup; cat /dev/null; head -c 4 /dev/zero | wc -c; "
                                 "head -c 4 /dev/urandom | wc -c; echo x > /dev/null && echo wrote")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    v2 = [line for line in lines if line.startswith("0::")]
    assert len(v2) == 1 and v2[0].startswith(f"0::/{PARENT}/")
    # In v1's root devices cgroup (when v1 has one), which allows everything: only the program confines.
    assert all(line.endswith(":devices:/") for line in lines if ":devices:" in line)
    assert lines[-3:] == ["4", "4", "wrote"]


def test_container_cannot_open_a_disk_on_v2(cgroup2_daemon: Daemon) -> None:
    _, major, minor = openable_block_device()
    made = _sh(cgroup2_daemon, f"mknod /tmp/blk b {major} {minor} && echo made && dd if=/tmp/blk of=/dev/null count=1")
    assert "made" in made.stdout
    assert made.returncode != 0 and "Operation not permitted" in made.stderr
    mem = _sh(cgroup2_daemon, "mknod /tmp/mem c 1 1 && head -c 1 /tmp/mem")
    assert mem.returncode != 0 and "Operation not permitted" in mem.stderr
    privileged = _sh(cgroup2_daemon, f"mknod /tmp/blk b {major} {minor} && dd if=/tmp/blk of=/dev/null count=1",
                     "--privileged")
    assert privileged.returncode == 0, privileged.stderr


def test_start_fails_when_the_device_program_cannot_be_attached(cgroup2_daemon: Daemon, cgroup2: Path) -> None:
    """An exclusive program on the ``dockyard`` parent forbids programs below it: the container
    must not start (and leaves no cgroup) rather than run without device rules."""
    parent = cgroup2 / PARENT
    parent.mkdir(exist_ok=True)
    dir_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    prog_fd = bpf.load_device_program(device_bpf.program_for(cgroup_rules([], privileged=True)))
    try:
        bpf.attach(dir_fd, prog_fd, 0)
        before = set(os.listdir(parent))
        result = cgroup2_daemon.cli("run", "--rm", "busybox", "true", timeout=60)
        assert result.returncode != 0
        assert "device program" in result.stderr and "Operation not permitted" in result.stderr, result.stderr
        if parent.exists():
            assert {p for p in os.listdir(parent) if (parent / p).is_dir()} <= before
    finally:
        os.close(prog_fd)
        if parent.exists():
            for prog_id in bpf.attached_programs(dir_fd):
                bpf.detach_device_program(dir_fd, prog_id)
        os.close(dir_fd)
        try:
            parent.rmdir()
        except OSError:
            pass  # still used by a container


def test_exec_is_confined_and_device_flag_allowed_on_v2(cgroup2_daemon: Daemon) -> None:
    disk = openable_block_device()
    started = cgroup2_daemon.cli("run", "-d", "--device", f"{disk.path}:/dev/xda:r", "busybox", "sleep", "60",
                                 timeout=60)
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    try:
        script = "dd if=/dev/xda of=/dev/null count=1 && echo read; (: >> /dev/xda); mknod /tmp/m c 1 1; head -c 1 /tmp/m"
        result = cgroup2_daemon.cli("exec", cid, "sh", "-c", script, timeout=60)
        assert "read" in result.stdout, result.stderr  # --device ...:r: read allowed
        assert result.stderr.count("Operation not permitted") == 2, result.stderr  # not written; /dev/mem
    finally:
        cgroup2_daemon.cli("rm", "-f", cid, timeout=60)
