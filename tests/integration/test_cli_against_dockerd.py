"""The dockyard CLI driven against a real dockerd (Debian's docker.io), compared with Docker's client.

A session fixture starts a private dockerd (its own data root, exec root and socket under a temp
dir, no bridge, no iptables), imports the offline busybox rootfs as ``busybox:latest``, and tears
everything down afterwards (dockerd stopped, leftover shims killed by pid, mounts undone).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_harness import DOCKER, as_docker_28

pytestmark = [pytest.mark.root, pytest.mark.docker_cli]

DOCKERD = "/usr/sbin/dockerd"


def shutdown(peer: Dockerd) -> None:
    """Stop a private dockerd and leave nothing of it: containers, processes, mounts, files."""
    for container in peer.docker("ps", "-aq").stdout.split():
        peer.docker("rm", "-f", container)
    peer.process.send_signal(signal.SIGTERM)
    try:
        peer.process.wait(30)
    except subprocess.TimeoutExpired:
        peer.process.kill()
        peer.process.wait(10)
    for pid in _processes_mentioning(str(peer.root)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _unmount_under(peer.root)
    shutil.rmtree(peer.root, ignore_errors=True)


class Dockerd:
    """A running private dockerd: ``host`` is its ``unix://`` address."""

    def __init__(self, root: Path, process: subprocess.Popen[bytes]) -> None:
        self.root = root
        self.process = process
        self.host = f"unix://{root}/docker.sock"

    def docker(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([DOCKER, "-H", self.host, *args], capture_output=True, text=True,
                              input=input.decode() if input else None, timeout=60)

    def cli(self, *args: str, input: bytes | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run *our* CLI with ``-H`` pointing at this dockerd."""
        return subprocess.run([sys.executable, "-m", "dockyard.cli.main", "-H", self.host, *args],
                              capture_output=True, text=True, input=input.decode() if input else None,
                              timeout=60, env=env)

    def cli_bytes(self, *args: str) -> bytes:
        """Our CLI's stdout, undecoded (to see a TTY's ``\r\n``)."""
        return subprocess.run(self.cli_argv(*args), capture_output=True, timeout=60).stdout

    def cli_argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "dockyard.cli.main", "-H", self.host, *args]


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            pids.append(int(entry))
    return pids


def _unmount_under(root: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount_point in sorted((m for m in mounts if m.startswith(str(root))), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount_point], check=False)


def _start_dockerd(root: Path, extra: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    log = open(root / "dockerd.log", "ab")  # noqa: SIM115 - closed by the fixture
    argv = [DOCKERD, "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
            "-H", f"unix://{root}/docker.sock", "--pidfile", str(root / "pid"), "--bridge=none",
            "--iptables=false", "--ip6tables=false", *extra]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        probe = subprocess.run([DOCKER, "-H", f"unix://{root}/docker.sock", "version"], capture_output=True)
        if probe.returncode == 0:
            return process, ""
        time.sleep(0.3)
    if process.poll() is None:
        process.terminate()
        process.wait(30)
    return process, (root / "dockerd.log").read_text(errors="replace")[-3000:]


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Iterator[Dockerd]:
    if not os.path.exists(DOCKERD) or not os.path.exists(DOCKER):
        pytest.fail(f"need {DOCKERD} and the docker client for these tests")
    root = tmp_path_factory.mktemp("dockerd")
    process, failure = None, ""
    for extra in ([], ["--storage-driver=vfs"], ["--storage-driver=vfs", "--exec-opt",
                                                  "native.cgroupdriver=cgroupfs"]):
        process, failure = _start_dockerd(root, extra)
        if not failure:
            break
    if failure:
        pytest.fail(f"dockerd could not start; the end of its log:\n{failure}")
    assert process is not None
    daemon = Dockerd(root, process)
    imported = daemon.docker("import", str(busybox_tar), "busybox:latest")
    assert imported.returncode == 0, imported.stderr
    try:
        yield daemon
    finally:
        shutdown(daemon)


def test_run_echo_and_exit_code(dockerd: Dockerd) -> None:
    result = dockerd.cli("run", "--rm", "busybox", "echo", "hello")
    assert (result.returncode, result.stdout) == (0, "hello\n")
    result = dockerd.cli("run", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_run_options(dockerd: Dockerd) -> None:
    result = dockerd.cli("run", "--rm", "-e", "A=1", "-e=B=2", "-w", "/tmp", "-u", "nobody",
                         "busybox", "sh", "-c", "echo $A$B $(pwd) $(id -u)")
    assert result.stdout == "12 /tmp 65534\n", result.stderr
    result = dockerd.cli("run", "--rm", "--entrypoint", "/bin/echo", "busybox", "via", "entrypoint")
    assert result.stdout == "via entrypoint\n"
    result = dockerd.cli("run", "--rm", "-h", "boxname", "busybox", "hostname")
    assert result.stdout == "boxname\n"


def test_run_stdin_and_tty(dockerd: Dockerd) -> None:
    result = dockerd.cli("run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done", input=b"a line\n")
    assert result.stdout == "a line\ndone\n"
    assert dockerd.cli_bytes("run", "-t", "--rm", "busybox", "echo", "tty") == b"tty\r\n"


def test_run_errors_match_docker(dockerd: Dockerd) -> None:
    ours = dockerd.cli("run", "busybox", "nosuchcmd")
    theirs = dockerd.docker("run", "busybox", "nosuchcmd")
    assert ours.returncode == theirs.returncode == 127
    assert ours.stderr.replace("dockyard", "docker") == as_docker_28(theirs.stderr)
    ours = dockerd.cli("run", "busybox", "/etc/passwd")
    assert ours.returncode == 126
    ours = dockerd.cli("run", "--foo", "busybox")
    theirs = dockerd.docker("run", "--foo", "busybox")
    assert ours.returncode == theirs.returncode == 125
    assert ours.stderr.replace("dockyard", "docker") == as_docker_28(theirs.stderr)


def test_unknown_image(dockerd: Dockerd) -> None:
    result = dockerd.cli("run", "nosuchimage:v1")
    assert result.returncode == 125
    assert result.stderr.startswith("Unable to find image 'nosuchimage:v1' locally\n")
    assert "dockyard: Error response from daemon:" in result.stderr


def test_detached_lifecycle(dockerd: Dockerd) -> None:
    started = dockerd.cli("run", "-d", "--name", "sleeper", "-l", "role=test", "busybox", "sleep", "1000")
    assert started.returncode == 0, started.stderr
    container_id = started.stdout.strip()
    assert len(container_id) == 64
    assert dockerd.cli("ps", "-q").stdout.split() == dockerd.docker("ps", "-q").stdout.split()
    assert container_id[:12] in dockerd.cli("ps", "-q").stdout.split()
    fmt = "{{.ID}} {{.Names}} {{.Image}} {{.Command}} {{.State}} {{.Labels}}"
    assert dockerd.cli("ps", "--format", fmt).stdout == dockerd.docker("ps", "--format", fmt).stdout
    table = "table {{.Names}}\t{{.Status}}"
    assert dockerd.cli("ps", "--format", table).stdout.splitlines()[0] == "NAMES     STATUS"
    assert dockerd.cli("inspect", "-f", '{{.State.Running}} {{index .Config.Labels "role"}}',
                       "sleeper").stdout == "true test\n"
    stopped = dockerd.cli("stop", "-t", "1", "sleeper")
    assert (stopped.returncode, stopped.stdout) == (0, "sleeper\n")
    assert dockerd.cli("wait", "sleeper").stdout == "137\n"
    assert dockerd.cli("inspect", "-f", "{{.State.ExitCode}}", "sleeper").stdout == "137\n"
    removed = dockerd.cli("rm", "sleeper", "nosuch")
    assert removed.returncode == 1
    assert removed.stdout == "sleeper\n"
    assert removed.stderr == "Error response from daemon: No such container: nosuch\n"


def test_kill_and_rm_force(dockerd: Dockerd) -> None:
    assert dockerd.cli("run", "-d", "--name", "victim", "busybox", "sleep", "1000").returncode == 0
    killed = dockerd.cli("kill", "-s", "KILL", "victim")
    assert killed.stdout == "victim\n"
    assert dockerd.cli("wait", "victim").stdout == "137\n"
    assert dockerd.cli("run", "-d", "--name", "victim2", "busybox", "sleep", "1000").returncode == 0
    assert dockerd.cli("rm", "-f", "victim", "victim2").stdout == "victim\nvictim2\n"
    assert dockerd.cli("kill", "victim").stderr == dockerd.docker("kill", "victim").stderr


def test_logs(dockerd: Dockerd) -> None:
    dockerd.cli("run", "--name", "talker", "busybox", "sh", "-c", "echo one; echo two >&2; echo three")
    ours, theirs = dockerd.cli("logs", "talker"), dockerd.docker("logs", "talker")
    assert (ours.stdout, ours.stderr) == (theirs.stdout, theirs.stderr) == ("one\nthree\n", "two\n")
    ours, theirs = dockerd.cli("logs", "--tail", "1", "talker"), dockerd.docker("logs", "--tail", "1", "talker")
    assert (ours.stdout, ours.stderr) == (theirs.stdout, theirs.stderr)
    assert len((ours.stdout + ours.stderr).splitlines()) == 1
    stamped = dockerd.cli("logs", "-t", "talker").stdout.splitlines()
    assert stamped[0].endswith("Z one") and stamped[0][:2] == "20"
    dockerd.cli("run", "-t", "--name", "ttytalker", "busybox", "echo", "raw")
    assert dockerd.cli_bytes("logs", "ttytalker") == b"raw\r\n"
    dockerd.cli("rm", "talker", "ttytalker")


def test_rm_auto_remove(dockerd: Dockerd) -> None:
    result = dockerd.cli("run", "--rm", "--name", "ephemeral", "busybox", "true")
    assert result.returncode == 0
    assert "ephemeral" not in dockerd.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()


def test_ps_all_matches_docker(dockerd: Dockerd) -> None:
    dockerd.cli("run", "--name", "exited3", "busybox", "sh", "-c", "exit 3")
    for args in (["ps", "-a", "--format", "{{.Names}}\t{{.Status}}"], ["ps", "-aq"], ["ps", "-a", "-n", "1"],
                 ["ps", "-a", "--no-trunc", "--format", "{{json .}}"]):
        ours, theirs = dockerd.cli(*args), dockerd.docker(*args)
        expected = as_docker_28(theirs.stdout)
        assert ours.stdout == expected or _same_but_clock(ours.stdout, expected), args
    lines = dockerd.cli("ps", "-a").stdout.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    dockerd.cli("rm", "exited3")


def _same_but_clock(a: str, b: str) -> bool:
    """Outputs equal except for "N seconds ago" ticking between the two runs (a table's columns then
    widen or narrow with it: runs of spaces between columns count as one gap)."""
    import re

    pattern = re.compile(r"(Less than a second|\d+ seconds?|About a minute)( ago)?")

    def norm(text: str) -> str:
        return re.sub(r" {2,}", "  ", pattern.sub("T", text))

    return norm(a) == norm(b)


def _same_rows(a: str, b: str) -> bool:
    """Same header and rows in any order: Docker's CLI lists the tags of one image in Go map
    order (random), so two tags of one image swap places from run to run."""
    def rows(text: str) -> tuple[str, list[str]]:
        lines = text.splitlines()
        return (lines[0] if lines else ""), sorted(lines[1:])

    return rows(a) == rows(b) or _same_but_clock("\n".join(sorted(a.splitlines())), "\n".join(sorted(b.splitlines())))


def test_inspect(dockerd: Dockerd) -> None:
    ours, theirs = dockerd.cli("inspect", "busybox"), dockerd.docker("inspect", "busybox")
    assert ours.stdout == theirs.stdout
    assert dockerd.cli("inspect", "-f", "{{.Id}}", "busybox").stdout.startswith("sha256:")
    ours, theirs = dockerd.cli("inspect", "nosuch"), dockerd.docker("inspect", "nosuch")
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)
    assert dockerd.cli("inspect", "-f", "{{json .Config.Cmd}}", "--type", "image", "busybox").returncode == 0


def test_images_tag_rmi(dockerd: Dockerd) -> None:
    assert dockerd.cli("tag", "busybox", "example/box:v1").returncode == 0
    for args in (["images"], ["images", "-q"], ["images", "--digests"], ["images", "--no-trunc"],
                 ["images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"]):
        ours, theirs = dockerd.cli(*args), dockerd.docker(*args)
        assert _same_rows(ours.stdout, theirs.stdout), (args, ours.stdout, theirs.stdout)
    removed = dockerd.cli("rmi", "example/box:v1")
    assert removed.stdout == "Untagged: example/box:v1\n"
    missing = dockerd.cli("rmi", "nosuch")
    assert (missing.returncode, missing.stderr) == (1, as_docker_28(dockerd.docker("rmi", "nosuch").stderr))


def test_import_with_changes(dockerd: Dockerd, busybox_tar: Path) -> None:
    result = dockerd.cli("import", "-c", "ENV GREETING=hi", "-c", 'CMD ["sh", "-c", "echo $GREETING"]',
                         "-m", "imported by dockyard", str(busybox_tar), "imported:v2")
    assert result.returncode == 0, result.stderr
    image_id = result.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    assert dockerd.cli("run", "--rm", "imported:v2").stdout == "hi\n"
    assert dockerd.cli("inspect", "-f", "{{.Comment}}", "imported:v2").stdout == "imported by dockyard\n"
    with busybox_tar.open("rb") as stdin:
        from_stdin = subprocess.run(dockerd.cli_argv("import", "-", "piped"), stdin=stdin,
                                    capture_output=True, text=True, timeout=60)
    assert from_stdin.returncode == 0 and from_stdin.stdout.startswith("sha256:")
    removed = dockerd.cli("rmi", "imported:v2", "piped")
    assert "Untagged: imported:v2" in removed.stdout and "Deleted: sha256:" in removed.stdout
    bad = dockerd.cli("import", "-c", "BOGUS x", str(busybox_tar), "bad")
    assert bad.returncode == 1 and bad.stderr.startswith("Error response from daemon:")


def test_version_and_info(dockerd: Dockerd) -> None:
    version = dockerd.cli("version")
    assert version.returncode == 0
    server_version = dockerd.docker("version", "-f", "{{.Server.Version}}").stdout.strip()
    assert "Server:" in version.stdout and f"  Version:          {server_version}" in version.stdout
    assert " API version:       1.41 (downgraded from 1.47)" in version.stdout
    info = dockerd.cli("info")
    assert info.returncode == 0
    theirs = dockerd.docker("info").stdout
    for line in info.stdout.splitlines():
        if line.startswith((" Containers", " Images", " Server Version", " Storage Driver", " Cgroup",
                            " Kernel Version", " CPUs", " Total Memory", " Docker Root Dir")):
            assert line in theirs.splitlines(), line


def test_run_interactive_tty(dockerd: Dockerd) -> None:
    import pexpect

    child = pexpect.spawn(sys.executable, dockerd.cli_argv("run", "-it", "--rm", "busybox", "sh")[1:],
                          dimensions=(30, 100), timeout=20, encoding="utf-8")
    try:
        child.expect(r"/ # ")
        child.send("echo $((6*7))\r")
        child.expect(r"\r\n42\r\n")
        child.expect(r"/ # ")
        child.send("stty size\r")
        child.expect(r"30 100\r\n")
        child.expect(r"/ # ")
        child.setwinsize(40, 120)
        time.sleep(0.5)
        child.send("stty size\r")
        child.expect(r"40 120\r\n")
        child.expect(r"/ # ")
        child.send("\x03")  # Ctrl-C at the prompt: the container's shell gets SIGINT, the session lives
        child.expect(r"/ # ")
        child.send("echo still-$((1+1))\r")
        child.expect(r"still-2")
        child.expect(r"/ # ")
        child.send("\x04")  # Ctrl-D: the shell exits
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_run_interactive_detach_keys(dockerd: Dockerd) -> None:
    import pexpect

    child = pexpect.spawn(sys.executable, dockerd.cli_argv("run", "-it", "--name", "detached", "busybox",
                                                           "sh")[1:], timeout=20, encoding="utf-8")
    try:
        child.expect(r"/ # ")
        child.send("\x10\x11")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert dockerd.cli("inspect", "-f", "{{.State.Running}}", "detached").stdout == "true\n"
    assert dockerd.cli("rm", "-f", "detached").returncode == 0
