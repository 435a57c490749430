"""``dockyard build`` against the real daemon: the classic output, the cache, and its pruning;
Docker's classic CLI (``DOCKER_BUILDKIT=0``) as a second client."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_harness import Daemon

pytestmark = pytest.mark.root

DOCKERFILE = """FROM busybox
RUN echo hi > /a
COPY big /big
ENV GREETING=hello
WORKDIR /work
"""


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path_factory.mktemp("dockyard-build"))
    try:
        daemon.import_busybox(busybox_tar)
        yield daemon
    finally:
        daemon.close()


@pytest.fixture()
def context(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "big").write_bytes(os.urandom(256 * 1024))
    (tmp_path / "secret.txt").write_text("no")
    (tmp_path / ".dockerignore").write_text("secret.txt\n")
    return tmp_path


def test_build_then_the_cache_answers_every_step(d: Daemon, context: Path) -> None:
    first = d.cli("build", "--network", "none", "-t", "app:1", str(context), timeout=120)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith("Sending build context to Docker daemon  ")
    assert "Step 1/5 : FROM busybox" in lines and "Step 5/5 : WORKDIR /work" in lines
    built = re.search(r"^Successfully built ([0-9a-f]{12})$", first.stdout, re.M)
    assert built and "Successfully tagged app:1" in lines
    image = d.client().images.get("app:1")
    assert image.id.startswith("sha256:" + built.group(1))
    out = d.client().containers.run("app:1", ["sh", "-c", "cat /a; pwd; echo $GREETING; ls /"], remove=True)
    assert out.decode().split("\n")[:3] == ["hi", "/work", "hello"]
    again = d.cli("build", "--network", "none", "-t", "app:1", str(context), timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count(" ---> Using cache") == 4
    assert d.client().images.get("app:1").id == image.id
    cache = d.client().df()["BuildCache"]
    assert len(cache) >= 4 and {c["Type"] for c in cache} == {"regular"}
    # intermediate images: only with -a
    assert len(d.cli("images", "-aq").stdout.split()) > len(d.cli("images", "-q").stdout.split())


def test_quiet_iidfile_and_dockers_classic_cli(d: Daemon, context: Path, tmp_path: Path) -> None:
    iid = tmp_path / "iid"
    ours = d.cli("build", "-q", "--network", "none", "--iidfile", str(iid), str(context), timeout=120)
    assert ours.returncode == 0, ours.stderr
    image_id = ours.stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id) and iid.read_text() == image_id
    env_docker = d.docker("build", "--network", "none", "-q", str(context), timeout=120)
    assert env_docker.returncode == 0, env_docker.stderr
    assert env_docker.stdout.strip() == image_id  # fully cached: the same image


def test_a_failing_run_exits_with_its_code(d: Daemon, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo before; exit 3\n")
    out = d.cli("build", "--network", "none", str(tmp_path), timeout=120)
    assert out.returncode == 3
    assert "Step 2/2 : RUN echo before; exit 3\n" in out.stdout and "\nbefore\n" in out.stdout
    assert out.stderr == "The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3\n"


def test_progress_plain_shows_buildkits_vertices(d: Daemon, context: Path, tmp_path: Path) -> None:
    (context / "Dockerfile").write_text("FROM busybox AS base\nRUN echo plain-$RANDOM-out\nFROM base\nCOPY big /big\n")
    iid = tmp_path / "iid"
    first = d.cli("build", "--progress=plain", "--no-cache", "--network", "none", "-t", "plain:1",
                  "--iidfile", str(iid), str(context), timeout=120)
    assert first.returncode == 0, first.stderr
    assert first.stdout == ""  # as BuildKit: the build goes to stderr
    err = first.stderr
    assert "#1 [base 1/4] FROM busybox AS base\n" in err
    assert re.search(r"^#2 \[base 2/4\] RUN echo plain-\$RANDOM-out\n#2 \d+\.\d{3} plain-\d+-out\n#2 DONE \d+\.\ds$",
                     err, re.M), err
    assert re.search(r"^#4 \[4/4\] COPY big /big\n#4 DONE", err, re.M), err
    image_id = d.client().images.get("plain:1").id
    assert iid.read_text() == image_id
    assert f"#5 writing image {image_id} done\n#5 naming to docker.io/library/plain:1 done\n" in err
    again = d.cli("build", "--progress=plain", "--network", "none", str(context), timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count(" CACHED\n") == 2 and "#2 CACHED\n" in again.stderr and "#4 CACHED\n" in again.stderr
    (context / "Dockerfile").write_text("FROM busybox\nRUN echo failing-out; exit 4\n")
    failed = d.cli("build", "--progress=plain", "--network", "none", str(context), timeout=120)
    assert failed.returncode == 4
    assert re.search(r"^#2 \d+\.\d{3} failing-out\n#2 ERROR: The command '/bin/sh -c echo failing-out; exit 4' "
                     r"returned a non-zero code: 4$", failed.stderr, re.M), failed.stderr


def test_builder_prune_clears_what_builds_cached(d: Daemon, context: Path) -> None:
    assert d.cli("build", "--network", "none", "-t", "prune:1", str(context), timeout=120).returncode == 0
    out = d.cli("builder", "prune", "-a", "-f")
    assert out.returncode == 0 and out.stdout.startswith("Deleted build cache objects:\n")
    assert re.search(r"\n\nTotal reclaimed space: \S+\n$", out.stdout)
    assert d.client().df()["BuildCache"] == []
    rebuilt = d.cli("build", "--network", "none", "-t", "prune:1", str(context), timeout=120)
    assert rebuilt.returncode == 0 and " ---> Using cache" not in rebuilt.stdout
    # rmi of the built image takes its intermediate images, and so the cache they were
    assert d.cli("rmi", "prune:1").returncode == 0
    assert d.client().df()["BuildCache"] == [] or all(c["Shared"] for c in d.client().df()["BuildCache"])
