"""``docker image prune``: remove images no container uses, with Docker's filters.

Filters (``POST /images/prune?filters=…``):

- ``dangling=true`` (the default): only *dangling* images, those with no reference and no child
  image (an untagged image with children is an intermediate one, as in Docker), and none the build
  cache holds (``builder prune`` removes those); ``dangling=false`` (``prune -a``): every image
  no container uses and no child image stands on, references removed first, until none is left.
  Each removal also removes the parents it leaves dangling, as Docker's does.
- ``until=<timestamp|duration>``: only images created before that time (``10m``, ``2h30m``,
  RFC 3339, ``2024-05-01``, or Unix seconds).
- ``label=k``, ``label=k=v``, ``label!=k``, ``label!=k=v``: on the image config's labels.

The answer is Docker's ``{"ImagesDeleted": [{"Untagged": …}, {"Deleted": …}], "SpaceReclaimed": N}``
where N sums the unpacked layers actually removed (``ImagesDeleted`` is null when nothing was).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from dockyard import filters as docker_filters
from dockyard.errors import InvalidParameter
from dockyard.formats import timestamps
from dockyard.images.dangling_chain import delete_dangling_chain
from dockyard.images.service import ImageService

_ALLOWED = ("dangling", "until", "label", "label!")


def label_filter_matches(labels: dict[str, str], positive: list[str], negative: list[str]) -> bool:
    """Docker's label filters: all ``label=`` must match, no ``label!=`` may."""
    def has(want: str) -> bool:
        key, eq, value = want.partition("=")
        return key in labels and (not eq or labels[key] == value)

    return all(has(w) for w in positive) and not any(has(w) for w in negative)


def prune_images(images: ImageService, raw_filters: Any, in_use: Callable[[str], str | None],
                 held: Callable[[str], bool] = lambda image_id: False) -> dict[str, Any]:
    """Remove the images the filters select that no container uses (see the module docstring).

    ``held(image_id)`` names images kept by something else (the build cache's entries); the
    dangling-only prune leaves them alone.
    """
    f = docker_filters.normalize(raw_filters, _ALLOWED)
    dangling_only = True
    if "dangling" in f:
        values = {v.lower() for v in f["dangling"]}
        if not values <= {"true", "1", "false", "0"} or len(values) > 1:
            raise InvalidParameter(f"Invalid filter 'dangling={sorted(f['dangling'])[0]}'")
        dangling_only = next(iter(values)) in ("true", "1")
    now_ns = time.time_ns()
    until = [timestamps.parse_time_arg(v, now_ns) for v in f.get("until", [])]
    store, snapshots = images.store, images.snapshots
    deleted: list[dict[str, str]] = []
    reclaimed = 0
    with store.lock:
        progress = True
        while progress:  # with -a, removing an image may leave its (tagged) parent childless: again
            progress = False
            for image_id in store.ids():
                if not store.exists(image_id):  # went as an untagged parent of one pruned before
                    continue
                refs = store.references(image_id)
                if dangling_only and (refs or held(image_id)):
                    continue
                if in_use(image_id) is not None or store.children(image_id):
                    continue
                config = store.config(image_id)
                created = timestamps.stored_ns(str(config.get("created") or ""))
                if until and not all(created < u for u in until):
                    continue
                labels = (config.get("config") or {}).get("Labels") or {}
                if not label_filter_matches(labels, f.get("label", []), f.get("label!", [])):
                    continue
                with images.metadata.transaction(durable=True):  # an image's untags and removal: one change
                    for ref in refs:
                        store.delete_reference(ref)
                        deleted.append({"Untagged": ref.familiar()})
                    record = store.get(image_id)
                    sizes = {layer.chain_id: snapshots.layer(layer.chain_id).size
                             for layer in record.layers if snapshots.has(layer.chain_id)}
                    removed = store.delete(image_id)
                deleted.append({"Deleted": image_id})
                deleted.extend({"Deleted": chain} for chain in removed)
                reclaimed += sum(sizes.get(chain, 0) for chain in removed)
                if record.parent:  # Docker's prune: the untagged parents it leaves go too
                    parents, freed = delete_dangling_chain(images, record.parent, in_use=in_use,
                                                           keep=held if dangling_only else lambda i: False)
                    deleted.extend(parents)
                    reclaimed += freed
                progress = not dangling_only
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}
