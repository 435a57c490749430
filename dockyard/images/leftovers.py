"""Clearing what an interrupted image operation left behind, once, when the daemon starts.

A load that dies with the daemon (``kill -9``, power loss) cannot leave a half layer or a
dangling reference — layers and blobs appear by atomic renames, records and tags only after
every layer is verified — but it can leave *leftovers*:

- its spool directory (``tmp/load-*``) and content-store ingest files (``content/ingest/*``);
- *orphan layers*: unpacked layers no image record lists and no container stands on (also what
  a forced ``rmi`` leaves under a container, once that container is removed);
- the uncompressed blobs of such orphan layers (a compressed one, of a pulled layer, is left to
  the collector, :mod:`dockyard.images.garbage`, as any blob no record names).

At start-up nothing is in flight, so all of them can go.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from pathlib import Path

from dockyard.content import is_digest
from dockyard.errors import DockyardError
from dockyard.images.service import ImageService
from dockyard.snapshots import remove_tree


@dataclass
class Swept:
    """What :func:`sweep_leftovers` removed: spool dirs, ingest files, orphan layers (chain IDs)."""

    spools: int = 0
    ingests: int = 0
    layers: list[str] | None = None


def sweep_leftovers(images: ImageService, spool: Path) -> Swept:
    """Remove the leftovers listed in the module docstring. Call only while nothing else runs."""
    swept = Swept(layers=[])
    if spool.is_dir():
        for entry in spool.iterdir():
            if entry.name.startswith("load-") and entry.is_dir() and not entry.is_symlink():
                remove_tree(entry)
                swept.spools += 1
    ingest = images.content.root / "ingest"
    for entry in ingest.iterdir() if ingest.is_dir() else []:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry)
            swept.ingests += 1
    used = _chains_in_use(images)
    if used is None:
        return swept
    store = images.store
    # One transaction: orphans stand on each other (a load's layers), and a parent's row may go only
    # with its children's; directories and blobs go after the commit.
    with store.lock, images.metadata.transaction(durable=True):
        referenced_blobs: set[str] = set()
        for image_id in store.ids():
            record = store.get(image_id)
            referenced_blobs.update(layer.digest for layer in record.layers)
        for chain_id in images.snapshots.list_layers():
            if chain_id in used:
                continue
            try:
                diff_id = images.snapshots.layer(chain_id).diff_id
            except DockyardError:
                continue
            images.snapshots.remove_layer(chain_id)
            assert swept.layers is not None
            swept.layers.append(chain_id)
            if diff_id not in referenced_blobs:
                images.metadata.after_commit(functools.partial(images.content.delete, diff_id))
    return swept


def _chains_in_use(images: ImageService) -> set[str] | None:
    """Chain IDs image records list or containers stand on (their snapshot's chain and its parents)."""
    used: set[str] = set()
    for image_id in images.store.ids():
        used.update(layer.chain_id for layer in images.store.get(image_id).layers)
    for top in images.snapshots.container_parents().values():
        chain = top
        while chain and chain not in used:
            used.add(chain)
            try:
                chain = images.snapshots.layer(chain).parent
            except DockyardError:
                break
    return {c for c in used if is_digest(c)}  # odd directory names match nothing
