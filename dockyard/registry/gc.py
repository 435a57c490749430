"""Garbage collection: delete the blobs no manifest of any repository needs.

*Mark*: every manifest revision of every repository, and the config and layers (or, for an
index, the manifests) it names. *Sweep*: every other blob of the content store, with the
``_layers`` links that pointed at it, and upload sessions. Run it with the server stopped or
read-only, as with Docker's registry: a push in flight has blobs no manifest names yet.
A *dry run* reports what would go and deletes nothing.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field

from dockyard.registry.digests import is_registry_digest
from dockyard.registry.storage import RegistryStorage


@dataclass
class Collection:
    """What a collection kept and removed (or, in a dry run, would remove)."""

    marked: set[str] = field(default_factory=set)
    removed: list[str] = field(default_factory=list)
    freed_bytes: int = 0


def _referenced(data: bytes) -> list[str]:
    try:
        manifest = json.loads(data)
    except ValueError:
        return []
    if not isinstance(manifest, dict):
        return []
    descriptors = [manifest.get("config"), *(manifest.get("layers") or []), *(manifest.get("manifests") or [])]
    return [d["digest"] for d in descriptors
            if isinstance(d, dict) and isinstance(d.get("digest"), str) and is_registry_digest(d["digest"])]


def collect(storage: RegistryStorage, *, dry_run: bool) -> Collection:
    """Mark and sweep (see the module docstring)."""
    result = Collection()
    repos = storage.catalog()
    for repo in repos:
        for digest in storage.revisions(repo):
            result.marked.add(digest)
            if storage.content.exists(digest):
                result.marked.update(_referenced(storage.content.read_bytes(digest)))
    for digest in storage.content.list():
        if digest in result.marked:
            continue
        result.removed.append(digest)
        result.freed_bytes += storage.content.size(digest)
        if not dry_run:
            storage.content.delete(digest)
    if not dry_run:
        gone = set(result.removed)
        for repo in repos:
            for digest in storage.linked_blobs(repo):
                if digest in gone or not storage.content.exists(digest):
                    storage.unlink_blob(repo, digest)
        for upload in storage.uploads.iterdir():
            shutil.rmtree(upload, ignore_errors=True)
    return result
