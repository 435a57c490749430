"""Restart policies and log drivers, through our CLI, Docker's 28 CLI and docker-py."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_harness import Daemon, as_docker_28

pytestmark = pytest.mark.root


def inspect(d: Daemon, ref: str) -> dict[str, Any]:
    out = d.docker("inspect", ref, check=True).stdout
    return dict(json.loads(out)[0])


def eventually(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def _rm(d: Daemon, *names: str) -> None:
    d.docker("rm", "-f", *names)


# -- restart policies --------------------------------------------------------------------------------

def test_on_failure_restarts_exactly_n_times(daemon: Daemon) -> None:
    name = "sv-onfail"
    try:
        daemon.cli("run", "-d", "--name", name, "--restart", "on-failure:2", "busybox", "sh", "-c",
                   "echo run; exit 3", check=True)
        eventually(lambda: inspect(daemon, name)["State"]["Status"] == "exited"
                   and inspect(daemon, name)["RestartCount"] == 2)
        time.sleep(1)  # a third restart would have happened by now (back-off 400 ms)
        info = inspect(daemon, name)
        assert info["RestartCount"] == 2
        assert info["State"]["ExitCode"] == 3
        assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        assert daemon.docker("logs", name, check=True).stdout.split() == ["run", "run", "run"]
    finally:
        _rm(daemon, name)


def test_always_restarts_after_exit_but_not_after_stop(daemon: Daemon) -> None:
    name = "sv-always"
    try:
        daemon.docker("run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c",
                      "sleep 0.2", check=True)
        eventually(lambda: inspect(daemon, name)["RestartCount"] >= 2)
        daemon.docker("stop", "-t", "1", name, check=True)
        info = inspect(daemon, name)
        assert info["State"]["Status"] == "exited"
        count = info["RestartCount"]
        time.sleep(1)
        assert inspect(daemon, name)["State"]["Status"] == "exited"
        assert inspect(daemon, name)["RestartCount"] == count
    finally:
        _rm(daemon, name)


def test_kill_cancels_restart_and_restarting_state_is_visible(daemon: Daemon) -> None:
    name = "sv-kill"
    try:
        daemon.docker("run", "-d", "--name", name, "--restart", "always", "busybox", "sleep", "60", check=True)
        daemon.docker("kill", name, check=True)
        time.sleep(0.5)
        assert inspect(daemon, name)["State"]["Status"] == "exited"
    finally:
        _rm(daemon, name)


def test_restart_and_rm_conflict(daemon: Daemon) -> None:
    result = daemon.docker("run", "--rm", "--restart", "always", "busybox", "true")
    assert result.returncode != 0
    assert "conflicting options: cannot specify both --restart and --rm" in as_docker_28(result.stderr)
    result = daemon.cli("run", "--rm", "--restart", "always", "busybox", "true")
    assert result.returncode == 125
    assert "conflicting options: cannot specify both --restart and --rm" in result.stderr
    api = daemon.client().api
    with pytest.raises(Exception, match="can't create 'AutoRemove' container with restart policy"):
        api.create_container("busybox", "true",
                             host_config=api.create_host_config(auto_remove=True,
                                                                restart_policy={"Name": "always"}))
    result = daemon.docker("create", "--restart", "sometimes", "busybox", "true")
    assert "invalid restart policy: unknown policy 'sometimes'" in result.stderr
    result = daemon.docker("create", "--restart", "always:3", "busybox", "true")
    assert "maximum retry count can only be used with 'on-failure'" in result.stderr


def test_docker_py_restart_policy(daemon: Daemon) -> None:
    client = daemon.client()
    c = client.containers.run("busybox", ["sh", "-c", "exit 1"], detach=True,
                              restart_policy={"Name": "on-failure", "MaximumRetryCount": 1})
    try:
        eventually(lambda: (c.reload() or True) and c.status == "exited" and c.attrs["RestartCount"] == 1)
        assert c.attrs["State"]["ExitCode"] == 1
    finally:
        c.remove(force=True)


def test_policies_across_daemon_restart(fresh_daemon: Daemon) -> None:
    d = fresh_daemon
    d.docker("run", "-d", "--name", "always-stopped", "--restart", "always", "busybox", "sleep", "60", check=True)
    d.docker("run", "-d", "--name", "unless-stopped", "--restart", "unless-stopped", "busybox", "sleep", "60",
             check=True)
    d.docker("run", "-d", "--name", "unless-running", "--restart", "unless-stopped", "busybox", "sleep", "60",
             check=True)
    d.docker("run", "-d", "--name", "no-policy", "busybox", "sleep", "60", check=True)
    d.docker("stop", "-t", "0", "always-stopped", "unless-stopped", "no-policy", check=True)
    # The one left running dies while the daemon is away.
    running_pid = inspect(d, "unless-running")["State"]["Pid"]
    d.stop()
    import os
    import signal
    os.kill(running_pid, signal.SIGKILL)
    time.sleep(0.3)
    d.start()
    eventually(lambda: inspect(d, "always-stopped")["State"]["Status"] == "running")
    eventually(lambda: inspect(d, "unless-running")["State"]["Status"] == "running")
    time.sleep(0.5)
    assert inspect(d, "unless-stopped")["State"]["Status"] == "exited"
    assert inspect(d, "no-policy")["State"]["Status"] == "exited"


# -- log drivers ---------------------------------------------------------------------------------------

def _log_files(d: Daemon, ref: str) -> list[Path]:
    path = Path(inspect(d, ref)["LogPath"])
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(path.name))


def test_json_file_rotation_keeps_max_file_and_tail_works(daemon: Daemon) -> None:
    name = "sv-rotate"
    try:
        daemon.docker("run", "--name", name, "--log-opt", "max-size=1k", "--log-opt", "max-file=2", "busybox",
                      "sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done", check=True)
        files = _log_files(daemon, name)
        assert len(files) == 2, files
        assert all(f.stat().st_size <= 1024 for f in files)
        assert daemon.docker("logs", "--tail", "3", name, check=True).stdout.split() == \
            ["line-197", "line-198", "line-199"]
        lines = daemon.cli("logs", name, check=True).stdout.split()
        assert lines[-1] == "line-199"
        assert lines == [f"line-{i}" for i in range(200 - len(lines), 200)]  # contiguous across files
    finally:
        _rm(daemon, name)


def test_follow_across_rotation(daemon: Daemon) -> None:
    name = "sv-follow"
    try:
        daemon.docker("run", "-d", "--name", name, "--log-opt", "max-size=1k", "--log-opt", "max-file=20",
                      "busybox", "sh", "-c",
                      "sleep 0.5; i=0; while [ $i -lt 100 ]; do echo f-$i; i=$((i+1)); done", check=True)
        out = daemon.docker("logs", "-f", name, check=True, timeout=30).stdout.split()
        assert out == [f"f-{i}" for i in range(100)]
    finally:
        _rm(daemon, name)


def test_log_opt_validation(daemon: Daemon) -> None:
    result = daemon.docker("create", "--log-opt", "bogus=1", "busybox", "true")
    assert "unknown log opt 'bogus' for json-file log driver" in result.stderr
    result = daemon.docker("create", "--log-driver", "syslogx", "busybox", "true")
    assert 'error looking up logging plugin syslogx: plugin "syslogx" not found' in result.stderr
    result = daemon.cli("run", "-d", "--log-opt", "max-file=x", "busybox", "true")
    assert "invalid value for max-file: x" in result.stderr


def test_none_driver_has_no_log(daemon: Daemon) -> None:
    name = "sv-none"
    try:
        out = daemon.docker("run", "--name", name, "--log-driver", "none", "busybox", "echo", "hi", check=True)
        assert out.stdout == "hi\n"  # attach still works
        assert _log_files(daemon, name) == []
        result = daemon.docker("logs", name)
        assert result.returncode != 0
        assert "configured logging driver does not support reading" in result.stderr
        result = daemon.cli("logs", name)
        assert "configured logging driver does not support reading" in result.stderr
    finally:
        _rm(daemon, name)


def test_local_driver_compresses_and_reads_back(daemon: Daemon) -> None:
    name = "sv-local"
    try:
        daemon.cli("run", "--name", name, "--log-driver", "local", "--log-opt", "max-size=1k", "busybox",
                   "sh", "-c", "i=0; while [ $i -lt 150 ]; do echo l-$i; i=$((i+1)); done", check=True)
        info = inspect(daemon, name)
        assert info["HostConfig"]["LogConfig"]["Type"] == "local"
        files = _log_files(daemon, name)
        assert len(files) <= 5
        assert any(f.name.endswith(".gz") for f in files)
        lines = daemon.docker("logs", name, check=True).stdout.split()
        assert lines[-1] == "l-149"
        assert lines == [f"l-{i}" for i in range(150 - len(lines), 150)]
        assert daemon.docker("logs", "--tail", "2", name, check=True).stdout.split() == ["l-148", "l-149"]
    finally:
        _rm(daemon, name)


def test_daemon_json_log_driver(tmp_path: Path) -> None:
    from dockyard.daemon.config import load_config
    from dockyard.errors import InvalidParameter

    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"log-driver": "local", "log-opts": {"max-size": "5m"}}))
    cfg = load_config({}, path)
    assert cfg.log_driver == "local" and cfg.log_opts == {"max-size": "5m"}
    path.write_text(json.dumps({"log-opts": {"nope": "1"}}))
    with pytest.raises(InvalidParameter, match="unknown log opt 'nope' for json-file log driver"):
        load_config({}, path)


# -- healthchecks -----------------------------------------------------------------------------------------

def _health(d: Daemon, ref: str) -> dict[str, Any]:
    return dict(inspect(d, ref)["State"].get("Health") or {})


def test_healthcheck_healthy_then_unhealthy(daemon: Daemon) -> None:
    name = "sv-health"
    try:
        daemon.docker("run", "-d", "--name", name, "--health-cmd", "test ! -e /tmp/broken && echo ok",
                      "--health-interval", "100ms", "--health-retries", "2", "--health-timeout", "5s",
                      "busybox", "sleep", "60", check=True)
        eventually(lambda: _health(daemon, name).get("Status") == "healthy")
        entry = _health(daemon, name)["Log"][-1]
        assert entry["ExitCode"] == 0 and entry["Output"] == "ok\n"
        assert "(healthy)" in daemon.docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}",
                                            check=True).stdout
        assert daemon.docker("ps", "-q", "--filter", "health=healthy", "--filter", f"name={name}",
                             check=True).stdout.strip()
        daemon.docker("exec", name, "touch", "/tmp/broken", check=True)
        eventually(lambda: _health(daemon, name).get("Status") == "unhealthy")
        health = _health(daemon, name)
        assert health["FailingStreak"] >= 2
        assert len(health["Log"]) <= 5
        assert "(unhealthy)" in daemon.cli("ps", "--filter", f"name={name}", check=True).stdout
        daemon.docker("exec", name, "rm", "/tmp/broken", check=True)
        eventually(lambda: _health(daemon, name).get("Status") == "healthy")
        events = daemon.docker("events", "--since", "0", "--until", str(int(time.time()) + 1), "--filter",
                               f"container={name}", "--format", "{{.Action}}", check=True).stdout.splitlines()
        health_events = [e for e in events if e.startswith("health_status")]
        assert health_events == ["health_status: healthy", "health_status: unhealthy", "health_status: healthy"]
    finally:
        _rm(daemon, name)


def test_healthcheck_timeout_and_docker_py(daemon: Daemon) -> None:
    client = daemon.client()
    c = client.containers.run("busybox", ["sleep", "60"], detach=True,
                              healthcheck={"test": ["CMD", "sleep", "5"], "interval": 100 * 1_000_000,
                                           "timeout": 200 * 1_000_000, "retries": 1})
    try:
        def unhealthy() -> bool:
            c.reload()
            return bool(c.attrs["State"].get("Health", {}).get("Status") == "unhealthy")
        eventually(unhealthy)
        entry = c.attrs["State"]["Health"]["Log"][-1]
        assert entry["ExitCode"] == -1
        assert entry["Output"] == "Health check exceeded timeout (200ms)"
        assert c.attrs["Config"]["Healthcheck"]["Test"] == ["CMD", "sleep", "5"]
    finally:
        c.remove(force=True)


def test_no_healthcheck_and_validation(daemon: Daemon) -> None:
    cid = daemon.docker("create", "--no-healthcheck", "busybox", "true", check=True).stdout.strip()
    try:
        assert inspect(daemon, cid)["Config"]["Healthcheck"] == {"Test": ["NONE"]}
    finally:
        _rm(daemon, cid)
    result = daemon.docker("create", "--no-healthcheck", "--health-cmd", "true", "busybox", "true")
    assert "--no-healthcheck conflicts with --health-* options" in result.stderr
    api = daemon.client().api
    with pytest.raises(Exception, match="Retries in Healthcheck cannot be negative"):
        api.create_container("busybox", "true", healthcheck={"test": ["CMD", "true"], "retries": -1})


def test_health_probes_resume_after_daemon_restart(fresh_daemon: Daemon) -> None:
    d = fresh_daemon
    d.docker("run", "-d", "--name", "hc", "--health-cmd", "cat /tmp/fine", "--health-interval", "100ms",
             "--health-retries", "1", "busybox", "sh", "-c", "touch /tmp/fine; sleep 60", check=True)
    eventually(lambda: _health(d, "hc").get("Status") == "healthy")
    d.stop()
    d.start()
    assert _health(d, "hc").get("Status") == "healthy"  # kept across the restart
    d.docker("exec", "hc", "rm", "/tmp/fine", check=True)
    eventually(lambda: _health(d, "hc").get("Status") == "unhealthy")
