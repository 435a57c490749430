"""The snapshot store: layers unpacked once per chain ID, and containers' writable layers.

On disk (under ``root``)::

    layers/<chainid-hex>/diff/         the unpacked layer: an overlayfs lowerdir
    containers/<id>/upper/             the container's writable layer (overlay upperdir)
    containers/<id>/work/              overlayfs' workdir
    containers/<id>/merged/            where the container's rootfs is mounted
    tmp/                               layers while they are unpacked

A layer is unpacked into ``tmp/`` and renamed into ``layers/`` only once it is complete, so a
directory under ``layers/`` is always a whole layer; a failed unpack leaves nothing behind. Only
then is its row (chain ID, diff ID, parent, size) added to the ``layers`` table of the metadata
database, and a layer exists when its row does: a crash in between leaves a directory without a
row, which the collector removes. A removal deletes the row first and the directory after the
transaction commits. A container's lowerdirs and the chain it stands on are its row in
``container_snapshots``. (See :mod:`dockyard.snapshots.chain` for diff IDs and chain IDs.)
"""

from __future__ import annotations

import errno
import io
import os
import re
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dockyard.content.digests import hex_of, validate_digest
from dockyard.errors import Conflict, CorruptContent, DockyardError, InvalidParameter, NotFound
from dockyard.metadata import MetadataDB, current_lease, open_db
from dockyard.snapshots.bounds import LayerLimits, SizeCap
from dockyard.snapshots.chain import next_chain_id
from dockyard.snapshots.extract import LayerExtractor, unpacked_size
from dockyard.snapshots.removal import remove_tree
from dockyard.snapshots.streams import HashingReader, Writable, decompressed

_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_TAR_BUFFER = 1 << 16  # tarfile reads 10 KiB at a time; larger pieces cost more in allocation than they save


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

    def __init__(self, root: Path, metadata: MetadataDB | None = None) -> None:
        self.root = Path(root)
        self.db = metadata if metadata is not None else open_db(self.root.parent)
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
        return self.db.one("SELECT 1 FROM layers WHERE chain_id = ?", (chain_id,)) is not None

    def layer(self, chain_id: str) -> LayerInfo:
        """What is recorded of an unpacked layer; NotFound if it is not unpacked."""
        row = self.db.one("SELECT chain_id, diff_id, parent, size FROM layers WHERE chain_id = ?", (chain_id,))
        if row is None:
            raise NotFound(f"layer {chain_id} is not unpacked")
        return LayerInfo(str(row[0]), str(row[1]), row[2], int(row[3]), self.diff_dir(chain_id))

    def list_layers(self) -> list[str]:
        """Chain IDs of every unpacked layer, sorted."""
        return [str(r[0]) for r in self.db.query("SELECT chain_id FROM layers ORDER BY chain_id")]

    def layer_dirs(self) -> list[str]:
        """The names of the directories under ``layers/`` (rows or not), for the collector and checks."""
        return sorted(entry.name for entry in os.scandir(self._layers))

    def unpack(self, chain_id: str | None, tar_stream: BinaryIO, *, parent: str | None = None,
               extractor: type[LayerExtractor] = LayerExtractor, tee: Writable | None = None) -> str:
        """Unpack a layer tar (plain, gzip, bzip2, xz, or zstd) as chain ``chain_id``; returns its diff ID.

        ``parent`` is the chain ID of the layer beneath (None for a base layer). ``chain_id`` may
        be None when the diff ID is not known in advance (an import): it is then computed from
        ``parent`` and the diff ID. When both are given they must agree. The stream is read to
        its end. If the chain is already unpacked, the new copy is dropped. ``extractor`` is the
        :class:`LayerExtractor` (sub)class that applies the entries. ``tee``, when given, gets every
        byte of the plain tar as it is hashed (the load keeps it as the layer's blob, whose digest
        is then the diff ID this returns, without hashing it again).
        """
        if chain_id is not None:
            validate_digest(chain_id)
        if parent is not None and not self.has(parent):
            raise NotFound(f"parent layer {parent} is not unpacked")
        tmp = Path(tempfile.mkdtemp(prefix="unpack-", dir=self._tmp))
        try:
            diff = tmp / "diff"
            diff.mkdir(mode=0o755)
            limits = LayerLimits.from_env()
            reader = HashingReader(SizeCap(decompressed(tar_stream, limits), limits), tee)  # type: ignore[arg-type]
            try:
                # tarfile reads 10 KiB at a time: through a buffer, the hash (and everything beneath
                # it) works in pieces six times larger and hands the GIL around less often.
                extractor(diff).extract_stream(io.BufferedReader(reader, buffer_size=_TAR_BUFFER))  # type: ignore[arg-type]
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
            size = unpacked_size(diff)
            _fsync_dir(diff)
            os.chmod(tmp, 0o700)
            lease = current_lease()
            if lease is not None:
                lease.add("layer", chain_id)
            # The rename and the row under the database's lock: the collector removes a directory
            # without a row under the same lock (discard_layer_dir), so it never takes one we adopt.
            with self.db.transaction(durable=True) as conn:
                try:
                    os.rename(tmp, self.layer_dir(chain_id))
                except OSError as e:
                    if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
                    # unpacked meanwhile by someone else (or left without a row by a crash): as good as ours
                _fsync_dir(self._layers)
                conn.execute("INSERT OR IGNORE INTO layers VALUES (?, ?, ?, ?, NULL, ?)",
                             (chain_id, diff_id, parent, size, time.time()))
            return diff_id
        except DockyardError:
            raise
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DockyardError(f"unpacking layer: {os.strerror(e.errno).lower()}") from None
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
        """Delete an unpacked layer (its row now, its directory once the caller's transaction
        commits); returns whether it existed. The caller checks it is unused."""
        existed = self.db.execute("DELETE FROM layers WHERE chain_id = ?", (chain_id,)) > 0
        self.db.after_commit(lambda: self.remove_layer_dir(chain_id))
        return existed or os.path.lexists(self.layer_dir(chain_id))

    def remove_layer_dir(self, chain_id: str) -> bool:
        """Delete a layer's directory (its row already gone); returns whether it was removed."""
        return self.discard_layer_dir(hex_of(chain_id))

    def discard_layer_dir(self, name: str) -> bool:
        """Delete ``layers/<name>`` unless a row names it (checked, and the directory renamed away,
        under the database's lock: see :meth:`unpack`); returns whether it was removed."""
        path = self._layers / name
        with self.db.lock:
            if self.db.one("SELECT 1 FROM layers WHERE chain_id = ?", ("sha256:" + name,)) is not None:
                return False  # adopted again meanwhile
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
            parent = "sha256:" + lowerdirs[0].parent.name if lowerdirs else None
            self.db.execute("INSERT OR REPLACE INTO container_snapshots VALUES (?, ?, ?)",
                            (container_id, parent, ":".join(str(p) for p in lowerdirs)))
        return layer

    def lowerdirs_of(self, container_id: str) -> list[Path]:
        """The lowerdirs recorded by :meth:`prepare` (top-most first); empty if none were."""
        text = self.db.scalar("SELECT lowers FROM container_snapshots WHERE container_id = ?",
                              (self.container_dir(container_id).name,))
        return [Path(p) for p in str(text or "").split(":") if p]

    def container_parents(self) -> dict[str, str | None]:
        """Every container snapshot's top-most chain ID (None on no layer), by container ID."""
        return {str(r[0]): r[1] for r in self.db.query("SELECT container_id, parent FROM container_snapshots")}

    def remove_container(self, container_id: str) -> bool:
        """Delete a container's writable layer; returns whether it existed.

        Refuses (Conflict) while its rootfs is still mounted: removing files through a live
        overlay mount would write whiteouts rather than free anything.
        """
        base = self.container_dir(container_id)
        merged = base / "merged"
        if os.path.isdir(merged) and not os.path.islink(merged) and os.path.ismount(merged):
            raise Conflict(f"the root filesystem of container {container_id} is still mounted")
        had_row = self.db.execute("DELETE FROM container_snapshots WHERE container_id = ?", (container_id,)) > 0
        if not os.path.lexists(base):
            return had_row
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
