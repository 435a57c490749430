"""Docker's own CLI (28.x and Debian's 20.10) against dockyard, and our CLI the same way (needs root)."""

from __future__ import annotations

import json
import os
import time

import pexpect
import pytest

from tests.integration.daemon_harness import DOCKER_20, DOCKER_28, Daemon

pytestmark = [pytest.mark.root, pytest.mark.docker_cli]

CLIENTS = [c for c in (DOCKER_28, DOCKER_20) if os.path.exists(c)]


def test_both_docker_clients_are_installed() -> None:
    # install.sh --test installs docker.io; a 28.x client at DOCKER_28 is used too when present.
    assert os.path.exists(DOCKER_20), "Debian's docker.io client is missing"


@pytest.mark.parametrize("client", CLIENTS)
def test_docker_run_rm_echo(daemon: Daemon, client: str) -> None:
    r = daemon.docker("run", "--rm", "busybox", "echo", "hi", client=client)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"


@pytest.mark.parametrize("client", CLIENTS)
def test_docker_verbs(daemon: Daemon, client: str) -> None:
    name = f"dk-{os.path.basename(client)}-{'28' if client == DOCKER_28 else '20'}"
    r = daemon.docker("run", "-d", "--name", name, "busybox", "sh", "-c", "echo started; sleep 60", client=client)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert len(cid) == 64
    try:
        deadline = time.monotonic() + 10
        while "started" not in daemon.docker("logs", name, client=client).stdout:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        ps = daemon.docker("ps", "-a", client=client)
        assert ps.returncode == 0, ps.stderr
        line = next(line for line in ps.stdout.splitlines() if name in line)
        assert cid[:12] in line and "Up " in line and "busybox" in line
        inspect = json.loads(daemon.docker("inspect", name, client=client).stdout)
        assert inspect[0]["Id"] == cid and inspect[0]["State"]["Running"] is True
        fmt = daemon.docker("inspect", "-f", "{{.State.Status}} {{.Config.Image}}", name, client=client)
        assert fmt.stdout.strip() == "running busybox"
        images = daemon.docker("images", client=client)
        assert images.returncode == 0 and "busybox" in images.stdout and "latest" in images.stdout
        rm = daemon.docker("rm", "-f", name, client=client)
        assert rm.returncode == 0, rm.stderr
        assert name not in daemon.docker("ps", "-a", client=client).stdout
    finally:
        daemon.docker("rm", "-f", name, client=client)


@pytest.mark.parametrize("client", CLIENTS)
def test_docker_exit_codes(daemon: Daemon, client: str) -> None:
    assert daemon.docker("run", "--rm", "busybox", "sh", "-c", "exit 3", client=client).returncode == 3
    missing = daemon.docker("run", "--rm", "busybox", "no-such-command", client=client)
    assert missing.returncode == 127
    assert "executable file not found" in missing.stderr
    unknown = daemon.docker("run", "--rm", "no-such-image-here", client=client)
    assert unknown.returncode == 125
    assert "Unable to find image 'no-such-image-here:latest' locally" in unknown.stderr


def test_our_cli_run_and_verbs(daemon: Daemon) -> None:
    r = daemon.cli("run", "--rm", "busybox", "echo", "hello from a container")
    assert (r.returncode, r.stdout) == (0, "hello from a container\n"), r.stderr
    assert daemon.cli("run", "--rm", "busybox", "sh", "-c", "exit 4").returncode == 4
    assert daemon.cli("run", "--rm", "busybox", "no-such-command").returncode == 127
    bad = daemon.cli("run", "--no-such-flag", "busybox")
    assert bad.returncode == 125 and "unknown flag: --no-such-flag" in bad.stderr
    cid = daemon.cli("run", "-d", "--name", "ours", "-e", "X=1", "busybox", "sh", "-c", "echo $X; sleep 30").stdout.strip()
    try:
        assert len(cid) == 64
        deadline = time.monotonic() + 10
        while daemon.cli("logs", "ours").stdout != "1\n":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert cid[:12] in daemon.cli("ps").stdout
        assert daemon.cli("ps", "-q").stdout.split().count(cid[:12]) == 1
        assert daemon.cli("inspect", "-f", "{{.State.Running}}", "ours").stdout.strip() == "true"
        assert daemon.cli("stop", "-t", "1", "ours").stdout.strip() == "ours"
        assert daemon.cli("wait", "ours").stdout.strip() == "137"
    finally:
        daemon.cli("rm", "-f", "ours")
    assert "ours" not in daemon.cli("ps", "-a").stdout


@pytest.mark.parametrize("client", ["dockyard", *CLIENTS])
def test_interactive_tty(daemon: Daemon, client: str) -> None:
    import sys

    if client == "dockyard":
        argv = [sys.executable, "-m", "dockyard.cli.main"]
    else:
        argv = [client]
    child = pexpect.spawn(argv[0], [*argv[1:], "run", "-it", "--rm", "busybox", "sh"], env=daemon.env(),
                          dimensions=(30, 100), timeout=20, encoding="utf-8")
    try:
        child.expect(r"# ")
        child.sendline("echo $((6*7))")
        child.expect("42")
        child.sendline("stty size; tty")
        child.expect("30 100")
        child.expect("/dev/pts/0")
        child.sendline("sleep 100")
        time.sleep(0.5)
        child.sendintr()  # Ctrl-C reaches the container's foreground process, not the CLI
        child.expect(r"# ")
        child.sendline("echo still-here")
        child.expect("still-here")
        child.sendeof()  # Ctrl-D ends the shell, and with it the container
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


@pytest.mark.parametrize("client", ["dockyard", *CLIENTS])
def test_logs_since_until_tail_timestamps(daemon: Daemon, client: str) -> None:
    name = f"logwin-{os.path.basename(client)}-{len(client)}"
    run = daemon.cli if client == "dockyard" else (lambda *a, **k: daemon.docker(*a, client=client, **k))
    assert run("run", "--name", name, "busybox", "sh", "-c", "echo early; sleep 2; echo late").returncode == 0
    try:
        stamped = run("logs", "-t", name).stdout.splitlines()
        assert [line.split(" ", 1)[1] for line in stamped] == ["early", "late"]
        late_at = stamped[1].split(" ", 1)[0]
        assert run("logs", "--since", late_at, name).stdout == "late\n"
        assert run("logs", "--until", late_at, name).stdout.startswith("early\n")
        assert run("logs", "--tail", "1", name).stdout == "late\n"
        assert run("logs", "--since", "1h", name).stdout == "early\nlate\n"
    finally:
        run("rm", "-f", name)
