"""``docker commit``: a new image from a container's writable layer.

The new image is the container's image plus one layer made from the container's overlay upper
dir (whiteouts written back as ``.wh.<name>`` entries, opaque directories as ``.wh..wh..opq``;
see :mod:`dockyard.snapshots.tarwriter`). When the upper dir holds nothing, no layer is added and
the history entry is marked ``empty_layer``, as Docker does.

Terms: the *user config* is the ``Config`` sent in the request body with the ``--change`` lines
applied; Docker's ``merge`` then fills what it leaves unset from the container's own config
(User, Env by key, Cmd/Entrypoint, ExposedPorts, Labels, Volumes, WorkingDir, Healthcheck,
StopSignal).
"""

from __future__ import annotations

import copy
import json
import os
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.content import mediatypes as mt
from dockyard.formats import timestamps
from dockyard.images.changes import apply_changes, empty_container_config
from dockyard.images.service import DOCKER_VERSION, ImageService
from dockyard.images.store import LayerRecord
from dockyard.metadata import leases
from dockyard.snapshots import next_chain_id
from dockyard.snapshots.changes import is_init_placeholder
from dockyard.snapshots.copy_extract import CommittedLayerExtractor
from dockyard.snapshots.tarwriter import TreeTarWriter


@dataclass
class CommitRequest:
    """What ``POST /commit`` asks for (``container_config`` is the container's ``Config``)."""

    container_id: str
    image_id: str
    upper: Path
    container_config: dict[str, Any]
    user_config: dict[str, Any] | None = None
    changes: list[str] | None = None
    comment: str = ""
    author: str = ""
    repo: str = ""
    tag: str = ""


def merge_config(user: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """Docker's ``merge(userConf, imageConf)`` for commit: fill unset fields from the container."""
    out = copy.deepcopy(user)
    if not out.get("User"):
        out["User"] = container.get("User", "")
    for key in ("ExposedPorts", "Labels", "Volumes"):
        theirs = container.get(key) or {}
        if theirs:
            out[key] = {**theirs, **(out.get(key) or {})}
    env = list(out.get("Env") or [])
    have = {e.partition("=")[0] for e in env}
    env += [e for e in container.get("Env") or [] if e.partition("=")[0] not in have]
    out["Env"] = env or None
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = container.get("Cmd")
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = container.get("Entrypoint")
    for key in ("Healthcheck", "WorkingDir", "StopSignal"):
        if not out.get(key) and container.get(key):
            out[key] = container[key]
    return out


def commit(images: ImageService, req: CommitRequest) -> str:
    """Build and store the new image; returns its ID (``sha256:…``) and tags it if asked."""
    with leases.hold(images.metadata, "commit"):  # the collector keeps the layer until the record exists
        return _commit(images, req)


def _commit(images: ImageService, req: CommitRequest) -> str:
    base = images.resolve(req.image_id)
    record = images.store.get(base.id)
    spool = images.root / "tmp"
    spool.mkdir(parents=True, exist_ok=True, mode=0o700)

    user = empty_container_config()
    user.update(req.user_config or {})
    os_name = str(base.config.get("os") or "linux")
    config = merge_config(apply_changes(user, list(req.changes or []), os_name), req.container_config)

    layers = list(record.layers)
    diff_ids = list(base.diff_ids)
    parent = base.chain_ids[-1] if base.chain_ids else None
    stored_layer = _store_upper(images, req.upper, parent, spool, "commit-")
    empty = stored_layer is None
    if stored_layer is not None:
        layers.append(stored_layer[0])
        diff_ids.append(stored_layer[0].diff_id)

    created = timestamps.now()
    history_entry: dict[str, Any] = {"created": created}
    if req.author:
        history_entry["author"] = req.author
    history_entry["created_by"] = " ".join(req.container_config.get("Cmd") or [])
    if req.comment:
        history_entry["comment"] = req.comment
    if empty:
        history_entry["empty_layer"] = True
    image: dict[str, Any] = {
        "architecture": base.config.get("architecture", ""),
        "author": req.author,
        "comment": req.comment,
        "config": config,
        "container": req.container_id,
        "container_config": req.container_config,
        "created": created,
        "docker_version": DOCKER_VERSION,
        "history": [*(base.config.get("history") or []), history_entry],
        "os": os_name,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if base.config.get("variant"):
        image["variant"] = base.config["variant"]
    for key in ("author", "comment"):
        if not image[key]:
            del image[key]
    image_id = images.store.create(json.dumps(image, separators=(",", ":")).encode(), layers)
    images.store.set_parent(image_id, base.id)
    if req.repo:
        images.tag(image_id, req.repo, req.tag)
    return image_id


@dataclass
class BuildStep:
    """One build step's image, as Docker's classic builder commits it (``CommitBuildStep``): the
    step's ``config`` is stored as it is (no merge with the container's), ``container_config`` is
    the config the step ran or was probed with (its ``Cmd`` joined is the history's ``created_by``);
    ``upper`` is the step's writable layer (None: a config-only step, ``empty_layer``); ``parent_id``
    None builds on ``scratch``. ``platform`` is (os, architecture, variant) for a ``scratch`` base."""

    parent_id: str | None
    config: dict[str, Any]
    container_config: dict[str, Any]
    upper: Path | None = None
    container_id: str = ""
    author: str = ""
    platform: tuple[str, str, str] = ("linux", "", "")


def commit_step(images: ImageService, step: BuildStep) -> tuple[str, int]:
    """Store the image of one build step; returns (image ID, bytes of the layer it added)."""
    with leases.hold(images.metadata, "commit"):
        return _commit_step(images, step)


def _commit_step(images: ImageService, step: BuildStep) -> tuple[str, int]:
    base = images.resolve(step.parent_id) if step.parent_id else None
    layers = list(images.store.get(base.id).layers) if base else []
    diff_ids = list(base.diff_ids) if base else []
    base_config = base.config if base else {}
    added = 0
    empty = True
    if step.upper is not None:
        spool = images.root / "tmp"
        spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        parent = base.chain_ids[-1] if base and base.chain_ids else None
        stored_layer = _store_upper(images, step.upper, parent, spool, "build-")
        if stored_layer is not None:
            empty = False
            layers.append(stored_layer[0])
            diff_ids.append(stored_layer[0].diff_id)
            added = stored_layer[1]
    created = timestamps.now()
    entry: dict[str, Any] = {"created": created}
    if step.author:
        entry["author"] = step.author
    entry["created_by"] = " ".join(step.container_config.get("Cmd") or [])
    if empty:
        entry["empty_layer"] = True
    os_name, arch, variant = step.platform
    image: dict[str, Any] = {
        "architecture": base_config.get("architecture") or arch,
        "config": step.config,
        "container": step.container_id,
        "container_config": step.container_config,
        "created": created,
        "docker_version": DOCKER_VERSION,
        "history": [*(base_config.get("history") or []), entry],
        "os": base_config.get("os") or os_name,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if step.author:
        image["author"] = step.author
    image_variant = str(base_config.get("variant") or "") if base else variant
    if image_variant:
        image["variant"] = image_variant
    image_id = images.store.create(json.dumps(image, separators=(",", ":")).encode(), layers)
    if base is not None:
        images.store.set_parent(image_id, base.id)
    return image_id, added


def _store_upper(images: ImageService, upper: Path, parent: str | None, spool: Path,
                 prefix: str) -> tuple[LayerRecord, int] | None:
    """The layer of a container's upper dir on ``parent``: tarred in a spool file, unpacked as a
    snapshot, and the spool file itself stored as the (uncompressed) blob, whose digest is the diff
    ID the unpack computed (linked into the content store, neither copied nor hashed again); with
    the tar's size. None when the upper dir holds nothing. The spool is flushed to the disk while
    it is unpacked, so the store's own fsync of the blob finds little left to write."""
    with tempfile.NamedTemporaryFile(dir=spool, prefix=prefix) as layer_tar:
        writer = TreeTarWriter.to_file(layer_tar, overlay_whiteouts=True)  # type: ignore[arg-type]
        writer.skip = lambda path, st: not stat.S_ISDIR(st.st_mode) and is_init_placeholder(path, st)
        fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            writer.add_dir(fd, "", include_self=False)
        finally:
            os.close(fd)
        writer.close()
        if writer.entries == 0:
            return None
        size = layer_tar.tell()
        layer_tar.flush()
        syncing = threading.Thread(target=_fsync_quietly, args=(layer_tar.fileno(),), name="commit-fsync")
        syncing.start()
        try:
            layer_tar.seek(0)
            diff_id = images.snapshots.unpack(None, layer_tar, parent=parent,  # type: ignore[arg-type]
                                              extractor=CommittedLayerExtractor)
        finally:
            syncing.join()
        stored = images.content.adopt(Path(layer_tar.name), diff_id)
        return LayerRecord(stored.digest, mt.OCI_LAYER, stored.size, diff_id, next_chain_id(parent, diff_id)), size


def _fsync_quietly(fd: int) -> None:
    """Start the spool's data on its way to the disk (the blob store fsyncs it again, and reports)."""
    try:
        os.fsync(fd)
    except OSError:
        pass
