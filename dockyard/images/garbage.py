"""The garbage collector: a mark-and-sweep of the daemon root over the metadata database.

Terms:
- *roots*: what is kept by being recorded — every image row (with its config, manifest and layer
  blobs, and its layer chain), every container record (with its directory and the chain its
  snapshot stands on), every volume record (with its directory), and every live lease (the
  resources it names, and everything made since its fence; see :mod:`dockyard.metadata.leases`).
  References are roots too, but every reference names an image row.
- *mark*: the set of blobs, layers (closed under parents), container and volume directories the
  roots reach.
- *sweep*: delete what is not marked — unreferenced ``blobs`` rows and blob files, ``layers``
  rows and layer directories (rows in one transaction, directories after it commits), layer
  directories without a row, container directories (``containers/<id>``,
  ``snapshots/containers/<id>``) and container snapshot rows without a container record, volume
  directories without a record, ingest files, temp files (``tmp/``, ``snapshots/tmp/``), and
  stale leases. Files made at or after the fence are never swept.

Images themselves are never collected: an untagged image is still an image (``images -a``);
``rmi`` and ``image prune`` remove image rows, and end with a collection.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.content.digests import digest_from_hex
from dockyard.errors import DockyardError, InvalidParameter
from dockyard.images.service import ImageService
from dockyard.metadata import leases
from dockyard.snapshots import remove_tree

log = logging.getLogger("dockyard.gc")


@dataclass
class Collected:
    """What a collection removed (or, with ``dry_run``, would remove), and the bytes freed."""

    blobs: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    layer_dirs: list[str] = field(default_factory=list)
    container_dirs: list[str] = field(default_factory=list)
    snapshot_dirs: list[str] = field(default_factory=list)
    volume_dirs: list[str] = field(default_factory=list)
    ingests: list[str] = field(default_factory=list)
    temps: list[str] = field(default_factory=list)
    leases: list[str] = field(default_factory=list)
    blob_rows: list[str] = field(default_factory=list)
    snapshot_rows: list[str] = field(default_factory=list)
    bytes_freed: int = 0

    def count(self) -> int:
        return sum(len(v) for v in vars(self).values() if isinstance(v, list))

    def to_json(self) -> dict[str, object]:
        return dict(vars(self))


def tree_bytes(path: Path) -> int:
    """Bytes allocated to ``path`` and everything under it (``du``: blocks, hard links once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [str(path)]
    while stack:
        current = stack.pop()
        try:
            st = os.lstat(current)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
        if os.path.isdir(current) and not os.path.islink(current):
            with contextlib.suppress(OSError):
                stack.extend(os.path.join(current, name) for name in os.listdir(current))
    return total


def _old(path: Path, fence: float | None) -> bool:
    """Whether ``path`` was last changed before the fence (always, with no fence)."""
    if fence is None:
        return True
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return max(st.st_mtime, st.st_ctime) < fence


def _chain_of(name: str) -> str | None:
    try:
        return digest_from_hex(name)
    except InvalidParameter:
        return None


def collect(images: ImageService, root: Path, *, dry_run: bool = False, at_start: bool = False) -> Collected:
    """Mark and sweep the daemon root ``root`` (see the module docstring).

    ``at_start`` (nothing is in flight: the daemon has not started serving) also clears every
    temp file under ``tmp/``; otherwise only those the image operations make (``import-*``,
    ``load-*``, ``commit-*``), which hold leases while they live.
    """
    db = images.metadata
    out = Collected()
    snap_root = images.snapshots.root
    # What to remove is decided inside one transaction, which holds the database's lock: no lease,
    # row or file can appear meanwhile, since every writer takes a lease (or adds a row) first.
    with images.store.lock, db.transaction(durable=True) as conn:
        layer_dirs = images.snapshots.layer_dirs()
        blob_files = images.content.list()
        ingests = _entries(images.content.root / "ingest")
        temps = [e for directory, everything in ((snap_root / "tmp", True), (root / "tmp", at_start))
                 for e in _entries(directory) if everything or e.name.startswith(("import-", "load-", "commit-"))]
        snapshot_dirs = [e.name for e in _entries(snap_root / "containers")]
        container_dirs = _entries(root / "containers")
        volume_dirs = [e for e in _entries(root / "volumes") if not e.name.startswith(".")]
        fence = leases.fence(db)
        named = leases.protected(db)
        stale = leases.stale(db)
        # -- mark ---------------------------------------------------------------------------------
        blobs: set[str] = set(named.get("blob", set()))
        for row in db.query("SELECT id, manifest FROM images"):
            blobs.update((str(row[0]), str(row[1])))
        blobs.update(str(r[0]) for r in db.query("SELECT DISTINCT digest FROM image_layers"))
        layer_rows = {str(r[0]): (r[1], float(r[2])) for r in db.query("SELECT chain_id, parent, created_at FROM layers")}
        containers = {str(r[0]) for r in db.query("SELECT id FROM containers")}
        volumes = {str(r[0]) for r in db.query("SELECT name FROM volumes")}
        snapshot_parents = images.snapshots.container_parents()
        wanted: set[str] = {str(r[0]) for r in db.query("SELECT DISTINCT chain_id FROM image_layers")}
        wanted |= named.get("layer", set())
        wanted |= {c for c, (_, created) in layer_rows.items() if fence is not None and created >= fence}
        wanted |= {p for cid, p in snapshot_parents.items() if p and (cid in containers or
                   not _old(snap_root / "containers" / cid, fence))}
        marked: set[str] = set()
        for chain in wanted:
            while chain and chain not in marked:
                marked.add(chain)
                parent = layer_rows.get(chain, (None, 0.0))[0]
                chain = str(parent) if parent else ""
        # -- decide -------------------------------------------------------------------------------
        out.layers = [c for c in layer_rows if c not in marked]
        out.snapshot_rows = [cid for cid in snapshot_parents
                             if cid not in containers and _old(snap_root / "containers" / cid, fence)]
        out.blob_rows = [str(r[0]) for r in db.query("SELECT digest FROM blobs") if str(r[0]) not in blobs]
        out.leases = stale
        doomed: list[tuple[Path, Any]] = []
        doomed_rows = set(out.layers)
        for name in layer_dirs:
            dir_chain = _chain_of(name)
            path = snap_root / "layers" / name
            if dir_chain is None or dir_chain not in doomed_rows:
                if dir_chain in layer_rows or not _old(path, fence):
                    continue
                out.layer_dirs.append(name)  # a directory without a row
            doomed.append((path, lambda n=name: images.snapshots.discard_layer_dir(n)))
        for digest in blob_files:
            path = images.content.path(digest)
            if digest not in blobs and _old(path, fence):
                out.blobs.append(digest)
                doomed.append((path, lambda d=digest: images.content.delete(d)))
        for entry in ingests:
            if _old(entry, fence):
                out.ingests.append(entry.name)
                doomed.append((entry, None))
        for entry in temps:
            if _old(entry, fence):
                out.temps.append(str(entry.relative_to(root)))
                doomed.append((entry, None))
        for cid in snapshot_dirs:
            path = snap_root / "containers" / cid
            if cid not in containers and _old(path, fence):
                out.snapshot_dirs.append(cid)
                doomed.append((path, lambda c=cid: images.snapshots.remove_container(c)))
        for entry in container_dirs:
            if entry.name not in containers and _old(entry, fence):
                out.container_dirs.append(entry.name)
                doomed.append((entry, None))
        for entry in volume_dirs:
            if entry.name not in volumes and _old(entry, fence):
                out.volume_dirs.append(entry.name)
                doomed.append((entry, None))
        if not dry_run:
            for chain in out.layers:
                conn.execute("DELETE FROM layers WHERE chain_id = ?", (chain,))
            for cid in out.snapshot_rows:
                conn.execute("DELETE FROM container_snapshots WHERE container_id = ?", (cid,))
            for digest in out.blob_rows:
                conn.execute("DELETE FROM blobs WHERE digest = ?", (digest,))
            for lease_id in stale:
                conn.execute("DELETE FROM leases WHERE id = ?", (lease_id,))
    # -- sweep files, after the rows are gone and outside the lock ----------------------------------
    for path, how in doomed:
        out.bytes_freed += tree_bytes(path)
        if not dry_run and _old(path, leases.fence(db)):  # written again since? (a new lease's fence says)
            _remove(path, how)
    if out.count() and not dry_run:
        log.info("garbage collected: %s", {k: len(v) for k, v in vars(out).items() if isinstance(v, list) and v})
    return out


def _entries(directory: Path) -> list[Path]:
    try:
        return sorted(directory.iterdir())
    except OSError:
        return []


def _remove(path: Path, how: Any = None) -> None:
    """Remove ``path``, by ``how()`` when given."""
    try:
        if how is not None:
            how()
        elif path.is_dir() and not path.is_symlink():
            remove_tree(path)
        else:
            path.unlink(missing_ok=True)
    except (OSError, DockyardError) as e:
        log.warning("garbage collection: cannot remove %s: %s", path, e)
