"""The image store: image records by image ID, and the references map.

Terms: an *image ID* is the digest of the image's config JSON (``sha256:…``). A *reference*
(see :mod:`dockyard.images.reference`) is a normalised name such as
``docker.io/library/busybox:latest`` pointing at one image ID; an image with no reference is
*dangling*.

On disk (under ``root``, the daemon's ``images/``)::

    repositories.json      {"references": {"docker.io/library/busybox:latest": "sha256:…"}}
    images/<hex>.json      {"id", "manifest", "layers": [{digest, mediaType, size, diff_id, chain_id}],
                            "last_tag_time"}

The config and an OCI manifest are blobs in the content store; each layer is a blob too and is
unpacked into the snapshot store under its chain ID. Both JSON files are written atomically
(temp file, fsync, rename, fsync of the directory). A lock guards every change, since the daemon
calls in from several threads.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.content import ContentStore, Descriptor, hex_of, validate_digest
from dockyard.content import mediatypes as mt
from dockyard.content.digests import digest_from_hex
from dockyard.errors import DockyardError, InvalidParameter, NotFound
from dockyard.images.reference import Reference, parse
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


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` so that readers see the old or the new file, never a mix."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class ImageStore:
    """Image records and references (layout in the module docstring)."""

    def __init__(self, root: Path, content: ContentStore, snapshots: SnapshotStore) -> None:
        self.root = Path(root)
        self.content = content
        self.snapshots = snapshots
        self._records_dir = self.root / "images"
        self._records_dir.mkdir(parents=True, exist_ok=True)
        self._repositories = self.root / "repositories.json"
        self.lock = threading.RLock()
        self._refs: dict[str, str] = self._load_refs()

    # -- references ----------------------------------------------------------------------

    def _load_refs(self) -> dict[str, str]:
        try:
            data = json.loads(self._repositories.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise DockyardError(f"{self._repositories}: corrupt: {e}") from None
        refs = data.get("references", {})
        return {str(k): str(v) for k, v in refs.items()}

    def _save_refs(self) -> None:
        write_json_atomic(self._repositories, {"references": self._refs})

    def lookup(self, ref: Reference) -> str | None:
        """The image ID a normalised reference points at (tag defaulted by the caller)."""
        with self.lock:
            return self._refs.get(str(ref))

    def references(self, image_id: str) -> list[Reference]:
        """Every reference to ``image_id``, sorted by familiar form (as Docker lists them)."""
        with self.lock:
            refs = [parse(name) for name, target in self._refs.items() if target == image_id]
        return sorted(refs, key=lambda r: r.familiar())

    def all_references(self) -> dict[str, str]:
        with self.lock:
            return dict(self._refs)

    def add_reference(self, ref: Reference, image_id: str) -> None:
        """Point ``ref`` at ``image_id`` (moving it from another image if need be)."""
        with self.lock:
            self.get(image_id)
            if ref.tag is not None and ref.familiar_name() == "sha256":
                raise InvalidParameter("refusing to create an ambiguous tag using digest algorithm as name")
            current = self._refs.get(str(ref))
            if ref.is_canonical and current is not None and current != image_id:
                raise InvalidParameter(f"Cannot overwrite digest {ref.digest}")
            self._refs[str(ref)] = image_id
            self._save_refs()

    def delete_reference(self, ref: Reference) -> bool:
        with self.lock:
            if self._refs.pop(str(ref), None) is None:
                return False
            self._save_refs()
            return True

    # -- records -------------------------------------------------------------------------

    def _record_path(self, image_id: str) -> Path:
        return self._records_dir / f"{hex_of(image_id)}.json"

    def ids(self) -> list[str]:
        out = []
        for p in self._records_dir.glob("*.json"):
            try:
                out.append(digest_from_hex(p.stem))
            except InvalidParameter:
                continue
        return sorted(out)

    def exists(self, image_id: str) -> bool:
        return self._record_path(image_id).is_file()

    def get(self, image_id: str) -> ImageRecord:
        try:
            return ImageRecord.from_json(json.loads(self._record_path(image_id).read_text()))
        except FileNotFoundError:
            raise NotFound(f"No such image: {image_id}") from None

    def config(self, image_id: str) -> dict[str, Any]:
        """The image config (OCI/Docker image config JSON)."""
        data: dict[str, Any] = json.loads(self.content.read_bytes(validate_digest(image_id)))
        return data

    def search(self, prefix: str) -> str | None:
        """The one image whose ID starts with ``prefix`` (hex, optionally ``sha256:``), else None."""
        hexpart = prefix[len("sha256:"):] if prefix.startswith("sha256:") else prefix
        if not hexpart:
            return None
        matches = [i for i in self.ids() if i[len("sha256:"):].startswith(hexpart)]
        return matches[0] if len(matches) == 1 else None

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
            manifest_digest = self.content.put_bytes(json.dumps(manifest, separators=(",", ":")).encode())
            record = ImageRecord(image_id, manifest_digest, list(layers))
            if self.exists(image_id):
                record.last_tag_time = self.get(image_id).last_tag_time
            write_json_atomic(self._record_path(image_id), record.to_json())
            return image_id

    def set_parent(self, image_id: str, parent: str) -> None:
        """Record that ``image_id`` was made from ``parent`` (``docker commit``)."""
        with self.lock:
            record = self.get(image_id)
            record.parent = parent
            write_json_atomic(self._record_path(image_id), record.to_json())

    def set_last_tag_time(self, image_id: str, when: str) -> None:
        with self.lock:
            record = self.get(image_id)
            record.last_tag_time = when
            write_json_atomic(self._record_path(image_id), record.to_json())

    def delete(self, image_id: str, *, keep_layers: bool = False) -> list[str]:
        """Delete an image record and what only it used; returns the chain IDs removed, top-most first.

        References to it must already be gone. With ``keep_layers`` the unpacked layers stay
        (a stopped container still stands on them).
        """
        with self.lock:
            record = self.get(image_id)
            others = [self.get(i) for i in self.ids() if i != image_id]
            used_blobs: set[str] = set()
            used_chains: set[str] = set()
            for other in others:
                used_blobs.update({other.id, other.manifest})
                used_blobs.update(layer.digest for layer in other.layers)
                used_chains.update(layer.chain_id for layer in other.layers)
            os.unlink(self._record_path(image_id))
            for digest in (record.id, record.manifest):
                if digest not in used_blobs:
                    self.content.delete(digest)
            removed: list[str] = []
            for layer in reversed(record.layers):
                if layer.digest not in used_blobs:
                    self.content.delete(layer.digest)
                if not keep_layers and layer.chain_id not in used_chains and self.snapshots.remove_layer(layer.chain_id):
                    removed.append(layer.chain_id)
            return removed

    def images_using(self, chain_ids: Iterable[str]) -> list[str]:
        wanted = set(chain_ids)
        return [i for i in self.ids() if wanted & {layer.chain_id for layer in self.get(i).layers}]
