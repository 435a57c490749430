"""``docker save``: several images written as one tar in both of the formats Docker 25+ writes.

Terms:

- The *Docker archive* format: ``manifest.json`` (a list of ``{"Config", "RepoTags", "Layers"}``,
  paths inside the tar) and ``repositories`` (``{"busybox": {"latest": "<top layer hex>"}}``).
- The *OCI image layout*: ``oci-layout`` (``{"imageLayoutVersion": "1.0.0"}``), ``index.json``
  (one manifest descriptor per saved reference, annotated with ``io.containerd.image.name`` =
  the full reference and ``org.opencontainers.image.ref.name`` = its tag) and ``blobs/sha256/<hex>``.

As in Docker 25+ (API 1.44), every blob is stored once, under ``blobs/sha256/``, and the Docker
archive's ``manifest.json`` points at those paths. Layers are written uncompressed, so a layer's
blob digest is its diff ID. The tar is written to any object with ``write`` (a stream: no seeking).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dockyard.content import Descriptor, hex_of, sha256_digest
from dockyard.content import mediatypes as mt
from dockyard.errors import NotFound
from dockyard.formats import timestamps
from dockyard.images.reference import Reference, parse_any
from dockyard.images.service import ImageService
from dockyard.images.store import ImageStore, LayerRecord
from dockyard.snapshots.streams import decompressed

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"


@dataclass
class SaveSelection:
    """What one save writes: image IDs in the order first named, and the references of each."""

    ids: list[str] = field(default_factory=list)
    refs: dict[str, list[Reference]] = field(default_factory=dict)

    def add(self, image_id: str, ref: Reference | None) -> None:
        if image_id not in self.refs:
            self.ids.append(image_id)
            self.refs[image_id] = []
        if ref is not None and ref not in self.refs[image_id]:
            self.refs[image_id].append(ref)


def select(store: ImageStore, resolve_id: Callable[[str], str], names: list[str]) -> SaveSelection:
    """Resolve the names ``docker save`` was given (Docker's rules).

    A name without tag or digest (``busybox``) selects every tag of that repository; a tagged
    name selects that tag; an ID (or ID prefix) selects the image without any reference.
    NotFound (``No such image: …``) when a name matches nothing.
    """
    selection = SaveSelection()
    for name in names:
        parsed = parse_any(name)
        if isinstance(parsed, Reference) and parsed.is_name_only:
            tagged = [(parse_any(text), target) for text, target in store.all_references().items()]
            matches = [(r, t) for r, t in tagged if isinstance(r, Reference) and r.name == parsed.name
                       and r.tag is not None and not r.is_canonical and store.exists(t)]
            if matches:
                for tag_ref, target in sorted(matches, key=lambda m: m[0].familiar()):
                    assert isinstance(tag_ref, Reference)
                    selection.add(target, tag_ref)
                continue
        image_id = resolve_id(name)
        ref: Reference | None = None
        if isinstance(parsed, Reference) and not parsed.is_canonical:
            candidate = parsed.tag_name_only()
            if store.lookup(candidate) == image_id:  # else ``name`` matched as an ID prefix
                ref = candidate
        selection.add(image_id, ref)
    return selection


def _oci_manifest(config_digest: str, config_size: int, layers: list[tuple[str, int]]) -> bytes:
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": Descriptor(mt.OCI_CONFIG, config_digest, config_size).to_json(),
        "layers": [Descriptor(mt.OCI_LAYER, digest, size).to_json() for digest, size in layers],
    }
    return json.dumps(manifest, separators=(",", ":")).encode()


class ArchiveWriter:
    """Writes the save tar for a :class:`SaveSelection` out of an :class:`ImageStore`.

    ``spool`` is a directory for layers that must be decompressed before they can be written
    (their stored blob is compressed, and a tar entry needs its size up front).
    """

    def __init__(self, store: ImageStore, spool: Path) -> None:
        self.store = store
        self.spool = Path(spool)
        self._written: set[str] = set()
        self._sizes: dict[str, int] = {}  # diff ID -> bytes, of layers already written

    def write(self, selection: SaveSelection, out: IO[bytes]) -> None:
        self._written.clear()
        self._sizes.clear()
        docker_manifest: list[dict[str, Any]] = []
        index_entries: list[dict[str, Any]] = []
        repositories: dict[str, dict[str, str]] = {}
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            self._add_dir(tar, "blobs", 0)
            self._add_dir(tar, "blobs/sha256", 0)
            for image_id in selection.ids:
                record = self.store.get(image_id)
                config_bytes = self.store.content.read_bytes(image_id)
                config = json.loads(config_bytes)
                mtime = timestamps.stored_ns(str(config.get("created") or timestamps.ZERO_TIME)) // 1_000_000_000
                mtime = max(mtime, 0)
                self._add_bytes(tar, image_id, config_bytes, mtime)
                layers = [self._add_layer(tar, layer, mtime) for layer in record.layers]
                manifest = _oci_manifest(image_id, len(config_bytes), layers)
                manifest_desc = Descriptor(mt.OCI_MANIFEST, sha256_digest(manifest), len(manifest))
                self._add_bytes(tar, manifest_desc.digest, manifest, mtime)
                refs = selection.refs[image_id]
                docker_manifest.append({
                    "Config": _blob_path(image_id),
                    "RepoTags": [r.familiar() for r in refs] or None,
                    "Layers": [_blob_path(digest) for digest, _ in layers],
                })
                entries: list[Reference | None] = list(refs) or [None]
                for ref in entries:
                    annotations: dict[str, str] = {}
                    if ref is not None:
                        annotations = {ANNOTATION_IMAGE_NAME: str(ref), ANNOTATION_REF_NAME: ref.tag or ""}
                        if layers:
                            repositories.setdefault(ref.familiar_name(), {})[ref.tag or ""] = hex_of(layers[-1][0])
                    index_entries.append(Descriptor(manifest_desc.media_type, manifest_desc.digest,
                                                    manifest_desc.size, annotations).to_json())
            index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": index_entries}
            self._add_file(tar, "index.json", json.dumps(index, separators=(",", ":")).encode(), 0)
            self._add_file(tar, "manifest.json", json.dumps(docker_manifest, separators=(",", ":")).encode(), 0)
            self._add_file(tar, "oci-layout", OCI_LAYOUT, 0)
            if repositories:
                self._add_file(tar, "repositories", json.dumps(repositories, separators=(",", ":")).encode(), 0)

    # -- entries -------------------------------------------------------------------------

    @staticmethod
    def _add_dir(tar: tarfile.TarFile, name: str, mtime: int) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
        tar.addfile(info)

    @staticmethod
    def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, mtime
        tar.addfile(info, io.BytesIO(data))

    def _add_bytes(self, tar: tarfile.TarFile, digest: str, data: bytes, mtime: int) -> None:
        if digest in self._written:
            return
        self._written.add(digest)
        self._add_file(tar, _blob_path(digest), data, mtime)

    def _add_layer(self, tar: tarfile.TarFile, layer: LayerRecord, mtime: int) -> tuple[str, int]:
        """Write one layer's uncompressed tar under its diff ID; returns (digest, size)."""
        if layer.diff_id in self._written:
            return layer.diff_id, self._size_of_written(layer)
        info = tarfile.TarInfo(_blob_path(layer.diff_id))
        info.mode, info.mtime = 0o644, mtime
        if layer.digest == layer.diff_id:
            with self.store.content.open(layer.digest) as blob:
                info.size = os.fstat(blob.fileno()).st_size
                tar.addfile(info, blob)
        else:
            # A compressed blob: decompress into the spool first, since the size goes first.
            with tempfile.TemporaryFile(dir=self.spool) as plain:
                with self.store.content.open(layer.digest) as blob:
                    shutil.copyfileobj(decompressed(blob), plain, 1 << 20)
                info.size = plain.tell()
                plain.seek(0)
                tar.addfile(info, plain)
        self._written.add(layer.diff_id)
        self._sizes[layer.diff_id] = info.size
        return layer.diff_id, info.size

    def _size_of_written(self, layer: LayerRecord) -> int:
        size = self._sizes.get(layer.diff_id)
        if size is None:
            raise NotFound(f"layer {layer.diff_id} not written")
        return size


def _blob_path(digest: str) -> str:
    return f"blobs/sha256/{hex_of(digest)}"


def save_images(images: ImageService, names: list[str], out: IO[bytes], spool: Path) -> None:
    """Write the save tar of the images ``names`` name to ``out`` (names resolved by :func:`select`)."""
    ArchiveWriter(images.store, spool).write(select(images.store, images.resolve_id, names), out)
