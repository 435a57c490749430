"""The metadata database end to end: legacy JSON imported, garbage collected down to the empty
store, ``system check`` finding and repairing, and ``kill -9`` in the middle of image operations."""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_harness import Daemon
from tests.integration.store_helpers import (
    assert_df_matches_disk,
    check_store,
    compact_db,
    docker_archive,
    query,
    random_layer,
    root_usage,
    rootfs_with_ballast,
)

pytestmark = pytest.mark.root


@pytest.fixture()
def empty_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon on a new root with nothing in it."""
    d = Daemon(tmp_path_factory.mktemp("dockyard-empty"))
    try:
        yield d
    finally:
        d.close()


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_prune_returns_the_root_to_the_size_of_an_empty_store(empty_daemon: Daemon, busybox_tar: Path,
                                                                tmp_path: Path) -> None:
    """After images, containers (with logs) and volumes come and go, ``system prune -a --volumes -f``
    leaves the root as it was when empty.

    The bound, precisely: the same set of paths (``daemon.log`` aside, which only grows); the same
    bytes of blocks for every non-directory — the database compared after a WAL checkpoint and a
    ``VACUUM`` with the daemon stopped, so only live rows count, and every table is empty again;
    directories themselves may keep blocks they grew (ext4 never shrinks a directory), so their
    blocks may only have grown by what the entries made meanwhile needed, which the test bounds by
    64 KiB per directory.
    """
    d = empty_daemon
    data = d.root / "data"
    d.stop()
    compact_db(data)
    empty_files, empty_dirs, empty_paths = root_usage(data)
    d.start()
    # images: two imports, and a load of an archive with MB-sized layers
    _ok(d.cli("import", str(busybox_tar), "bb:1"))
    _ok(d.cli("import", "--change", 'CMD ["sh"]', str(busybox_tar), "bb:2"))
    archive = tmp_path / "big.tar"
    archive.write_bytes(docker_archive(busybox_tar.read_bytes(), [random_layer("big1", 1 << 20, 1),
                                                                  random_layer("big2", 2 << 20, 2)], "big:1"))
    _ok(d.cli("load", "-i", str(archive), timeout=120))
    # containers with logs, a volume of each kind, a commit
    _ok(d.cli("run", "--name", "logger", "-v", "/anon", "big:1", "sh", "-c", "echo hello; echo err >&2"))
    _ok(d.cli("run", "--rm", "bb:1", "sh", "-c", "echo bye"))
    _ok(d.cli("commit", "logger", "committed:1"))
    _ok(d.cli("volume", "create", "named"))
    _ok(d.cli("volume", "create"))  # anonymous
    _ok(d.cli("run", "--name", "stopped", "-v", "named:/n", "committed:1", "sh", "-c", "echo x > /n/f"))
    _ok(d.cli("rm", "logger"))
    _ok(d.cli("rm", "stopped"))
    _ok(d.cli("volume", "rm", "named"))  # prune --volumes removes anonymous volumes only (Docker ≥ 23)
    _ok(d.cli("run", "--name", "left", "bb:2", "true"))  # left for system prune's container prune
    report = _ok(d.cli("system", "prune", "-a", "--volumes", "-f", timeout=120))
    assert "Deleted Images" in report and "Deleted Containers" in report
    assert _ok(d.cli("ps", "-aq")) == "" and _ok(d.cli("images", "-q")) == ""
    assert _ok(d.cli("volume", "ls", "-q")) == ""
    d.stop()
    compact_db(data)
    files, dirs, paths = root_usage(data)
    assert paths == empty_paths, (sorted(paths - empty_paths), sorted(empty_paths - paths))
    assert files == empty_files
    assert empty_dirs <= dirs <= empty_dirs + 64 * 1024 * len(paths)
    d.start()


def _downgrade_to_legacy_json(data: Path) -> None:
    """Write the records of ``data``'s database as the JSON files of the versions before it, then
    drop the database: what a root made by an older dockyard looks like."""
    conn = sqlite3.connect(data / "metadata.db")
    images = data / "images" / "images"
    images.mkdir(parents=True, exist_ok=True)
    refs = {name: image_id for name, image_id in conn.execute("SELECT name, image_id FROM refs")}
    (data / "images" / "repositories.json").write_text(json.dumps({"references": refs}))
    for image_id, manifest, last_tag, parent in conn.execute("SELECT id, manifest, last_tag_time, parent FROM images"):
        layers = [{"digest": r[0], "mediaType": r[1], "size": r[2], "diff_id": r[3], "chain_id": r[4]}
                  for r in conn.execute("SELECT digest, media_type, size, diff_id, chain_id FROM image_layers "
                                        "WHERE image_id = ? ORDER BY position", (image_id,))]
        record = {"id": image_id, "manifest": manifest, "layers": layers, "last_tag_time": last_tag}
        if parent:
            record["parent"] = parent
        (images / f"{image_id.partition(':')[2]}.json").write_text(json.dumps(record))
    for chain, diff, parent, size in conn.execute("SELECT chain_id, diff_id, parent, size FROM layers"):
        (data / "snapshots" / "layers" / chain.partition(":")[2] / "layer.json").write_text(
            json.dumps({"chain_id": chain, "diff_id": diff, "parent": parent, "size": size}))
    for cid, lowers in conn.execute("SELECT container_id, lowers FROM container_snapshots"):
        (data / "snapshots" / "containers" / cid / "lower").write_text(lowers)
    for cid, record in conn.execute("SELECT id, record FROM containers"):
        (data / "containers" / cid / "config.json").write_text(record)
    for name, record in conn.execute("SELECT name, record FROM volumes"):
        (data / "volumes" / name / "volume.json").write_text(record)
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        (data / f"metadata.db{suffix}").unlink(missing_ok=True)


def test_a_root_from_before_the_database_keeps_its_images_and_containers(fresh_daemon: Daemon) -> None:
    d = fresh_daemon
    data = d.root / "data"
    _ok(d.cli("tag", "busybox", "legacy:1"))
    _ok(d.cli("volume", "create", "keep"))
    _ok(d.cli("run", "--name", "old", "-v", "keep:/k", "busybox", "sh", "-c", "echo from-before; echo v > /k/f"))
    listing = ("images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}} {{.Size}}")
    before = {"images": _ok(d.cli(*listing)), "ps": _ok(d.cli("ps", "-a", "--no-trunc", "--format",
                                                                            "{{.ID}} {{.Names}} {{.Status}}"))}
    d.stop()
    _downgrade_to_legacy_json(data)
    d.start()
    assert _ok(d.cli(*listing)) == before["images"]
    ps = _ok(d.cli("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Status}}"))
    assert ps.split()[:2] == before["ps"].split()[:2]
    assert _ok(d.cli("logs", "old")) == "from-before\n"
    _ok(d.cli("start", "-a", "old"))
    assert _ok(d.cli("run", "--rm", "-v", "keep:/k", "legacy:1", "cat", "/k/f")) == "v\n"
    # the JSON files were imported once and are gone; the database holds the records
    assert not (data / "images" / "repositories.json").exists()
    assert not list(data.glob("containers/*/config.json")) and not list(data.glob("volumes/*/volume.json"))
    assert not list(data.glob("snapshots/layers/*/layer.json"))
    assert query(data, "SELECT name FROM containers") == [("old",)]
    check_store(d, repair=False)
    _ok(d.cli("rm", "old"))


def test_system_check_reports_and_repairs(fresh_daemon: Daemon, busybox_tar: Path) -> None:
    d = fresh_daemon
    data = d.root / "data"
    check_store(d, repair=False)  # a fresh store is clean
    _ok(d.cli("import", str(busybox_tar), "doomed:1"))
    doomed = _ok(d.cli("images", "-q", "--no-trunc", "doomed:1")).strip()
    _ok(d.cli("volume", "create", "vanishing"))
    # plant every kind of orphan, and take files from under some rows
    (data / "content" / "blobs" / "sha256" / ("ab" * 32)).write_bytes(b"nobody's")
    (data / "content" / "ingest" / "left").write_bytes(b"half")
    (data / "snapshots" / "layers" / ("cd" * 32) / "diff").mkdir(parents=True)
    (data / "containers" / ("ef" * 32)).mkdir()
    (data / "volumes" / "stray" / "_data").mkdir(parents=True)
    (data / "tmp" / "load-123").mkdir()
    config_blob = data / "content" / "blobs" / "sha256" / doomed.partition(":")[2]
    os.chmod(config_blob, 0o644)
    config_blob.unlink()
    shutil.rmtree(data / "volumes" / "vanishing")
    out = d.cli("system", "check")
    assert out.returncode == 1, out.stdout + out.stderr
    kinds = {line.split("\t")[0] for line in out.stdout.splitlines() if "\t" in line}
    assert {"orphan-blob", "ingest-leftover", "orphan-layer-dir", "orphan-container-dir", "orphan-volume-dir",
            "temp-leftover", "broken-image", "missing-volume-dir"} <= kinds, out.stdout
    # the check only reports: nothing changed
    assert (data / "containers" / ("ef" * 32)).is_dir() and query(data, "SELECT id FROM images WHERE id = ?", (doomed,))
    first = check_store(d)  # one repair pass, then nothing left
    assert "Repaired" in first
    assert not (data / "containers" / ("ef" * 32)).exists() and not (data / "volumes" / "stray").exists()
    assert "doomed:1" not in _ok(d.cli("images")) and "vanishing" not in _ok(d.cli("volume", "ls"))
    _ok(d.cli("run", "--rm", "busybox", "true"))
    # at start the daemon runs the check in report-only mode and logs it
    (data / "containers" / ("12" * 32)).mkdir()
    d.stop()
    d.start()
    log = (data / "daemon.log").read_text()
    assert "system check at start" in log


# -- kill -9 in the middle of image operations ------------------------------------------------------

# Where to kill, as fractions of how long the operation takes uninterrupted (measured first, CLI
# start-up included), so that the kills land before, early in, in the middle of, late in and after it.
FRACTIONS = [0.05, 0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9, 1.1]
SEEDS = [1, 2, 3]


def _images(d: Daemon) -> set[str]:
    return set(_ok(d.cli("images", "-q", "--no-trunc")).split())


def _crash_during(d: Daemon, argv: list[str], delay: float) -> None:
    """Start our CLI with ``argv``, kill -9 the daemon ``delay`` seconds later, restart it."""
    client = subprocess.Popen([sys.executable, "-m", "dockyard.cli.main", *argv], env=d.env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(delay)
        d.kill9()
    finally:
        client.kill()
        client.wait(10)
    d.start()


def _after_crash(d: Daemon, complete_before: set[str]) -> str:
    """The store opened; one repair pass leaves nothing; df agrees with the disk; complete images run.
    Returns what the start-up check logged and the repair pass found (for ``-s`` runs)."""
    after = _images(d)
    log = (d.root / "data" / "daemon.log").read_text().rsplit("dockyard daemon ready", 2)[-2]
    at_start = [line.split(": ", 2)[-1] for line in log.splitlines() if "system check:" in line]
    repaired = check_store(d)
    assert_df_matches_disk(d)
    for image_id in sorted(complete_before & after):
        _ok(d.cli("run", "--rm", image_id, "true", timeout=60))
    kinds = sorted({line.split("\t")[0] for line in repaired.splitlines() if "\t" in line})
    return f"start-up check {len(at_start)} problems, repair found {kinds or 'nothing'}"


def _timed(d: Daemon, argv: list[str]) -> float:
    start = time.monotonic()
    _ok(d.cli(*argv, timeout=120))
    return time.monotonic() - start


@pytest.mark.parametrize("operation", ["load", "import", "commit", "rmi"])
def test_kill_9_during_an_image_operation(fresh_daemon: Daemon, busybox_tar: Path, tmp_path: Path,
                                         operation: str) -> None:
    d = fresh_daemon
    big_layers = [random_layer(f"big{i}", (3 + 3 * i) << 20, i) for i in range(3)]  # 3, 6 and 9 MB
    archive = tmp_path / "big.tar"
    archive.write_bytes(docker_archive(busybox_tar.read_bytes(), big_layers, "big:1"))
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(rootfs_with_ballast(busybox_tar, 16 << 20))
    if operation == "commit":
        _ok(d.cli("run", "--name", "src", "busybox", "sh", "-c",
                  "dd if=/dev/urandom of=/big bs=1M count=16 2>/dev/null"))

    def argv_for(tag: str) -> list[str]:
        if operation == "rmi":
            _ok(d.cli("load", "-i", str(archive), timeout=120))
            return ["rmi", "big:1"]
        if operation == "load":
            return ["load", "-i", str(archive)]
        if operation == "import":
            return ["import", str(rootfs), f"imported:{tag}"]
        return ["commit", "src", f"committed:{tag}"]

    duration = _timed(d, argv_for("timed"))
    if operation == "load":
        _ok(d.cli("rmi", "big:1"))
    for seed in SEEDS:
        for n, fraction in enumerate(random.Random(seed).sample(FRACTIONS, 3)):
            argv = argv_for(f"{seed}-{n}")
            before = _images(d)
            _crash_during(d, argv, fraction * duration)
            outcome = _after_crash(d, before)
            print(f"{operation} killed at {fraction:.2f} of {duration:.2f}s: {outcome}")
            if operation == "load" and "big:1" in _ok(d.cli("images", "--format", "{{.Repository}}:{{.Tag}}")):
                _ok(d.cli("rmi", "big:1"))  # so that the next load starts from nothing again
    assert "busybox:latest" in _ok(d.cli("images", "--format", "{{.Repository}}:{{.Tag}}"))


def test_collections_during_loads_and_imports_take_nothing_in_flight(fresh_daemon: Daemon, busybox_tar: Path,
                                                                     tmp_path: Path) -> None:
    """Leases at work: the collector runs over and over while archives load and tarballs import;
    every operation still ends with a whole image, and the store stays clean."""
    d = fresh_daemon
    archive = tmp_path / "big.tar"
    archive.write_bytes(docker_archive(busybox_tar.read_bytes(),
                                       [random_layer(f"big{i}", (2 + i) << 20, 10 + i) for i in range(3)], "big:1"))
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(rootfs_with_ballast(busybox_tar, 8 << 20))
    api = d.client().api
    runs: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(3):
            runs.append(subprocess.Popen([sys.executable, "-m", "dockyard.cli.main", "load", "-i", str(archive)],
                                         env=d.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            runs.append(subprocess.Popen([sys.executable, "-m", "dockyard.cli.main", "import", str(rootfs),
                                          f"imported:{n}"], env=d.env(), stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE))
        collections = 0
        while any(p.poll() is None for p in runs) or collections < 5:
            api._result(api._post(api._url("/dockyard/system/gc")), json=True)
            collections += 1
        for p in runs:
            assert p.wait(60) == 0, p.stderr.read() if p.stderr else ""
    finally:
        for p in runs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
            if p.stderr is not None:
                p.stderr.close()
        api.close()
    check_store(d, repair=False)
    for image in ("big:1", "imported:0", "imported:1", "imported:2"):
        assert _ok(d.cli("run", "--rm", image, "sh", "-c", "ls /big2 /ballast 2>/dev/null | wc -l")).strip() == "1"
