"""A container that goes away while ``POST /commit?pause=true`` holds it frozen, and ``rm -f`` of
containers whose processes are gone: the commit still succeeds, the exit is recorded with its code,
nothing is left "Up (Paused)", and ``rm -f`` always removes (needs root)."""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker.errors
import pytest

from tests.integration.daemon_harness import Daemon, processes_mentioning

pytestmark = pytest.mark.root

BIG = "dd if=/dev/urandom of=/big bs=1M count=96 2>/dev/null && touch /written && exec sleep 300"


@pytest.fixture()
def client(daemon: Daemon) -> Iterator[Any]:
    c = daemon.client()
    yield c
    c.close()


def shim_pid(container: Any) -> int:
    """The container's shim: the one process whose command line names the container's ID."""
    (pid,) = processes_mentioning(container.id)
    return pid


def big_upper_dir(client: Any) -> Any:
    """A running container with ~100 MB in its upper dir: its commit takes a while."""
    c = client.containers.run("busybox", ["sh", "-c", BIG], detach=True)
    deadline = time.monotonic() + 60
    while c.exec_run(["test", "-e", "/written"]).exit_code != 0:
        assert time.monotonic() < deadline, "the container did not write its file"
        time.sleep(0.1)
    return c


def commit_while(client: Any, c: Any, interfere: Callable[[], None]) -> tuple[str, list[str]]:
    """Commit ``c`` with pause=true; once it shows paused, ``interfere``. Returns the new
    image's ID (or the commit's error) and the statuses ``c`` went through meanwhile."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["id"] = client.api.commit(c.id, repository=f"exiting-{secrets.token_hex(4)}", pause=True)["Id"]
        except docker.errors.APIError as exc:
            result["error"] = str(exc)

    worker = threading.Thread(target=run)
    worker.start()
    seen: list[str] = []
    try:
        while worker.is_alive():
            status = client.api.inspect_container(c.id)["State"]["Status"]
            if not seen or seen[-1] != status:
                seen.append(status)
            if status == "paused":
                interfere()
                break
            time.sleep(0.01)
    finally:
        worker.join(120)
    assert "paused" in seen, f"the commit ended before the container was seen paused: {seen}"
    return result.get("id") or result.get("error", ""), seen


def exited(client: Any, c: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while (state := client.api.inspect_container(c.id)["State"])["Status"] != "exited":
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    return state  # type: ignore[no-any-return]


def assert_removed_by_rm_f(client: Any, c: Any) -> None:
    client.api.remove_container(c.id, force=True)
    with pytest.raises(docker.errors.NotFound):
        client.api.inspect_container(c.id)
    assert processes_mentioning(c.id) == []


def test_container_killed_from_outside_mid_commit(client: Any) -> None:
    c = big_upper_dir(client)
    try:
        pid = client.api.inspect_container(c.id)["State"]["Pid"]
        image, seen = commit_while(client, c, lambda: os.kill(pid, signal.SIGKILL))
        assert image.startswith("sha256:"), image
        state = exited(client, c)  # the freezer held the SIGKILL until the commit thawed it
        assert (state["ExitCode"], state["Running"], state["Paused"], state["Pid"]) == (137, False, False, 0)
        client.images.remove(image)
    finally:
        assert_removed_by_rm_f(client, c)


def test_container_killed_through_the_api_mid_commit(client: Any) -> None:
    c = big_upper_dir(client)
    try:
        image, _ = commit_while(client, c, lambda: client.api.kill(c.id))
        assert image.startswith("sha256:"), image
        state = exited(client, c)
        assert (state["ExitCode"], state["Paused"], state["Pid"]) == (137, False, 0)
        with pytest.raises(docker.errors.APIError, match="is not paused"):
            client.api.unpause(c.id)  # nothing left to unpause
        client.images.remove(image)
    finally:
        assert_removed_by_rm_f(client, c)


def test_shim_killed_mid_commit(client: Any) -> None:
    c = big_upper_dir(client)
    try:
        shim = shim_pid(c)
        image, _ = commit_while(client, c, lambda: os.kill(shim, signal.SIGKILL))
        assert image.startswith("sha256:"), image
        state = exited(client, c)  # no exit record: Docker's 255 for a container whose shim died
        assert (state["ExitCode"], state["Paused"], state["Pid"]) == (255, False, 0)
        client.images.remove(image)
    finally:
        assert_removed_by_rm_f(client, c)


@pytest.mark.parametrize("paused", [False, True])
def test_rm_f_of_a_container_whose_shim_was_killed(client: Any, paused: bool) -> None:
    c = client.containers.run("busybox", ["sleep", "300"], detach=True)
    try:
        if paused:
            c.pause()
        os.kill(shim_pid(c), signal.SIGKILL)
    finally:
        assert_removed_by_rm_f(client, c)
