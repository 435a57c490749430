"""Removing an image that nothing holds, then its parents up the chain while nothing holds them.

Terms:
- *held*: an image is held when it has a reference (tag or digest), a child image (one whose
  ``parent`` it is: ``commit`` and builds record it), a container using it, or when the caller's
  ``keep(image_id)`` says so (the build cache keeps the images its entries name).
- *dangling chain*: an image that is not held, then its parent if that is no longer held once the
  image is gone, and so on. Docker deletes it this way: ``rmi`` (unless ``noprune``) and ``image
  prune`` remove the untagged parents an image leaves behind, quietly stopping at the first held
  one; the build cache's prune removes the intermediate images of the entries it drops.
"""

from __future__ import annotations

from collections.abc import Callable

from dockyard.images.service import ImageService


def is_held(images: ImageService, image_id: str, in_use: Callable[[str], str | None],
            keep: Callable[[str], bool]) -> bool:
    """Whether ``image_id`` is held (see the module docstring); a missing image counts as held."""
    store = images.store
    return (not store.exists(image_id) or bool(store.references(image_id)) or bool(store.children(image_id))
            or in_use(image_id) is not None or keep(image_id))


def delete_dangling_chain(images: ImageService, image_id: str, *, in_use: Callable[[str], str | None],
                          keep: Callable[[str], bool] = lambda image_id: False) -> tuple[list[dict[str, str]], int]:
    """Delete ``image_id`` and then its parents while each is not held.

    Returns Docker's delete records (``{"Deleted": image ID}`` then the chain IDs of the layers
    removed, per image) and the bytes of the unpacked layers removed. Nothing is deleted when
    ``image_id`` itself is held.
    """
    records: list[dict[str, str]] = []
    freed = 0
    store, snapshots = images.store, images.snapshots
    current = image_id
    with store.lock:
        while current and not is_held(images, current, in_use, keep):
            record = store.get(current)
            sizes = {layer.chain_id: snapshots.layer(layer.chain_id).size
                     for layer in record.layers if snapshots.has(layer.chain_id)}
            removed = store.delete(current)
            records.append({"Deleted": current})
            records.extend({"Deleted": chain} for chain in removed)
            freed += sum(sizes.get(chain, 0) for chain in removed)
            current = record.parent or ""
    return records, freed
