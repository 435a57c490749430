"""Pulling from registries (issue 7, client side): a real ``docker-registry`` (distribution 2.8) on
127.0.0.1 filled by skopeo, pulled by our CLI, Docker's CLI and docker-py; a mirror standing in for
Docker Hub; htpasswd Basic auth with ``login``; and a test registry (fake_registry.py) for the Bearer
token flow and for faults: a wrong digest, a connection dropped mid-blob, a 500, a 429, an index
without the host's platform. After a failure no half image is left: ``system check`` is clean.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_harness import Daemon
from tests.integration.fake_registry import FakeRegistry, digest_of
from tests.integration.registry_harness import Registry, run_output

pytestmark = [pytest.mark.root, pytest.mark.docker_cli]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(scope="module")
def busybox_archive(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """busybox:latest saved by dockyard (Docker archive + OCI layout in one tar)."""
    path = tmp_path_factory.mktemp("bb-archive") / "busybox.tar"
    daemon.cli("save", "-o", str(path), "busybox:latest", check=True)
    return path


@pytest.fixture(scope="module")
def image_parts(busybox_archive: Path) -> dict[str, Any]:
    """The saved image's config and (uncompressed) layer, for the test registry."""
    with tarfile.open(busybox_archive) as tar:
        def blob(digest: str) -> bytes:
            f = tar.extractfile("blobs/sha256/" + digest.split(":", 1)[1])
            assert f is not None
            return f.read()

        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        config = blob(manifest["config"]["digest"])
        layer = blob(manifest["layers"][0]["digest"])
    return {"config": config, "layer": layer}


def gzip_image(parts: dict[str, Any]) -> tuple[bytes, dict[str, bytes]]:
    """A Docker v2 schema 2 manifest with a gzip layer, and its blobs."""
    packed = gzip.compress(parts["layer"], mtime=0)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(parts["config"]),
                   "digest": digest_of(parts["config"])},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(packed),
                    "digest": digest_of(packed)}],
    }).encode()
    return manifest, {digest_of(parts["config"]): parts["config"], digest_of(packed): packed}


def index_of(manifest: bytes, media_type: str, platforms: list[dict[str, str]]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": media_type, "digest": digest_of(manifest), "size": len(manifest), "platform": p}
        for p in platforms]}).encode()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, busybox_archive: Path) -> Iterator[Registry]:
    """A docker-registry holding busybox as Docker v2s2 (gzip) and as OCI."""
    reg = Registry(tmp_path_factory.mktemp("registry"))
    try:
        reg.skopeo_copy(f"docker-archive:{busybox_archive}", "library/busybox:latest")
        reg.skopeo_copy(f"docker-archive:{busybox_archive}", "oci/busybox:1")
        reg.skopeo_copy(f"docker-archive:{busybox_archive}", "oci/busybox:2")
        yield reg
    finally:
        reg.close()


@pytest.fixture()
def puller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon with no images: whatever it has, it pulled."""
    d = Daemon(tmp_path_factory.mktemp("dockyard-pull"))
    try:
        yield d
    finally:
        d.close()


def remote_digest(reg_host: str, repo_tag: str) -> str:
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reg_host}/{repo_tag}"],
                         check=True, capture_output=True, timeout=60).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def assert_clean(d: Daemon) -> None:
    check = d.cli("system", "check")
    assert check.returncode == 0 and "No problems found" in check.stdout, check.stdout + check.stderr
    assert d.cli("images", "-q", "-a").stdout.strip() == ""


# -- a real registry --------------------------------------------------------------------------------

def test_pull_with_our_cli_then_run(registry: Registry, puller: Daemon) -> None:
    ref = f"{registry.host}/library/busybox"
    out = puller.cli("pull", ref, timeout=120, check=True).stdout
    lines = out.splitlines()
    assert lines[0] == "Using default tag: latest"
    assert lines[1] == "latest: Pulling from library/busybox"
    assert any(line.endswith(": Pull complete") for line in lines)
    digest = remote_digest(registry.host, "library/busybox:latest")
    assert f"Digest: {digest}" in lines
    assert f"Status: Downloaded newer image for {ref}:latest" in lines
    assert lines[-1] == f"{ref}:latest"
    inspect = puller.client().images.get(ref).attrs
    assert inspect["RepoTags"] == [f"{ref}:latest"]
    assert inspect["RepoDigests"] == [f"{ref}@{digest}"]
    assert run_output(puller, ref, "echo", "pulled and running") == "pulled and running\n"
    again = puller.cli("pull", ref, timeout=120, check=True).stdout
    assert f"Status: Image is up to date for {ref}:latest" in again
    assert ": Already exists" in again
    check = puller.cli("system", "check")
    assert "No problems found" in check.stdout, check.stdout


def test_docker_cli_pulls_runs_and_pulls_on_run(registry: Registry, puller: Daemon) -> None:
    ref = f"{registry.host}/oci/busybox:1"
    pulled = puller.docker("pull", ref, timeout=120)
    assert pulled.returncode == 0, pulled.stderr
    assert "Pull complete" in pulled.stdout and pulled.stdout.strip().endswith(ref)
    run = puller.docker("run", "--rm", ref, "true", timeout=60)
    assert run.returncode == 0, run.stderr
    # `docker run` of an image that is not here: Docker's CLI pulls it itself after create's 404
    # (output is read from the log: attach drops it now and then, see run_output)
    other = f"{registry.host}/library/busybox:latest"
    run = puller.docker("run", "--rm", other, "true", timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"Unable to find image '{other}' locally" in run.stderr
    assert run_output(puller, other, "echo", "after a pull") == "after a pull\n"
    missing = puller.docker("pull", f"{registry.host}/oci/busybox:nope", timeout=60)
    assert missing.returncode != 0
    assert f"manifest for {registry.host}/oci/busybox:nope not found: manifest unknown" in missing.stderr


def test_pulled_layer_is_kept_compressed_saved_and_pushed_as_is(registry: Registry, puller: Daemon,
                                                                  tmp_path: Path) -> None:
    """A pulled layer is stored as the registry's compressed blob and no uncompressed copy is written;
    ``save`` writes its plain tar under the diff ID (``load`` takes it back, reusing the stored blob
    while the image is there) and ``push`` sends the blob as it is: the pushed manifest names the
    registry's own layer digests."""
    ref = f"{registry.host}/oci/busybox:1"
    puller.cli("pull", ref, timeout=120, check=True)
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                         check=True, capture_output=True, timeout=60).stdout
    remote_layers = [layer["digest"] for layer in json.loads(raw)["layers"]]
    image = puller.client().images.get(ref)
    diff_ids = image.attrs["RootFS"]["Layers"]
    assert remote_layers != diff_ids  # the registry's layers are compressed
    blobs = {p.name for p in (puller.root / "data" / "content" / "blobs" / "sha256").iterdir()}
    assert {d.split(":")[1] for d in remote_layers} <= blobs
    assert not {d.split(":")[1] for d in diff_ids} & blobs
    saved = tmp_path / "saved.tar"
    puller.cli("save", "-o", str(saved), ref, check=True)
    with tarfile.open(saved) as tar:
        for diff_id in diff_ids:
            member = tar.extractfile("blobs/sha256/" + diff_id.split(":")[1])
            assert member is not None
            assert "sha256:" + hashlib.sha256(member.read()).hexdigest() == diff_id
    target = f"{registry.host}/kept/busybox:1"
    puller.cli("tag", ref, target, check=True)
    pushed = puller.cli("push", target, timeout=120)
    assert pushed.returncode == 0, pushed.stderr
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{target}"],
                         check=True, capture_output=True, timeout=60).stdout
    layers = json.loads(raw)["layers"]
    assert [layer["digest"] for layer in layers] == remote_layers
    assert {layer["mediaType"] for layer in layers} == {"application/vnd.oci.image.layer.v1.tar+gzip"}
    puller.cli("load", "-i", str(saved), check=True)  # the same layers: the pulled blobs serve the load too
    blobs = {p.name for p in (puller.root / "data" / "content" / "blobs" / "sha256").iterdir()}
    assert not {d.split(":")[1] for d in diff_ids} & blobs
    puller.cli("rmi", "-f", image.id, check=True)
    puller.cli("load", "-i", str(saved), check=True)
    assert run_output(puller, ref, "echo", "saved and loaded") == "saved and loaded\n"
    check = puller.cli("system", "check")
    assert "No problems found" in check.stdout, check.stdout


def test_docker_py_pull_by_tag_and_digest(registry: Registry, puller: Daemon) -> None:
    client = puller.client()
    digest = remote_digest(registry.host, "oci/busybox:1")
    image = client.images.pull(f"{registry.host}/oci/busybox", tag="1")
    assert f"{registry.host}/oci/busybox@{digest}" in image.attrs["RepoDigests"]
    client.images.remove(image.id, force=True)
    by_digest = client.images.pull(f"{registry.host}/oci/busybox@{digest}")
    assert by_digest.attrs["RepoTags"] == []
    assert by_digest.attrs["RepoDigests"] == [f"{registry.host}/oci/busybox@{digest}"]
    container = client.containers.run(f"{registry.host}/oci/busybox@{digest}", ["echo", "by digest"], detach=True)
    try:
        assert container.wait(timeout=60)["StatusCode"] == 0
        assert container.logs() == b"by digest\n"
    finally:
        container.remove(force=True)


def test_pull_all_tags(registry: Registry, puller: Daemon) -> None:
    repo = f"{registry.host}/oci/busybox"
    pulled = puller.cli("pull", "--all-tags", repo, timeout=120)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.splitlines()[-1] == repo
    tags = sorted(t for image in puller.client().images.list() for t in image.attrs["RepoTags"])
    assert tags == [f"{repo}:1", f"{repo}:2"]
    refused = puller.cli("pull", "-a", f"{repo}:1", timeout=30)
    assert refused.returncode != 0 and "tag can't be used with --all-tags/-a" in refused.stderr


def test_run_pull_policies(registry: Registry, puller: Daemon) -> None:
    ref = f"{registry.host}/oci/busybox:1"
    never = puller.cli("run", "--pull", "never", "--rm", ref, "true", timeout=60)
    assert never.returncode == 125 and f"No such image: {ref}" in never.stderr
    missing = puller.cli("run", "--rm", ref, "true", timeout=120)
    assert missing.returncode == 0 and f"Unable to find image '{ref}' locally" in missing.stderr
    always = puller.cli("create", "--pull", "always", ref, timeout=120)
    assert always.returncode == 0 and "Image is up to date" in always.stderr, always.stderr
    bad = puller.cli("run", "--pull", "sometimes", ref, timeout=60)
    assert bad.returncode == 125 and "invalid pull option" in bad.stderr


def test_mirror_stands_in_for_docker_hub(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> None:
    d = Daemon(tmp_path_factory.mktemp("dockyard-mirror"), args=("--registry-mirror", f"http://{registry.host}"))
    try:
        out = d.cli("pull", "busybox", timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[-1] == "docker.io/library/busybox:latest"
        image = d.client().images.get("busybox")
        digest = remote_digest(registry.host, "library/busybox:latest")
        assert image.attrs["RepoTags"] == ["busybox:latest"]
        assert image.attrs["RepoDigests"] == [f"busybox@{digest}"]
        info = d.client().info()
        assert info["RegistryConfig"]["Mirrors"] == [f"http://{registry.host}/"]
        assert info["RegistryConfig"]["IndexConfigs"]["docker.io"]["Mirrors"] == [f"http://{registry.host}/"]
        assert "127.0.0.0/8" in info["RegistryConfig"]["InsecureRegistryCIDRs"]
        shown = d.docker("info", timeout=30).stdout
        assert "Registry Mirrors:" in shown and f"http://{registry.host}/" in shown
        assert run_output(d, "busybox", "echo", "from the mirror") == "from the mirror\n"
    finally:
        d.close()


def test_basic_auth_login_and_config_json(busybox_archive: Path, tmp_path: Path, puller: Daemon) -> None:
    htpasswd = tmp_path / "htpasswd"
    made = subprocess.run(["htpasswd", "-Bbn", "alice", "s3cret"], check=True, capture_output=True, text=True)
    htpasswd.write_text(made.stdout)
    reg = Registry(tmp_path / "reg", htpasswd=htpasswd)
    try:
        reg.skopeo_copy(f"docker-archive:{busybox_archive}", "private/busybox:latest", creds="alice:s3cret")
        ref = f"{reg.host}/private/busybox"
        denied = puller.cli("pull", ref, timeout=60)
        assert denied.returncode != 0
        assert f"pull access denied for {ref}, repository does not exist or may require 'docker login'" \
            in denied.stderr
        wrong = puller.cli("login", "-u", "alice", "--password-stdin", reg.host, input="nope\n", timeout=60)
        assert wrong.returncode != 0 and "401 Unauthorized" in wrong.stderr, wrong.stderr
        login = puller.cli("login", "-u", "alice", "--password-stdin", reg.host, input="s3cret\n", timeout=60)
        assert login.returncode == 0 and "Login Succeeded" in login.stdout, login.stderr
        config = json.loads((puller.root / "docker-config" / "config.json").read_text())
        assert config["auths"][reg.host]["auth"] == "YWxpY2U6czNjcmV0"  # base64("alice:s3cret")
        pulled = puller.cli("pull", ref, timeout=120)
        assert pulled.returncode == 0, pulled.stderr
        logout = puller.cli("logout", reg.host, check=True)
        assert logout.stdout == f"Removing login credentials for {reg.host}\n"
        puller.cli("rmi", ref, check=True)
        # Docker's CLI logs in through our POST /auth and sends X-Registry-Auth itself
        docker_login = puller.docker("login", "-u", "alice", "--password-stdin", reg.host, input="s3cret\n")
        assert docker_login.returncode == 0 and "Login Succeeded" in docker_login.stdout, docker_login.stderr
        pulled = puller.docker("pull", ref, timeout=120)
        assert pulled.returncode == 0, pulled.stderr
    finally:
        reg.close()


# -- a test registry: Bearer tokens and faults -----------------------------------------------------

@pytest.fixture()
def fake(image_parts: dict[str, Any]) -> Iterator[FakeRegistry]:
    reg = FakeRegistry()
    manifest, blobs = gzip_image(image_parts)
    reg.add_image("bb", "v2", DOCKER_MANIFEST, manifest, blobs)
    try:
        yield reg
    finally:
        reg.close()


def test_bearer_token_flow(image_parts: dict[str, Any], puller: Daemon) -> None:
    reg = FakeRegistry(users={"bob": "pw"})
    try:
        manifest, blobs = gzip_image(image_parts)
        reg.add_image("team/bb", "v2", DOCKER_MANIFEST, manifest, blobs)
        ref = f"{reg.host}/team/bb:v2"
        denied = puller.cli("pull", ref, timeout=60)
        assert denied.returncode != 0 and "pull access denied" in denied.stderr, denied.stderr
        puller.cli("login", "-u", "bob", "--password-stdin", reg.host, input="pw\n", check=True)
        reg.faults.add("token-expire-once")  # the first token is refused after a use: fetch a fresh one
        reg.faults.add("redirect-blobs")  # blobs come from another host, which never sees the token
        pulled = puller.cli("pull", ref, timeout=120)
        assert pulled.returncode == 0, pulled.stderr
        assert any(t["user"] == "bob" and "scope" not in t for t in reg.token_requests)  # the login's
        pulls = [t for t in reg.token_requests if t["user"] == "bob" and "scope" in t]
        assert all(t["scope"] == "repository%3Ateam%2Fbb%3Apull" for t in pulls)
        assert all(t["service"] == "fake-registry" for t in reg.token_requests)
        assert len(pulls) == 2  # one token, cached for every request, and one after it was refused
        assert reg.storage_auth and not any(reg.storage_auth)
        assert run_output(puller, ref, "echo", "token ok") == "token ok\n"
    finally:
        reg.close()


def test_index_picks_the_host_platform(fake: FakeRegistry, image_parts: dict[str, Any], puller: Daemon) -> None:
    manifest, blobs = gzip_image(image_parts)
    arch = json.loads(image_parts["config"])["architecture"]
    index = index_of(manifest, DOCKER_MANIFEST, [{"os": "linux", "architecture": "s390x"},
                                                 {"os": "linux", "architecture": arch}])
    index_digest = fake.add_image("multi", "1", OCI_INDEX, index, {})
    fake.manifests[("multi", digest_of(manifest))] = (DOCKER_MANIFEST, manifest)
    pulled = puller.cli("pull", f"{fake.host}/multi:1", timeout=120)
    assert pulled.returncode == 0, pulled.stderr
    image = puller.client().images.get(f"{fake.host}/multi:1")
    assert image.attrs["RepoDigests"] == [f"{fake.host}/multi@{index_digest}"]  # the index's digest, as Docker
    api = puller.client().api
    described = api.inspect_distribution(f"{fake.host}/multi:1")
    assert described["Descriptor"] == {"mediaType": OCI_INDEX, "digest": index_digest, "size": len(index)}
    assert described["Platforms"] == [{"os": "linux", "architecture": "s390x"}, {"os": "linux", "architecture": arch}]
    single = api.inspect_distribution(f"{fake.host}/bb:v2")
    assert single["Descriptor"]["mediaType"] == DOCKER_MANIFEST
    assert single["Platforms"] == [{"architecture": arch, "os": "linux"}]
    other = index_of(manifest, DOCKER_MANIFEST, [{"os": "linux", "architecture": "s390x"}])
    fake.add_image("s390x-only", "1", OCI_INDEX, other, {})
    refused = puller.cli("pull", f"{fake.host}/s390x-only:1", timeout=60)
    assert refused.returncode != 0
    assert f"no matching manifest for linux/{arch} in the manifest list entries" in refused.stderr
    wrong = puller.cli("pull", "--platform", "linux/s390x", f"{fake.host}/bb:v2", timeout=60)
    assert wrong.returncode != 0 and "does not match the specified platform" in wrong.stderr


def test_zstd_and_plain_oci_layers(fake: FakeRegistry, image_parts: dict[str, Any], puller: Daemon) -> None:
    import zstandard

    config = image_parts["config"]
    for name, media_type, blob in (
            ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd", zstandard.ZstdCompressor().compress(image_parts["layer"])),
            ("plain", "application/vnd.oci.image.layer.v1.tar", image_parts["layer"])):
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config),
                       "digest": digest_of(config)},
            "layers": [{"mediaType": media_type, "size": len(blob), "digest": digest_of(blob)}]}).encode()
        fake.add_image(name, "1", OCI_MANIFEST, manifest, {digest_of(config): config, digest_of(blob): blob})
        pulled = puller.cli("pull", f"{fake.host}/{name}:1", timeout=120)
        assert pulled.returncode == 0, pulled.stderr
        assert run_output(puller, f"{fake.host}/{name}:1", "cat", "/etc/passwd").startswith("root:")
        puller.cli("rmi", f"{fake.host}/{name}:1", check=True)
    check = puller.cli("system", "check")
    assert "No problems found" in check.stdout, check.stdout


def _layer(entries: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _layered_image(fake: FakeRegistry, image_parts: dict[str, Any]) -> list[bytes]:
    """``layered:1``: busybox plus a layer adding /etc/motd and /etc/kept, plus one that whites out
    /etc/motd and adds /etc/top; returns the three gzip layers, bottom first."""
    layers = [image_parts["layer"],
              _layer([("etc/motd", b"from layer 2\n"), ("etc/kept", b"kept\n")]),
              _layer([("etc/.wh.motd", b""), ("etc/top", b"from layer 3\n")])]
    config = json.loads(image_parts["config"])
    config["rootfs"]["diff_ids"] = [digest_of(layer) for layer in layers]
    config_bytes = json.dumps(config).encode()
    packed = [gzip.compress(layer, mtime=0) for layer in layers]
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config_bytes),
                   "digest": digest_of(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": len(p), "digest": digest_of(p)}
                   for p in packed]}).encode()
    fake.add_image("layered", "1", OCI_MANIFEST, manifest,
                   {digest_of(config_bytes): config_bytes, **{digest_of(p): p for p in packed}})
    return packed


def test_layers_apply_in_order(fake: FakeRegistry, image_parts: dict[str, Any], puller: Daemon) -> None:
    """Three layers downloaded in parallel and unpacked bottom first: the top one's whiteout wins."""
    packed = _layered_image(fake, image_parts)
    pulled = puller.cli("pull", f"{fake.host}/layered:1", timeout=120)
    assert pulled.returncode == 0, pulled.stderr
    completes = [line.split(":")[0] for line in pulled.stdout.splitlines() if line.endswith(": Pull complete")]
    assert not any(line.endswith(": Waiting") for line in pulled.stdout.splitlines())  # 3 at once by default
    assert completes == [digest_of(p).split(":")[1][:12] for p in packed]  # bottom first, as Docker shows
    out = run_output(puller, f"{fake.host}/layered:1", "sh", "-c",
                     "cat /etc/kept /etc/top; test -e /etc/motd && echo motd present || echo motd gone")
    assert out == "kept\nfrom layer 3\nmotd gone\n"


def test_max_concurrent_downloads(fake: FakeRegistry, image_parts: dict[str, Any],
                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    packed = _layered_image(fake, image_parts)
    d = Daemon(tmp_path_factory.mktemp("dockyard-one-download"), args=("--max-concurrent-downloads", "1"))
    try:
        pulled = d.cli("pull", f"{fake.host}/layered:1", timeout=120)
        assert pulled.returncode == 0, pulled.stderr
        waiting = [line.split(":")[0] for line in pulled.stdout.splitlines() if line.endswith(": Waiting")]
        assert waiting == [digest_of(p).split(":")[1][:12] for p in packed[1:]]
        assert run_output(d, f"{fake.host}/layered:1", "cat", "/etc/top") == "from layer 3\n"
    finally:
        d.close()


@pytest.mark.parametrize("honours_range", [True, False])
def test_dropped_connection_is_resumed(fake: FakeRegistry, puller: Daemon, honours_range: bool) -> None:
    """A layer cut mid-way is asked for again with ``Range`` (the unpack following the download
    goes on where it was); a registry that answers with the whole blob anyway has the bytes
    already here skipped."""
    fake.faults.add("drop-once")
    if not honours_range:
        fake.faults.add("no-range")
    pulled = puller.cli("pull", f"{fake.host}/bb:v2", timeout=120)
    assert pulled.returncode == 0, pulled.stderr
    blob_gets = [r for r in fake.requests if "/blobs/" in r[1] and r[0] == "GET"]
    assert any(r[2].startswith("bytes=") and r[2] != "bytes=0-" for r in blob_gets), blob_gets
    assert run_output(puller, f"{fake.host}/bb:v2", "echo", "resumed") == "resumed\n"


@pytest.mark.parametrize(("fault", "message"), [
    ("wrong-digest", "filesystem layer verification failed for digest"),
    ("drop-always", "connection closed after"),
    ("manifest-500", "received unexpected HTTP status: 500"),
])
def test_faults_leave_no_half_image(fake: FakeRegistry, puller: Daemon, fault: str, message: str) -> None:
    fake.faults.add(fault)
    pulled = puller.cli("pull", f"{fake.host}/bb:v2", timeout=120)
    assert pulled.returncode != 0
    assert message in pulled.stderr, pulled.stderr
    docker = puller.docker("pull", f"{fake.host}/bb:v2", timeout=120)
    assert docker.returncode != 0 and message in docker.stderr, docker.stderr
    assert_clean(puller)
    blobs = puller.root / "data" / "content" / "blobs" / "sha256"
    assert sorted(p.name for p in blobs.iterdir()) == []


def test_429_is_retried(fake: FakeRegistry, puller: Daemon) -> None:
    fake.faults.add("manifest-429-once")
    pulled = puller.cli("pull", f"{fake.host}/bb:v2", timeout=120)
    assert pulled.returncode == 0, pulled.stderr
    manifest_gets = [r for r in fake.requests if r[1] == "/v2/bb/manifests/v2"]
    assert len(manifest_gets) == 2  # the 429, then the retry


def test_killed_pull_leaves_pieces_the_collector_clears(fake: FakeRegistry, puller: Daemon) -> None:
    fake.faults.add("stall")
    pulling = subprocess.Popen([*puller.cli_argv(), "pull", f"{fake.host}/bb:v2"], env=puller.env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert fake.stalled.wait(60), "the pull never reached the blob"
        puller.kill9()  # mid-blob: an ingest file and a lease are left behind
        pulling.wait(30)
    finally:
        if pulling.poll() is None:
            pulling.kill()
            pulling.wait()
        fake.release.set()
    ingest = puller.root / "data" / "content" / "ingest"
    assert any(ingest.iterdir())  # the half-downloaded blob
    puller.start()
    repaired = puller.cli("system", "check", "--repair", timeout=60)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert_clean(puller)
    assert not any(ingest.iterdir())
    fake.faults.discard("stall")
    again = puller.cli("pull", f"{fake.host}/bb:v2", timeout=120)
    assert again.returncode == 0, again.stderr


def test_two_pulls_of_one_image_share_the_download(fake: FakeRegistry, puller: Daemon) -> None:
    """The second pull waits for the first one's download of a layer instead of fetching it again
    (Docker's shared downloads); both then have the image, whose layer is the one downloaded blob,
    kept compressed (no uncompressed copy is stored)."""
    fake.faults.add("stall")  # the first blob GET sends half the layer, then waits for `release`
    first = subprocess.Popen([*puller.cli_argv(), "pull", f"{fake.host}/bb:v2"], env=puller.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second: subprocess.Popen[str] | None = None
    try:
        assert fake.stalled.wait(60), "the first pull never reached the layer"
        second = subprocess.Popen([*puller.cli_argv(), "pull", f"{fake.host}/bb:v2"], env=puller.env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while sum(1 for r in fake.requests if r[1] == "/v2/bb/manifests/v2") < 2:  # the second resolved it
            assert time.monotonic() < deadline, fake.requests
            time.sleep(0.05)
        time.sleep(1)  # time for the second pull to reach its downloads (and, unshared, to GET the layer)
    finally:
        fake.faults.discard("stall")
        fake.release.set()
    out1, err1 = first.communicate(timeout=120)
    out2, err2 = second.communicate(timeout=120)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    big = [digest for digest, data in fake.blobs.items() if len(data) > 1000]
    fresh_gets = [r for r in fake.requests if r[0] == "GET" and r[1].endswith(f"/blobs/{big[0]}") and not r[2]]
    assert len(fresh_gets) == 1, fake.requests  # the first pull's; it resumed the rest with Range
    assert run_output(puller, f"{fake.host}/bb:v2", "echo", "shared") == "shared\n"
    blobs = puller.root / "data" / "content" / "blobs" / "sha256"
    stored = {p.name for p in blobs.iterdir()}
    assert big[0].split(":")[1] in stored  # the compressed layer is the image's layer blob
    diff_id = puller.client().images.get(f"{fake.host}/bb:v2").attrs["RootFS"]["Layers"][0]
    assert diff_id.split(":")[1] not in stored  # and no uncompressed copy of it was written
    check = puller.cli("system", "check")
    assert check.returncode == 0 and "No problems found" in check.stdout, check.stdout + check.stderr
    assert puller.cli("rmi", f"{fake.host}/bb:v2").returncode == 0
    assert_clean(puller)
