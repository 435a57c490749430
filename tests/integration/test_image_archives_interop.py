"""Image archives against the real tools: Docker's save/load, skopeo, umoci.

A private dockerd is started for this module (its own data root, exec root and socket in a temp
dir, no bridge, no iptables) with the helpers of ``test_cli_against_dockerd``; our daemon is the
session's ``daemon`` fixture. Every image a test makes in our daemon is removed afterwards.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_harness import DOCKER, Daemon, as_docker_28
from tests.integration.test_cli_against_dockerd import (
    DOCKERD,
    Dockerd,
    _start_dockerd,
    _unmount_under,
    shutdown,
)

pytestmark = [pytest.mark.root, pytest.mark.docker_cli]


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Iterator[Dockerd]:
    """A private dockerd with busybox:latest imported."""
    if not os.path.exists(DOCKERD) or not os.path.exists(DOCKER):
        pytest.fail(f"need {DOCKERD} and the docker client for these tests")
    root = tmp_path_factory.mktemp("peer-dockerd")
    process, failure = None, ""
    for extra in ([], ["--storage-driver=vfs"]):
        process, failure = _start_dockerd(root, extra)
        if not failure:
            break
    if failure or process is None:
        pytest.fail(f"dockerd could not start; the end of its log:\n{failure}")
    peer = Dockerd(root, process)
    try:
        imported = peer.docker("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        assert imported.returncode == 0, imported.stderr
        yield peer
    finally:
        shutdown(peer)


@pytest.fixture()
def ours(daemon: Daemon) -> Iterator[Daemon]:
    """The session daemon; images tagged ``interop-*`` are removed after the test."""
    try:
        yield daemon
    finally:
        listed = daemon.cli("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        doomed = [ref for ref in listed if ref.startswith("interop")]
        if doomed:
            daemon.cli("rmi", "-f", *doomed)


def run(argv: list[str], env: dict[str, str] | None = None, stdin: bytes | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(argv, input=stdin, capture_output=True, env=env, timeout=timeout)
    return result


def ok(result: subprocess.CompletedProcess[bytes]) -> bytes:
    assert result.returncode == 0, (result.args, result.stdout[-2000:], result.stderr.decode(errors="replace"))
    return result.stdout


def our_cli(daemon: Daemon, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    import sys

    return run([sys.executable, "-m", "dockyard.cli.main", *args], env=daemon.env(), stdin=stdin)


def peer_docker(peer: Dockerd, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return run([DOCKER, "-H", peer.host, *args], stdin=stdin)


def image_state(daemon: Daemon) -> tuple[str, list[str]]:
    layers = sorted(os.listdir(daemon.root / "data" / "snapshots" / "layers"))
    return daemon.cli("images", "-a", "--no-trunc", "-q").stdout, layers


def test_docker_save_into_dockyard_load(peer: Dockerd, ours: Daemon) -> None:
    ok(peer_docker(peer, "tag", "busybox:latest", "interop-from-docker:v1"))
    archive = ok(peer_docker(peer, "save", "interop-from-docker:v1"))
    out = ok(our_cli(ours, "load", stdin=archive)).decode()
    assert out == "Loaded image: interop-from-docker:v1\n"
    assert ok(our_cli(ours, "run", "--rm", "interop-from-docker:v1", "echo", "ran")) == b"ran\n"
    peer_id = ok(peer_docker(peer, "inspect", "-f", "{{.Id}}", "interop-from-docker:v1")).strip()
    our_id = ok(our_cli(ours, "inspect", "-f", "{{.Id}}", "interop-from-docker:v1")).strip()
    assert our_id == peer_id


def test_dockyard_save_into_docker_load(peer: Dockerd, ours: Daemon, tmp_path: Path) -> None:
    ok(our_cli(ours, "tag", "busybox:latest", "interop-ours:latest"))
    ok(our_cli(ours, "tag", "busybox:latest", "interop-second:v2"))
    target = tmp_path / "ours.tar"
    ok(our_cli(ours, "save", "-o", str(target), "interop-ours:latest", "interop-second:v2"))
    loaded = ok(peer_docker(peer, "load", "-i", str(target))).decode()
    assert "Loaded image: interop-ours:latest" in loaded and "Loaded image: interop-second:v2" in loaded
    ok(peer_docker(peer, "run", "--rm", "interop-ours", "true"))
    assert ok(peer_docker(peer, "run", "--rm", "interop-second:v2", "echo", "hi")) == b"hi\n"
    # a terminal is refused; a pipe is fine (same bytes as -o)
    assert ok(our_cli(ours, "save", "interop-ours:latest", "interop-second:v2"))[:512] == target.read_bytes()[:512]


def test_skopeo_both_ways(ours: Daemon, tmp_path: Path) -> None:
    saved = tmp_path / "saved.tar"
    ok(our_cli(ours, "tag", "busybox:latest", "interop-skopeo:latest"))
    ok(our_cli(ours, "save", "-o", str(saved), "interop-skopeo:latest"))
    # skopeo reads our Docker archive ...
    ok(run(["skopeo", "copy", f"docker-archive:{saved}", f"oci:{tmp_path / 'via-skopeo'}:interop-skopeo-oci:v1"]))
    # ... and our OCI layout (extracted) ...
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(saved) as tar:
        tar.extractall(layout, filter="data")
    ok(run(["skopeo", "copy", f"oci:{layout}:latest", f"docker-archive:{tmp_path / 'back.tar'}:interop-back:v1"]))
    # ... and we load what skopeo wrote, both formats
    oci_tar = tmp_path / "via-skopeo.tar"
    with tarfile.open(oci_tar, "w") as tar:
        tar.add(tmp_path / "via-skopeo", arcname=".")
    assert ok(our_cli(ours, "load", "-i", str(oci_tar))).decode() == "Loaded image: interop-skopeo-oci:v1\n"
    assert ok(our_cli(ours, "load", "-i", str(tmp_path / "back.tar"))).decode() == "Loaded image: interop-back:v1\n"
    assert ok(our_cli(ours, "run", "--rm", "interop-skopeo-oci:v1", "echo", "oci")) == b"oci\n"


def test_umoci_unpacks_our_layout(ours: Daemon, tmp_path: Path) -> None:
    ok(our_cli(ours, "tag", "busybox:latest", "interop-umoci:latest"))
    saved = ok(our_cli(ours, "save", "interop-umoci:latest"))
    layout = tmp_path / "ours"
    layout.mkdir()
    (tmp_path / "saved.tar").write_bytes(saved)
    with tarfile.open(tmp_path / "saved.tar") as tar:
        tar.extractall(layout, filter="data")
    bundle = tmp_path / "bundle"
    result = run(["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)])
    try:
        ok(result)
        assert (bundle / "rootfs" / "bin" / "busybox").is_file()
        assert json.loads((bundle / "config.json").read_text())["process"]["args"] == ["sh"]
    finally:
        _unmount_under(bundle)


def test_compressed_loads(peer: Dockerd, ours: Daemon) -> None:
    ok(peer_docker(peer, "tag", "busybox:latest", "interop-packed:gz"))
    archive = ok(peer_docker(peer, "save", "interop-packed:gz"))
    assert ok(our_cli(ours, "load", "-q", stdin=gzip.compress(archive))) == b"Loaded image: interop-packed:gz\n"
    zstd = ok(run(["zstd", "-q", "-c"], stdin=archive))
    result = our_cli(ours, "load", stdin=zstd)
    try:
        import zstandard  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        assert result.returncode == 1 and b"zstandard" in result.stderr
    else:
        assert ok(result) == b"Loaded image: interop-packed:gz\n"


def test_corrupt_layer_is_refused_and_leaves_nothing(peer: Dockerd, ours: Daemon, tmp_path: Path) -> None:
    # a layer our store does not have yet (an existing layer is not read again)
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        unique = tmp_path / "unique"
        unique.write_bytes(os.urandom(4096))
        tar.add(unique, arcname="unique")
    ok(peer_docker(peer, "import", str(rootfs), "interop-corrupt:v1"))
    archive = tmp_path / "good.tar"
    archive.write_bytes(ok(peer_docker(peer, "save", "interop-corrupt:v1")))
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    manifest = json.loads((unpacked / "manifest.json").read_text())
    layer = unpacked / manifest[0]["Layers"][0]
    # append a file to the layer tar: still a valid tar, but no longer the diff ID the config lists
    with tarfile.open(layer, "a") as tar:
        extra = tmp_path / "extra"
        extra.write_text("not in the image\n")
        tar.add(extra, arcname="extra")
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        for path in sorted(unpacked.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(unpacked)), recursive=False)
    before = image_state(ours)
    result = our_cli(ours, "load", "-i", str(bad))
    assert result.returncode == 1
    assert b"mismatch" in result.stderr
    assert image_state(ours) == before
    assert our_cli(ours, "inspect", "interop-corrupt:v1").returncode == 1


def test_history_and_system_df(ours: Daemon) -> None:
    history = ok(our_cli(ours, "history", "--no-trunc", "--format", "{{.ID}}|{{.Comment}}", "busybox")).decode()
    image_id = ok(our_cli(ours, "inspect", "-f", "{{.Id}}", "busybox")).decode().strip()
    assert history == f"{image_id}|Imported from -\n"
    ours_docker = ours.docker("history", "busybox")
    assert ours_docker.returncode == 0 and "Imported from -" in ours_docker.stdout
    df = ok(our_cli(ours, "system", "df")).decode()
    assert df.splitlines()[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert df == ours.docker("system", "df").stdout  # Docker's CLI renders the same answer the same way
    docker_df = ours.docker("system", "df", "-v", client=DOCKER)
    assert docker_df.returncode == 0 and "busybox" in docker_df.stdout, docker_df.stderr


def test_image_prune_and_save_to_a_terminal(ours: Daemon, busybox_tar: Path) -> None:
    import pty

    dangling = ours.cli("import", str(busybox_tar)).stdout.strip()
    assert dangling.startswith("sha256:")
    pruned = ok(our_cli(ours, "image", "prune", "-f")).decode()
    assert f"deleted: {dangling}\n" in pruned and pruned.startswith("Deleted Images:\n")
    assert pruned.endswith("Total reclaimed space: 0B\n")  # its only layer is busybox's, still used
    assert our_cli(ours, "inspect", dangling).returncode == 1
    assert ok(our_cli(ours, "inspect", "-f", "{{.Id}}", "busybox")).startswith(b"sha256:")
    main_fd, tty_fd = pty.openpty()
    try:
        import sys

        result = subprocess.run([sys.executable, "-m", "dockyard.cli.main", "save", "busybox"], stdout=tty_fd,
                                stderr=subprocess.PIPE, env=ours.env(), timeout=60)
    finally:
        os.close(tty_fd)
        os.close(main_fd)
    assert result.returncode == 1
    assert result.stderr == b"cowardly refusing to save to a terminal. Use the -o flag or redirect\n"


def test_docker_py_save_load_history(ours: Daemon) -> None:
    client = ours.client()
    try:
        image = client.images.get("busybox:latest")
        data = b"".join(image.save(named=True))
        (loaded,) = client.images.load(data)
        assert loaded.id == image.id and loaded.tags == ["busybox:latest"]
        history = client.api.history("busybox:latest")
        assert history[0]["Id"] == image.id and history[0]["Tags"] == ["busybox:latest"]
        df = client.df()
        assert df["LayersSize"] > 0 and any(i["Id"] == image.id for i in df["Images"])
        # the daemon is shared with the build tests: whatever they cached is listed in Docker's shape
        assert all({"ID", "Type", "Description", "InUse", "Shared", "Size", "CreatedAt", "UsageCount"} <= set(entry)
                   for entry in df["BuildCache"])
    finally:
        client.close()


def _send_partial_load(daemon: Daemon, data: bytes) -> socket.socket:
    """Start ``POST /images/load`` announcing all of ``data`` but sending only its first half."""
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(daemon.sock))
    head = (f"POST /v1.45/images/load HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode()
    sock.sendall(head + data[: len(data) // 2])
    return sock


def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_interrupted_loads_leave_the_store_as_it_was(fresh_daemon: Daemon, tmp_path: Path) -> None:
    data_root = fresh_daemon.root / "data"
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        big = tmp_path / "big"
        big.write_bytes(os.urandom(8 << 20))
        tar.add(big, arcname="big")
    ok(our_cli(fresh_daemon, "import", str(rootfs), "interop-interrupted:v1"))
    archive = ok(our_cli(fresh_daemon, "save", "interop-interrupted:v1"))
    ok(our_cli(fresh_daemon, "rmi", "interop-interrupted:v1"))
    before = image_state(fresh_daemon)

    def spooling() -> bool:
        return any(p.name.startswith("load-") for p in (data_root / "tmp").iterdir())

    # the client goes away half-way: the daemon drops what it had
    sock = _send_partial_load(fresh_daemon, archive)
    _wait_for(spooling, "the load to start spooling")
    sock.close()
    _wait_for(lambda: not spooling(), "the spool to be removed")
    assert image_state(fresh_daemon) == before
    # the daemon dies half-way: the next start clears the leftovers
    sock = _send_partial_load(fresh_daemon, archive)
    _wait_for(spooling, "the load to start spooling")
    fresh_daemon.kill9()
    sock.close()
    fresh_daemon.start()
    assert not spooling()
    assert image_state(fresh_daemon) == before
    assert not list((data_root / "content" / "ingest").iterdir())
    # and a whole load still works afterwards
    assert ok(our_cli(fresh_daemon, "load", stdin=archive)) == b"Loaded image: interop-interrupted:v1\n"


@pytest.mark.parametrize("args", [
    ["save", "-o", "/nonexistent-dir/x.tar", "busybox"],
    ["save", "-o", "{tmp}/o.tar", "interop-nothere"],
    ["load", "-i", "{tmp}/garbage"],
    ["load", "-i", "/nonexistent-file"],
    ["history", "interop-nothere"],
])
def test_errors_read_like_dockers(ours: Daemon, tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "garbage").write_bytes(b"garbage" * 1000)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    mine, theirs = ours.cli(*argv), ours.docker(*argv)
    assert (mine.returncode, mine.stdout, mine.stderr) == (theirs.returncode, theirs.stdout, as_docker_28(theirs.stderr))
    assert mine.returncode == 1


def test_system_prune_composes_the_prune_endpoints(ours: Daemon, busybox_tar: Path) -> None:
    stopped = ok(our_cli(ours, "create", "--network", "none", "busybox", "true")).decode().split()[0]
    dangling = ours.cli("import", str(busybox_tar)).stdout.strip()
    out = ok(our_cli(ours, "system", "prune", "-f")).decode()
    assert f"Deleted Images:\ndeleted: {dangling}\n" in out
    assert out.endswith("\n") and "Total reclaimed space: " in out.splitlines()[-1]
    if "Deleted Containers:" in out:  # POST /containers/prune is served
        assert f"Deleted Containers:\n{stopped}\n" in out
        assert our_cli(ours, "inspect", stopped).returncode == 1
    else:
        ours.cli("rm", "-f", stopped)
    assert ok(our_cli(ours, "inspect", "-f", "{{.Id}}", "busybox")).startswith(b"sha256:")
