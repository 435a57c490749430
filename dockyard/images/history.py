"""``GET /images/{name}/history``: the image config's ``history``, newest first, with layer sizes.

Each history entry either made a layer or is an *empty layer* (``"empty_layer": true``: ENV,
CMD, …). Non-empty entries map, in order, onto the image's layers, so an entry's ``Size`` is the
unpacked size of its own layer (0 for empty ones). As Docker (with its graph driver) answers,
only the newest entry carries the image ID and tags; older ones say ``<missing>``, since their
intermediate images are not stored.
"""

from __future__ import annotations

from typing import Any

from dockyard.errors import DockyardError
from dockyard.formats import timestamps
from dockyard.images.service import ImageService

MISSING = "<missing>"


def image_history(images: ImageService, ref: str) -> list[dict[str, Any]]:
    image = images.resolve(ref)
    entries = image.config.get("history") or []
    layer_sizes: list[int] = []
    for chain_id in image.chain_ids:
        try:
            layer_sizes.append(images.snapshots.layer(chain_id).size)
        except DockyardError:
            layer_sizes.append(0)
    out: list[dict[str, Any]] = []
    layer_index = 0
    for i, entry in enumerate(entries):
        newest = i == len(entries) - 1
        size = 0
        if not entry.get("empty_layer"):
            size = layer_sizes[layer_index] if layer_index < len(layer_sizes) else 0
            layer_index += 1
        out.append({
            "Id": image.id if newest else MISSING,
            "Created": timestamps.unix_seconds(str(entry.get("created") or "")),
            "CreatedBy": entry.get("created_by", ""),
            "Tags": (image.repo_tags or None) if newest else None,
            "Size": size,
            "Comment": entry.get("comment", ""),
        })
    return list(reversed(out))
