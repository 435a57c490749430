"""Answers whose shape old and new clients rely on, compared with a private dockerd.

The same requests go to ``test_cli_against_dockerd.py``'s dockerd and to our shared ``daemon``, and
the answers must agree: healthcheck ``Test`` forms (stored as given; only ``CMD``/``CMD-SHELL``
probed), ``IpcMode``'s default per API version, ``create`` events from every client path,
``State.FinishedAt`` after a restart, the unknown log driver's message, and a bad
``POST /images/load`` (200, the error inside the JSON stream, nothing stored).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from tests.integration.daemon_harness import DOCKER_28, Daemon
from tests.integration.test_cli_against_dockerd import Dockerd, dockerd  # noqa: F401 - the fixture

pytestmark = [pytest.mark.root, pytest.mark.docker_cli]


@pytest.fixture()
def engines(daemon: Daemon, dockerd: Dockerd) -> dict[str, str]:  # noqa: F811
    """Each engine's ``unix://`` address: ours, and dockerd as the reference."""
    return {"dockyard": daemon.host, "dockerd": dockerd.host}


def _api(host: str, version: str = "1.41") -> docker.APIClient:
    return docker.APIClient(base_url=host, version=version, timeout=60)


def _create(api: docker.APIClient, body: dict[str, Any]) -> tuple[int, Any]:
    response = api._post_json(api._url("/containers/create"), data=body)
    return response.status_code, response.json()


def _removing(api: docker.APIClient, ids: list[str]) -> None:
    for cid in ids:
        try:
            api.remove_container(cid, force=True)
        except docker.errors.NotFound:
            pass


# -- healthcheck ------------------------------------------------------------------------------------------

# ["CMD"] alone is stored by dockerd too, but starting it crashes dockerd 20.10 (a nil slice): not started.
FORMS: list[list[str]] = [["NONE"], ["CMD", "true"], ["CMD-SHELL", "exit 0"], ["true"], ["echo", "hi"], [],
                          ["CMD"], ["NONE", "x"]]
STARTED = [["true"], ["echo", "hi"], ["CMD-SHELL", "echo [$0] [$1]", "zzz", "yyy"]]


def _health_facts(host: str) -> list[Any]:
    facts: list[Any] = []
    for version in ("1.38", "1.41"):
        api = _api(host, version)
        try:
            for test in FORMS:
                code, answer = _create(api, {"Image": "busybox", "Cmd": ["sleep", "30"],
                                             "Healthcheck": {"Test": test, "Interval": 300_000_000}})
                assert code == 201, answer
                facts.append(api.inspect_container(answer["Id"])["Config"].get("Healthcheck"))
                api.remove_container(answer["Id"], force=True)
        finally:
            api.close()
    api = _api(host)
    try:
        for test in STARTED:
            code, answer = _create(api, {"Image": "busybox", "Cmd": ["sleep", "30"],
                                         "Healthcheck": {"Test": test, "Interval": 300_000_000}})
            try:
                api.start(answer["Id"])
                health = None
                for _ in range(100):
                    health = api.inspect_container(answer["Id"])["State"].get("Health")
                    if test[0] != "CMD-SHELL" or (health and health["Log"]):
                        break
                    time.sleep(0.1)
                if test[0] == "CMD-SHELL":
                    assert health is not None  # the first probe's output too (the shim accepts before it reads)
                    facts.append((health["Status"], health["Log"][0]["ExitCode"], health["Log"][0]["Output"]))
                else:
                    time.sleep(1)  # a few intervals: nothing is probed
                    facts.append(api.inspect_container(answer["Id"])["State"].get("Health"))
            finally:
                api.remove_container(answer["Id"], force=True)
    finally:
        api.close()
    return facts


def test_healthcheck_test_forms_as_dockerd(engines: dict[str, str]) -> None:
    reference = _health_facts(engines["dockerd"])
    assert reference[3] == {"Test": ["true"], "Interval": 300_000_000}  # the reference really stores it as given
    assert _health_facts(engines["dockyard"]) == reference


# -- IpcMode ----------------------------------------------------------------------------------------------

def _ipc_modes(host: str) -> dict[str, list[str]]:
    bodies: list[dict[str, Any]] = [{}, {"HostConfig": {}}, {"HostConfig": {"IpcMode": ""}},
                                    {"HostConfig": {"IpcMode": "private"}}, {"HostConfig": None}]
    modes: dict[str, list[str]] = {}
    for version in ("1.25", "1.38", "1.39", "1.40", "1.41"):
        api = _api(host, version)
        try:
            for body in bodies:
                code, answer = _create(api, {"Image": "busybox", "Cmd": ["true"], **body})
                assert code == 201, answer
                modes.setdefault(version, []).append(api.inspect_container(answer["Id"])["HostConfig"]["IpcMode"])
                api.remove_container(answer["Id"])
        finally:
            api.close()
    return modes


def test_ipc_mode_default_per_api_version(engines: dict[str, str]) -> None:
    reference = _ipc_modes(engines["dockerd"])
    assert reference["1.38"][1] == "shareable" and reference["1.41"][1] == "private"
    assert _ipc_modes(engines["dockyard"]) == reference


# -- create events ---------------------------------------------------------------------------------------

def _created_through_every_path(host: str, tag: str) -> list[str]:
    """Containers made by the API (1.38), docker-py's run with compose's labels, Docker's CLI
    (run and create) and our CLI's run; their IDs."""
    ids: list[str] = []
    api = _api(host, "1.38")
    client = docker.DockerClient(base_url=host, version="auto", timeout=60)
    try:
        ids.append(api.create_container("busybox", ["true"], name=f"{tag}-api")["Id"])
        ids.append(client.containers.run("busybox", ["true"], detach=True, name=f"{tag}-compose",
                                         labels={"com.docker.compose.project": tag,
                                                 "com.docker.compose.service": "web"}).id)
        for argv in ([DOCKER_28, "-H", host, "run", "-d", "--name", f"{tag}-cli-run", "busybox", "true"],
                     [DOCKER_28, "-H", host, "create", "--name", f"{tag}-cli-create", "busybox", "true"],
                     [sys.executable, "-m", "dockyard.cli.main", "-H", host, "run", "-d", "--name",
                      f"{tag}-ours", "busybox", "true"]):
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            ids.append(result.stdout.strip())
    finally:
        client.close()
        api.close()
    return ids


@pytest.mark.parametrize("engine", ["dockyard", "dockerd"])
def test_every_created_container_has_a_create_event(engines: dict[str, str], engine: str) -> None:
    host = engines[engine]
    api = _api(host, "1.38")
    live: list[dict[str, Any]] = []
    stream = api.events(filters={"event": "create"}, decode=True)
    threading.Thread(target=lambda: live.extend(stream), daemon=True).start()
    since = time.time()
    ids: list[str] = []
    try:
        time.sleep(0.3)
        ids = _created_through_every_path(host, f"ev-{engine}")
        replayed = [e["id"] for e in api.events(since=since, until=time.time() + 1, decode=True)
                    if e.get("Type") == "container" and e.get("Action") == "create"]
        assert sorted(replayed) == sorted(ids)
        for _ in range(50):
            if len(live) >= len(ids):
                break
            time.sleep(0.1)
        assert sorted(e["id"] for e in live) == sorted(ids)
        compose = next(e for e in live if e["id"] == ids[1])
        assert compose["Actor"]["Attributes"]["com.docker.compose.project"] == f"ev-{engine}"
    finally:
        stream.close()
        _removing(api, ids)
        api.close()


# -- restart, log driver ------------------------------------------------------------------------------------

def _restart_times(host: str) -> list[bool]:
    api = _api(host)
    cid = api.create_container("busybox", ["sleep", "300"])["Id"]
    try:
        api.start(cid)
        first = api.inspect_container(cid)["State"]
        api.restart(cid, timeout=1)
        second = api.inspect_container(cid)["State"]
        api.stop(cid, timeout=1)
        stopped = api.inspect_container(cid)["State"]
        api.start(cid)
        third = api.inspect_container(cid)["State"]
        return [first["FinishedAt"] == "0001-01-01T00:00:00Z",
                first["StartedAt"] < second["FinishedAt"] < second["StartedAt"],
                second["Status"] == "running",
                third["FinishedAt"] == stopped["FinishedAt"] > second["StartedAt"]]
    finally:
        api.remove_container(cid, force=True)
        api.close()


def test_restart_sets_finished_at(engines: dict[str, str]) -> None:
    reference = _restart_times(engines["dockerd"])
    assert reference == [True, True, True, True]
    assert _restart_times(engines["dockyard"]) == reference


def test_unknown_log_driver_message(engines: dict[str, str]) -> None:
    answers = []
    for host in (engines["dockerd"], engines["dockyard"]):
        api = _api(host)
        try:
            code, answer = _create(api, {"Image": "busybox", "Cmd": ["true"],
                                         "HostConfig": {"LogConfig": {"Type": "nosuchdriver", "Config": {}}}})
            if code == 201:
                api.remove_container(answer["Id"])
            answers.append((code, answer))
        finally:
            api.close()
    assert answers[0] == (400, {"message": 'error looking up logging plugin nosuchdriver: plugin "nosuchdriver" '
                                           "not found"})
    assert answers[1] == answers[0]


# -- a bad archive on POST /images/load -----------------------------------------------------------------

BAD_ARCHIVES = {"not-a-tar": b"this is not a tar archive at all" * 20, "bad-gzip": b"\x1f\x8b\x08\x00garbage",
                "empty": b""}


def _stream_shape(host: str, data: bytes) -> tuple[int, str, list[list[str]]]:
    api = _api(host)
    try:
        response = api._post(api._url("/images/load"), data=data, params={"quiet": "1"},
                             headers={"Content-Type": "application/x-tar"})
        lines = [json.loads(line) for line in response.content.splitlines() if line.strip()]
        return (response.status_code, response.headers["Content-Type"],
                [sorted(line) + sorted(line.get("errorDetail") or {}) for line in lines])
    finally:
        api.close()


def _images(host: str) -> list[str]:
    api = _api(host)
    try:
        return sorted(image["Id"] for image in api.images(all=True))
    finally:
        api.close()


@pytest.fixture()
def bad_archives(tmp_path: Path) -> Iterator[dict[str, Path]]:
    paths = {}
    for name, data in BAD_ARCHIVES.items():
        paths[name] = tmp_path / f"{name}.tar"
        paths[name].write_bytes(data)
    yield paths


def test_bad_archive_load_answers_200_with_the_error_in_the_stream(engines: dict[str, str],
                                                                   bad_archives: dict[str, Path]) -> None:
    for name, path in bad_archives.items():
        shapes = {}
        for engine, host in engines.items():
            before = _images(host)
            shapes[engine] = _stream_shape(host, path.read_bytes())
            client = docker.DockerClient(base_url=host, version="auto", timeout=60)
            try:
                with pytest.raises(docker.errors.ImageLoadError):
                    client.images.load(path.read_bytes())
            finally:
                client.close()
            for argv in ([DOCKER_28], [sys.executable, "-m", "dockyard.cli.main"]):
                result = subprocess.run([*argv, "-H", host, "load", "-i", str(path)], capture_output=True,
                                        text=True, timeout=60)
                assert result.returncode == 1 and result.stderr.strip(), (engine, argv, result)
                assert "Error response from daemon" not in result.stderr  # a stream error, not an HTTP one
                assert result.stdout == ""
            assert _images(host) == before  # nothing stored from a bad archive
        assert shapes["dockerd"] == (200, "application/json", [["error", "errorDetail", "message"]]), name
        assert shapes["dockyard"] == shapes["dockerd"], name
