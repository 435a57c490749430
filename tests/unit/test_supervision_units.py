"""Restart decisions, log driver options, the supervision CLI flags, and pause/unpause racing an exit, without a daemon."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from dockyard import blocking
from dockyard.cli.failure import FlagError
from dockyard.cli.flags import FlagSet
from dockyard.cli.options import supervision
from dockyard.containers import logdrivers
from dockyard.containers.restart import (
    RestartManager,
    RestartPolicy,
    check_host_config,
    parse_policy,
    restart_at_boot,
    update_policy,
)
from dockyard.errors import InvalidParameter


def test_backoff_doubles_caps_and_resets() -> None:
    m = RestartManager(RestartPolicy("always"))
    delays = [m.should_restart(0, False, 0.5) for _ in range(12)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert max(d for d in delays if d is not None) == 60.0
    assert m.should_restart(0, False, 10.0) == 0.1  # ran 10 s: back to the first back-off
    assert m.restart_count == 13


def test_on_failure_limit_and_success() -> None:
    m = RestartManager(RestartPolicy("on-failure", 2))
    assert m.should_restart(0, False, 0) is None
    assert m.should_restart(1, False, 0) is not None
    assert m.should_restart(1, False, 0) is not None
    assert m.should_restart(1, False, 0) is None
    unlimited = RestartManager(RestartPolicy("on-failure", 0))
    assert all(unlimited.should_restart(1, False, 0) is not None for _ in range(20))


def test_manual_stop_and_cancel() -> None:
    assert RestartManager(RestartPolicy("unless-stopped")).should_restart(0, True, 0) is None
    assert RestartManager(RestartPolicy("always")).should_restart(0, True, 0) is not None
    m = RestartManager(RestartPolicy("always"))
    m.cancel()
    assert m.should_restart(1, False, 0) is None
    assert RestartManager(RestartPolicy("no")).should_restart(1, False, 0) is None


def test_boot_rules() -> None:
    always = {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 0}}
    unless = {"RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0}}
    on_failure = {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}}
    assert restart_at_boot(always, 0, True, 0, True)
    assert not restart_at_boot(always, 0, False, 0, False)  # never started: stays created
    assert not restart_at_boot(unless, 0, True, 0, True)
    assert restart_at_boot(unless, 0, False, 0, True)
    assert restart_at_boot(on_failure, 1, False, 1, True)
    assert not restart_at_boot(on_failure, 1, False, 2, True)
    assert not restart_at_boot(on_failure, 0, False, 0, True)


def test_policy_validation_messages() -> None:
    assert parse_policy(None) == RestartPolicy("no", 0)
    with pytest.raises(InvalidParameter, match="unknown policy 'x'"):
        parse_policy({"Name": "x"})
    with pytest.raises(InvalidParameter, match="can only be used with 'on-failure'"):
        parse_policy({"Name": "always", "MaximumRetryCount": 1})
    with pytest.raises(InvalidParameter, match="cannot be negative"):
        parse_policy({"Name": "on-failure", "MaximumRetryCount": -1})
    with pytest.raises(InvalidParameter, match="can't create 'AutoRemove' container with restart policy"):
        check_host_config({"AutoRemove": True, "RestartPolicy": {"Name": "always"}})
    host = {"AutoRemove": False}
    assert update_policy(host, {"Name": "on-failure", "MaximumRetryCount": 3}) == \
        {"Name": "on-failure", "MaximumRetryCount": 3}
    with pytest.raises(InvalidParameter, match="AutoRemove is enabled"):
        update_policy({"AutoRemove": True}, {"Name": "always"})


def test_log_driver_resolution() -> None:
    resolved = logdrivers.resolve({"Type": "", "Config": {}}, "json-file", {})
    assert resolved == {"Type": "json-file", "Config": {}}  # as Docker shows it; the rotation applies at start
    s = logdrivers.settings("json-file", resolved["Config"])
    assert (s.max_size, s.max_file) == (10 * 1024 * 1024, 3)
    local = logdrivers.resolve({"Type": "local", "Config": {}}, "json-file", {"max-size": "1m"})
    assert local == {"Type": "local", "Config": {}}  # the daemon's opts are for its own driver only
    s = logdrivers.settings("local", {})
    assert (s.max_size, s.max_file, s.compress) == (20 * 1024 * 1024, 5, True)
    assert logdrivers.resolve({}, "local", {"max-file": "2"})["Config"] == {"max-file": "2"}
    assert not logdrivers.settings("none", {}).enabled
    with pytest.raises(InvalidParameter, match="unknown log opt 'x' for json-file log driver"):
        logdrivers.resolve({"Type": "json-file", "Config": {"x": "1"}}, "json-file", {})
    with pytest.raises(InvalidParameter, match="unknown log opt 'compress' for log driver none"):
        logdrivers.resolve({"Type": "none", "Config": {"compress": "true"}}, "json-file", {})
    with pytest.raises(InvalidParameter, match="compression cannot be enabled when max file count is 1"):
        logdrivers.settings("local", {"max-file": "1"})
    with pytest.raises(InvalidParameter, match='error looking up logging plugin gelf2: plugin "gelf2" not found'):
        logdrivers.resolve({"Type": "gelf2"}, "json-file", {})


def _parse(*argv: str) -> dict:
    parsed = FlagSet(list(supervision.FLAGS)).parse(list(argv))
    body: dict = {"HostConfig": {"AutoRemove": False}}
    supervision.apply(parsed, body)
    return body


def test_cli_flags() -> None:
    body = _parse("--restart", "on-failure:3", "--log-driver", "local", "--log-opt", "max-size=1k")
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert body["HostConfig"]["LogConfig"] == {"Type": "local", "Config": {"max-size": "1k"}}
    assert "Healthcheck" not in body
    with pytest.raises(FlagError, match="maximum retry count must be an integer"):
        _parse("--restart", "on-failure:x")
    body = _parse("--health-cmd", "true", "--health-interval", "500ms", "--health-retries", "2")
    assert body["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 500_000_000, "Timeout": 0,
                                   "StartPeriod": 0, "StartInterval": 0, "Retries": 2}
    assert _parse("--no-healthcheck")["Healthcheck"] == {"Test": ["NONE"]}
    with pytest.raises(FlagError, match="--no-healthcheck conflicts with --health-\\* options"):
        _parse("--no-healthcheck", "--health-cmd", "true")
    with pytest.raises(FlagError, match="invalid logging opts for driver none"):
        _parse("--log-driver", "none", "--log-opt", "max-size=1k")


def test_scheduler_update_policy(tmp_path: Path) -> None:
    from dockyard.containers.record import Container
    from dockyard.containers.restart import RestartScheduler
    from dockyard.formats import timestamps

    async def start(cid: str, by_policy: bool) -> None:
        raise AssertionError("not started here")

    c = Container(id="a" * 64, name="x", created=timestamps.now(), image="busybox", image_id="sha256:1",
                  path="true", args=[], config={}, host_config={"AutoRemove": False,
                                                                "RestartPolicy": {"Name": "no"}},
                  state_dir=str(tmp_path))
    scheduler = RestartScheduler(start)
    assert scheduler.manager(c).policy.is_none
    scheduler.update(c, {"Name": "always"})
    assert c.host_config["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0}
    assert scheduler.manager(c).policy.name == "always"
    asyncio.run(blocking.drain_records())  # the record is written by the record writer, not here
    assert Container.load(tmp_path).host_config["RestartPolicy"]["Name"] == "always"


# -- pause / unpause racing the container's exit ----------------------------------------------------------

class _FakeFreezer:
    """A cgroup whose freeze/thaw run ``during`` in the worker thread: the exit handling that can
    run on the event loop meanwhile (it marks the container exited and removes the cgroup)."""

    version = "2"
    during: Any = None

    @classmethod
    def of(cls, cid: str) -> _FakeFreezer:
        return cls()

    def has(self, controller: str) -> bool:
        return True

    def freeze(self) -> None:
        self.during()

    thaw = freeze


def _exits(c: Any, cgroup_gone: bool) -> Any:
    def during() -> None:
        c.state.status, c.state.pid = "exited", 0  # what ContainerService._record_exit does
        if cgroup_gone:
            raise FileNotFoundError(2, "No such file or directory", "freezer.state")
    return during


def _container(tmp_path: Path, status: str) -> Any:
    from dockyard.containers.record import Container, State
    from dockyard.formats import timestamps

    return Container(id="b" * 64, name="p", created=timestamps.now(), image="busybox", image_id="sha256:1",
                     path="sleep", args=["9"], config={}, host_config={}, state_dir=str(tmp_path),
                     state=State(status=status, pid=2 ** 22 + 2, shim_pid=2 ** 22 + 1))  # above pid_max: no such processes


@pytest.mark.parametrize("cgroup_gone", [False, True])
def test_pause_of_a_container_exiting_meanwhile_leaves_it_exited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 cgroup_gone: bool) -> None:
    from dockyard.containers import cgroup_control
    from dockyard.errors import Conflict

    c = _container(tmp_path, "running")
    monkeypatch.setattr(cgroup_control, "Cgroup", _FakeFreezer)
    monkeypatch.setattr(_FakeFreezer, "during", staticmethod(_exits(c, cgroup_gone)))
    with pytest.raises(Conflict, match="is not running"):
        asyncio.run(cgroup_control.pause(c))
    assert (c.state.status, c.state.pid) == ("exited", 0)  # never "Up (Paused)" without a process


@pytest.mark.parametrize("cgroup_gone", [False, True])
def test_unpause_of_a_container_exiting_meanwhile_leaves_it_exited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   cgroup_gone: bool) -> None:
    from dockyard.containers import cgroup_control

    c = _container(tmp_path, "paused")
    monkeypatch.setattr(cgroup_control, "Cgroup", _FakeFreezer)
    monkeypatch.setattr(_FakeFreezer, "during", staticmethod(_exits(c, cgroup_gone)))
    asyncio.run(cgroup_control.unpause(c))  # its freezer is gone with it: nothing left to thaw
    assert (c.state.status, c.state.pid) == ("exited", 0)


def test_pause_and_unpause_without_a_race(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.containers import cgroup_control
    from dockyard.errors import DockyardError

    c = _container(tmp_path, "running")
    monkeypatch.setattr(cgroup_control, "Cgroup", _FakeFreezer)
    monkeypatch.setattr(_FakeFreezer, "during", staticmethod(lambda: None))
    asyncio.run(cgroup_control.pause(c))
    assert c.state.status == "paused"
    asyncio.run(cgroup_control.unpause(c))
    assert c.state.status == "running"
    asyncio.run(cgroup_control.pause(c))

    def stuck() -> None:
        raise OSError(16, "the cgroup did not change its frozen state")

    monkeypatch.setattr(_FakeFreezer, "during", staticmethod(stuck))
    with pytest.raises(DockyardError, match="Cannot unpause container"):
        asyncio.run(cgroup_control.unpause(c))  # still paused, its processes still there: an error
    assert c.state.status == "paused"


class _NoImages:
    """The one image-service call removing a container makes."""

    def remove_container_layer(self, cid: str) -> None:
        pass


@pytest.mark.parametrize("status", ["paused", "running"])
def test_rm_f_of_a_container_without_processes_records_its_exit_and_removes_it(tmp_path: Path,
                                                                              status: str) -> None:
    """A record that says running/paused while its shim is gone (nothing will ever signal its
    exit): rm -f records the exit at once and removes it, instead of waiting to kill nothing."""
    from dockyard.containers.service import ContainerService

    svc = ContainerService(tmp_path, _NoImages())  # type: ignore[arg-type]
    c = _container(svc.root / ("b" * 64), status)
    c.state.pid = 0 if status == "paused" else c.state.pid  # as a paused commit racing an exit left it
    c.dir.mkdir()
    c.save()
    svc._containers[c.id] = c
    died: list[str] = []
    svc.events.publish = lambda type, action, actor, attributes=None: died.append(action)  # type: ignore[method-assign,assignment]
    asyncio.run(asyncio.wait_for(svc.remove(c.id, force=True), 20))
    assert c.id not in svc._containers and not c.dir.exists()
    assert (c.state.exit_code, c.state.pid) == (255, 0)
    assert died[-2:] == ["die", "destroy"]
