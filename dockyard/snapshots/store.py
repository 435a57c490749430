"""The snapshot store: layers unpacked once per chain ID, and containers' writable layers.

On disk (under ``root``)::

    layers/<chainid-hex>/diff/         the unpacked layer: an overlayfs lowerdir
    layers/<chainid-hex>/layer.json    {"chain_id", "diff_id", "parent", "size"}
    containers/<id>/upper/             the container's writable layer (overlay upperdir)
    containers/<id>/work/              overlayfs' workdir
    containers/<id>/merged/            where the container's rootfs is mounted
    tmp/                               layers while they are unpacked

A layer is unpacked into ``tmp/`` and renamed into ``layers/`` only once it is complete, so a
directory under ``layers/`` is always a whole layer; a failed unpack leaves nothing behind. (See
:mod:`dockyard.snapshots.chain` for diff IDs and chain IDs.)
"""

from __future__ import annotations

import errno
import json
import os
import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dockyard.content.digests import digest_from_hex, hex_of, validate_digest
from dockyard.errors import Conflict, CorruptContent, DockyardError, InvalidParameter, NotFound
from dockyard.snapshots.chain import next_chain_id
from dockyard.snapshots.extract import LayerExtractor, unpacked_size
from dockyard.snapshots.removal import remove_tree
from dockyard.snapshots.streams import HashingReader, decompressed

_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class LayerInfo:
    """An unpacked layer: its chain ID, diff ID, parent chain ID, and unpacked size in bytes."""

    chain_id: str
    diff_id: str
    parent: str | None
    size: int
    path: Path  # the lowerdir


@dataclass(frozen=True)
class ContainerLayer:
    """A container's overlay directories."""

    upper: Path
    work: Path
    rootfs: Path


class SnapshotStore:
    """Unpacked layers and container layers under ``root`` (layout in the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._layers = self.root / "layers"
        self._containers = self.root / "containers"
        self._tmp = self.root / "tmp"
        for d in (self._layers, self._containers, self._tmp):
            d.mkdir(parents=True, exist_ok=True)
        for leftover in self._tmp.iterdir():  # half-unpacked layers of a previous run
            remove_tree(leftover)

    # -- layers ----------------------------------------------------------------------------

    def layer_dir(self, chain_id: str) -> Path:
        return self._layers / hex_of(chain_id)

    def diff_dir(self, chain_id: str) -> Path:
        """The unpacked content of chain ``chain_id`` (its overlay lowerdir)."""
        return self.layer_dir(chain_id) / "diff"

    def has(self, chain_id: str) -> bool:
        return (self.layer_dir(chain_id) / "layer.json").is_file()

    def layer(self, chain_id: str) -> LayerInfo:
        """What is recorded of an unpacked layer; NotFound if it is not unpacked."""
        try:
            meta = json.loads((self.layer_dir(chain_id) / "layer.json").read_text())
        except FileNotFoundError:
            raise NotFound(f"layer {chain_id} is not unpacked") from None
        return LayerInfo(meta["chain_id"], meta["diff_id"], meta.get("parent"), int(meta["size"]),
                         self.diff_dir(chain_id))

    def list_layers(self) -> list[str]:
        """Chain IDs of every unpacked layer, sorted."""
        out = []
        for entry in self._layers.iterdir():
            try:
                chain_id = digest_from_hex(entry.name)
            except InvalidParameter:
                continue
            if self.has(chain_id):
                out.append(chain_id)
        return sorted(out)

    def unpack(self, chain_id: str | None, tar_stream: BinaryIO, *, parent: str | None = None,
               extractor: type[LayerExtractor] = LayerExtractor) -> str:
        """Unpack a layer tar (plain, gzip, bzip2, xz, or zstd) as chain ``chain_id``; returns its diff ID.

        ``parent`` is the chain ID of the layer beneath (None for a base layer). ``chain_id`` may
        be None when the diff ID is not known in advance (an import): it is then computed from
        ``parent`` and the diff ID. When both are given they must agree. The stream is read to
        its end. If the chain is already unpacked, the new copy is dropped. ``extractor`` is the
        :class:`LayerExtractor` (sub)class that applies the entries.
        """
        if chain_id is not None:
            validate_digest(chain_id)
        if parent is not None and not self.has(parent):
            raise NotFound(f"parent layer {parent} is not unpacked")
        tmp = Path(tempfile.mkdtemp(prefix="unpack-", dir=self._tmp))
        try:
            diff = tmp / "diff"
            diff.mkdir(mode=0o755)
            reader = HashingReader(decompressed(tar_stream))
            try:
                extractor(diff).extract_stream(reader)  # type: ignore[arg-type]
                reader.drain()
            except (tarfile.TarError, EOFError) as e:
                raise CorruptContent(f"invalid tar: {e}") from None
            diff_id = reader.digest
            computed = next_chain_id(parent, diff_id)
            if chain_id is None:
                chain_id = computed
            elif parent is not None and chain_id != computed:
                raise CorruptContent(f"layer chain mismatch: expected {chain_id}, got {computed}")
            elif parent is None and chain_id != diff_id:
                raise CorruptContent(f"digest mismatch: expected {chain_id}, got {diff_id}")
            meta = {"chain_id": chain_id, "diff_id": diff_id, "parent": parent, "size": unpacked_size(diff)}
            with open(tmp / "layer.json", "w") as f:
                json.dump(meta, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o700)
            try:
                os.rename(tmp, self.layer_dir(chain_id))
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                # unpacked meanwhile by someone else: theirs is as good as ours
            _fsync_dir(self._layers)
            return diff_id
        except DockyardError:
            raise
        except OSError as e:
            raise DockyardError(f"unpacking layer: {e}") from e
        finally:
            remove_tree(tmp)

    def lowerdirs(self, chain_ids: list[str]) -> list[Path]:
        """The lowerdirs for a stack of layers given bottom-most first; returned top-most first."""
        out = []
        for chain_id in reversed(chain_ids):
            if not self.has(chain_id):
                raise NotFound(f"layer {chain_id} is not unpacked")
            out.append(self.diff_dir(chain_id))
        return out

    def remove_layer(self, chain_id: str) -> bool:
        """Delete an unpacked layer; returns whether it existed. The caller checks it is unused."""
        path = self.layer_dir(chain_id)
        if not os.path.lexists(path):
            return False
        # Rename first, so the layer vanishes at once and a crash leaves only tmp/ litter.
        doomed = Path(tempfile.mkdtemp(prefix="remove-", dir=self._tmp))
        os.rename(path, doomed / "layer")
        remove_tree(doomed)
        return True

    # -- containers --------------------------------------------------------------------------

    def container_dir(self, container_id: str) -> Path:
        if not isinstance(container_id, str) or _CONTAINER_ID.fullmatch(container_id) is None:
            raise InvalidParameter(f"invalid container ID: {container_id!r}")
        return self._containers / container_id

    def prepare(self, container_id: str, lowerdirs: list[Path] | None = None) -> ContainerLayer:
        """Create (or reuse) ``containers/<id>/{upper,work,merged}``; returns (upper, work, rootfs).

        ``lowerdirs`` (top-most first), when given, are recorded in ``containers/<id>/lower``
        (colon-separated, as overlay's option wants them) for :meth:`lowerdirs_of`.
        """
        base = self.container_dir(container_id)
        base.mkdir(mode=0o700, exist_ok=True)
        layer = ContainerLayer(base / "upper", base / "work", base / "merged")
        for d in (layer.upper, layer.work, layer.rootfs):
            d.mkdir(mode=0o755, exist_ok=True)
        if lowerdirs is not None:
            tmp = base / "lower.tmp"
            tmp.write_text(":".join(str(p) for p in lowerdirs))
            os.replace(tmp, base / "lower")
        return layer

    def lowerdirs_of(self, container_id: str) -> list[Path]:
        """The lowerdirs recorded by :meth:`prepare` (top-most first); empty if none were."""
        try:
            text = (self.container_dir(container_id) / "lower").read_text()
        except FileNotFoundError:
            return []
        return [Path(p) for p in text.split(":") if p]

    def remove_container(self, container_id: str) -> bool:
        """Delete a container's writable layer; returns whether it existed.

        Refuses (Conflict) while its rootfs is still mounted: removing files through a live
        overlay mount would write whiteouts rather than free anything.
        """
        base = self.container_dir(container_id)
        if not os.path.lexists(base):
            return False
        merged = base / "merged"
        if os.path.isdir(merged) and not os.path.islink(merged) and os.path.ismount(merged):
            raise Conflict(f"the root filesystem of container {container_id} is still mounted")
        remove_tree(base)
        return True

    def list_containers(self) -> list[str]:
        return sorted(p.name for p in self._containers.iterdir())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
