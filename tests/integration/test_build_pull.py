"""FROM an image the daemon does not have: pulled through the distribution service (a local
docker-registry), with ``pull`` forcing a fresh attempt and a missing image failing the build."""

from __future__ import annotations

import pytest

from tests.integration.daemon_harness import Daemon
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
