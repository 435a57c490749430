"""exec, restart, rename, top, prune, events, attach/detach, create/start: through our CLI, Docker's
28 CLI and docker-py (needs root)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pexpect
import pytest

from tests.integration.daemon_harness import DOCKER, DOCKER_20, DOCKER_28, Daemon

pytestmark = [pytest.mark.root]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def running(daemon: Daemon, *args: str, name: str | None = None) -> Iterator[str]:
    """A detached busybox container (``sleep 300`` unless ``args``), removed afterwards."""
    name = name or _name("ct")
    cmd = list(args) or ["sleep", "300"]
    r = daemon.cli("run", "-d", "--name", name, "busybox", *cmd)
    assert r.returncode == 0, r.stderr
    try:
        yield name
    finally:
        daemon.cli("rm", "-f", name)


def _wait_for(predicate, what: str, timeout: float = 15) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- exec ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("tool", ["cli", "docker", "docker20"])
def test_exec_output_exit_code_env_workdir_user(daemon: Daemon, tool: str) -> None:
    runners: dict[str, Any] = {"cli": daemon.cli, "docker": daemon.docker,
                               "docker20": functools.partial(daemon.docker, client=DOCKER_20)}
    run = runners[tool]
    with running(daemon) as name:
        r = run("exec", name, "echo", "hello")
        assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr
        r = run("exec", name, "sh", "-c", "echo out; echo err >&2; exit 3")
        assert r.returncode == 3
        assert r.stdout == "out\n" and r.stderr == "err\n"
        r = run("exec", "-e", "GREETING=hi there", "-w", "/tmp", "-u", "nobody", name,
                "sh", "-c", 'echo "$GREETING"; pwd; id -u; echo "$PATH"')
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == ["hi there", "/tmp", "65534",
                                         "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


@pytest.mark.parametrize("tool", ["cli", "docker"])
def test_exec_missing_command_is_127_with_dockers_message(daemon: Daemon, tool: str) -> None:
    run = daemon.cli if tool == "cli" else daemon.docker
    with running(daemon) as name:
        r = run("exec", name, "nope")
        assert r.returncode == 127
        assert ('OCI runtime exec failed: exec failed: unable to start container process: exec: "nope": '
                "executable file not found in $PATH: unknown") in r.stdout + r.stderr


def test_exec_runs_in_the_containers_namespaces(daemon: Daemon) -> None:
    with running(daemon) as name:
        r = daemon.cli("exec", name, "sh", "-c", "hostname; ls /proc | grep -c '^[0-9]'; cat /proc/1/cmdline")
        assert r.returncode == 0, r.stderr
        hostname, count, cmdline = r.stdout.splitlines()
        cid = daemon.cli("inspect", "-f", "{{.Id}}", name).stdout.strip()
        assert hostname == cid[:12]
        assert int(count) <= 4  # sleep, sh, ls, grep: nothing of the host's
        assert cmdline.replace("\x00", " ").strip() == "sleep 300"


def test_exec_into_stopped_container_fails(daemon: Daemon) -> None:
    name = _name("stopped")
    assert daemon.cli("create", "--name", name, "busybox", "true").returncode == 0
    try:
        r = daemon.docker("exec", name, "true")
        assert r.returncode == 1
        assert "is not running" in r.stderr
        r = daemon.cli("exec", name, "true")
        assert r.returncode == 1
        assert "is not running" in r.stderr
    finally:
        daemon.cli("rm", "-f", name)


def test_exec_detached_and_exec_inspect(daemon: Daemon) -> None:
    client = daemon.client()
    with running(daemon) as name:
        assert daemon.docker("exec", "-d", name, "sh", "-c", "echo done > /tmp/marker").returncode == 0
        _wait_for(lambda: daemon.cli("exec", name, "cat", "/tmp/marker").stdout == "done\n", "the detached exec")
        c = client.containers.get(name)
        exec_id = client.api.exec_create(c.id, ["sh", "-c", "exit 5"])["Id"]
        assert exec_id in client.api.inspect_container(c.id)["ExecIDs"]
        before = client.api.exec_inspect(exec_id)
        assert before["Running"] is False and before["ContainerID"] == c.id
        client.api.exec_start(exec_id)
        after = client.api.exec_inspect(exec_id)
        assert after["ExitCode"] == 5 and after["Running"] is False
        assert after["ProcessConfig"]["entrypoint"] == "sh"
        code, output = c.exec_run(["sh", "-c", "echo $A", ], environment={"A": "from-py"})
        assert (code, output) == (0, b"from-py\n")
        client.close()


def test_exec_stdin_is_forwarded(daemon: Daemon) -> None:
    with running(daemon) as name:
        r = daemon.docker("exec", "-i", name, "sh", "-c", "cat; echo end", input="piped\n")
        assert (r.returncode, r.stdout) == (0, "piped\nend\n"), r.stderr


@pytest.mark.parametrize("argv", [[DOCKER], ["python", "-m", "dockyard.cli.main"]])
def test_exec_it_with_a_terminal(daemon: Daemon, argv: list[str]) -> None:
    if argv[0] == "python":
        argv = [os.sys.executable, *argv[1:]]  # type: ignore[attr-defined]
    with running(daemon) as name:
        child = pexpect.spawn(argv[0], [*argv[1:], "exec", "-it", name, "sh"], env=daemon.env(),
                              dimensions=(33, 101), timeout=20, encoding="utf-8")
        try:
            child.expect(r"# ")
            child.sendline("stty size; tty; echo $TERM")
            child.expect("33 101")
            child.expect("/dev/pts/")
            child.expect("xterm")
            child.sendline("exit 4")
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        assert child.exitstatus == 4
        child = pexpect.spawn(argv[0], [*argv[1:], "exec", "-it", name, "sh"], env=daemon.env(),
                              timeout=20, encoding="utf-8")
        try:
            child.expect(r"# ")
            child.sendeof()  # Ctrl-D ends the exec'd shell; the container keeps running
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        assert child.exitstatus == 0
        assert daemon.cli("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"


def test_exec_survives_as_exit_code_after_daemon_restart(fresh_daemon: Daemon) -> None:
    d = fresh_daemon
    r = d.cli("run", "-d", "--name", "keeper", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    client = d.client()
    exec_id = client.api.exec_create("keeper", ["sh", "-c", "exit 7"])["Id"]
    client.api.exec_start(exec_id)
    client.close()
    d.stop()
    d.start()
    client = d.client()
    try:
        assert client.api.exec_inspect(exec_id)["ExitCode"] == 7
        r = d.docker("exec", "keeper", "echo", "after-restart")
        assert (r.returncode, r.stdout) == (0, "after-restart\n"), r.stderr
        r = d.cli("exec", "keeper", "sh", "-c", "exit 9")
        assert r.returncode == 9
    finally:
        client.close()


# -- create / start / restart / rename / top / port / prune ------------------------------------------

def test_create_then_start_attached_gives_exit_code(daemon: Daemon) -> None:
    name = _name("created")
    r = daemon.cli("create", "--name", name, "busybox", "sh", "-c", "echo from-start; exit 6")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        assert len(cid) == 64
        assert daemon.cli("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "created"
        r = daemon.cli("start", "-a", name)
        assert (r.returncode, r.stdout) == (6, "from-start\n"), r.stderr
        r = daemon.cli("start", name, "no-such-container")
        assert r.returncode == 1
        assert r.stdout == f"{name}\n"
        assert "No such container: no-such-container" in r.stderr
        assert "failed to start containers: no-such-container" in r.stderr
    finally:
        daemon.cli("rm", "-f", name)


@pytest.mark.parametrize("tool", ["cli", "docker"])
def test_restart_keeps_id_and_changes_started_at(daemon: Daemon, tool: str) -> None:
    run = daemon.cli if tool == "cli" else daemon.docker
    with running(daemon, "sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait") as name:
        before = json.loads(daemon.cli("inspect", name).stdout)[0]
        r = run("restart", "-t", "5", name)
        assert (r.returncode, r.stdout) == (0, f"{name}\n"), r.stderr
        after = json.loads(daemon.cli("inspect", name).stdout)[0]
        assert after["Id"] == before["Id"]
        assert after["State"]["Running"] is True
        assert after["State"]["StartedAt"] > before["State"]["StartedAt"]
        assert after["State"]["Pid"] != before["State"]["Pid"]


def test_rename_and_conflicts(daemon: Daemon) -> None:
    with running(daemon) as first, running(daemon) as second:
        renamed = _name("renamed")
        assert daemon.docker("rename", first, renamed).returncode == 0
        assert daemon.cli("inspect", "-f", "{{.Name}}", renamed).stdout.strip() == "/" + renamed
        r = daemon.cli("rename", renamed, second)
        assert r.returncode == 1
        assert f'Conflict. The container name "/{second}" is already in use by container' in r.stderr
        r = daemon.docker("rename", second, second)
        assert r.returncode == 1 and "same name as its current name" in r.stderr
        r = daemon.cli("rename", second, "bad name!")
        assert r.returncode == 1 and "Invalid container name (bad name!)" in r.stderr
        daemon.cli("rename", renamed, first)


@pytest.mark.parametrize("tool", ["cli", "docker"])
def test_top_lists_only_the_containers_processes(daemon: Daemon, tool: str) -> None:
    run = daemon.cli if tool == "cli" else daemon.docker
    with running(daemon, "sh", "-c", "sleep 301 & sleep 302; true") as name:
        _wait_for(lambda: "sleep 302" in run("top", name).stdout, "top to list the processes")
        r = run("top", name)
        lines = r.stdout.splitlines()
        assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        commands = sorted(" ".join(line.split()[7:]) for line in lines[1:])
        # ps (as Docker runs it, output not a terminal) cuts lines at 80 columns
        assert [c[:14] for c in commands] == ["sh -c sleep 30", "sleep 301", "sleep 302"]
        r = run("top", name, "-o", "pid,comm")
        assert r.stdout.splitlines()[0].split() == ["PID", "COMMAND"]
        assert len(r.stdout.splitlines()) == 4
    stopped = _name("stopped")
    daemon.cli("create", "--name", stopped, "busybox", "true")
    try:
        r = run("top", stopped)
        assert r.returncode == 1 and "is not running" in r.stderr
    finally:
        daemon.cli("rm", "-f", stopped)


def test_port_without_published_ports(daemon: Daemon) -> None:
    with running(daemon) as name:
        # Docker's CLI 28.x (and ours) echo the port as given; 20.10 adds the default protocol.
        for run, port in ((daemon.cli, "80"), (daemon.docker, "80" if DOCKER == DOCKER_28 else "80/tcp")):
            r = run("port", name)
            assert (r.returncode, r.stdout) == (0, "")
            r = run("port", name, "80")
            assert r.returncode == 1
            assert f"Error: No public port '{port}' published for {name}" in r.stderr


def test_container_prune_removes_only_stopped(daemon: Daemon) -> None:
    label = f"prune-test={uuid.uuid4().hex[:6]}"
    done = _name("done")
    assert daemon.cli("run", "--name", done, "--label", label, "busybox", "true").returncode == 0
    created = _name("created")
    assert daemon.cli("create", "--name", created, "--label", label, "busybox", "true").returncode == 0
    with running(daemon, name=_name("alive")) as alive:
        daemon.cli("run", "-d", "--name", alive + "x", "--label", label, "busybox", "sleep", "300")
        try:
            r = daemon.docker("container", "prune", "-f", "--filter", f"label={label}")
            assert r.returncode == 0, r.stderr
            assert r.stdout.startswith("Deleted Containers:\n")
            names = daemon.cli("ps", "-a", "--format", "{{.Names}}").stdout.split()
            assert done not in names and created not in names
            assert alive in names and alive + "x" in names
            r = daemon.cli("container", "prune", "-f", "--filter", f"label={label}")
            assert (r.returncode, r.stdout) == (0, "Total reclaimed space: 0B\n")
        finally:
            daemon.cli("rm", "-f", alive + "x")


def test_container_management_aliases(daemon: Daemon) -> None:
    with running(daemon) as name:
        assert name in daemon.cli("container", "ls", "--format", "{{.Names}}").stdout.split()
        assert daemon.cli("container", "inspect", "-f", "{{.Name}}", name).stdout.strip() == "/" + name
        assert daemon.cli("container", "exec", name, "echo", "x").stdout == "x\n"
        assert daemon.cli("container", "rm", "-f", name).returncode == 0


def test_ps_filters_before_since_and_size(daemon: Daemon) -> None:
    with running(daemon) as a, running(daemon) as b, running(daemon) as c:
        names = daemon.cli("ps", "--filter", f"since={a}", "--format", "{{.Names}}").stdout.split()
        assert b in names and c in names and a not in names
        names = daemon.cli("ps", "--filter", f"before={c}", "--format", "{{.Names}}").stdout.split()
        assert a in names and b in names and c not in names
        daemon.cli("exec", a, "sh", "-c", "head -c 5000 /dev/zero > /big")
        client = daemon.client()
        try:
            api = client.api
            info = api._result(api._get(api._url("/containers/{0}/json", a), params={"size": 1}), True)
            assert info["SizeRw"] >= 5000 and info["SizeRootFs"] > info["SizeRw"]
            listed = {x["Names"][0]: x for x in client.api.containers(size=True)}
            assert listed["/" + a]["SizeRw"] >= 5000
        finally:
            client.close()


# -- attach ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [[DOCKER], ["python", "-m", "dockyard.cli.main"]])
def test_attach_detach_with_ctrl_p_ctrl_q_leaves_it_running(daemon: Daemon, argv: list[str]) -> None:
    if argv[0] == "python":
        argv = [os.sys.executable, *argv[1:]]  # type: ignore[attr-defined]
    name = _name("att")
    assert daemon.cli("run", "-dit", "--name", name, "busybox", "sh").returncode == 0
    try:
        child = pexpect.spawn(argv[0], [*argv[1:], "attach", name], env=daemon.env(), timeout=20,
                              encoding="utf-8")
        try:
            child.sendline("echo $((7*6))")
            child.expect("42")
            child.send("\x10\x11")
            child.expect("read escape sequence")  # Docker's CLI says so and exits 1
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        assert child.exitstatus == 1
        assert daemon.cli("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
        r = daemon.cli("attach", _name("absent"))
        assert r.returncode == 1 and "No such container" in r.stderr
    finally:
        daemon.cli("rm", "-f", name)


# -- events -----------------------------------------------------------------------------------------------

def test_events_of_a_container_in_order_with_attributes(daemon: Daemon) -> None:
    client = daemon.client()
    try:
        since = time.time() - 1
        name = _name("ev")
        r = daemon.cli("run", "--name", name, "--label", "color=blue", "busybox", "sh", "-c", "exit 3")
        assert r.returncode == 3
        daemon.cli("rm", name)
        until = int(time.time()) + 2  # in the future: the stream must end by itself when it comes
        events = list(client.api.events(since=since, until=until, decode=True,
                                        filters={"container": name}))
        actions = [e["Action"] for e in events]
        assert actions == ["create", "attach", "start", "die", "destroy"]
        for e in events:
            assert e["Type"] == "container" and e["scope"] == "local"
            assert e["Actor"]["Attributes"]["name"] == name
            assert e["Actor"]["Attributes"]["image"] == "busybox"
            assert e["Actor"]["Attributes"]["color"] == "blue"
            assert e["id"] == e["Actor"]["ID"] and e["status"] == e["Action"] and e["from"] == "busybox"
            assert e["time"] == e["timeNano"] // 10**9
        assert events[3]["Actor"]["Attributes"]["exitCode"] == "3"
        assert [e["timeNano"] for e in events] == sorted(e["timeNano"] for e in events)
    finally:
        client.close()


def test_events_cli_since_until_terminates_and_filters(daemon: Daemon) -> None:
    with running(daemon) as name:
        daemon.cli("exec", name, "true")
        r = daemon.docker("events", "--since", "5m", "--until", "0s", "--filter", f"container={name}",
                          "--filter", "event=exec_die", timeout=20)
        assert r.returncode == 0, r.stderr
        # the CLI rounds "0s" down to the second, so the exec may or may not be in that window
        assert all(" container exec_die " in line for line in r.stdout.splitlines())
        later = str(time.time() + 1)
        r = daemon.cli("events", "--since", "5m", "--until", later, "--filter", f"container={name}",
                       "--format", "{{json .}}", timeout=20)
        assert r.returncode == 0, r.stderr
        actions = [json.loads(line)["Action"] for line in r.stdout.splitlines()]
        assert actions[:2] == ["create", "start"]
        assert "exec_create: true " in actions and "exec_start: true " in actions and "exec_die" in actions
        r = daemon.cli("events", "--since", "5m", "--until", later, "--filter", f"container={name}",
                       "--filter", "event=start", timeout=20)
        lines = r.stdout.splitlines()
        assert len(lines) == 1 and " container start " in lines[0] and f"name={name}" in lines[0]


def test_exec_is_confined_like_the_container_unless_privileged(daemon: Daemon) -> None:
    with running(daemon) as name:
        script = "grep -E '^(CapEff|Seccomp):' /proc/1/status; grep -E '^(CapEff|Seccomp):' /proc/self/status"
        r = daemon.cli("exec", name, "sh", "-c", script)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[:2] == lines[2:]  # the exec has the init's capabilities and seccomp mode
        r = daemon.docker("exec", "--privileged", name, "sh", "-c", "grep -E '^(CapEff|Seccomp):' /proc/self/status")
        privileged = dict(line.split(":\t") for line in r.stdout.splitlines())
        init = dict(line.split(":\t") for line in lines[:2])
        assert int(privileged["CapEff"], 16) > int(init["CapEff"], 16)
        assert privileged["Seccomp"].strip() == "0"


def test_image_events(daemon: Daemon) -> None:
    client = daemon.client()
    try:
        since = time.time() - 1
        repo = f"evimg{uuid.uuid4().hex[:6]}"
        assert daemon.cli("tag", "busybox", f"{repo}:one").returncode == 0
        assert daemon.cli("rmi", f"{repo}:one").returncode == 0
        image_id = client.api.inspect_image("busybox")["Id"]
        events = list(client.api.events(since=since, until=int(time.time()) + 2, decode=True,
                                        filters={"type": "image"}))
        mine = [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"].get("name")) for e in events
                if e["Actor"]["ID"] == image_id]
        assert ("tag", image_id, f"{repo}:one") in mine
        assert ("untag", image_id, image_id) in mine
    finally:
        client.close()


def test_exec_output_is_not_logged(daemon: Daemon) -> None:
    with running(daemon, "sh", "-c", "echo from-init; sleep 300") as name:
        _wait_for(lambda: "from-init" in daemon.cli("logs", name).stdout, "the init's output")
        assert daemon.cli("exec", name, "echo", "from-exec").stdout == "from-exec\n"
        assert daemon.cli("logs", name).stdout == "from-init\n"
        state_dir = daemon.cli("inspect", "-f", "{{.LogPath}}", name).stdout.strip().rsplit("/", 1)[0]
        exec_dirs = os.listdir(os.path.join(state_dir, "exec"))
        assert exec_dirs
        for exec_dir in exec_dirs:
            assert not [f for f in os.listdir(os.path.join(state_dir, "exec", exec_dir)) if f.endswith(".log")
                        and f != "shim.log"]


def test_exec_joins_the_containers_cgroups(daemon: Daemon) -> None:
    with running(daemon) as name:
        r = daemon.cli("exec", name, "sh", "-c", "cat /proc/1/cgroup; echo ---; cat /proc/self/cgroup")
        assert r.returncode == 0, r.stderr
        init, _, exec_ = r.stdout.partition("---\n")
        assert init == exec_
        with open("/proc/self/cgroup") as f:
            ours = f.read()
        pid = int(daemon.cli("inspect", "-f", "{{.State.Pid}}", name).stdout)
        with open(f"/proc/{pid}/cgroup") as f:
            theirs = f.read()
        if theirs != ours:  # the container has cgroups of its own: the exec is in them, not ours
            assert exec_ != ours
