"""Importing the JSON records of earlier dockyard versions into the metadata database, once.

Before the database, each service kept JSON files under the daemon root::

    images/repositories.json                 {"references": {name: image ID}}
    images/images/<hex>.json                 an image record (manifest, layers, last tag time, parent)
    snapshots/layers/<hex>/layer.json        an unpacked layer (chain ID, diff ID, parent, size)
    snapshots/containers/<id>/lower          a container's lowerdirs, colon-separated
    containers/<id>/config.json              a container record
    volumes/<name>/volume.json               a volume record

The first open of a root's database reads them all in one transaction (records that refer to
something missing — a ref to an absent image, a layer whose parent is gone — are skipped: the
collector treats what they named as garbage), marks the import done in ``meta``, and only then
deletes the files, so a crash in between re-imports nothing and loses nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from dockyard.metadata.db import MetadataDB

log = logging.getLogger("dockyard.metadata")

DONE_KEY = "legacy_json_imported"


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        log.warning("legacy import: skipping %s: %s", path, e)
        return None


def _blob_size(root: Path, digest: str) -> int:
    try:
        return (root / "content" / "blobs" / "sha256" / digest.partition(":")[2]).stat().st_size
    except OSError:
        return 0


def import_legacy_json(db: MetadataDB, root: Path) -> int:
    """Import the legacy records under ``root`` (see the module docstring); returns how many."""
    if db.get_meta(DONE_KEY) is not None:
        return 0
    done: list[Path] = []
    count = 0
    now = time.time()
    with db.transaction(durable=True) as conn:
        # layers first (parents before children: retry until no progress)
        pending: dict[str, dict[str, Any]] = {}
        for meta_file in sorted((root / "snapshots" / "layers").glob("*/layer.json")):
            data = _read(meta_file)
            if isinstance(data, dict) and "chain_id" in data:
                pending[str(data["chain_id"])] = data
                done.append(meta_file)
        known: set[str] = set()
        progress = True
        while pending and progress:
            progress = False
            for chain_id, data in list(pending.items()):
                parent = data.get("parent")
                if parent is None or parent in known:
                    conn.execute("INSERT OR IGNORE INTO layers VALUES (?, ?, ?, ?, NULL, ?)",
                                 (chain_id, data["diff_id"], parent, int(data.get("size", 0)), now))
                    known.add(chain_id)
                    del pending[chain_id]
                    progress = True
                    count += 1
        images: set[str] = set()
        for record_file in sorted((root / "images" / "images").glob("*.json")):
            data = _read(record_file)
            done.append(record_file)
            if not isinstance(data, dict) or "id" not in data:
                continue
            conn.execute("INSERT OR IGNORE INTO images VALUES (?, ?, ?, ?, ?)",
                         (data["id"], data["manifest"], data.get("last_tag_time"), data.get("parent"), now))
            for digest in (data["id"], data["manifest"]):
                conn.execute("INSERT OR IGNORE INTO blobs VALUES (?, ?)", (digest, _blob_size(root, digest)))
            for position, layer in enumerate(data.get("layers") or []):
                conn.execute("INSERT OR IGNORE INTO image_layers VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (data["id"], position, layer["digest"], layer["mediaType"], int(layer["size"]),
                              layer["diff_id"], layer["chain_id"]))
                conn.execute("INSERT OR IGNORE INTO blobs VALUES (?, ?)", (layer["digest"], int(layer["size"])))
                conn.execute("UPDATE layers SET blob = ? WHERE chain_id = ? AND blob IS NULL",
                             (layer["digest"], layer["chain_id"]))
            images.add(str(data["id"]))
            count += 1
        repositories = root / "images" / "repositories.json"
        if repositories.is_file():
            data = _read(repositories) or {}
            done.append(repositories)
            for name, image_id in (data.get("references") or {}).items():
                if image_id in images:
                    conn.execute("INSERT OR REPLACE INTO refs VALUES (?, ?)", (name, image_id))
                    count += 1
        for lower_file in sorted((root / "snapshots" / "containers").glob("*/lower")):
            lowers = lower_file.read_text()
            top = lowers.split(":")[0] if lowers else ""
            parent = "sha256:" + Path(top).parent.name if top else None
            conn.execute("INSERT OR REPLACE INTO container_snapshots VALUES (?, ?, ?)",
                         (lower_file.parent.name, parent, lowers))
            done.append(lower_file)
            count += 1
        for config_file in sorted((root / "containers").glob("*/config.json")):
            data = _read(config_file)
            done.append(config_file)
            if not isinstance(data, dict) or "id" not in data:
                continue
            try:
                conn.execute("INSERT INTO containers VALUES (?, ?, ?)",
                             (data["id"], data["name"], json.dumps(data)))
                count += 1
            except sqlite3.IntegrityError as e:
                log.error("legacy import: container %s: %s", data.get("id"), e)
        for volume_file in sorted((root / "volumes").glob("*/volume.json")):
            data = _read(volume_file)
            done.append(volume_file)
            if isinstance(data, dict) and "name" in data:
                conn.execute("INSERT OR REPLACE INTO volumes VALUES (?, ?)", (data["name"], json.dumps(data)))
                count += 1
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (DONE_KEY, str(now)))
    for path in done:
        with contextlib.suppress(OSError):
            os.unlink(path)
    for empty in (root / "images" / "images", root / "images"):  # nothing else lives there any more
        with contextlib.suppress(OSError):
            empty.rmdir()
    if count:
        log.info("imported %d legacy JSON records into %s", count, db.path)
    return count
