"""Pushing to a registry (issue 7, client side): images pushed by dockyard (our CLI and Docker's CLI
through our API) into a real ``docker-registry`` are read by skopeo, pulled back into a fresh
dockyard and into a private dockerd, and run there; a second push skips what is there, and a push
to another repository of the same registry mounts the layers instead of uploading them again."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_harness import Daemon
from tests.integration.registry_harness import Registry, run_output
from tests.integration.test_cli_against_dockerd import Dockerd, dockerd  # noqa: F401 - the fixture

pytestmark = [pytest.mark.root, pytest.mark.docker_cli]


@pytest.fixture()
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(tmp_path / "registry")
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture()
def pusher(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("dockyard-push"))
    try:
        d.import_busybox(busybox_tar)
        yield d
    finally:
        d.close()


def test_push_then_pull_with_skopeo_dockyard_and_dockerd(registry: Registry, pusher: Daemon,
                                                         tmp_path_factory: pytest.TempPathFactory,
                                                         dockerd: Dockerd) -> None:  # noqa: F811
    ref = f"{registry.host}/pushed/bb:v1"
    pusher.cli("tag", "busybox", ref, check=True)
    out = pusher.cli("push", ref, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"The push refers to repository [{registry.host}/pushed/bb]"
    assert any(line.endswith(": Pushed") for line in lines), lines
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                         check=True, capture_output=True, timeout=60).stdout
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert lines[-1] == f"v1: digest: {digest} size: {len(raw)}"
    assert json.loads(raw)["config"]["digest"] == pusher.client().images.get(ref).id
    assert [layer["mediaType"] for layer in json.loads(raw)["layers"]] == ["application/vnd.oci.image.layer.v1.tar+gzip"]
    check = pusher.cli("system", "check")  # the compressed copies made for the push are gone
    assert "No problems found" in check.stdout, check.stdout
    assert f"{registry.host}/pushed/bb@{digest}" in pusher.client().images.get(ref).attrs["RepoDigests"]
    oci_dir = tmp_path_factory.mktemp("oci-copy")
    subprocess.run(["skopeo", "copy", "--insecure-policy", "--src-tls-verify=false", f"docker://{ref}",
                    f"oci:{oci_dir}:v1"], check=True, capture_output=True, timeout=120)
    again = pusher.cli("push", ref, timeout=120)
    assert again.returncode == 0 and ": Layer already exists" in again.stdout, again.stdout + again.stderr
    other = f"{registry.host}/elsewhere/bb:v1"
    pusher.cli("tag", "busybox", other, check=True)
    mounted = pusher.cli("push", other, timeout=120)
    assert mounted.returncode == 0 and ": Mounted from pushed/bb" in mounted.stdout, mounted.stdout + mounted.stderr
    # Docker's CLI pushes through our API too
    third = f"{registry.host}/third/bb"
    pusher.cli("tag", "busybox", third, check=True)
    docker_push = pusher.docker("push", third, timeout=120)
    assert docker_push.returncode == 0, docker_push.stderr
    assert "latest: digest: sha256:" in docker_push.stdout
    # what we pushed pulls and runs elsewhere: a fresh dockyard, and dockerd
    fresh = Daemon(tmp_path_factory.mktemp("dockyard-fresh"))
    try:
        fresh.cli("pull", ref, timeout=120, check=True)
        assert run_output(fresh, ref, "echo", "pushed by dockyard") == "pushed by dockyard\n"
    finally:
        fresh.close()
    pulled = dockerd.docker("pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    run = dockerd.docker("run", "--rm", "--network", "none", ref, "echo", "in dockerd")
    assert run.returncode == 0 and run.stdout == "in dockerd\n", run.stderr
    dockerd.docker("rmi", ref)


def test_push_errors(registry: Registry, pusher: Daemon) -> None:
    missing = pusher.cli("push", f"{registry.host}/nothing/here:v1", timeout=60)
    assert missing.returncode != 0 and "tag does not exist" in missing.stderr, missing.stderr
    unreachable = "127.0.0.1:1/x/bb:v1"
    pusher.cli("tag", "busybox", unreachable, check=True)
    refused = pusher.cli("push", unreachable, timeout=120)
    assert refused.returncode != 0 and "connection refused" in refused.stderr.lower(), refused.stderr


def test_push_with_basic_auth(pusher: Daemon, tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    made = subprocess.run(["htpasswd", "-Bbn", "carol", "pw2"], check=True, capture_output=True, text=True)
    htpasswd.write_text(made.stdout)
    reg = Registry(tmp_path / "reg", htpasswd=htpasswd)
    try:
        ref = f"{reg.host}/carol/bb:1"
        pusher.cli("tag", "busybox", ref, check=True)
        denied = pusher.cli("push", ref, timeout=60)
        assert denied.returncode != 0 and "unauthorized" in denied.stderr.lower(), denied.stdout + denied.stderr
        pusher.cli("login", "-u", "carol", "--password-stdin", reg.host, input="pw2\n", check=True)
        pushed = pusher.cli("push", ref, timeout=120)
        assert pushed.returncode == 0, pushed.stderr
        subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--creds=carol:pw2", f"docker://{ref}"],
                       check=True, capture_output=True, timeout=60)
    finally:
        reg.close()


def test_chunked_push(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_UPLOAD_CHUNK_BYTES", str(256 << 10))  # the daemon started below inherits it
    reg = Registry(tmp_path / "reg", log_level="info")
    d = Daemon(tmp_path_factory.mktemp("dockyard-chunked"))
    try:
        d.import_busybox(busybox_tar)
        ref = f"{reg.host}/chunked/bb:1"
        d.cli("tag", "busybox", ref, check=True)
        pushed = d.cli("push", ref, timeout=120)
        assert pushed.returncode == 0, pushed.stderr
        patches = [line for line in reg.log().splitlines() if "http.request.method=PATCH" in line
                   and "response completed" in line]
        raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                             check=True, capture_output=True, timeout=60).stdout
        layer_size = json.loads(raw)["layers"][0]["size"]
        assert len(patches) >= layer_size // (256 << 10) >= 2, len(patches)
        oci = tmp_path / "oci"
        subprocess.run(["skopeo", "copy", "--insecure-policy", "--src-tls-verify=false", f"docker://{ref}",
                        f"oci:{oci}:1"], check=True, capture_output=True, timeout=120)
    finally:
        d.close()
        reg.close()


def test_push_all_tags(registry: Registry, pusher: Daemon) -> None:
    repo = f"{registry.host}/many/bb"
    for tag in ("a", "b"):
        pusher.cli("tag", "busybox", f"{repo}:{tag}", check=True)
    pushed = pusher.cli("push", "--all-tags", repo, timeout=120)
    assert pushed.returncode == 0, pushed.stderr
    assert [line.split(":")[0] for line in pushed.stdout.splitlines() if ": digest: sha256:" in line] == ["a", "b"]
    tags = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{repo}"], check=True,
                          capture_output=True, text=True, timeout=60).stdout
    assert sorted(json.loads(tags)["Tags"]) == ["a", "b"]
    default = pusher.cli("push", repo, timeout=60)  # no tag: latest, which this repository lacks
    assert default.returncode != 0 and "tag does not exist" in default.stderr, default.stderr
