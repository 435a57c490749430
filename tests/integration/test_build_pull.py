"""FROM an image the daemon does not have: pulled through the distribution service (a local
docker-registry), with ``pull`` forcing a fresh attempt and a missing image failing the build."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dockyard.images.service import host_arch
from tests.integration.daemon_harness import DOCKER, Daemon
from tests.integration.registry_harness import Registry
from tests.integration.test_build import build, run_output, stream_text
from tests.integration.test_registry_pull import busybox_archive, puller, registry  # noqa: F401 - fixtures

pytestmark = [pytest.mark.root]


def test_from_pulls_a_missing_image_and_pull_forces_a_fresh_attempt(registry: Registry,  # noqa: F811
                                                                       puller: Daemon) -> None:  # noqa: F811
    base = f"{registry.host}/library/busybox:latest"
    files = {"Dockerfile": f"FROM {base}\nRUN echo pulled > /p\n"}
    messages = build(puller, files, tag="frompull:1")
    assert any(m.get("status", "").startswith("Pulling from library/busybox") for m in messages), messages
    assert run_output(puller, "frompull:1", "cat", "/p") == "pulled\n"
    # present now: no pull; with pull=True, a pull attempt (and the cached RUN still applies)
    again = build(puller, files)
    assert not any("status" in m for m in again)
    forced = build(puller, files, pull=True)
    assert any("status" in m for m in forced)
    assert " ---> Using cache\n" in stream_text(forced)
    missing = build(puller, {"Dockerfile": f"FROM {registry.host}/library/nothing:here\n"}, fails=True)
    error = [m["error"] for m in missing if "error" in m][0]
    assert "nothing" in error


def test_from_a_private_registry_with_x_registry_config(busybox_archive: Path, tmp_path: Path,  # noqa: F811
                                                        puller: Daemon) -> None:  # noqa: F811
    htpasswd = tmp_path / "htpasswd"
    made = subprocess.run(["htpasswd", "-Bbn", "alice", "s3cret"], check=True, capture_output=True, text=True)
    htpasswd.write_text(made.stdout)
    reg = Registry(tmp_path / "reg", htpasswd=htpasswd)
    try:
        reg.skopeo_copy(f"docker-archive:{busybox_archive}", "private/busybox:latest", creds="alice:s3cret")
        files = {"Dockerfile": f"FROM {reg.host}/private/busybox\nRUN echo private > /p\n"}
        denied = build(puller, files, fails=True)
        assert "pull access denied" in denied[-1]["error"]
        # Docker's CLI sends the credentials of every registry it knows in X-Registry-Config
        login = puller.docker("login", "-u", "alice", "--password-stdin", reg.host, input="s3cret\n")
        assert login.returncode == 0, login.stderr
        (tmp_path / "ctx").mkdir()
        (tmp_path / "ctx" / "Dockerfile").write_text(files["Dockerfile"])
        built = subprocess.run([DOCKER, "build", "-t", "private-built:1", str(tmp_path / "ctx")], capture_output=True,
                               text=True, env=puller.env() | {"DOCKER_BUILDKIT": "0"}, timeout=120)
        assert built.returncode == 0, built.stderr
        assert run_output(puller, "private-built:1", "cat", "/p") == "private\n"
    finally:
        reg.close()


def test_a_local_image_of_another_platform_is_pulled_for_that_platform(registry: Registry,  # noqa: F811
                                                                        puller: Daemon) -> None:  # noqa: F811
    base = f"{registry.host}/library/busybox:latest"
    build(puller, {"Dockerfile": f"FROM {base}\n"})  # pulled: the host's platform
    arch, _variant = host_arch()
    messages = build(puller, {"Dockerfile": f"FROM {base}\n"}, platform="linux/s390x", fails=True)
    # the registry has no arm64 busybox: the build asked it for one rather than use the local image
    # the local image (the host's platform) is not used: the registry is asked for s390x and has none
    assert messages[-1]["error"] == (f"image with reference {base} was found but does not match the specified "
                                     f"platform: wanted linux/s390x, actual: linux/{arch}")
    again = build(puller, {"Dockerfile": f"FROM {base}\n"}, platform=f"linux/{arch}")
    assert not any("status" in m for m in again)
