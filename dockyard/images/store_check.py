"""``dockyard system check [--repair]``: what in the daemon root disagrees with the metadata database.

Terms:
- *problem*: one finding, with a ``kind``, the ``subject`` it is about (a digest, a chain ID, a
  container ID, a volume name, a path) and a ``detail`` for people. Kinds:

  - what the collector would remove (:mod:`dockyard.images.garbage`): ``orphan-blob`` (a blob no
    record names), ``orphan-blob-row``, ``orphan-layer`` (a layer row no image, container or lease
    reaches), ``orphan-layer-dir`` (a layer directory without a row), ``orphan-container-dir``,
    ``orphan-snapshot`` (a container's writable layer without a container record),
    ``orphan-volume-dir``, ``ingest-leftover``, ``temp-leftover``, ``stale-lease`` (expired, or
    left by a daemon that died);
  - rows whose files are gone: ``missing-blob`` (a ``blobs`` row without its file),
    ``missing-layer-dir`` (a layer row whose ``diff/`` directory is missing),
    ``broken-image`` (an image whose config, manifest or layer blob, or one of whose layers, is
    missing), ``missing-container-dir``, ``missing-volume-dir``;
  - ``database``: what SQLite's ``quick_check`` and ``foreign_key_check`` report (a reference to a
    missing image is one).

- *repair*: delete the rows whose files are gone (a broken image with its references; a missing
  layer with the layers above it), then run the collector. One repair pass leaves nothing to
  report: the rows it deletes only make more garbage, which the collection that ends the pass
  removes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dockyard.images import garbage
from dockyard.images.service import ImageService

log = logging.getLogger("dockyard.check")

_GARBAGE_KINDS = {
    "blobs": ("orphan-blob", "a blob no record names"),
    "blob_rows": ("orphan-blob-row", "a blobs row no record names"),
    "layers": ("orphan-layer", "a layer no image, container or lease reaches"),
    "layer_dirs": ("orphan-layer-dir", "a layer directory without a row"),
    "container_dirs": ("orphan-container-dir", "a container directory without a record"),
    "snapshot_dirs": ("orphan-snapshot", "a container's writable layer without a container record"),
    "snapshot_rows": ("orphan-snapshot", "a container snapshot row without a container record"),
    "volume_dirs": ("orphan-volume-dir", "a volume directory without a record"),
    "ingests": ("ingest-leftover", "an ingest file no write is using"),
    "temps": ("temp-leftover", "a temp file no operation is using"),
    "leases": ("stale-lease", "a lease that expired or whose daemon is gone"),
}


@dataclass(frozen=True)
class Problem:
    """One finding (see the module docstring)."""

    kind: str
    subject: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"Kind": self.kind, "Subject": self.subject, "Detail": self.detail}


def _missing_rows(images: ImageService, root: Path) -> tuple[list[Problem], dict[str, list[str]]]:
    """Rows whose files are gone; also what repair deletes, by table."""
    db, content, snapshots = images.metadata, images.content, images.snapshots
    problems: list[Problem] = []
    fix: dict[str, list[str]] = {"blobs": [], "layers": [], "images": [], "containers": [], "volumes": []}
    for row in db.query("SELECT digest FROM blobs"):
        if not content.exists(str(row[0])):
            problems.append(Problem("missing-blob", str(row[0]), "a blobs row whose file is missing"))
            fix["blobs"].append(str(row[0]))
    gone_layers: set[str] = set()
    layers = {str(r[0]): r[1] for r in db.query("SELECT chain_id, parent FROM layers")}
    for chain in layers:
        if not snapshots.diff_dir(chain).is_dir():
            problems.append(Problem("missing-layer-dir", chain, f"layer directory {snapshots.diff_dir(chain)} is missing"))
            gone_layers.add(chain)
    changed = True
    while changed:  # a layer above a missing one is unusable too
        changed = False
        for chain, parent in layers.items():
            if chain not in gone_layers and parent is not None and (parent in gone_layers or parent not in layers):
                gone_layers.add(chain)
                changed = True
    fix["layers"] = sorted(gone_layers)
    for image_id in images.store.ids():
        record = images.store.get(image_id)
        why = [f"blob {d} is missing" for d in (record.id, record.manifest, *(x.digest for x in record.layers))
               if not content.exists(d)]
        why += [f"layer {x.chain_id} is missing" for x in record.layers
                if x.chain_id not in layers or x.chain_id in gone_layers]
        if why:
            problems.append(Problem("broken-image", image_id, "; ".join(dict.fromkeys(why))))
            fix["images"].append(image_id)
    for row in db.query("SELECT id FROM containers"):
        if not (root / "containers" / str(row[0])).is_dir():
            problems.append(Problem("missing-container-dir", str(row[0]), "a container record whose directory is missing"))
            fix["containers"].append(str(row[0]))
    for row in db.query("SELECT name FROM volumes"):
        if not (root / "volumes" / str(row[0]) / "_data").is_dir():
            problems.append(Problem("missing-volume-dir", str(row[0]), "a volume record whose directory is missing"))
            fix["volumes"].append(str(row[0]))
    return problems, fix


def check(images: ImageService, root: Path) -> list[Problem]:
    """Every problem in the daemon root ``root`` (see the module docstring); changes nothing."""
    problems = [Problem("database", str(images.metadata.path), text) for text in images.metadata.integrity_problems()]
    missing, _ = _missing_rows(images, root)
    problems += missing
    found = garbage.collect(images, root, dry_run=True)
    for attr, (kind, detail) in _GARBAGE_KINDS.items():
        problems += [Problem(kind, subject, detail) for subject in getattr(found, attr)]
    return problems


def repair(images: ImageService, root: Path,
           forget_volume: Callable[[str], None] = lambda name: None) -> tuple[list[Problem], garbage.Collected]:
    """Fix what :func:`check` finds; returns the problems found before and what was collected.

    ``forget_volume(name)`` tells the volume service a record it holds was deleted.
    """
    problems = check(images, root)
    db = images.metadata
    _, fix = _missing_rows(images, root)
    with images.store.lock, db.transaction(durable=True) as conn:
        conn.execute("DELETE FROM refs WHERE image_id NOT IN (SELECT id FROM images)")
        for image_id in fix["images"]:
            conn.execute("DELETE FROM refs WHERE image_id = ?", (image_id,))
            conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
        for digest in fix["blobs"]:
            conn.execute("DELETE FROM blobs WHERE digest = ?", (digest,))
        for chain in fix["layers"]:
            conn.execute("DELETE FROM layers WHERE chain_id = ?", (chain,))
        for cid in fix["containers"]:
            conn.execute("DELETE FROM containers WHERE id = ?", (cid,))
            conn.execute("DELETE FROM container_snapshots WHERE container_id = ?", (cid,))
        for name in fix["volumes"]:
            conn.execute("DELETE FROM volumes WHERE name = ?", (name,))
    for name in fix["volumes"]:
        forget_volume(name)
    collected = garbage.collect(images, root)
    if problems:
        log.info("system check --repair: fixed %d problems", len(problems))
    return problems, collected
