"""``docker load``: images out of a Docker archive or an OCI image layout, verified, all or nothing.

Terms (see :mod:`dockyard.images.archive_save` for the two formats):

- A *load plan* is one image found in the archive: its config bytes (whose digest is the image
  ID), where each layer lies in the archive (with the digest the archive promises for it, when
  it promises one), and the references to tag it with.
- A layer is *verified* twice: the bytes must have the digest the archive names them by (OCI
  descriptors, ``blobs/sha256/<hex>`` paths), and the uncompressed tar must have the diff ID the
  config lists in ``rootfs.diff_ids`` (checked by the snapshot store through the chain ID).

Every layer of every image is unpacked and verified before any image record or tag is written.
When anything fails, the layers and blobs this load created (and no image uses) are removed,
so a refused archive leaves the store as it was. A loaded layer is stored uncompressed (media type
``application/vnd.oci.image.layer.v1.tar``), so its blob digest is its diff ID. A pulled layer
(a *kept* source: a verified content-store blob) is stored as it came, compressed, as containerd
keeps it: its blob digest is the registry's and its diff ID only in the image config; ``save``
decompresses it on the way out and ``push`` sends it as it is.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from dockyard.content import Descriptor, hex_of, is_digest, sha256_digest
from dockyard.content import mediatypes as mt
from dockyard.errors import Conflict, CorruptContent, DockyardError, InvalidParameter, NotFound
from dockyard.formats import timestamps
from dockyard.images.archive_save import ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME
from dockyard.images.archive_spool import SpooledArchive
from dockyard.images.reference import Reference, parse_normalized
from dockyard.images.service import ImageService, host_arch
from dockyard.images.store import LayerRecord
from dockyard.metadata import current_lease, leases
from dockyard.snapshots import HashingReader, chain_ids, remove_tree
from dockyard.snapshots.readers import PassThroughReader
from dockyard.snapshots.streams import compression_of

_MAX_INDEX_DEPTH = 8


@dataclass
class LayerSource:
    """A layer inside the archive: its path and, when the archive promises one, its blob digest and size."""

    path: str
    digest: str | None = None
    size: int | None = None
    verified: bool = False  # the file is known to have ``digest`` (a content store blob): not hashed again
    media_type: str = ""  # what the manifest calls it (a verified blob kept as the layer's blob)


@dataclass
class LoadPlan:
    """One image of the archive (see the module docstring)."""

    config: bytes
    layers: list[LayerSource]
    refs: list[Reference] = field(default_factory=list)

    @property
    def image_id(self) -> str:
        return sha256_digest(self.config)

    def diff_ids(self) -> list[str]:
        try:
            config = json.loads(self.config)
        except ValueError as e:
            raise InvalidParameter(f"invalid image config: {e}") from None
        diff_ids = ((config.get("rootfs") or {}).get("diff_ids") if isinstance(config, dict) else None) or []
        if not isinstance(diff_ids, list) or not all(isinstance(d, str) and is_digest(d) for d in diff_ids):
            raise InvalidParameter("invalid image config: bad rootfs.diff_ids")
        if len(diff_ids) != len(self.layers):
            raise InvalidParameter(
                f"invalid manifest, layers length mismatch: expected {len(diff_ids)}, got {len(self.layers)}")
        return diff_ids


class LayerFiles(Protocol):
    """Where the layer files of load plans lie: a spooled archive, or a pull's downloaded blobs."""

    def open(self, name: str) -> BinaryIO: ...

    def path(self, name: str) -> Path: ...


# -- reading the archive -------------------------------------------------------------------

def plans_of(archive: SpooledArchive) -> list[LoadPlan]:
    """The images in a spooled archive: Docker's ``manifest.json`` when present, else the OCI index."""
    if archive.exists("manifest.json"):
        return _docker_plans(archive)
    if archive.exists("index.json"):
        return _oci_plans(archive)
    if archive.exists("repositories"):
        raise InvalidParameter("invalid archive: legacy (v1) image archives without manifest.json are not supported")
    raise InvalidParameter("invalid archive: neither manifest.json nor index.json found")


def _json(archive: SpooledArchive, name: str) -> Any:
    try:
        return json.loads(archive.read_bytes(name))
    except ValueError as e:
        raise InvalidParameter(f"invalid archive: {name}: {e}") from None


def _promised_digest(path: str) -> str | None:
    """``blobs/sha256/<hex>`` names its own digest; other paths (``<id>/layer.tar``) promise none."""
    parts = posixpath.normpath(path).split("/")
    if len(parts) == 3 and parts[0] == "blobs" and parts[1] == "sha256" and is_digest("sha256:" + parts[2]):
        return "sha256:" + parts[2]
    return None


def _docker_plans(archive: SpooledArchive) -> list[LoadPlan]:
    entries = _json(archive, "manifest.json")
    if not isinstance(entries, list):
        raise InvalidParameter("invalid archive: manifest.json is not a list")
    plans = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise InvalidParameter("invalid archive: bad manifest.json entry")
        config = archive.read_bytes(entry["Config"])
        promised = _promised_digest(entry["Config"])
        if promised is not None and sha256_digest(config) != promised:
            raise CorruptContent(f"digest mismatch: expected {promised}, got {sha256_digest(config)}")
        layers = []
        for path in entry.get("Layers") or []:
            if not isinstance(path, str):
                raise InvalidParameter("invalid archive: bad layer path in manifest.json")
            layers.append(LayerSource(path, _promised_digest(path)))
        refs = []
        for tag in entry.get("RepoTags") or []:
            ref = parse_normalized(tag)
            if ref.is_canonical:
                raise InvalidParameter(f"invalid tag {tag!r} in manifest.json: digests are not tags")
            refs.append(ref.tag_name_only())
        plans.append(LoadPlan(config, layers, refs))
    return plans


def _blob(archive: SpooledArchive, desc: Descriptor) -> bytes:
    data = archive.read_bytes(_blob_path(desc.digest))
    if sha256_digest(data) != desc.digest:
        raise CorruptContent(f"digest mismatch: expected {desc.digest}, got {sha256_digest(data)}")
    if len(data) != desc.size:
        raise CorruptContent(f"size mismatch: expected {desc.size} bytes, got {len(data)}")
    return data


def _blob_path(digest: str) -> str:
    return f"blobs/sha256/{hex_of(digest)}"


def _oci_plans(archive: SpooledArchive) -> list[LoadPlan]:
    index = _json(archive, "index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidParameter("invalid archive: index.json has no manifests")
    plans: list[LoadPlan] = []
    for raw in index["manifests"]:
        desc = Descriptor.from_json(raw)
        refs = _refs_of(desc.annotations)
        for plan in _walk(archive, desc, 0):
            existing = next((p for p in plans if p.config == plan.config), None)
            if existing is None:
                plan.refs = list(refs)
                plans.append(plan)
            else:
                existing.refs.extend(r for r in refs if r not in existing.refs)
    return plans


def _refs_of(annotations: dict[str, str]) -> list[Reference]:
    """The reference an index entry names: ``io.containerd.image.name``, else a ref.name that is
    a whole reference (``ours:latest``; a bare tag such as ``latest`` names no repository)."""
    name = annotations.get(ANNOTATION_IMAGE_NAME) or ""
    if not name:
        ref_name = annotations.get(ANNOTATION_REF_NAME) or ""
        if ":" in ref_name or "/" in ref_name:
            name = ref_name
    if not name:
        return []
    try:
        ref = parse_normalized(name)
    except InvalidParameter:
        return []
    return [] if ref.is_canonical else [ref.tag_name_only()]


def _walk(archive: SpooledArchive, desc: Descriptor, depth: int) -> list[LoadPlan]:
    """The image(s) ``desc`` leads to: a manifest is one image; an index, the ones for this host."""
    if depth > _MAX_INDEX_DEPTH:
        raise InvalidParameter("invalid archive: image indexes nested too deeply")
    data = _blob(archive, desc)
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise InvalidParameter(f"invalid archive: blob {desc.digest}: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidParameter(f"invalid archive: blob {desc.digest} is not a manifest or an index")
    media_type = doc.get("mediaType") or desc.media_type
    if media_type in mt.INDEX_TYPES or (media_type not in mt.MANIFEST_TYPES and "manifests" in doc):
        children = [Descriptor.from_json(m) for m in doc.get("manifests") or []]
        with_platform = [(c, m) for c, m in zip(children, doc.get("manifests") or [], strict=True)
                         if isinstance(m.get("platform"), dict)]
        if with_platform:
            chosen = [c for c, m in with_platform if _platform_matches(m["platform"])][:1]
            if not chosen:
                arch, variant = host_arch()
                raise NotFound(f"no match for platform in manifest: linux/{arch}{'/' + variant if variant else ''}")
        else:
            chosen = children
        return [plan for child in chosen for plan in _walk(archive, child, depth + 1)]
    if media_type not in mt.MANIFEST_TYPES and "config" not in doc:
        raise InvalidParameter(f"invalid archive: unsupported media type {media_type}")
    config_desc = Descriptor.from_json(doc.get("config"))
    layers = []
    for raw in doc.get("layers") or []:
        layer = Descriptor.from_json(raw)
        if layer.media_type not in mt.LAYER_TYPES:
            raise InvalidParameter(f"invalid archive: unsupported layer media type {layer.media_type}")
        layers.append(LayerSource(_blob_path(layer.digest), layer.digest, layer.size))
    return [LoadPlan(_blob(archive, config_desc), layers)]


def _platform_matches(platform: dict[str, Any]) -> bool:
    arch, variant = host_arch()
    return platform_matches(platform, "linux", arch, variant)


def platform_matches(platform: dict[str, Any], os_name: str, arch: str, variant: str) -> bool:
    """Whether an index entry's ``platform`` runs as ``os_name/arch[/variant]`` (an entry without a
    variant matches any wanted variant, as containerd's platform matcher does for this case)."""
    if platform.get("os", "linux") != os_name or platform.get("architecture") != arch:
        return False
    return not variant or not platform.get("variant") or platform.get("variant") == variant


# -- storing -------------------------------------------------------------------------------

class ArchiveLoader:
    """Stores the images of load plans into an :class:`ImageService`, all or nothing.

    ``load`` takes a spooled archive; a pull (:mod:`dockyard.distribution.pull`) calls
    ``store_layers``, ``record`` and ``roll_back`` itself with its downloaded blobs as the files.
    """

    def __init__(self, images: ImageService) -> None:
        self.images = images
        self._new_chains: list[str] = []
        self._new_blobs: list[str] = []

    def load(self, archive: SpooledArchive) -> list[str]:
        """Load every image of ``archive``; returns Docker's messages (``Loaded image: busybox:latest``)."""
        plans = plans_of(archive)
        if not plans:
            raise InvalidParameter("invalid archive: no images found")
        try:
            stored = [(plan, self.store_layers(archive, plan)) for plan in plans]
            return self.record(stored)
        except BaseException:
            self.roll_back()
            raise

    def store_layers(self, archive: LayerFiles, plan: LoadPlan) -> list[LayerRecord]:
        snapshots = self.images.snapshots
        diff_ids = plan.diff_ids()
        records = []
        parent: str | None = None
        lease = current_lease()
        for source, diff_id, chain_id in zip(plan.layers, diff_ids, chain_ids(diff_ids), strict=True):
            if lease is not None:  # before looking: from now on the collector keeps what is there
                lease.add("layer", chain_id)
                lease.add("blob", diff_id)
                if source.verified and source.digest is not None:
                    lease.add("blob", source.digest)
            blob = self.stored_blob(source, diff_id) if snapshots.has(chain_id) else None
            if blob is None:
                if not snapshots.has(chain_id):
                    self._new_chains.append(chain_id)
                blob = self._store_layer(archive, source, diff_id, chain_id, parent)
            records.append(LayerRecord(blob.digest, blob.media_type, blob.size, diff_id, chain_id))
            parent = chain_id
        return records

    def stored_blob(self, source: LayerSource, diff_id: str) -> Descriptor | None:
        """A blob already stored for the layer with ``diff_id``, or None: the kept source itself
        (a pull's compressed blob, so the image keeps the registry's layer digests), the plain tar
        (named by the diff ID), or the blob another image records for that diff ID."""
        content = self.images.content
        if source.verified and source.digest is not None and content.exists(source.digest):
            kept = _kept_media_type(source, self._compression(source.digest))
            if kept is not None:
                return Descriptor(kept, source.digest, content.size(source.digest))
        if content.exists(diff_id):
            return Descriptor(mt.OCI_LAYER, diff_id, content.size(diff_id))
        lease = current_lease()
        for row in self.images.metadata.query("SELECT DISTINCT digest, media_type FROM image_layers "
                                              "WHERE diff_id = ?", (diff_id,)):
            digest = str(row[0])
            if lease is not None:
                lease.add("blob", digest)
            if content.exists(digest):
                return Descriptor(str(row[1]), digest, content.size(digest))
        return None

    def _compression(self, digest: str) -> str:
        with self.images.content.open(digest) as f:
            return compression_of(f.read(6))

    def _store_layer(self, archive: LayerFiles, source: LayerSource, diff_id: str, chain_id: str,
                     parent: str | None) -> Descriptor:
        """Unpack one layer (verifying its diff ID) and store its blob; returns the blob.

        A kept source (a verified gzip, zstd or plain blob of a pull) is the blob as it is. Else
        an uncompressed layer file *is* the blob: it is linked into the content store rather than
        written again; a compressed one is decompressed into a new blob while unpacking.
        """
        content, snapshots = self.images.content, self.images.snapshots
        with archive.open(source.path) as raw, contextlib.ExitStack() as stack:
            kind = compression_of(raw.read(6))
            raw.seek(0)
            kept = _kept_media_type(source, kind)
            # The plain tar's bytes go to a new blob as the unpack hashes them for the diff ID.
            blob = stack.enter_context(content.writer(hashed=False)) if kind != "none" and kept is None else None
            packed = PassThroughReader(raw) if source.verified else HashingReader(raw)  # type: ignore[arg-type]
            unpacked = snapshots.unpack(chain_id, packed, parent=parent, tee=blob)  # type: ignore[arg-type]
            _drain(packed)
            if unpacked != diff_id:  # unpack refuses a mismatch already; this guards the blob's name
                raise CorruptContent(f"digest mismatch: expected {diff_id}, got {unpacked}")
            found = packed.digest if isinstance(packed, HashingReader) else source.digest
            if source.digest is not None and found != source.digest:
                raise CorruptContent(f"digest mismatch: expected {source.digest}, got {found}")
            if source.size is not None and packed.count != source.size:
                raise CorruptContent(f"size mismatch: expected {source.size} bytes, got {packed.count}")
            if kind == "none" and found != diff_id:  # unpack checked the same bytes; this guards the shortcut
                raise CorruptContent(f"digest mismatch: expected {diff_id}, got {found}")
            if kept is not None and source.digest is not None:
                return Descriptor(kept, source.digest, packed.count)
            if not content.exists(diff_id):
                self._new_blobs.append(diff_id)
            if blob is not None:
                blob.commit(expected=diff_id)
        if blob is None:
            content.adopt(archive.path(source.path), diff_id)
        return Descriptor(mt.OCI_LAYER, diff_id, content.size(diff_id))

    def record(self, stored: list[tuple[LoadPlan, list[LayerRecord]]]) -> list[str]:
        store = self.images.store
        messages: list[str] = []
        # The records and tags of every image in the archive are one transaction: all or none.
        with store.lock, self.images.metadata.transaction(durable=True):
            for _plan, layers in stored:
                for layer in layers:  # an existing layer reused by this load may have been removed since
                    if not (self.images.snapshots.has(layer.chain_id) and self.images.content.exists(layer.digest)):
                        raise Conflict(f"layer {layer.chain_id} was removed while the archive was loading; "
                                       "load it again")
            for plan, layers in stored:
                image_id = store.create(plan.config, layers)
                for ref in plan.refs:
                    old = store.lookup(ref)
                    if old is not None and old != image_id:
                        messages.append(f"The image {ref.familiar()} already exists, renaming the old one "
                                        f"with ID {old} to empty string")
                    store.add_reference(ref, image_id)
                    store.set_last_tag_time(image_id, timestamps.now())
                    messages.append(f"Loaded image: {ref.familiar()}")
                if not plan.refs:
                    messages.append(f"Loaded image ID: {image_id}")
        return messages

    def roll_back(self) -> None:
        """Remove the layers and blobs this load created that no image record uses."""
        store = self.images.store
        with store.lock, self.images.metadata.transaction():
            used_chains: set[str] = set()
            used_blobs: set[str] = set()
            for image_id in store.ids():
                try:
                    record = store.get(image_id)
                except DockyardError:
                    continue
                used_chains.update(layer.chain_id for layer in record.layers)
                used_blobs.update(layer.digest for layer in record.layers)
                used_blobs.update({record.id, record.manifest})
            for chain_id in reversed(self._new_chains):
                if chain_id not in used_chains:
                    self.images.snapshots.remove_layer(chain_id)
            for digest in self._new_blobs:
                if digest not in used_blobs:
                    self.images.content.delete(digest)


def _kept_media_type(source: LayerSource, kind: str) -> str | None:
    """The media type a kept source is stored under (the OCI name of what its bytes are: the
    manifest's label is not trusted), or None when it is not kept: not a verified blob, or
    compressed in a way no OCI layer media type names (bzip2, xz), which is stored decompressed."""
    if not source.verified:
        return None
    nondistributable = source.media_type in (mt.OCI_LAYER_NONDISTRIBUTABLE, mt.OCI_LAYER_NONDISTRIBUTABLE_GZIP,
                                             mt.DOCKER_LAYER_FOREIGN)
    if kind == "gzip":
        return mt.OCI_LAYER_NONDISTRIBUTABLE_GZIP if nondistributable else mt.OCI_LAYER_GZIP
    if kind == "zstd" and not nondistributable:
        return mt.OCI_LAYER_ZSTD
    if kind == "none":
        return mt.OCI_LAYER_NONDISTRIBUTABLE if nondistributable else mt.OCI_LAYER
    return None


def _drain(reader: PassThroughReader) -> None:
    """Read whatever is left, e.g. the zero padding after a compressed tar's end."""
    buf = bytearray(1 << 20)
    while reader.readinto(buf) > 0:
        pass


def load_archive(images: ImageService, stream: Any, spool: Path) -> list[str]:
    """Spool the archive ``stream`` under ``spool`` (a private temp dir, removed afterwards) and load it."""
    with leases.hold(images.metadata, "load"):  # the collector keeps what the load writes meanwhile
        work = Path(tempfile.mkdtemp(prefix="load-", dir=spool))
        try:
            archive = SpooledArchive.unpack(stream, work)
            return ArchiveLoader(images).load(archive)
        finally:
            remove_tree(work)
