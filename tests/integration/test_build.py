"""``POST /build`` (the classic builder) against a real daemon: docker-py's ``images.build`` and
``DOCKER_BUILDKIT=0 docker build`` as clients; image configs, history, files, cache, errors."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_harness import Daemon


def context_tar(files: dict[str, str | bytes]) -> bytes:
    """A build context tar holding ``files`` (name -> content)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build(daemon: Daemon, files: dict[str, str | bytes], fails: bool = False, **params: Any) -> list[dict[str, Any]]:
    """Build through docker-py's low-level API; the decoded JSON messages. Unless ``fails``, the
    build must succeed."""
    import docker

    api = docker.APIClient(base_url=daemon.host, version="auto", timeout=120)
    try:
        messages = list(api.build(fileobj=io.BytesIO(context_tar(files)), custom_context=True, decode=True,
                                  **params))
    finally:
        api.close()
    errors = [m for m in messages if "error" in m]
    assert bool(errors) == fails, messages
    return messages


def stream_text(messages: list[dict[str, Any]]) -> str:
    return "".join(m.get("stream", "") for m in messages)


def image_id(messages: list[dict[str, Any]]) -> str:
    ids = [m["aux"]["ID"] for m in messages if "aux" in m]
    assert ids, messages
    return str(ids[-1])


def config_of(daemon: Daemon, ref: str) -> dict[str, Any]:
    client = daemon.client()
    try:
        return dict(client.api.inspect_image(ref)["Config"])
    finally:
        client.close()


def run_output(daemon: Daemon, ref: str, *cmd: str) -> str:
    result = daemon.cli("run", "--rm", ref, *cmd, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_config_instructions_set_the_image_config_and_history(daemon: Daemon) -> None:
    dockerfile = """FROM busybox
MAINTAINER someone
ENV A=1 B="two words"
ARG V=default
LABEL l1=x "l 2"="$V"
EXPOSE 80 53/udp
VOLUME /data
USER 1000:1000
WORKDIR /app
WORKDIR sub
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --retries=3 CMD true
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo child
ENTRYPOINT ["/bin/echo"]
CMD ["hello"]
"""
    messages = build(daemon, {"Dockerfile": dockerfile}, tag="cfg:1", buildargs={"V": "given"})
    text = stream_text(messages)
    assert "Step 1/16 : FROM busybox\n" in text
    assert "Successfully tagged cfg:1\n" in text
    config = config_of(daemon, "cfg:1")
    assert config["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1",
                             "B=two words"]
    assert config["Labels"] == {"l1": "x", "l 2": "given"}
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert config["Volumes"] == {"/data": {}}
    assert config["User"] == "1000:1000"
    assert config["WorkingDir"] == "/app/sub"
    assert config["StopSignal"] == "SIGTERM"
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 3}
    assert config["Shell"] == ["/bin/sh", "-ec"]
    assert config["OnBuild"] == ["RUN echo child"]
    assert config["Entrypoint"] == ["/bin/echo"]
    assert config["Cmd"] == ["hello"]
    client = daemon.client()
    try:
        inspect = client.api.inspect_image("cfg:1")
        history = client.api.history("cfg:1")
    finally:
        client.close()
    assert inspect["Author"] == "someone"
    created_by = [h["CreatedBy"] for h in history]
    assert created_by[0] == '/bin/sh -ec #(nop)  CMD ["hello"]'
    assert '/bin/sh -c #(nop)  ENV A=1 B=two words' in created_by
    assert "/bin/sh -c #(nop) WORKDIR /app/sub" in created_by
    assert run_output(daemon, "cfg:1") == "hello\n"


def test_run_commits_its_changes_and_streams_its_output(daemon: Daemon) -> None:
    dockerfile = """FROM busybox
ARG WHO=world
RUN echo "hello $WHO" > /greeting && echo built-ok
RUN ["/bin/sh", "-c", "echo exec-form >> /greeting"]
"""
    messages = build(daemon, {"Dockerfile": dockerfile}, tag="runs:1", buildargs={"WHO": "there"})
    text = stream_text(messages)
    assert "built-ok\n" in text
    assert " ---> Running in " in text
    assert run_output(daemon, "runs:1", "cat", "/greeting") == "hello there\nexec-form\n"
    client = daemon.client()
    try:
        history = client.api.history("runs:1")
    finally:
        client.close()
    assert history[1]["CreatedBy"] == '|1 WHO=there /bin/sh -c echo "hello $WHO" > /greeting && echo built-ok'
    assert history[0]["CreatedBy"] == "|1 WHO=there /bin/sh -c echo exec-form >> /greeting"


def test_a_failed_run_stops_the_build_with_dockers_message_and_leaves_no_image(daemon: Daemon) -> None:
    client = daemon.client()
    try:
        before = {i.id for i in client.images.list(all=True)}
    finally:
        client.close()
    messages = build(daemon, {"Dockerfile": "FROM busybox\nRUN echo x > /x\nRUN false\n"}, tag="failed:1", fails=True)
    errors = [m for m in messages if "error" in m]
    assert errors == [{"errorDetail": {"code": 1, "message": "The command '/bin/sh -c false' returned a non-zero code: 1"},
                       "error": "The command '/bin/sh -c false' returned a non-zero code: 1"}]
    client = daemon.client()
    try:
        after = {i.id for i in client.images.list(all=True)}
        with pytest.raises(Exception, match="No such image"):
            client.images.get("failed:1")
        dangling = {i.id for i in client.images.list(filters={"dangling": True})}
        # as Docker: without forcerm the failed step's container stays (rm removes only successful ones)
        left = failed_containers(client)
        assert len(left) == 1
        client.api.remove_container(left[0]["Id"])
    finally:
        client.close()
    # Only the image of the step that succeeded stays, as a cache entry (as in Docker): the same
    # step built again is that image, from the cache. The failed step left no image.
    assert len(after - before) <= 1
    assert dangling - before <= after - before
    again = build(daemon, {"Dockerfile": "FROM busybox\nRUN echo x > /x\n"})
    assert " ---> Using cache\n" in stream_text(again)
    assert after - before <= {image_id(again)}
    build(daemon, {"Dockerfile": "FROM busybox\nRUN false\n"}, forcerm=True, fails=True)
    client = daemon.client()
    try:
        assert failed_containers(client) == []
    finally:
        client.close()


def failed_containers(client: Any) -> list[dict[str, Any]]:
    return [c for c in client.api.containers(all=True) if c["Command"] == "/bin/sh -c false"]


def test_copy_and_add_from_the_context(daemon: Daemon) -> None:
    dockerfile = """FROM busybox
WORKDIR /w
COPY a.txt .
COPY dir/ /d/
ADD b.txt /added/
COPY --chown=1:2 --chmod=600 a.txt /owned
"""
    files = {"Dockerfile": dockerfile, "a.txt": "A\n", "dir/x": "X\n", "dir/sub/y": "Y\n", "b.txt": "B\n"}
    build(daemon, files, tag="copies:1")
    out = run_output(daemon, "copies:1", "sh", "-c",
                     "cat /w/a.txt /d/x /d/sub/y /added/b.txt; stat -c '%u:%g %a' /owned")
    assert out == "A\nX\nY\nB\n1:2 600\n"


def test_multi_stage_with_target_and_copy_from(daemon: Daemon) -> None:
    dockerfile = """FROM busybox AS base
RUN echo base > /base
FROM base AS unused
RUN echo unused > /unused && false
FROM busybox AS final
COPY --from=base /base /from-base
RUN cat /from-base
FROM final AS last
CMD ["cat", "/from-base"]
"""
    messages = build(daemon, {"Dockerfile": dockerfile}, tag="stages:final", target="final")
    text = stream_text(messages)
    assert "unused" not in text.replace("AS unused", "")
    assert not [m for m in messages if "error" in m]
    assert run_output(daemon, "stages:final", "cat", "/from-base") == "base\n"
    messages = build(daemon, {"Dockerfile": dockerfile}, tag="stages:last")
    assert [m for m in messages if "error" in m] == []
    assert run_output(daemon, "stages:last") == "base\n"


def test_rebuild_uses_the_cache_and_nocache_does_not(daemon: Daemon) -> None:
    files = {"Dockerfile": "FROM busybox\nENV X=1\nRUN echo $X > /x\nCOPY f /f\n", "f": "content\n"}
    first = build(daemon, files, tag="cached:1", cache_from=["cached:0"])  # accepted; the local cache serves
    second = build(daemon, files, tag="cached:2")
    assert stream_text(second).count(" ---> Using cache\n") == 3
    assert image_id(first) == image_id(second)
    changed = build(daemon, {**files, "f": "other\n"})
    assert stream_text(changed).count(" ---> Using cache\n") == 2
    fresh = build(daemon, files, nocache=True)
    assert " ---> Using cache" not in stream_text(fresh)
    assert image_id(fresh) != image_id(first)


def test_finished_builds_leave_no_directory_behind(daemon: Daemon) -> None:
    """Each build's directory (its unpacked context, its steps' dirs) is removed once its stream
    has ended, even though the response does not wait for that."""
    import time

    files: dict[str, str | bytes] = {"Dockerfile": "FROM busybox\nCOPY big /big\nWORKDIR /w\n",
                                     "big": os.urandom(1 << 20)}
    for n in range(5):
        build(daemon, files, nocache=n % 2 == 0)
    deadline = time.monotonic() + 10
    while left := sorted(p.name for p in (daemon.root / "data" / "tmp").glob("build-*")):
        assert time.monotonic() < deadline, left
        time.sleep(0.05)


def test_onbuild_triggers_run_in_the_child_build(daemon: Daemon) -> None:
    build(daemon, {"Dockerfile": "FROM busybox\nONBUILD RUN echo triggered > /t\nONBUILD COPY child.txt /\n"},
          tag="parent:1")
    messages = build(daemon, {"Dockerfile": "FROM parent:1\n", "child.txt": "from the child's context\n"},
                     tag="child:1")
    assert "# Executing 2 build triggers\n" in stream_text(messages)
    assert run_output(daemon, "child:1", "cat", "/t", "/child.txt") == "triggered\nfrom the child's context\n"
    assert config_of(daemon, "child:1")["OnBuild"] is None


def test_unused_build_args_warn_and_labels_are_added(daemon: Daemon) -> None:
    messages = build(daemon, {"Dockerfile": "FROM busybox\nARG USED\n"}, tag="warn:1",
                     buildargs={"USED": "1", "UNUSED": "2", "HTTP_PROXY": "http://proxy"}, labels={"from": "build"})
    assert "[Warning] One or more build-args [UNUSED] were not consumed\n" in stream_text(messages)
    assert config_of(daemon, "warn:1")["Labels"] == {"from": "build"}


def test_malformed_dockerfiles_are_refused_with_the_line(daemon: Daemon) -> None:
    import docker

    cases = {
        "FROM busybox\nFOO bar\n": "dockerfile parse error on line 2: unknown instruction: FOO",
        "RUN true\n": "no build stage in current context",
        "FROM busybox\nCMD [\"a\", 1]\n": "arrays must be comprised of strings only",
        "FROM busybox\nARG\n": "dockerfile parse error on line 2: ARG requires at least one argument",
        "ARG B=\nFROM $B\n": "base name ($B) should not be blank",
        "FROM busybox\nCOPY --from=3 /a /b\n": "invalid stage index 3",
        "FROM busybox AS a\nCOPY --from=b /a /b\nFROM busybox AS b\n":
            'cannot copy from stage "b", it needs to be defined before current stage "a"',
        "FROM busybox\nCOPY --from=nosuchimage /a /b\n": "",
    }
    for dockerfile, message in cases.items():
        if not message:  # an unknown stage name is an image name: its pull fails in the stream
            messages = build(daemon, {"Dockerfile": dockerfile}, fails=True)
            assert "nosuchimage" in messages[-1]["error"]
            continue
        with pytest.raises(docker.errors.APIError) as info:
            build(daemon, {"Dockerfile": dockerfile})
        assert message in str(info.value.explanation), (dockerfile, info.value.explanation)
    with pytest.raises(docker.errors.APIError) as info:
        build(daemon, {"Dockerfile": "FROM busybox\n"}, target="missing")
    assert "failed to reach build target missing in Dockerfile" in str(info.value.explanation)
    api = docker.APIClient(base_url=daemon.host, version="auto", timeout=60)
    try:  # docker-py checks tags itself: a raw request
        response = api._post(api._url("/build"), params={"t": "Upper:1"},
                             data=context_tar({"Dockerfile": "FROM busybox\n"}))
        assert response.status_code == 400
        assert response.json()["message"].startswith('invalid tag "Upper:1": ')
        response = api._post(api._url("/build"), params={"remote": "https://example.com/repo.git"}, data=b"")
        assert response.status_code == 400
        assert response.json()["message"].startswith("remote build contexts are not supported by dockyard")
        response = api._post(api._url("/build"), data=context_tar({"other": "x"}))
        assert (response.status_code, response.json()["message"]) == \
            (400, "Cannot locate specified Dockerfile: Dockerfile")
    finally:
        api.close()


def test_docker_cli_classic_build(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY hello /hello\nRUN cat /hello\nCMD [\"cat\", \"/hello\"]\n")
    (tmp_path / "hello").write_text("hi from the cli\n")
    env_build = daemon.env() | {"DOCKER_BUILDKIT": "0"}
    import subprocess

    from tests.integration.daemon_harness import DOCKER

    result = subprocess.run([DOCKER, "build", "-t", "clibuild:1", str(tmp_path)], capture_output=True, text=True,
                            env=env_build, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Successfully tagged clibuild:1" in result.stdout
    assert run_output(daemon, "clibuild:1") == "hi from the cli\n"
    # Without DOCKER_BUILDKIT: Docker 28's CLI without the buildx plugin falls back to the classic
    # builder (with its deprecation notice); 20.10's uses it by default
    plain_env = {k: v for k, v in env_build.items() if k != "DOCKER_BUILDKIT"}
    result = subprocess.run([DOCKER, "build", "-q", str(tmp_path)], capture_output=True, text=True, env=plain_env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sha256:")
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN exit 3\n")
    result = subprocess.run([DOCKER, "build", str(tmp_path)], capture_output=True, text=True, env=env_build,
                            timeout=120)
    assert result.returncode != 0
    assert "The command '/bin/sh -c exit 3' returned a non-zero code: 3" in result.stderr + result.stdout
    for dockerfile, message in (
            ("FROM busybox\nBOGUS x\n", "dockerfile parse error on line 2: unknown instruction: BOGUS"),
            ("# comment\nRUN true\n", "no build stage in current context"),
            ("FROM busybox\nENTRYPOINT [\"a\", 2]\n", "arrays must be comprised of strings only"),
            ("FROM busybox\nCOPY onlyone\n", "dockerfile parse error on line 2: COPY requires at least two arguments")):
        (tmp_path / "Dockerfile").write_text(dockerfile)
        result = subprocess.run([DOCKER, "build", str(tmp_path)], capture_output=True, text=True, env=env_build,
                                timeout=120)
        assert result.returncode != 0
        assert message in result.stderr, (dockerfile, result.stderr)


def test_docker_py_high_level_build(daemon: Daemon, tmp_path: Path) -> None:
    import time

    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo py > /py\n")
    client = daemon.client()
    try:
        since = int(time.time()) - 1
        image, logs = client.images.build(path=str(tmp_path), tag="pybuild:1", rm=True)
        assert "pybuild:1" in image.tags
        assert any("Successfully built" in chunk.get("stream", "") for chunk in logs)
        events = list(client.events(since=since, until=int(time.time()) + 1, decode=True,
                                    filters={"type": "image", "event": "tag"}))
        tagged = [e["Actor"]["ID"] for e in events if e["Actor"]["Attributes"]["name"] == "pybuild:1"]
        assert tagged == [image.id]
    finally:
        client.close()


def test_buildkit_session_requests_are_refused(daemon: Daemon) -> None:
    import docker

    with pytest.raises(docker.errors.APIError) as info:
        api = docker.APIClient(base_url=daemon.host, version="auto", timeout=60)
        try:
            api._result(api._post(api._url("/build"), params={"version": "2"}, data=b""))
        finally:
            api.close()
    assert "DOCKER_BUILDKIT=0" in str(info.value.explanation)


def test_run_mounts_cache_bind_tmpfs_and_secret(daemon: Daemon) -> None:
    dockerfile = """FROM busybox
RUN --mount=type=cache,target=/cache echo -n x >> /cache/count && cat /cache/count > /seen
RUN --mount=type=bind,source=ctx,target=/ctx cat /ctx/file > /from-bind && ! touch /ctx/file 2>/dev/null
RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && grep -q '/scratch tmpfs' /proc/mounts
RUN test ! -e /cache/count && test ! -e /ctx/file && test ! -e /scratch/t
"""
    files = {"Dockerfile": dockerfile, "ctx/file": "bound\n"}
    build(daemon, files, tag="mounts:1")
    assert run_output(daemon, "mounts:1", "cat", "/seen", "/from-bind") == "xbound\n"
    # the cache mount persists across builds (the step itself is rebuilt: nocache)
    build(daemon, files, tag="mounts:2", nocache=True)
    assert run_output(daemon, "mounts:2", "cat", "/seen") == "xx"
    messages = build(daemon, {"Dockerfile": "FROM busybox\nRUN --mount=type=secret,id=token,required "
                                            "cat /run/secrets/token\n"}, fails=True)
    errors = [m["error"] for m in messages if "error" in m]
    assert errors and errors[0].startswith("secret token not found")
    # not required (BuildKit's default): the mount is left out, with a warning
    messages = build(daemon, {"Dockerfile": "FROM busybox\nRUN --mount=type=secret,id=opt test ! -e /run/secrets/opt\n"})
    assert "[Warning] secret opt not found" in stream_text(messages)
    messages = build(daemon, {"Dockerfile": "FROM busybox\nRUN --security=insecure true\n"}, fails=True)
    assert "security.insecure is not allowed" in messages[-1]["error"]


def test_run_network_none_and_networkmode(daemon: Daemon) -> None:
    dockerfile = "FROM busybox\nRUN --network=none ip -o link | grep -v ' lo' | wc -l > /links-none\nRUN ip -o link | wc -l > /links\n"
    build(daemon, {"Dockerfile": dockerfile}, tag="net:1", network_mode="none")
    assert run_output(daemon, "net:1", "cat", "/links-none", "/links") == "0\n1\n"


def test_quiet_several_tags_and_another_dockerfile(daemon: Daemon) -> None:
    files = {"build/Other.dockerfile": "FROM busybox\nRUN echo quiet\nLABEL which=other\n", "Dockerfile": "FROM nothing\n"}
    import docker

    api = docker.APIClient(base_url=daemon.host, version="auto", timeout=120)
    try:
        response = api._post(api._url("/build"), params={"t": ["q:1", "q:2"], "q": "1",
                                                         "dockerfile": "build/Other.dockerfile"},
                             data=context_tar(files), headers={"Content-Type": "application/x-tar"}, stream=True)
        messages = [json.loads(line) for line in response.iter_lines() if line]
        response.close()
        assert [list(m) for m in messages] == [["aux"], ["stream"]]
        assert messages[1]["stream"] == messages[0]["aux"]["ID"] + "\n"
        assert api.inspect_image("q:1")["Id"] == api.inspect_image("q:2")["Id"] == messages[0]["aux"]["ID"]
        assert api.inspect_image("q:1")["Config"]["Labels"] == {"which": "other"}
    finally:
        api.close()


def test_cache_follows_the_copied_content_not_ignored_files(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY a /a\nCOPY . /all/\nRUN ls /all > /listing\n")
    (tmp_path / ".dockerignore").write_text("ignored.txt\n")
    (tmp_path / "a").write_text("a\n")
    (tmp_path / "b").write_text("b\n")
    (tmp_path / "ignored.txt").write_text("one\n")
    client = daemon.client()
    try:
        def rebuild() -> tuple[str, str]:
            image, logs = client.images.build(path=str(tmp_path), tag="ignored:1")
            return str(image.id), "".join(chunk.get("stream", "") for chunk in logs)

        first, _ = rebuild()
        (tmp_path / "ignored.txt").write_text("two\n")
        os.utime(tmp_path / "a", (1, 1))  # a new mtime alone changes nothing either
        second, text = rebuild()
        assert (second, text.count(" ---> Using cache")) == (first, 3)
        (tmp_path / "b").write_text("changed\n")
        third, text = rebuild()
        assert third != first
        assert text.count(" ---> Using cache") == 1  # COPY a; from COPY . on, rebuilt
        assert run_output(daemon, "ignored:1", "cat", "/listing") == "Dockerfile\na\nb\n"
    finally:
        client.close()


def test_independent_stages_build_in_parallel_with_ordered_output(daemon: Daemon) -> None:
    # Stage "first" waits (up to 60 s) for a file only stage "second" makes, in a cache mount both
    # share: built one after the other, "first" would fail.
    sync = f"sync-{os.getpid()}-{id(daemon)}"
    dockerfile = f"""FROM busybox AS first
RUN --mount=type=cache,id={sync},target=/sync i=0; while [ ! -e /sync/flag ]; do i=$((i+1)); [ $i -lt 600 ] || exit 9; sleep 0.1; done; echo first > /first
FROM busybox AS second
RUN --mount=type=cache,id={sync},target=/sync echo second > /second && touch /sync/flag
FROM busybox
COPY --from=first /first /first
COPY --from=second /second /second
"""
    messages = build(daemon, {"Dockerfile": dockerfile}, tag="parallel:1", nocache=True)
    text = stream_text(messages)
    steps = [line for line in text.splitlines() if line.startswith("Step ")]
    assert [s.split(" :")[0] for s in steps] == [f"Step {n}/7" for n in range(1, 8)]
    assert run_output(daemon, "parallel:1", "cat", "/first", "/second") == "first\nsecond\n"


def test_our_cli_builds_against_our_daemon(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nARG MSG\nRUN echo \"$MSG\" > /msg\n")
    result = daemon.cli("build", "-t", "ourcli:1", "--build-arg", "MSG=from our cli", str(tmp_path), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Successfully tagged ourcli:1" in result.stdout
    assert run_output(daemon, "ourcli:1", "cat", "/msg") == "from our cli\n"
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN exit 4\n")
    result = daemon.cli("build", str(tmp_path), timeout=120)
    assert result.returncode == 4
    assert "The command '/bin/sh -c exit 4' returned a non-zero code: 4" in result.stderr


def test_a_failing_stage_stops_the_others_and_its_output_is_shown(daemon: Daemon) -> None:
    dockerfile = """FROM busybox AS slow
RUN i=0; while [ $i -lt 600 ]; do i=$((i+1)); sleep 0.1; done
FROM busybox AS failing
RUN echo about to fail; exit 7
FROM busybox
COPY --from=slow /etc/passwd /a
COPY --from=failing /etc/passwd /b
"""
    messages = build(daemon, {"Dockerfile": dockerfile}, fails=True, nocache=True)
    assert messages[-1]["errorDetail"] == {"code": 7, "message": "The command '/bin/sh -c echo about to fail; exit 7' "
                                                                 "returned a non-zero code: 7"}
    assert "about to fail\n" in stream_text(messages)
    client = daemon.client()
    try:  # the slow stage's container was stopped and removed: nothing of the build runs on
        running = [c for c in client.api.containers() if "sleep 0.1" in c["Command"]]
    finally:
        client.close()
    assert running == []


def test_a_client_that_goes_away_stops_the_build(daemon: Daemon) -> None:
    import socket
    import time

    body = context_tar({"Dockerfile": "FROM busybox\nRUN echo started; sleep 600\n"})
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(daemon.sock))
    sock.sendall(b"POST /v1.41/build?nocache=1 HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    seen = b""
    while b"started" not in seen:
        chunk = sock.recv(65536)
        assert chunk, seen
        seen += chunk
    sock.close()
    client = daemon.client()
    try:
        deadline = time.monotonic() + 30
        while [c for c in client.api.containers(all=True) if "sleep 600" in c["Command"]]:
            assert time.monotonic() < deadline, "the build's container outlived its client"
            time.sleep(0.1)
    finally:
        client.close()


def test_add_downloads_a_url(daemon: Daemon, tmp_path: Path) -> None:
    import http.server
    import threading

    (tmp_path / "served.txt").write_text("downloaded\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/served.txt"
        build(daemon, {"Dockerfile": f"FROM busybox\nADD {url} /dl/\n"}, tag="addurl:1")
        assert run_output(daemon, "addurl:1", "sh", "-c", "cat /dl/served.txt; stat -c %a /dl/served.txt") == \
            "downloaded\n600\n"
        missing = build(daemon, {"Dockerfile": f"FROM busybox\nADD {url}.missing /dl/\n"}, fails=True)
        assert "404" in missing[-1]["error"]
    finally:
        server.shutdown()
        server.server_close()



def test_heredocs_link_and_proxy_args(daemon: Daemon) -> None:
    dockerfile = """FROM busybox
RUN <<EOF
echo from-script > /script
echo "$http_proxy" > /proxy
EOF
RUN cat <<EOT > /fed
fed $((1+1))
EOT
COPY <<EOF /inline.txt
inline text
EOF
COPY --link a /linked
"""
    build(daemon, {"Dockerfile": dockerfile, "a": "A\n"}, tag="heredocs:1",
          buildargs={"http_proxy": "http://proxy.example:3128"})
    assert run_output(daemon, "heredocs:1", "cat", "/script", "/proxy", "/fed", "/inline.txt", "/linked") == \
        "from-script\nhttp://proxy.example:3128\nfed 2\ninline text\nA\n"
    client = daemon.client()
    try:
        history = " ".join(h["CreatedBy"] for h in client.api.history("heredocs:1"))
        env = client.api.inspect_image("heredocs:1")["Config"]["Env"]
    finally:
        client.close()
    assert "proxy.example" not in history  # the proxy args reach RUN, never the image
    assert not any("proxy" in e for e in env)


def test_bind_mounts_from_a_stage_and_their_cache_keys(daemon: Daemon) -> None:
    dockerfile = """FROM busybox AS tools
RUN mkdir /out && echo tool > /out/t && echo single > /single
FROM busybox
RUN --mount=type=bind,from=tools,source=/out,target=/mnt cat /mnt/t > /copied && ! touch /mnt/x 2>/dev/null
RUN --mount=type=bind,from=tools,source=/out,target=/mnt,rw touch /mnt/written && cat /mnt/t >> /copied
RUN --mount=type=bind,from=0,source=/single,target=/one.txt cat /one.txt >> /copied
RUN --mount=type=bind,source=ctx,target=/ctx cat /ctx/f >> /copied
"""
    files = {"Dockerfile": dockerfile, "ctx/f": "context one\n"}
    build(daemon, files, tag="bindfrom:1")
    assert run_output(daemon, "bindfrom:1", "cat", "/copied") == "tool\ntool\nsingle\ncontext one\n"
    # a bound context file that changed invalidates the step that reads it, and only that one
    messages = build(daemon, {**files, "ctx/f": "context two\n"}, tag="bindfrom:2")
    assert stream_text(messages).count(" ---> Using cache") == 4
    assert run_output(daemon, "bindfrom:2", "cat", "/copied") == "tool\ntool\nsingle\ncontext two\n"
    # nothing written through a rw bind from a stage reaches that stage's image
    build(daemon, files, tag="bindfrom:tools", target="tools")
    assert run_output(daemon, "bindfrom:tools", "ls", "/out") == "t\n"


def test_locked_cache_mounts_are_used_by_one_run_at_a_time(daemon: Daemon) -> None:
    # Two stages build in parallel; each RUN takes a token file in the locked cache, holds it a
    # while and gives it back: with the lock, neither ever finds the other's token.
    lock_id = f"locked-{os.getpid()}-{id(daemon)}"
    run = (f"RUN --mount=type=cache,id={lock_id},target=/c,sharing=locked "
           "test ! -e /c/token && touch /c/token && sleep 1 && rm /c/token && echo {} > /{}")
    dockerfile = f"""FROM busybox AS a
{run.format("a", "a")}
FROM busybox AS b
{run.format("b", "b")}
FROM busybox
COPY --from=a /a /a
COPY --from=b /b /b
"""
    build(daemon, {"Dockerfile": dockerfile}, tag="locked:1", nocache=True)
    assert run_output(daemon, "locked:1", "cat", "/a", "/b") == "a\nb\n"
