"""The image service: import, resolve, list, inspect, tag, remove; a container's layers.

It owns a :class:`ContentStore` (``root/content``), a :class:`SnapshotStore`
(``root/snapshots``) and an :class:`ImageStore`, whose records — like the snapshots' — live in the
root's metadata database (``root/metadata.db``, :mod:`dockyard.metadata`; ``metadata`` here).
Methods block; the daemon runs slow ones (import) in a thread. Outputs have the shapes of Docker's Engine API
(``GET /images/json``, ``GET /images/{name}/json``, ``DELETE /images/{name}``).
"""

from __future__ import annotations

import builtins
import json
import platform as host_platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from dockyard import filters as docker_filters
from dockyard.content import ContentStore
from dockyard.content import mediatypes as mt
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.formats import timestamps
from dockyard.images.changes import apply_changes, empty_container_config
from dockyard.images.reference import (
    IdReference,
    Reference,
    familiar_match,
    is_id_prefix,
    parse_any,
    parse_normalized,
    repo_tag_reference,
)
from dockyard.images.store import ImageRecord, ImageStore, LayerRecord
from dockyard.metadata import leases, open_db
from dockyard.snapshots import SnapshotStore, chain_ids
from dockyard.snapshots.streams import decompressed

DOCKER_VERSION = "dockyard-0.1.0"
GRAPH_DRIVER = "overlay2"

_MACHINE_TO_ARCH = {
    "x86_64": ("amd64", ""), "amd64": ("amd64", ""), "aarch64": ("arm64", ""), "arm64": ("arm64", ""),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "i386": ("386", ""), "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", ""),
}


def host_arch() -> tuple[str, str]:
    """The host's (architecture, variant) in Go's GOARCH spelling."""
    machine = host_platform.machine().lower()
    return _MACHINE_TO_ARCH.get(machine, (machine, ""))


def parse_platform(text: str) -> tuple[str, str, str]:
    """``os[/arch[/variant]]`` → (os, architecture, variant); empty means the host's."""
    arch, variant = host_arch()
    if not text:
        return "linux", arch, variant
    parts = text.lower().split("/")
    if len(parts) > 3 or not all(parts):
        raise InvalidParameter(f'"{text}": unknown operating system or architecture: invalid argument')
    os_name = parts[0]
    if os_name != "linux":
        raise InvalidParameter("operating system is not supported")
    if len(parts) >= 2:
        arch = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "i386": "386"}.get(parts[1], parts[1])
        variant = parts[2] if len(parts) == 3 else ""
    return os_name, arch, variant


def short_id(image_id: str) -> str:
    """Docker's ``stringid.TruncateID``: the hex after ``sha256:``, cut to 12 characters."""
    return image_id.partition(":")[2][:12] if ":" in image_id else image_id[:12]


@dataclass
class Image:
    """A resolved image: ID (``sha256:…``), config dict, diff IDs and chain IDs (bottom-most first),
    familiar tags and digests, creation time (RFC 3339) and size in bytes (sum of unpacked layers)."""

    id: str
    config: dict[str, Any]
    diff_ids: builtins.list[str]
    chain_ids: builtins.list[str]
    repo_tags: builtins.list[str]
    repo_digests: builtins.list[str]
    created: str
    size: int


def _tracking(stream: BinaryIO, sink: Any) -> Any:
    """A reader that copies what is read from ``stream`` into ``sink``."""

    class Tee:
        def read(self, n: int = -1) -> bytes:
            data = stream.read(n)
            if data:
                sink.write(data)
            return data

    return Tee()


class ImageService:
    """Images under ``root``: ``content/``, ``snapshots/`` and ``images/``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.metadata = open_db(self.root)  # the root's one metadata database (dockyard.metadata)
        self.content = ContentStore(self.root / "content")
        self.snapshots = SnapshotStore(self.root / "snapshots", self.metadata)
        self.store = ImageStore(self.root / "images", self.content, self.snapshots, self.metadata)

    # -- import ------------------------------------------------------------------------

    def import_tarball(self, stream: BinaryIO, reference: str | None, changes: builtins.list[str] | None = None,
                       message: str = "", platform: str = "") -> str:
        """Import a rootfs tar (plain or compressed) as a one-layer image; returns its ID.

        Mirrors ``docker import -``: the comment is ``message`` or ``Imported from -``; the
        layer is stored uncompressed (``application/vnd.oci.image.layer.v1.tar``).
        """
        new_ref: Reference | None = None
        if reference:
            new_ref = parse_normalized(reference)
            if new_ref.is_canonical:
                raise InvalidParameter("cannot import digest reference")
            new_ref = new_ref.tag_name_only()
        os_name, arch, variant = parse_platform(platform)
        config = apply_changes(empty_container_config(), list(changes or []), os_name)
        comment = message or "Imported from -"
        with leases.hold(self.metadata, "import"):  # the collector keeps the layer until the record exists
            return self._import(stream, new_ref, config, comment, os_name, arch, variant)

    def _import(self, stream: BinaryIO, new_ref: Reference | None, config: dict[str, Any], comment: str,
                os_name: str, arch: str, variant: str) -> str:
        with self.content.writer() as blob:
            diff_id = self.snapshots.unpack(None, _tracking(decompressed(stream), blob))
            stored = blob.commit(expected=diff_id)
        created = timestamps.now()
        image: dict[str, Any] = {
            "architecture": arch,
            "comment": comment,
            "config": config,
            "created": created,
            "docker_version": DOCKER_VERSION,
            "history": [{"created": created, "comment": comment}],
            "os": os_name,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
        if variant:
            image["variant"] = variant
        layer = LayerRecord(stored.digest, mt.OCI_LAYER, stored.size, diff_id, diff_id)
        image_id = self.store.create(json.dumps(image, separators=(",", ":")).encode(), [layer])
        if new_ref is not None:
            self._tag(image_id, new_ref)
        return image_id

    # -- lookups ----------------------------------------------------------------------

    def resolve_id(self, ref: str) -> str:
        """The image ID ``ref`` names (reference, full ID, ``sha256:`` ID, or unique ID prefix)."""
        parsed = parse_any(ref)
        if isinstance(parsed, IdReference):
            if self.store.exists(parsed.digest):
                return parsed.digest
            raise NotFound(f"No such image: {parsed.digest}")
        found = self.store.lookup(parsed.tag_name_only())
        if found is not None and self.store.exists(found):
            return found
        by_prefix = self.store.search(ref)
        if by_prefix is not None:
            return by_prefix
        raise NotFound(f"No such image: {parsed.tag_name_only().familiar()}")

    def resolve(self, ref: str) -> Image:
        """The :class:`Image` ``ref`` names; NotFound ``No such image: busybox:latest`` if none."""
        return self._image(self.resolve_id(ref))

    def _image(self, image_id: str) -> Image:
        record = self.store.get(image_id)
        config = self.store.config(image_id)
        refs = self.store.references(image_id)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        return Image(
            id=image_id,
            config=config,
            diff_ids=diff_ids,
            chain_ids=chain_ids(diff_ids),
            repo_tags=[r.familiar() for r in refs if r.tag is not None and not r.is_canonical],
            repo_digests=[r.familiar() for r in refs if r.is_canonical],
            created=str(config.get("created") or timestamps.ZERO_TIME),
            size=self._size(record),
        )

    def _size(self, record: ImageRecord) -> int:
        total = 0
        for layer in record.layers:
            if self.snapshots.has(layer.chain_id):
                total += self.snapshots.layer(layer.chain_id).size
        return total

    # -- list / inspect ---------------------------------------------------------------

    def list(self, all: bool = False, filters: dict[str, Any] | None = None) -> builtins.list[dict[str, Any]]:
        """``GET /images/json``: summaries, newest first. Filters: dangling, reference, label,
        before, since. Untagged images get empty ``RepoTags``/``RepoDigests`` (the API layer adds
        ``<none>:<none>`` for API versions before 1.43)."""
        f = docker_filters.normalize(filters)
        for key in f:
            if key not in ("dangling", "reference", "label", "before", "since"):
                raise InvalidParameter(f"invalid filter '{key}'")
        dangling: bool | None = None
        if "dangling" in f:
            values = {v.lower() for v in f["dangling"]}
            if not values <= {"true", "1", "false", "0"} or len({v in ("true", "1") for v in values}) > 1:
                raise InvalidParameter(f"Invalid filter 'dangling={sorted(f['dangling'])[0]}'")
            dangling = next(iter(values)) in ("true", "1")
        before = self._created_of(f.get("before"), "before")
        since = self._created_of(f.get("since"), "since")
        out = []
        for image_id in self.store.ids():
            image = self._image(image_id)
            created_ns = timestamps.stored_ns(image.created)
            if before is not None and created_ns >= before:
                continue
            if since is not None and created_ns <= since:
                continue
            labels = (image.config.get("config") or {}).get("Labels") or {}
            if "label" in f and not builtins.all(_label_matches(labels, want) for want in f["label"]):
                continue
            refs = self.store.references(image_id)
            if "reference" in f:
                refs = [r for r in refs if any(familiar_match(p, r) for p in f["reference"])]
            tags = [r.familiar() for r in refs if r.tag is not None and not r.is_canonical]
            digests = [r.familiar() for r in refs if r.is_canonical]
            if not tags and not digests:
                if dangling is False or "reference" in f:
                    continue
                # an untagged image with children is an intermediate one (a build step's, a commit's
                # parent): listed only with ``all``, and never as dangling (Docker lists heads only)
                if (not all or dangling is True) and self.store.children(image_id):
                    continue
            elif dangling is True:
                continue
            out.append({
                "Id": image_id,
                "ParentId": self.store.parent_of(image_id),
                "RepoTags": tags,
                "RepoDigests": digests,
                "Created": created_ns // 1_000_000_000,
                "Size": image.size,
                "SharedSize": -1,
                "VirtualSize": image.size,
                "Labels": labels or None,
                "Containers": -1,
            })
        out.sort(key=lambda s: (s["Created"], s["Id"]), reverse=True)
        return out

    def _created_of(self, values: builtins.list[str] | None, name: str) -> int | None:
        if not values:
            return None
        return timestamps.stored_ns(self.resolve(values[0]).created)

    def inspect(self, ref: str) -> dict[str, Any]:
        """``GET /images/{name}/json``."""
        image = self.resolve(ref)
        record = self.store.get(image.id)
        cfg = image.config
        top = self.snapshots.layer_dir(image.chain_ids[-1]) if image.chain_ids else None
        lowers = [str(p) for p in self.snapshots.lowerdirs(image.chain_ids)[1:]] if image.chain_ids else []
        data: dict[str, str] = {}
        if top is not None:
            if lowers:
                data["LowerDir"] = ":".join(lowers)
            data.update({"MergedDir": str(top / "merged"), "UpperDir": str(top / "diff"), "WorkDir": str(top / "work")})
        out: dict[str, Any] = {
            "Id": image.id,
            "RepoTags": image.repo_tags,
            "RepoDigests": image.repo_digests,
            "Parent": record.parent or "",
            "Comment": cfg.get("comment", ""),
            "Created": image.created,
            "Container": cfg.get("container", ""),
            "ContainerConfig": cfg.get("container_config") or empty_container_config(),
            "DockerVersion": cfg.get("docker_version", ""),
            "Author": cfg.get("author", ""),
            # OCI configs (skopeo, buildah) carry only the fields they set; Docker shows them all
            "Config": {**empty_container_config(), **(cfg.get("config") or {})},
            "Architecture": cfg.get("architecture", ""),
            "Os": cfg.get("os", ""),
            "Size": image.size,
            "VirtualSize": image.size,
            "GraphDriver": {"Name": GRAPH_DRIVER, "Data": data},
            "RootFS": {"Type": "layers", "Layers": image.diff_ids},
            "Metadata": {"LastTagTime": record.last_tag_time or timestamps.ZERO_TIME},
        }
        if cfg.get("variant"):
            out["Variant"] = cfg["variant"]
        return out

    def history(self, ref: str) -> builtins.list[dict[str, Any]]:
        """``GET /images/{name}/history``, newest first."""
        image = self.resolve(ref)
        out = []
        for i, h in enumerate(image.config.get("history") or []):
            out.append({
                "Id": image.id if i == len(image.config["history"]) - 1 else "<missing>",
                "Created": timestamps.unix_seconds(h.get("created", "")),
                "CreatedBy": h.get("created_by", ""),
                "Tags": image.repo_tags if i == len(image.config["history"]) - 1 else None,
                "Size": image.size if not h.get("empty_layer") else 0,
                "Comment": h.get("comment", ""),
            })
        return list(reversed(out))

    # -- tag / remove -----------------------------------------------------------------

    def tag(self, source_ref: str, repo: str, tag: str = "") -> str:
        """``docker tag``: point ``repo:tag`` at the image ``source_ref`` names; returns the familiar new tag."""
        new_ref = repo_tag_reference(repo, tag)
        if new_ref.familiar_name() == "sha256":
            raise InvalidParameter("refusing to create an ambiguous tag using digest algorithm as name")
        image_id = self.resolve_id(source_ref)
        self._tag(image_id, new_ref)
        return new_ref.familiar()

    def _tag(self, image_id: str, ref: Reference) -> None:
        with self.store.lock, self.metadata.transaction(durable=True):  # a tag move is one change
            self.store.add_reference(ref, image_id)
            self.store.set_last_tag_time(image_id, timestamps.now())

    def remove(self, ref: str, force: bool = False, prune: bool = True,
               in_use: Callable[[str], str | None] = lambda image_id: None,
               running: Callable[[str], str | None] | None = None) -> builtins.list[dict[str, str]]:
        """``docker rmi``, with Docker's rules and messages; returns ``[{"Untagged": …}, {"Deleted": …}]``.

        ``in_use(image_id)`` returns the ID of a container (running or not) using the image, or
        None; ``running(image_id)`` the ID of a *running* one. Without ``running``, any container
        ``in_use`` reports counts as running (the removal then cannot be forced).
        With ``prune`` (the API's default; ``noprune=1`` turns it off) the deleted image's parents
        go too while each is untagged, childless and unused (:mod:`dockyard.images.dangling_chain`),
        as in Docker. An image with child images (committed from it) is never deleted: removing its
        last tag only untags it, as in Docker.
        """
        running_of = running if running is not None else in_use

        def stopped_of(image_id: str) -> str | None:
            return in_use(image_id) if running is not None else None

        # One transaction: a crash leaves every reference and record or none of the change; blobs and
        # layer directories go after the commit (ImageStore.delete).
        with self.store.lock, self.metadata.transaction(durable=True):
            image_id = self.resolve_id(ref)
            refs = self.store.references(image_id)
            records: builtins.list[dict[str, str]] = []
            if not is_id_prefix(image_id, ref):
                parsed = parse_normalized(ref).tag_name_only()
                if not force and _is_single_reference(refs):
                    user = in_use(image_id)
                    if user is not None:
                        raise Conflict(
                            f'conflict: unable to remove repository reference "{ref}" (must force) - '
                            f"container {short_id(user)} is using its referenced image {short_id(image_id)}")
                self.store.delete_reference(parsed)
                records.append({"Untagged": parsed.familiar()})
                refs = self.store.references(image_id)
                if not parsed.is_canonical and not any(
                        not r.is_canonical and r.name == parsed.name for r in refs):
                    for r in [r for r in refs if r.is_canonical and r.name == parsed.name]:
                        self.store.delete_reference(r)
                        records.append({"Untagged": r.familiar()})
                    refs = self.store.references(image_id)
                if refs:
                    return records
                quiet = True
            else:
                if _is_single_reference(refs):
                    self._check_conflicts(image_id, force=force, check_refs=False, running_of=running_of,
                                          stopped_of=stopped_of)
                    for r in refs:
                        self.store.delete_reference(r)
                        records.append({"Untagged": r.familiar()})
                quiet = False
            try:
                self._check_conflicts(image_id, force=force, check_refs=True, running_of=running_of,
                                      stopped_of=stopped_of)
            except Conflict:
                if quiet:
                    return records
                raise
            for r in self.store.references(image_id):
                self.store.delete_reference(r)
                records.append({"Untagged": r.familiar()})
            keep = in_use(image_id) is not None
            parent = self.store.parent_of(image_id)
            removed = self.store.delete(image_id, keep_layers=keep)
            records.append({"Deleted": image_id})
            records.extend({"Deleted": chain} for chain in removed)
            if prune and parent:
                from dockyard.images.dangling_chain import delete_dangling_chain

                records.extend(delete_dangling_chain(self, parent, in_use=in_use)[0])
            return records

    def _check_conflicts(self, image_id: str, *, force: bool, check_refs: bool,
                         running_of: Callable[[str], str | None], stopped_of: Callable[[str], str | None]) -> None:
        def conflict(hard: bool, message: str) -> Conflict:
            how = "cannot be forced" if hard else "must be forced"
            return Conflict(f"conflict: unable to delete {short_id(image_id)} ({how}) - {message}")

        if self.store.children(image_id):
            raise conflict(True, "image has dependent child images")
        user = running_of(image_id)
        if user is not None:
            raise conflict(True, f"image is being used by running container {short_id(user)}")
        if force:
            return
        if check_refs and self.store.references(image_id):
            raise conflict(False, "image is referenced in multiple repositories")
        user = stopped_of(image_id)
        if user is not None:
            raise conflict(False, f"image is being used by stopped container {short_id(user)}")

    # -- containers' layers -------------------------------------------------------------

    def _as_image(self, image: Image | str) -> Image:
        return image if isinstance(image, Image) else self.resolve(image)

    def rootfs_layers(self, image: Image | str) -> builtins.list[Path]:
        """The image's unpacked layers as overlay lowerdirs, top-most first."""
        return self.snapshots.lowerdirs(self._as_image(image).chain_ids)

    def prepare_container(self, container_id: str, image: Image | str) -> tuple[builtins.list[Path], Path, Path, Path]:
        """Create the container's writable layer; returns (lowerdirs, upper, work, rootfs)."""
        lowers = self.rootfs_layers(image)
        layer = self.snapshots.prepare(container_id, lowers)
        return lowers, layer.upper, layer.work, layer.rootfs

    def remove_container_layer(self, container_id: str) -> bool:
        return self.snapshots.remove_container(container_id)

    def graph_driver(self, container_id: str) -> dict[str, Any]:
        """A container's ``GraphDriver`` for ``GET /containers/{id}/json`` (overlay2's field names)."""
        base = self.snapshots.container_dir(container_id)
        if not base.is_dir():
            return {"Name": GRAPH_DRIVER, "Data": None}
        data = {"MergedDir": str(base / "merged"), "UpperDir": str(base / "upper"), "WorkDir": str(base / "work")}
        lowers = self.snapshots.lowerdirs_of(container_id)
        if lowers:
            data["LowerDir"] = ":".join(str(p) for p in lowers)
        return {"Name": GRAPH_DRIVER, "Data": dict(sorted(data.items()))}


def _is_single_reference(refs: builtins.list[Reference]) -> bool:
    """Docker's isSingleReference: one repository, at most one tag (digests of it allowed)."""
    if len(refs) <= 1:
        return len(refs) == 1
    single: Reference | None = None
    canonical_names: set[str] = set()
    for r in refs:
        if r.is_canonical:
            canonical_names.add(r.name)
        elif single is None:
            single = r
        else:
            return False
    if single is None:
        single = refs[0]
    return len(canonical_names) == 1 and single.name in canonical_names


def _label_matches(labels: dict[str, str], want: str) -> bool:
    key, has_value, value = want.partition("=")
    if key not in labels:
        return False
    return not has_value or labels[key] == value
