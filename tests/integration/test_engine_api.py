"""The engine end to end through the Engine API, with docker-py as the client (needs root)."""

from __future__ import annotations

import json
import os
import socket
import time

import docker
import docker.errors
import pytest

from tests.integration.daemon_harness import Daemon

pytestmark = pytest.mark.root


@pytest.fixture()
def client(daemon: Daemon):  # type: ignore[no-untyped-def]
    c = daemon.client()
    yield c
    c.close()


def raw(daemon: Daemon, request: bytes) -> tuple[int, bytes]:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(str(daemon.sock))
    s.sendall(request)
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_run_prints_and_removes(client) -> None:  # type: ignore[no-untyped-def]
    assert client.containers.run("busybox", ["echo", "hello from a container"], remove=True) == b"hello from a container\n"


def test_isolation_seen_from_inside(client) -> None:  # type: ignore[no-untyped-def]
    script = ("echo pid=$$; echo host=$(hostname); echo procs=$(ls /proc | grep -c '^[0-9]'); "
              "echo nets=$(ls /sys/class/net | tr '\\n' ' '); echo root=$(awk '$5==\"/\"{print $9}' /proc/self/mountinfo); "
              "echo mounts=$(wc -l < /proc/self/mountinfo)")
    c = client.containers.run("busybox", ["sh", "-c", script], network_mode="none", detach=True)
    try:
        assert c.wait(timeout=30)["StatusCode"] == 0
        out = dict(line.split("=", 1) for line in c.logs().decode().split("\n") if "=" in line)
        assert out["pid"] == "1"
        assert out["host"] == c.id[:12]
        # sh, its subshell, ls and grep: none of the host's many processes is visible.
        assert int(out["procs"]) <= 5 < len([p for p in os.listdir("/proc") if p.isdigit()])
        assert out["nets"].split() == ["lo"]
        assert out["root"] == "overlay"
        with open("/proc/self/mountinfo") as f:
            assert int(out["mounts"]) < len(f.readlines()) + 20
    finally:
        c.remove(force=True)


def test_exit_code_is_kept(client) -> None:  # type: ignore[no-untyped-def]
    c = client.containers.run("busybox", ["sh", "-c", "exit 3"], detach=True)
    try:
        assert c.wait(timeout=30)["StatusCode"] == 3
        c.reload()
        assert c.attrs["State"]["ExitCode"] == 3
        assert c.attrs["State"]["Status"] == "exited"
        assert c.attrs["State"]["FinishedAt"] > c.attrs["State"]["StartedAt"]
    finally:
        c.remove()


def test_env_workdir_user_entrypoint(client) -> None:  # type: ignore[no-untyped-def]
    out = client.containers.run("busybox", ["-c", "echo $GREETING; pwd; id -u; id -g"], entrypoint=["sh"],
                                environment={"GREETING": "hi"}, working_dir="/tmp/work", user="nobody", remove=True)
    assert out.decode().split() == ["hi", "/tmp/work", "65534", "65534"]


def test_logs_streams_tail_timestamps_follow(client) -> None:  # type: ignore[no-untyped-def]
    c = client.containers.run("busybox", ["sh", "-c", "echo out1; echo err1 >&2; echo out2; sleep 1; echo late"],
                              detach=True)
    try:
        follow = b"".join(c.logs(stream=True, follow=True))
        # stdout and stderr are separate pipes: their relative order is not kept (nor in Docker).
        assert sorted(follow.split()) == [b"err1", b"late", b"out1", b"out2"] and follow.endswith(b"late\n")
        assert c.logs(stdout=True, stderr=False).split() == [b"out1", b"out2", b"late"]
        assert c.logs(stdout=False, stderr=True) == b"err1\n"
        assert c.logs(tail=1) == b"late\n"
        stamped = c.logs(timestamps=True).decode().splitlines()[0]
        assert stamped.endswith(" out1") and stamped[:4].isdigit() and "T" in stamped
    finally:
        c.remove(force=True)


def test_stop_kill_and_remove_rules(client, daemon: Daemon) -> None:  # type: ignore[no-untyped-def]
    c = client.containers.run("busybox", ["sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done"], detach=True)
    try:
        time.sleep(0.3)
        with pytest.raises(docker.errors.APIError) as info:
            c.remove()
        assert info.value.status_code == 409
        assert "container is running: stop the container before removing or force remove" in str(info.value)
        c.stop(timeout=5)
        assert c.wait(timeout=10)["StatusCode"] == 7
        with pytest.raises(docker.errors.APIError) as info:
            c.kill()
        assert info.value.status_code == 409 and "is not running" in str(info.value)
    finally:
        c.remove(force=True)
    # PID 1 without a TERM handler ignores SIGTERM: stop falls back to SIGKILL after the timeout.
    c = client.containers.run("busybox", ["sleep", "100"], detach=True)
    try:
        c.stop(timeout=1)
        assert c.wait(timeout=10)["StatusCode"] == 137
    finally:
        c.remove(force=True)


def test_list_filters(client) -> None:  # type: ignore[no-untyped-def]
    a = client.containers.run("busybox", ["sleep", "30"], detach=True, name="filter-a", labels={"team": "x"})
    b = client.containers.create("busybox", ["true"], name="filter-b")
    try:
        running = {c.name for c in client.containers.list()}
        assert "filter-a" in running and "filter-b" not in running
        assert {c.name for c in client.containers.list(all=True, filters={"status": "created"})} >= {"filter-b"}
        assert [c.name for c in client.containers.list(filters={"label": "team=x"})] == ["filter-a"]
        assert [c.name for c in client.containers.list(all=True, filters={"name": "filter-b"})] == ["filter-b"]
        assert [c.name for c in client.containers.list(all=True, filters={"id": b.id[:10]})] == ["filter-b"]
    finally:
        a.remove(force=True)
        b.remove(force=True)


def test_name_conflict_and_lookup_by_prefix(client) -> None:  # type: ignore[no-untyped-def]
    c = client.containers.create("busybox", ["true"], name="unique-name")
    try:
        with pytest.raises(docker.errors.APIError) as info:
            client.containers.create("busybox", ["true"], name="unique-name")
        assert info.value.status_code == 409 and 'The container name "/unique-name" is already in use' in str(info.value)
        assert client.containers.get(c.id[:8]).id == c.id
    finally:
        c.remove()


def test_attach_before_start_sees_all_output(client) -> None:  # type: ignore[no-untyped-def]
    api = client.api
    c = api.create_container("busybox", ["sh", "-c", "for i in 1 2 3; do echo line$i; done"])
    try:
        sock = api.attach_socket(c["Id"], params={"stdout": 1, "stderr": 1, "stream": 1})
        api.start(c["Id"])
        data = b""
        raw_sock = sock._sock
        raw_sock.settimeout(10)
        while chunk := raw_sock.recv(4096):
            data += chunk
        sock.close()
        raw_sock.close()
        assert b"line1\n" in data and b"line3\n" in data
        assert data.startswith(b"\x01\x00\x00\x00")
        assert api.wait(c["Id"])["StatusCode"] == 0
    finally:
        api.remove_container(c["Id"], force=True)


def test_attach_logs_right_after_wait_has_the_output(client, daemon: Daemon) -> None:  # type: ignore[no-untyped-def]
    """wait answers only once the log is complete, and attach logs=1&stream=0 hands it out whole,
    to docker-py (which reads the upgrade's head through a buffered reader) and to a raw client."""
    api = client.api
    for i in range(20):
        c = api.create_container("busybox", ["echo", f"line {i}"])
        try:
            api.start(c["Id"])
            assert api.wait(c["Id"], timeout=30)["StatusCode"] == 0
            assert api.attach(c["Id"], stdout=True, stderr=True, logs=True, stream=False) == f"line {i}\n".encode()
            status, body = raw(daemon, f"POST /v1.47/containers/{c['Id']}/attach?logs=1&stream=0&stdout=1 HTTP/1.1\r\n"
                                       "Host: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())
            assert (status, body) == (101, b"\x01\x00\x00\x00\x00\x00\x00" + bytes([len(f"line {i}\n")]) +
                                      f"line {i}\n".encode())
        finally:
            api.remove_container(c["Id"], force=True)


def test_stdin_through_attach(client) -> None:  # type: ignore[no-untyped-def]
    api = client.api
    # docker-py has no StdinOnce argument: send the create body as Docker's CLI does for `run -i`.
    c = api._result(api._post_json(api._url("/containers/create"), data={
        "Image": "busybox", "Cmd": ["cat"], "OpenStdin": True, "StdinOnce": True, "AttachStdin": True}), True)
    try:
        sock = api.attach_socket(c["Id"], params={"stdin": 1, "stdout": 1, "stream": 1})
        api.start(c["Id"])
        raw_sock = sock._sock
        raw_sock.sendall(b"ping through stdin\n")
        raw_sock.shutdown(socket.SHUT_WR)
        raw_sock.settimeout(10)
        data = b""
        while chunk := raw_sock.recv(4096):
            data += chunk
        sock.close()  # docker-py's SocketIO: the socket closes with the last of them
        raw_sock.close()
        assert data.endswith(b"ping through stdin\n")
        assert api.wait(c["Id"], timeout=10)["StatusCode"] == 0
    finally:
        api.remove_container(c["Id"], force=True)


def test_unknown_image_and_bad_requests(client, daemon: Daemon) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(docker.errors.ImageNotFound) as info:
        client.containers.create("no-such-image", ["true"])
    assert "No such image: no-such-image" in str(info.value)
    status, body = raw(daemon, b"POST /v1.45/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
                              b"Content-Length: 5\r\nConnection: close\r\n\r\n{oops")
    assert status == 400 and "invalid JSON" in json.loads(body)["message"]
    status, body = raw(daemon, b"GET /v1.45/no/such/route HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert status == 404 and json.loads(body) == {"message": "page not found"}
    status, body = raw(daemon, b"GET /v1.45/services HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert status == 503 and "This node is not a swarm manager" in json.loads(body)["message"]
    with pytest.raises(docker.errors.APIError) as err:
        client.containers.create("busybox", ["true"], ports={"80/icmp": 8080})
    assert err.value.status_code == 400 and "invalid proto: icmp" in str(err.value)


def test_missing_command_gives_127(client) -> None:  # type: ignore[no-untyped-def]
    c = client.containers.create("busybox", ["no-such-command"])
    try:
        with pytest.raises(docker.errors.APIError) as info:
            c.start()
        assert 'exec: "no-such-command": executable file not found in $PATH' in str(info.value)
        assert c.wait(timeout=10)["StatusCode"] == 127
        c.reload()
        assert c.attrs["State"]["ExitCode"] == 127
    finally:
        c.remove(force=True)


def test_images_list_inspect_tag_rmi(client) -> None:  # type: ignore[no-untyped-def]
    image = client.images.get("busybox")
    assert "busybox:latest" in image.tags
    assert image.attrs["Config"]["Cmd"] == ["sh"]
    assert image.tag("busybox-copy", "v1")
    assert "busybox-copy:v1" in client.images.get("busybox").tags
    removed = client.api.remove_image("busybox-copy:v1")
    assert removed == [{"Untagged": "busybox-copy:v1"}]
    assert "busybox-copy:v1" not in client.images.get("busybox").tags
    assert client.api.ping()
    assert client.version()["ApiVersion"] == "1.47"
    info = client.info()
    assert info["Driver"] == "overlay2"
    assert info["SecurityOptions"] == ["name=seccomp,profile=builtin"] and info["InitBinary"] == "docker-init"
    assert "local" in info["Plugins"]["Volume"] and info["DriverStatus"][0][1] not in ("", "unknown")


def test_percent_encoded_references_are_decoded(client, daemon: Daemon) -> None:  # type: ignore[no-untyped-def]
    # docker-py quotes "@" in a digest reference: /images/busybox%40sha256:.../json.
    digest = "sha256:" + "0" * 64
    with pytest.raises(docker.errors.ImageNotFound) as info:
        client.images.get(f"busybox@{digest}")
    assert f"No such image: busybox@{digest}" in str(info.value)
    status, body = raw(daemon, f"GET /v1.45/images/busybox%40{digest}/json HTTP/1.1\r\nHost: d\r\n"
                               "Connection: close\r\n\r\n".encode())
    assert status == 404 and json.loads(body) == {"message": f"No such image: busybox@{digest}"}
    image_id = client.images.get("busybox").id
    status, body = raw(daemon, f"GET /v1.45/images/{image_id.replace(':', '%3A')}/json HTTP/1.1\r\nHost: d\r\n"
                               "Connection: close\r\n\r\n".encode())
    assert status == 200 and json.loads(body)["Id"] == image_id
    c = client.containers.create("busybox", ["true"], name="pct-name")
    try:
        status, body = raw(daemon, b"GET /v1.45/containers/%70ct-name/json HTTP/1.1\r\nHost: d\r\n"
                                   b"Connection: close\r\n\r\n")
        assert status == 200 and json.loads(body)["Id"] == c.id
    finally:
        c.remove(force=True)


def test_archive_path_with_a_nul_byte_is_a_400(client, daemon: Daemon) -> None:  # type: ignore[no-untyped-def]
    # Found by the API fuzzing (test_api_fuzz.py): it was a 500 from the helper reading the rootfs.
    c = client.containers.create("busybox", ["true"])
    try:
        for method in ("GET", "PUT"):
            status, body = raw(daemon, f"{method} /v1.47/containers/{c.id}/archive?path=/etc%00x HTTP/1.1\r\n"
                                       "Host: d\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            assert status == 400 and "cannot contain a NUL byte" in json.loads(body)["message"], (method, body)
        status, _ = raw(daemon, f"HEAD /v1.47/containers/{c.id}/archive?path=/etc%00x HTTP/1.1\r\n"
                                "Host: d\r\nConnection: close\r\n\r\n".encode())
        assert status == 400
    finally:
        c.remove(force=True)


def test_wait_with_an_empty_condition_means_not_running(client, daemon: Daemon) -> None:  # type: ignore[no-untyped-def]
    # Docker's 20.10 CLI sends ?condition= for `docker wait`; dockerd reads it as the default.
    c = client.containers.run("busybox", ["sh", "-c", "exit 4"], detach=True)
    try:
        status, body = raw(daemon, f"POST /v1.41/containers/{c.id}/wait?condition= HTTP/1.1\r\nHost: d\r\n"
                                   "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
        assert status == 200, body
        answer = json.loads(body[body.index(b"{"):body.rindex(b"}") + 1])  # one chunk: the exit
        assert answer["StatusCode"] == 4
    finally:
        c.remove(force=True)


def test_daemon_restart_keeps_containers(fresh_daemon: Daemon) -> None:
    client = fresh_daemon.client()
    c = client.containers.run("busybox", ["sh", "-c", "echo before; sleep 3; echo after; exit 5"], detach=True)
    client.close()
    time.sleep(0.5)
    fresh_daemon.kill9()
    shim_alive = fresh_daemon.root / "data" / "containers" / c.id / "attach.sock"
    assert shim_alive.exists()
    fresh_daemon.start()
    client = fresh_daemon.client()
    try:
        again = client.containers.get(c.id)
        assert again.status == "running"
        assert again.wait(timeout=30)["StatusCode"] == 5
        again.reload()
        assert again.attrs["State"]["ExitCode"] == 5 and again.status == "exited"
        assert again.logs() == b"before\nafter\n"
        # An exit that happens while no daemon runs is found at the next start.
        d = client.containers.run("busybox", ["sh", "-c", "sleep 1; exit 9"], detach=True)
        fresh_daemon.stop()
        time.sleep(2)
        fresh_daemon.start()
        client.close()
        client = fresh_daemon.client()
        gone = client.containers.get(d.id)
        assert gone.status == "exited" and gone.attrs["State"]["ExitCode"] == 9
        assert gone.wait()["StatusCode"] == 9
    finally:
        client.close()


def test_update_restart_policy_and_limits(client) -> None:  # type: ignore[no-untyped-def]
    c = client.containers.run("busybox", ["sleep", "30"], detach=True)
    try:
        c.update(restart_policy={"Name": "on-failure", "MaximumRetryCount": 2}, mem_limit="64m", memswap_limit="128m")
        c.reload()
        assert c.attrs["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        assert c.attrs["HostConfig"]["Memory"] == 64 << 20
        with pytest.raises(docker.errors.APIError) as info:
            c.update(restart_policy={"Name": "sometimes"})
        assert info.value.status_code == 400
        c.reload()
        assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "on-failure"
    finally:
        c.remove(force=True)


def test_verbs_keep_working_after_a_daemon_restart(fresh_daemon: Daemon) -> None:
    """kill -9 the daemon; the running container then still takes exec, logs -f, attach and stop."""
    client = fresh_daemon.client()
    c = client.containers.run("busybox", ["sh", "-c", "trap 'echo bye; exit 3' TERM; i=0; "
                                          "while true; do echo tick$i; i=$((i+1)); sleep 0.2; done"],
                              detach=True, stdin_open=True)
    client.close()
    time.sleep(0.5)
    fresh_daemon.kill9()
    fresh_daemon.start()
    client = fresh_daemon.client()
    try:
        again = client.containers.get(c.id)
        assert again.status == "running"
        code, out = again.exec_run(["sh", "-c", "echo from-exec; exit 4"])
        assert (code, out) == (4, b"from-exec\n")
        follow = again.logs(stream=True, follow=True)
        seen = next(follow) + next(follow)
        assert b"tick" in seen
        sock = client.api.attach_socket(c.id, params={"stdout": 1, "stream": 1})
        sock._sock.settimeout(10)
        assert b"tick" in sock._sock.recv(4096)
        again.stop(timeout=5)
        assert again.wait(timeout=10)["StatusCode"] == 3
        rest = b"".join(follow)  # logs -f ends when the container stops
        assert rest.endswith(b"bye\n")
        sock._sock.close()
        sock.close()  # docker-py's SocketIO: the socket closes with the last of them
        fresh_daemon.cli("start", c.id, check=True)
        assert client.containers.get(c.id).status == "running"
    finally:
        client.close()


def test_detach_keys_end_an_attach_on_the_daemon_side(client) -> None:  # type: ignore[no-untyped-def]
    """A raw API client (no CLI) typing the detach keys: the attach ends, the container runs on."""
    c = client.containers.run("busybox", ["sh"], detach=True, stdin_open=True, tty=True)
    try:
        sock = client.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1,
                                                       "detachKeys": "ctrl-x,y"})
        raw_sock = sock._sock
        raw_sock.settimeout(10)
        raw_sock.sendall(b"echo $((5*5))\n")
        seen = b""
        while b"25" not in seen:
            seen += raw_sock.recv(4096)
        raw_sock.sendall(b"\x18y")
        while raw_sock.recv(4096):  # the daemon closes the attach
            pass
        sock.close()  # docker-py's SocketIO: the socket closes with the last of them
        raw_sock.close()
        c.reload()
        assert c.status == "running"
        with pytest.raises(docker.errors.APIError) as info:
            client.api.attach_socket(c.id, params={"stdin": 1, "stream": 1, "detachKeys": "ctrl-1"})
        assert info.value.status_code == 400 and "Invalid detach keys" in str(info.value)
    finally:
        c.remove(force=True)


def test_docker_py_rename_top_restart_exec_resize_and_image_prune(client) -> None:  # type: ignore[no-untyped-def]
    """The verbs no other test drives through docker-py."""
    c = client.containers.run("busybox", ["sh"], detach=True, tty=True, stdin_open=True, name="dp-before")
    try:
        c.rename("dp-after")
        c.reload()
        assert c.name == "dp-after"
        top = c.top()
        assert top["Titles"] and any("sh" in " ".join(p) for p in top["Processes"])
        started = c.attrs["State"]["StartedAt"]
        c.restart(timeout=1)
        c.reload()
        assert c.status == "running" and c.attrs["State"]["StartedAt"] != started
        exec_id = client.api.exec_create(c.id, ["sh"], tty=True, stdin=True)["Id"]
        sock = client.api.exec_start(exec_id, tty=True, socket=True)
        client.api.exec_resize(exec_id, height=21, width=77)
        sock._sock.sendall(b"stty size; exit 5\n")
        out = b""
        sock._sock.settimeout(10)
        while chunk := sock._sock.recv(4096):
            out += chunk
        sock._sock.close()
        sock.close()  # docker-py's SocketIO: the socket closes with the last of them
        assert b"21 77" in out
        assert client.api.exec_inspect(exec_id)["ExitCode"] == 5
    finally:
        c.remove(force=True)
    # An untagged image that no container uses is dangling: image prune removes it.
    image = client.images.get("busybox")
    image.tag("dp-prune", "v1")
    client.images.remove("dp-prune:v1")  # untag only: busybox:latest still names it
    assert client.images.get("busybox").id == image.id
    result = client.images.prune()
    assert image.id not in [d.get("Deleted") for d in result.get("ImagesDeleted") or []]


def test_parent_images_keep_their_children(client, busybox_tar) -> None:  # type: ignore[no-untyped-def]
    """A committed image's parent is listed as its ParentId and cannot be deleted while it has children."""
    api = client.api
    api.import_image_from_data(busybox_tar.read_bytes(), repository="parentimg", tag="v1",
                               changes=['CMD ["sh"]', "ENV PARENT=1"])
    parent = client.images.get("parentimg:v1")
    c = client.containers.run("parentimg:v1", ["sh", "-c", "echo child > /made-by-child"], detach=True)
    try:
        c.wait(timeout=30)
        child = c.commit("childimg", "v1")
    finally:
        c.remove(force=True)
    try:
        listed = {i["Id"]: i for i in api.images()}
        assert listed[child.id]["ParentId"] == parent.id
        for force in (False, True):
            with pytest.raises(docker.errors.APIError) as info:
                api.remove_image(parent.id, force=force)
            assert info.value.status_code == 409
            assert "(cannot be forced) - image has dependent child images" in str(info.value)
        # Removing its last tag only untags it: the child still needs it.
        assert api.remove_image("parentimg:v1") == [{"Untagged": "parentimg:v1"}]
        assert client.images.get(parent.id).id == parent.id
    finally:
        deleted = api.remove_image(child.id)
    # as Docker's rmi (noprune unset): the untagged parent the child leaves behind goes with it
    assert {"Deleted": child.id} in deleted and {"Deleted": parent.id} in deleted
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(parent.id)


def test_cp_of_a_stopped_container_sees_its_volumes(client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """As in Docker, the archive API on a stopped container reads and writes its volumes and binds."""
    import io
    import tarfile

    host_dir = tmp_path / "bound"
    host_dir.mkdir()
    (host_dir / "from-host").write_text("host file\n")
    volume = client.volumes.create("cp-stopped-vol")
    c = client.containers.run("busybox", ["sh", "-c", "echo in-volume > /vol/made"], detach=True,
                              volumes={"cp-stopped-vol": {"bind": "/vol", "mode": "rw"},
                                       str(host_dir): {"bind": "/ro", "mode": "ro"}})
    try:
        assert c.wait(timeout=30)["StatusCode"] == 0
        stream, stat = c.get_archive("/vol/made")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile("made")
            assert member is not None and member.read() == b"in-volume\n"
        stream, _ = c.get_archive("/ro/from-host")
        assert b"host file" in b"".join(stream)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            data = b"put while stopped\n"
            info = tarfile.TarInfo("put-here")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        assert c.put_archive("/vol", buf.getvalue())
        with pytest.raises(docker.errors.APIError):
            c.put_archive("/ro", buf.getvalue())  # a read-only bind stays read-only
        assert not (host_dir / "put-here").exists()
        out = client.containers.run("busybox", ["cat", "/vol/put-here"], remove=True,
                                    volumes={"cp-stopped-vol": {"bind": "/vol", "mode": "ro"}})
        assert out == b"put while stopped\n"
    finally:
        c.remove(force=True)
        volume.remove(force=True)


def test_console_size_given_at_create_is_the_tty_size_from_the_start(client) -> None:  # type: ignore[no-untyped-def]
    # Docker's CLI (API >= 1.42) sends HostConfig.ConsoleSize with `run -it` and resizes only later:
    # the container's first `stty size` must already see it.
    api = client.api
    created = api.create_container("busybox", ["stty", "size"], tty=True,
                                   host_config={"ConsoleSize": [30, 100], "NetworkMode": "none"})
    try:
        api.start(created["Id"])
        assert api.wait(created["Id"], timeout=30)["StatusCode"] == 0
        assert api.logs(created["Id"]).decode().split() == ["30", "100"]
    finally:
        api.remove_container(created["Id"], force=True)
