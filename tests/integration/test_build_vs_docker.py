"""A corpus of Dockerfiles built by dockyard and by Docker's classic builder (a private dockerd,
``POST /build`` without BuildKit), compared: the image config (Env, Cmd, Entrypoint, WorkingDir, User,
Labels, ExposedPorts, Volumes, Healthcheck, StopSignal, OnBuild, Shell), the history the build added
(``created_by`` with COPY/ADD content hashes masked, ``empty_layer``) and the files of the final rootfs
(kind, mode, owner, link target, content)."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from typing import Any

import docker
import pytest

from tests.integration.daemon_harness import Daemon
from tests.integration.test_build import context_tar
from tests.integration.test_cli_against_dockerd import Dockerd, dockerd  # noqa: F401 - the fixture

pytestmark = [pytest.mark.root, pytest.mark.docker_cli]

CONFIG_FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts", "Volumes",
                 "Healthcheck", "StopSignal", "OnBuild", "Shell")
SKIPPED_PATHS = ("dev", "proc", "sys", ".dockerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab")

CORPUS: dict[str, dict[str, str]] = {
    "config": {"Dockerfile": """FROM busybox
ENV A=1 B="two words" PATH=/opt/bin:$PATH
ARG V=default
LABEL one=1 "two words"="$V" three=
EXPOSE 80 53/udp 8000-8001
VOLUME /data
VOLUME ["/logs", "/other"]
USER nobody
WORKDIR /srv
WORKDIR rel/dir
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --timeout=2s --start-period=1s --retries=4 CMD wget -q localhost || exit 1
ONBUILD RUN echo from-onbuild
ONBUILD COPY . /app
CMD echo shell form
"""},
    "entrypoint-resets-cmd": {"Dockerfile": """FROM busybox
CMD ["before"]
ENTRYPOINT ["/bin/echo", "hi"]
"""},
    "cmd-then-entrypoint-keeps-cmd": {"Dockerfile": """FROM busybox
ENTRYPOINT ["/bin/echo"]
CMD ["kept"]
ENTRYPOINT /bin/echo shell
HEALTHCHECK NONE
"""},
    "shell-and-run": {"Dockerfile": """FROM busybox
SHELL ["/bin/sh", "-ec"]
ARG WHO=x
RUN echo "$WHO" > /who && mkdir -p /made/sub && chmod 700 /made && rm -rf /etc/group
RUN ["/bin/sh", "-c", "echo exec > /exec"]
ENV WHO=env
RUN echo "$WHO" > /who2
CMD ["sh"]
"""},
    "copy-add-workdir": {
        "Dockerfile": """FROM busybox
WORKDIR /w
COPY a.txt ./
COPY dir /d/
ADD a.txt dir/x /multi/
COPY --chown=1:2 a.txt /owned
WORKDIR /w/deeper
CMD ["sh"]
""",
        "a.txt": "A\n", "dir/x": "X\n", "dir/sub/y": "Y\n"},
    "multi-stage": {"Dockerfile": """FROM busybox AS build
RUN echo built > /artifact
FROM busybox
COPY --from=build /artifact /artifact
COPY --from=0 /artifact /again
LABEL stage=final
CMD ["cat", "/artifact"]
"""},
    "global-args-and-scratch": {
        "Dockerfile": """ARG BASE=busybox
ARG TAGGED
FROM ${BASE} AS tools
ARG TAGGED=inner
RUN echo "$TAGGED" > /tagged
FROM scratch
COPY --from=tools /tagged /bin/busybox /
ENV PATH=/
CMD ["busybox", "cat", "/tagged"]
"""},
    "edge-values": {"Dockerfile": """FROM busybox
ARG DIR=/opt/app
ARG UID=1234
ENV HOME_DIR=$DIR/home \\
    QUOTED="a \\"b\\" c" \\
    EMPTY=
WORKDIR $HOME_DIR
USER $UID:0
LABEL multi="line one" \\
      other='single $DIR'
ENV DIR=overridden
RUN echo "$DIR $UID" > /tmp/seen
ENTRYPOINT []
CMD []
HEALTHCHECK CMD ["true"]
HEALTHCHECK --timeout=3s CMD echo replaced
EXPOSE 9000/tcp 9001/UDP
"""},
    "add-archive-and-run-changes": {
        "Dockerfile": """FROM busybox
ADD payload.tar /unpacked/
RUN rm /unpacked/top/gone && echo more >> /unpacked/top/kept && ln -s kept /unpacked/top/link
CMD ["sh"]
""",
        "payload.tar": "@payload"},
}


def _payload() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("top/kept", b"kept\n"), ("top/gone", b"gone\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), 0o640, 7, 8, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _build(host: str, files: dict[str, str], tag: str) -> list[str]:
    api = docker.APIClient(base_url=host, version="1.41", timeout=120)
    try:
        contents = {k: (_payload() if v == "@payload" else v) for k, v in files.items()}
        messages = list(api.build(fileobj=io.BytesIO(context_tar(contents)), custom_context=True, decode=True,
                                  tag=tag, rm=True, buildargs={"V": "given"}))
    finally:
        api.close()
    errors = [m for m in messages if "error" in m]
    assert not errors, (host, errors)
    text = "".join(m.get("stream", "") for m in messages)
    return [re.sub(r"\b[0-9a-f]{12}\b", "<id>", line) for line in text.splitlines()]


def _facts(host: str, tag: str) -> dict[str, Any]:
    api = docker.APIClient(base_url=host, version="1.41", timeout=120)
    try:
        inspect = api.inspect_image(tag)
        base_layers = len(api.history("busybox:latest"))
        history = list(reversed(api.history(tag)))[base_layers:]
        container = api.create_container(tag, command=["true"])
        try:
            tar_bytes = b"".join(api.export(container["Id"]))
        finally:
            api.remove_container(container["Id"])
    finally:
        api.close()
    config = inspect["Config"] or {}
    # dockerd's container layer adds an empty /etc (the mount point of hosts, hostname, resolv.conf)
    # to an image without one: a difference of `export`, not of the build
    files: dict[str, tuple[object, ...]] = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        for member in tar.getmembers():
            name = member.name.rstrip("/").removeprefix("./")
            if not name or any(name == p or name.startswith(p + "/") for p in SKIPPED_PATHS):
                continue
            data = tar.extractfile(member).read() if member.isfile() else b""  # type: ignore[union-attr]
            files[name] = (member.type, oct(member.mode & 0o7777) if not member.issym() else "", member.uid, member.gid,
                           member.linkname, hashlib.sha256(data).hexdigest()[:12])
    if "etc" in files and not any(name.startswith("etc/") for name in files):
        del files["etc"]
    return {
        "config": {key: config.get(key) for key in CONFIG_FIELDS},
        "author": inspect.get("Author"),
        "history": [(_comparable(h["CreatedBy"]), h["Size"] == 0) for h in history],
        "files": files,
    }


def _comparable_output(lines: list[str]) -> list[str]:
    out: list[str] = []
    step = ""
    for line in lines:
        if line.startswith("Step "):
            step = line.split(" : ", 1)[1].split(" ", 1)[0].upper()
        container_line = line.startswith((" ---> Running in ", "Removing intermediate container "))
        if line == " ---> Using cache" or (container_line and step != "RUN"):
            continue
        out.append(line)
    return out


def _comparable(created_by: str) -> str:
    """``created_by`` with COPY/ADD content hashes masked (dockerd's are tarsums of its own) and
    HEALTHCHECK's StartInterval left out (dockerd 20.10 has no such field; dockyard writes it as 25+ do)."""
    text = re.sub(r"(COPY|ADD) (--chown=\S+)?(file|dir|multi):[0-9a-f]+", r"\1 \2\3:<hash>", created_by)
    return re.sub(r'(HEALTHCHECK &\{\[.*\] "[^"]*" "[^"]*" "[^"]*") "[^"]*"( \S+\})$', r"\1\2", text)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_builds_like_dockers_classic_builder(name: str, daemon: Daemon, dockerd: Dockerd) -> None:  # noqa: F811
    files = CORPUS[name]
    tag = f"corpus-{name}:1"
    their_lines = _build(dockerd.host, files, tag)
    our_lines = _build(daemon.host, files, tag)
    reference, ours = _facts(dockerd.host, tag), _facts(daemon.host, tag)
    assert ours["config"] == reference["config"]
    assert ours["author"] == reference["author"]
    assert ours["history"] == reference["history"]
    assert ours["files"] == reference["files"]
    # the build's output, IDs masked: the same lines, but for the one difference dockyard makes on
    # purpose (dockerd runs a container for each config-only and WORKDIR step; dockyard needs none)
    # and cache hits (the corpus shares steps: ours may hit the cache where dockerd's did not)
    assert _comparable_output(our_lines) == _comparable_output(their_lines)


def _failing(host: str) -> tuple[list[str], list[dict[str, Any]]]:
    api = docker.APIClient(base_url=host, version="1.41", timeout=120)
    try:
        context = context_tar({"Dockerfile": "FROM busybox\nENV A=1\nRUN echo failing-output; exit 3\nCMD [\"x\"]\n"})
        messages = list(api.build(fileobj=io.BytesIO(context), custom_context=True, decode=True, forcerm=True))
    finally:
        api.close()
    text = "".join(m.get("stream", "") for m in messages)
    return ([re.sub(r"\b[0-9a-f]{12}\b", "<id>", line) for line in text.splitlines()],
            [m for m in messages if "error" in m])


def test_a_failing_run_ends_the_stream_as_dockerd_does(daemon: Daemon, dockerd: Dockerd) -> None:  # noqa: F811
    their_lines, their_errors = _failing(dockerd.host)
    our_lines, our_errors = _failing(daemon.host)
    assert our_errors == their_errors == [{
        "errorDetail": {"code": 3, "message": "The command '/bin/sh -c echo failing-output; exit 3' returned a "
                                              "non-zero code: 3"},
        "error": "The command '/bin/sh -c echo failing-output; exit 3' returned a non-zero code: 3"}]
    assert _comparable_output(our_lines) == _comparable_output(their_lines)
