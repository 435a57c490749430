"""Helpers for the metadata-store tests: ``du`` of a daemon root, image archives with MB-sized
layers, the database read from outside, and a store's soundness checked as a user would."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import sqlite3
import tarfile
from pathlib import Path

from dockyard.snapshots.extract import unpacked_size
from tests.integration.daemon_harness import Daemon

EXCLUDED = {"daemon.log"}  # the daemon's own log only grows


def root_usage(root: Path) -> tuple[int, int, set[str]]:
    """``du`` of a daemon root: (bytes of the blocks of every non-directory, each inode once;
    bytes of the blocks of the directories themselves; the relative paths of every entry),
    leaving out :data:`EXCLUDED`."""
    files = dirs = 0
    seen: set[tuple[int, int]] = set()
    paths: set[str] = set()
    for directory, subdirs, names in os.walk(root):
        for name in subdirs + names:
            path = os.path.join(directory, name)
            rel = os.path.relpath(path, root)
            if rel in EXCLUDED:
                continue
            st = os.lstat(path)
            paths.add(rel)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            if os.path.isdir(path) and not os.path.islink(path):
                dirs += st.st_blocks * 512
            else:
                files += st.st_blocks * 512
    return files, dirs, paths


def compact_db(root: Path) -> None:
    """Fold the WAL into the database and VACUUM it (the daemon must be stopped)."""
    conn = sqlite3.connect(root / "metadata.db", isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def query(root: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Read the daemon's database from outside (WAL lets a reader in while the daemon runs)."""
    conn = sqlite3.connect(f"file:{root / 'metadata.db'}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def docker_archive(base_layer: bytes, extra_layers: list[bytes], tag: str) -> bytes:
    """A ``docker save`` archive of one image: ``base_layer`` then ``extra_layers``, ``CMD ["sh"]``."""
    layers = [base_layer, *extra_layers]
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(layers))],
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    members = {config_name: config}
    names = []
    for i, layer in enumerate(layers):
        names.append(f"l{i}/layer.tar")
        members[names[-1]] = layer
    members["manifest.json"] = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": names}]).encode()
    return layer_tar(members)


def random_layer(name: str, size: int, seed: int) -> bytes:
    """A layer holding one file of ``size`` reproducible random bytes."""
    return layer_tar({name: random.Random(seed).randbytes(size)})


def rootfs_with_ballast(busybox_tar: Path, size: int) -> bytes:
    """The busybox rootfs plus one file of ``size`` random bytes (``/ballast``)."""
    buf = io.BytesIO()
    with tarfile.open(busybox_tar) as src, tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as out:
        for member in src.getmembers():
            out.addfile(member, src.extractfile(member) if member.isreg() else None)
        info = tarfile.TarInfo("ballast")
        info.size, info.mode = size, 0o644
        out.addfile(info, io.BytesIO(random.Random(size).randbytes(size)))
    return buf.getvalue()


def check_store(d: Daemon, repair: bool = True) -> str:
    """Repair once (if asked), then assert ``system check`` finds nothing; returns the first report."""
    first = ""
    if repair:
        out = d.cli("system", "check", "--repair", timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        first = out.stdout
    again = d.cli("system", "check", timeout=120)
    assert again.returncode == 0 and "No problems found" in again.stdout, (first, again.stdout, again.stderr)
    return first


def assert_df_matches_disk(d: Daemon) -> None:
    """``system df``'s LayersSize is the size on disk of the layers the images use."""
    data = d.root / "data"
    chains = {str(r[0]) for r in query(data, "SELECT DISTINCT chain_id FROM image_layers")}
    on_disk = sum(unpacked_size(data / "snapshots" / "layers" / c.partition(":")[2] / "diff") for c in chains)
    df = d.client().api.df()
    assert df["LayersSize"] == on_disk
    for image in df["Images"]:
        layers = [str(r[0]) for r in query(data, "SELECT chain_id FROM image_layers WHERE image_id = ?", (image["Id"],))]
        assert image["Size"] == sum(unpacked_size(data / "snapshots" / "layers" / c.partition(":")[2] / "diff")
                                    for c in layers)
