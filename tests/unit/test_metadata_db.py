"""The metadata database: schema migrations, transactions (atomic even under kill -9), leases,
the one-time import of legacy JSON records, and the garbage collector over an image service."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from dockyard.images.garbage import collect
from dockyard.images.service import ImageService
from dockyard.images.store_check import check, repair
from dockyard.metadata import MetadataDB, leases
from dockyard.metadata.legacy_import import import_legacy_json
from dockyard.metadata.registry import forget, open_db
from dockyard.metadata.schema import MIGRATIONS


def tiny_tar(content: bytes, name: str = "f") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def test_schema_is_migrated_once_with_wal_and_foreign_keys(tmp_path: Path) -> None:
    db = MetadataDB(tmp_path / "m.db")
    assert db.version == len(MIGRATIONS)
    assert db.scalar("PRAGMA journal_mode") == "wal" and db.scalar("PRAGMA foreign_keys") == 1
    db.close()
    again = MetadataDB(tmp_path / "m.db")
    assert again.scalar("SELECT COUNT(*) FROM schema_migrations") == len(MIGRATIONS)
    with pytest.raises(Exception, match="FOREIGN KEY"):
        again.execute("INSERT INTO refs VALUES ('docker.io/library/x:1', 'sha256:missing')")
    assert again.integrity_problems() == []


def test_a_failed_transaction_leaves_nothing_and_runs_no_hooks(tmp_path: Path) -> None:
    db = MetadataDB(tmp_path / "m.db")
    ran: list[str] = []
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute("INSERT INTO volumes VALUES ('a', '{}')")
        with db.transaction():  # nested: joins the outer one
            conn.execute("INSERT INTO volumes VALUES ('b', '{}')")
        db.after_commit(lambda: ran.append("hook"))
        raise RuntimeError("boom")
    assert db.query("SELECT name FROM volumes") == [] and ran == []
    with db.transaction() as conn:
        conn.execute("INSERT INTO volumes VALUES ('a', '{}')")
        db.after_commit(lambda: ran.append("hook"))
        assert ran == []  # not before the commit
    assert ran == ["hook"] and [r[0] for r in db.query("SELECT name FROM volumes")] == ["a"]


def test_threads_share_the_database(tmp_path: Path) -> None:
    db = MetadataDB(tmp_path / "m.db")

    def writer(n: int) -> None:
        for i in range(50):
            with db.transaction() as conn:
                conn.execute("INSERT INTO volumes VALUES (?, '{}')", (f"v{n}-{i}",))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.scalar("SELECT COUNT(*) FROM volumes") == 200


CHILD = """
import sys, time
from pathlib import Path
from dockyard.metadata import MetadataDB
db = MetadataDB(Path(sys.argv[1]))
with db.transaction(durable=True) as conn:
    for i in range(1000):
        conn.execute("INSERT INTO volumes VALUES (?, '{}')", (f"half-{i}",))
    print("inside", flush=True)
    time.sleep(60)
"""


def test_kill_9_in_the_middle_of_a_transaction_leaves_the_old_state(tmp_path: Path) -> None:
    db = MetadataDB(tmp_path / "m.db")
    db.execute("INSERT INTO volumes VALUES ('before', '{}')")
    db.close()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "m.db")], stdout=subprocess.PIPE,
                             cwd=Path(__file__).resolve().parents[2])
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"inside"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    reopened = MetadataDB(tmp_path / "m.db")
    assert [r[0] for r in reopened.query("SELECT name FROM volumes")] == ["before"]
    assert reopened.integrity_problems() == []


def test_leases_fence_and_go_stale(tmp_path: Path) -> None:
    db = MetadataDB(tmp_path / "m.db")
    assert leases.fence(db) is None and leases.current_lease() is None
    with leases.hold(db, "load") as lease:
        lease.add("layer", "sha256:" + "a" * 64)
        assert leases.current_lease() == lease
        fence = leases.fence(db)
        assert fence is not None and fence <= lease.created_at
        assert leases.protected(db) == {"layer": {"sha256:" + "a" * 64}}
        assert leases.stale(db) == []
    assert db.query("SELECT * FROM leases") == [] and db.query("SELECT * FROM lease_resources") == []
    # a lease a dead daemon left behind: another pid
    db.execute("INSERT INTO leases VALUES ('old', 'load', 1, ?, ?)", (time.time(), time.time() + 3600))
    assert leases.stale(db) == ["old"] and leases.fence(db) is None


def test_legacy_json_is_imported_once_and_removed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    image_id, chain = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    (root / "images" / "images").mkdir(parents=True)
    (root / "images" / "images" / f"{'1' * 64}.json").write_text(json.dumps({
        "id": image_id, "manifest": "sha256:" + "3" * 64, "last_tag_time": None,
        "layers": [{"digest": chain, "mediaType": "t", "size": 5, "diff_id": chain, "chain_id": chain}]}))
    (root / "images" / "repositories.json").write_text(json.dumps({"references": {
        "docker.io/library/a:1": image_id, "docker.io/library/gone:1": "sha256:" + "9" * 64}}))
    (root / "snapshots" / "layers" / ("2" * 64) / "diff").mkdir(parents=True)
    (root / "snapshots" / "layers" / ("2" * 64) / "layer.json").write_text(json.dumps(
        {"chain_id": chain, "diff_id": chain, "parent": None, "size": 7}))
    (root / "containers" / "c1").mkdir(parents=True)
    (root / "containers" / "c1" / "config.json").write_text(json.dumps({"id": "c1", "name": "one"}))
    (root / "volumes" / "v" / "_data").mkdir(parents=True)
    (root / "volumes" / "v" / "volume.json").write_text(json.dumps({"name": "v"}))
    db = MetadataDB(tmp_path / "m.db")
    assert import_legacy_json(db, root) == 5  # a layer, an image, a ref (the dangling one skipped), a container, a volume
    rows = lambda sql: [tuple(r) for r in db.query(sql)]  # noqa: E731
    assert rows("SELECT name, image_id FROM refs") == [("docker.io/library/a:1", image_id)]
    assert rows("SELECT chain_id, size, blob FROM layers") == [(chain, 7, chain)]
    assert rows("SELECT id, name FROM containers") == [("c1", "one")]
    assert not list(root.rglob("*.json")) and (root / "snapshots" / "layers" / ("2" * 64) / "diff").is_dir()
    assert import_legacy_json(db, root) == 0


def test_collector_and_check_over_an_image_service(tmp_path: Path) -> None:
    root = tmp_path / "root"
    svc = ImageService(root)
    try:
        kept = svc.import_tarball(io.BytesIO(tiny_tar(b"kept")), "kept:1")
        gone = svc.import_tarball(io.BytesIO(tiny_tar(b"gone")), "gone:1")
        assert check(svc, root) == []
        svc.remove("gone:1")
        assert not svc.content.exists(gone) and check(svc, root) == []
        # orphans of every kind
        orphan_blob = svc.content.put_bytes(b"orphan")
        (svc.content.root / "ingest" / "partial").write_bytes(b"x")
        (svc.snapshots.root / "layers" / ("4" * 64) / "diff").mkdir(parents=True)
        (root / "containers" / "c9").mkdir(parents=True)
        (root / "volumes" / "stray").mkdir(parents=True)
        kinds = {p.kind for p in check(svc, root)}
        assert kinds == {"orphan-blob", "ingest-leftover", "orphan-layer-dir", "orphan-container-dir",
                         "orphan-volume-dir"}
        # while a lease lives, what was made since it began is kept
        time.sleep(2 * leases.FENCE_SLACK)
        with leases.hold(svc.metadata, "load"):
            fresh = svc.content.put_bytes(b"being loaded")
            time.sleep(0.01)
            collect(svc, root)
            assert svc.content.exists(fresh)
        assert not svc.content.exists(orphan_blob)
        assert collect(svc, root).blobs == [fresh]
        assert check(svc, root) == [] and svc.resolve("kept:1").id == kept
        # a row whose file is gone: the image is broken; one repair pass leaves nothing
        config = svc.content.path(kept)
        os.chmod(config, 0o644)
        config.unlink()
        assert sorted(p.kind for p in check(svc, root)) == ["broken-image", "missing-blob"]
        found, collected = repair(svc, root)
        assert len(found) == 2 and collected.layers
        assert check(svc, root) == [] and svc.store.ids() == [] and svc.snapshots.list_layers() == []
    finally:
        forget(root)


def test_open_db_is_one_per_root(tmp_path: Path) -> None:
    try:
        assert open_db(tmp_path / "r") is open_db(tmp_path / "r" / ".." / "r")
    finally:
        forget(tmp_path / "r")
