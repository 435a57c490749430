"""The image store: image records by image ID, and the references map.

Terms: an *image ID* is the digest of the image's config JSON (``sha256:…``). A *reference*
(see :mod:`dockyard.images.reference`) is a normalised name such as
``docker.io/library/busybox:latest`` pointing at one image ID; an image with no reference is
*dangling*.

Records live in the metadata database (:mod:`dockyard.metadata`): ``refs`` (reference → image
ID), ``images`` (manifest digest, last tag time, parent) and ``image_layers`` (the layer chain,
bottom-most first), and ``blobs`` (every blob a record names). The config and an OCI manifest
are blobs in the content store; each layer is a blob too and is unpacked into the snapshot store
under its chain ID. Every multi-row change is one transaction; files that a change makes garbage
(blobs, layer directories) are removed only after it commits, so a crash leaves at worst files
without rows, which the collector (:mod:`dockyard.images.garbage`) removes. ``lock`` guards
read-modify-write sequences, since the daemon calls in from several threads.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.content import ContentStore, Descriptor, validate_digest
from dockyard.content import mediatypes as mt
from dockyard.errors import InvalidParameter, NotFound
from dockyard.images.reference import Reference, parse
from dockyard.metadata import MetadataDB, open_db
from dockyard.snapshots import SnapshotStore


@dataclass(frozen=True)
class LayerRecord:
    """One layer of an image: its blob (as stored), diff ID and chain ID."""

    digest: str
    media_type: str
    size: int
    diff_id: str
    chain_id: str

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "mediaType": self.media_type, "size": self.size,
                "diff_id": self.diff_id, "chain_id": self.chain_id}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LayerRecord:
        return cls(d["digest"], d["mediaType"], int(d["size"]), d["diff_id"], d["chain_id"])


@dataclass
class ImageRecord:
    """What the store keeps per image besides its config blob."""

    id: str
    manifest: str
    layers: list[LayerRecord] = field(default_factory=list)
    last_tag_time: str | None = None
    parent: str | None = None  # the image this one was committed from (Docker's local parent link)

    def to_json(self) -> dict[str, Any]:
        out = {"id": self.id, "manifest": self.manifest, "layers": [layer.to_json() for layer in self.layers],
               "last_tag_time": self.last_tag_time}
        if self.parent:
            out["parent"] = self.parent
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ImageRecord:
        return cls(d["id"], d["manifest"], [LayerRecord.from_json(x) for x in d.get("layers", [])],
                   d.get("last_tag_time"), d.get("parent"))


class ImageStore:
    """Image records and references (see the module docstring)."""

    def __init__(self, root: Path, content: ContentStore, snapshots: SnapshotStore,
                 metadata: MetadataDB | None = None) -> None:
        self.root = Path(root)
        self.content = content
        self.snapshots = snapshots
        self.db = metadata if metadata is not None else open_db(self.root.parent)
        self.lock = threading.RLock()

    # -- references ----------------------------------------------------------------------

    def lookup(self, ref: Reference) -> str | None:
        """The image ID a normalised reference points at (tag defaulted by the caller)."""
        value = self.db.scalar("SELECT image_id FROM refs WHERE name = ?", (str(ref),))
        return None if value is None else str(value)

    def references(self, image_id: str) -> list[Reference]:
        """Every reference to ``image_id``, sorted by familiar form (as Docker lists them)."""
        refs = [parse(str(r[0])) for r in self.db.query("SELECT name FROM refs WHERE image_id = ?", (image_id,))]
        return sorted(refs, key=lambda r: r.familiar())

    def all_references(self) -> dict[str, str]:
        return {str(r[0]): str(r[1]) for r in self.db.query("SELECT name, image_id FROM refs ORDER BY name")}

    def add_reference(self, ref: Reference, image_id: str) -> None:
        """Point ``ref`` at ``image_id`` (moving it from another image if need be)."""
        with self.lock, self.db.transaction(durable=True):
            self.get(image_id)
            if ref.tag is not None and ref.familiar_name() == "sha256":
                raise InvalidParameter("refusing to create an ambiguous tag using digest algorithm as name")
            current = self.lookup(ref)
            if ref.is_canonical and current is not None and current != image_id:
                raise InvalidParameter(f"Cannot overwrite digest {ref.digest}")
            self.db.execute("INSERT INTO refs VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
                            (str(ref), image_id))

    def delete_reference(self, ref: Reference) -> bool:
        return self.db.execute("DELETE FROM refs WHERE name = ?", (str(ref),), durable=True) > 0

    # -- records -------------------------------------------------------------------------

    def ids(self) -> list[str]:
        return [str(r[0]) for r in self.db.query("SELECT id FROM images ORDER BY id")]

    def exists(self, image_id: str) -> bool:
        return self.db.one("SELECT 1 FROM images WHERE id = ?", (image_id,)) is not None

    def get(self, image_id: str) -> ImageRecord:
        row = self.db.one("SELECT id, manifest, last_tag_time, parent FROM images WHERE id = ?", (image_id,))
        if row is None:
            raise NotFound(f"No such image: {image_id}")
        layers = [LayerRecord(str(r["digest"]), str(r["media_type"]), int(r["size"]), str(r["diff_id"]),
                              str(r["chain_id"]))
                  for r in self.db.query("SELECT * FROM image_layers WHERE image_id = ? ORDER BY position",
                                         (image_id,))]
        return ImageRecord(str(row["id"]), str(row["manifest"]), layers, row["last_tag_time"], row["parent"])

    def config(self, image_id: str) -> dict[str, Any]:
        """The image config (OCI/Docker image config JSON)."""
        data: dict[str, Any] = json.loads(self.content.read_bytes(validate_digest(image_id)))
        return data

    def search(self, prefix: str) -> str | None:
        """The one image whose ID starts with ``prefix`` (hex, optionally ``sha256:``), else None."""
        hexpart = prefix[len("sha256:"):] if prefix.startswith("sha256:") else prefix
        if not hexpart or not all(c in "0123456789abcdef" for c in hexpart):
            return None
        matches = self.db.query("SELECT id FROM images WHERE id >= ? AND id < ? LIMIT 2",
                                ("sha256:" + hexpart, "sha256:" + hexpart + "g"))
        return str(matches[0][0]) if len(matches) == 1 else None

    def create(self, config_bytes: bytes, layers: list[LayerRecord]) -> str:
        """Store a config and its layers' record (layers already stored and unpacked); returns the ID."""
        with self.lock:
            image_id = self.content.put_bytes(config_bytes)
            manifest = {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": Descriptor(mt.OCI_CONFIG, image_id, len(config_bytes)).to_json(),
                "layers": [Descriptor(layer.media_type, layer.digest, layer.size).to_json() for layer in layers],
            }
            manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
            manifest_digest = self.content.put_bytes(manifest_bytes)
            with self.db.transaction(durable=True) as conn:
                conn.execute("INSERT INTO images VALUES (?, ?, NULL, NULL, ?) "
                             "ON CONFLICT(id) DO UPDATE SET manifest = excluded.manifest",
                             (image_id, manifest_digest, time.time()))
                conn.execute("DELETE FROM image_layers WHERE image_id = ?", (image_id,))
                conn.execute("INSERT OR IGNORE INTO blobs VALUES (?, ?)", (image_id, len(config_bytes)))
                conn.execute("INSERT OR IGNORE INTO blobs VALUES (?, ?)", (manifest_digest, len(manifest_bytes)))
                for position, layer in enumerate(layers):
                    conn.execute("INSERT INTO image_layers VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (image_id, position, layer.digest, layer.media_type, layer.size, layer.diff_id,
                                  layer.chain_id))
                    conn.execute("INSERT OR IGNORE INTO blobs VALUES (?, ?)", (layer.digest, layer.size))
                    conn.execute("UPDATE layers SET blob = ? WHERE chain_id = ? AND blob IS NULL",
                                 (layer.digest, layer.chain_id))
            return image_id

    def set_parent(self, image_id: str, parent: str) -> None:
        """Record that ``image_id`` was made from ``parent`` (``docker commit``)."""
        if not self.db.execute("UPDATE images SET parent = ? WHERE id = ?", (parent, image_id)):
            raise NotFound(f"No such image: {image_id}")

    def children(self, image_id: str) -> list[str]:
        """The images committed from ``image_id`` (Docker's local child images)."""
        return [str(row["id"]) for row in self.db.query("SELECT id FROM images WHERE parent = ?", (image_id,))]

    def parent_of(self, image_id: str) -> str:
        row = self.db.one("SELECT parent FROM images WHERE id = ?", (image_id,))
        return str(row["parent"]) if row is not None and row["parent"] else ""

    def set_last_tag_time(self, image_id: str, when: str) -> None:
        if not self.db.execute("UPDATE images SET last_tag_time = ? WHERE id = ?", (when, image_id)):
            raise NotFound(f"No such image: {image_id}")

    def delete(self, image_id: str, *, keep_layers: bool = False) -> list[str]:
        """Delete an image record and what only it used; returns the chain IDs removed, top-most first.

        References to it must already be gone. With ``keep_layers`` the unpacked layers stay
        (a stopped container still stands on them). Rows go in one transaction (the caller's,
        if it holds one); the blobs and layer directories go after it commits.
        """
        with self.lock, self.db.transaction(durable=True) as conn:
            record = self.get(image_id)
            conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
            doomed_blobs = [d for d in dict.fromkeys([record.id, record.manifest,
                                                      *(layer.digest for layer in record.layers)])
                            if not _blob_used(conn, d)]
            for digest in doomed_blobs:
                conn.execute("DELETE FROM blobs WHERE digest = ?", (digest,))
            removed: list[str] = []
            if not keep_layers:
                under_containers = {str(r[0]) for r in conn.execute(_CHAINS_UNDER_CONTAINERS)}
                candidates = [layer.chain_id for layer in reversed(record.layers)
                              if layer.chain_id not in under_containers
                              and conn.execute("SELECT 1 FROM image_layers WHERE chain_id = ? LIMIT 1",
                                               (layer.chain_id,)).fetchone() is None]
                for chain_id in candidates:
                    children = {str(r[0]) for r in conn.execute("SELECT chain_id FROM layers WHERE parent = ?",
                                                                 (chain_id,))}
                    if children - set(removed):
                        continue  # something else (an orphan, for the collector) stands on it
                    if conn.execute("DELETE FROM layers WHERE chain_id = ?", (chain_id,)).rowcount:
                        removed.append(chain_id)

            def remove_files() -> None:
                for digest in doomed_blobs:
                    self.content.delete(digest)
                for chain_id in removed:
                    self.snapshots.remove_layer_dir(chain_id)

            self.db.after_commit(remove_files)
            return removed

    def images_using(self, chain_ids: Iterable[str]) -> list[str]:
        wanted = list(set(chain_ids))
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        return [str(r[0]) for r in self.db.query(
            f"SELECT DISTINCT image_id FROM image_layers WHERE chain_id IN ({marks}) ORDER BY image_id", wanted)]


# Every chain some container's writable layer stands on: its top-most chain and all beneath it.
_CHAINS_UNDER_CONTAINERS = """
    WITH RECURSIVE under(chain) AS (
        SELECT parent FROM container_snapshots WHERE parent IS NOT NULL
        UNION SELECT layers.parent FROM layers JOIN under ON layers.chain_id = under.chain
              WHERE layers.parent IS NOT NULL)
    SELECT chain FROM under"""


def _blob_used(conn: Any, digest: str) -> bool:
    """Whether any image record still names blob ``digest`` (as config, manifest or layer)."""
    return (conn.execute("SELECT 1 FROM images WHERE id = ? OR manifest = ? LIMIT 1", (digest, digest)).fetchone()
            is not None or
            conn.execute("SELECT 1 FROM image_layers WHERE digest = ? LIMIT 1", (digest,)).fetchone() is not None)
