"""Layer 2: layer tars unpacked once per chain ID (safe extraction, overlayfs whiteouts), and
per-container upper/work dirs."""

from dockyard.snapshots.chain import chain_ids, next_chain_id
from dockyard.snapshots.extract import LayerExtractor, clean_name
from dockyard.snapshots.removal import remove_tree
from dockyard.snapshots.store import ContainerLayer, LayerInfo, SnapshotStore
from dockyard.snapshots.streams import HashingReader, decompressed

__all__ = ["ContainerLayer", "HashingReader", "LayerExtractor", "LayerInfo", "SnapshotStore", "chain_ids",
           "clean_name", "decompressed", "next_chain_id", "remove_tree"]
