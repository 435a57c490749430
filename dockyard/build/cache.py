"""The build cache: which image a build step made, so that the same step on the same parent is reused.

Terms:
- *step key* (:func:`step_key`): the sha256 (hex) of what decides a step's result, as Docker's
  classic builder compares it: the parent image ID, the instruction as the builder writes it in
  the history's ``created_by`` (``/bin/sh -c #(nop) ENV a=b``, ``|1 ARG=x /bin/sh -c echo hi``),
  the build environment that applies to it (build args and env, as ``KEY=value`` strings, in the
  order the builder gives them) and, for ``COPY``/``ADD``, the checksum of the content copied
  (``CopyPlan.checksum``: names, contents, modes, ownership, never mtimes).
- *entry*: one row of ``build_cache`` (metadata migration 2): step key → the *intermediate image*
  the step made (an image record without a tag whose ``parent`` is the step's parent image), with
  the ``created_by`` text, the bytes the step added, when it was made and last used, and how often
  it was reused. Its *cache ID* (``ID`` in ``/system/df``) is the first 25 hex digits of its key.
- *held image*: an entry keeps its image: ``image prune`` skips the images entries name
  (:meth:`BuildCache.holds`), as the garbage collector keeps every image row. ``rmi`` of such an
  image, like its removal as an untagged parent (``rmi`` prunes parents as Docker does), deletes
  the entry with it (the table's foreign key cascades); :meth:`BuildCache.lookup` also answers
  only with an image that exists.
- *shared* entry: its image is a tagged image or an ancestor of one, so dropping the entry frees
  no bytes; *in use*: a container uses its image. ``prune`` never drops in-use entries and drops
  shared ones only with ``all`` (``builder prune -a``); it then deletes the intermediate images
  nothing holds any more, parents included (:mod:`dockyard.images.dangling_chain`).
"""

from __future__ import annotations

import builtins
import hashlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dockyard import filters as docker_filters
from dockyard.errors import InvalidParameter, NotFound
from dockyard.formats import timestamps
from dockyard.images.dangling_chain import delete_dangling_chain
from dockyard.metadata import MetadataDB

if TYPE_CHECKING:
    from dockyard.images.service import ImageService

CACHE_TYPE = "regular"
KEY_VERSION = "dockyard-build-cache-v1"
_PRUNE_FILTERS = ("until", "id", "parent", "type", "description", "inuse", "shared", "private")

# Every image some reference names, and all their ancestors (the images of tagged chains).
_TAGGED_CHAINS = """
    WITH RECURSIVE tagged(id) AS (
        SELECT image_id FROM refs
        UNION SELECT images.parent FROM images JOIN tagged ON images.id = tagged.id
              WHERE images.parent IS NOT NULL AND images.parent != '')
    SELECT id FROM tagged"""


def step_key(parent_image_id: str, instruction: str, build_env: list[str], content_checksum: str | None) -> str:
    """The step key (see the module docstring): 64 hex digits.

    Each part is encoded unambiguously (one JSON array), so no two different inputs collide by
    concatenation; ``content_checksum`` None (no content) differs from any checksum, even ``""``.
    """
    material = json.dumps([KEY_VERSION, parent_image_id, instruction, list(build_env), content_checksum],
                          separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()


def cache_id(key: str) -> str:
    """The cache ID Docker's ``/system/df`` and ``builder prune`` show for the entry of ``key``."""
    return key[:25]


def _rfc3339(seconds: float | None) -> str | None:
    return None if seconds is None else timestamps.format_ns(int(seconds * 1_000_000_000))


def _bool_filter(name: str, values: list[str]) -> bool:
    wanted = {v.lower() for v in values}
    if not wanted <= {"true", "1", "false", "0", ""} or len({v in ("true", "1", "") for v in wanted}) > 1:
        raise InvalidParameter(f"Invalid filter '{name}={sorted(values)[0]}'")
    return next(iter(wanted)) in ("true", "1", "")


class BuildCache:
    """The build cache of one daemon root, kept in its metadata database ``db``.

    ``images`` (the image service) is needed only by :meth:`prune`, to delete the intermediate
    images the dropped entries held; ``in_use(image_id)`` names a container using an image (or
    None), for ``InUse`` and to keep such images.
    """

    def __init__(self, db: MetadataDB, images: ImageService | None = None,
                 in_use: Callable[[str], str | None] | None = None) -> None:
        self.db = db
        self.images = images
        self.in_use: Callable[[str], str | None] = in_use if in_use is not None else (lambda image_id: None)

    # -- the builder's side -----------------------------------------------------------------

    def lookup(self, key: str) -> str | None:
        """The image ID cached for step ``key`` if that image still exists; the use is counted."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT build_cache.image_id FROM build_cache JOIN images ON images.id = "
                               "build_cache.image_id WHERE build_cache.key = ?", (key,)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE build_cache SET last_used_at = ?, usage_count = usage_count + 1 WHERE key = ?",
                         (time.time(), key))
            return str(row[0])

    def record(self, key: str, image_id: str, parent_id: str, created_by: str, size: int) -> None:
        """Remember that step ``key`` made ``image_id`` (an existing image record) from ``parent_id``.

        Recording a key again (a ``--no-cache`` build) points its entry at the new image. ``size``
        is the bytes the step's layer added (0 for a step that changes only the config).
        NotFound if ``image_id`` is not an image record.
        """
        with self.db.transaction() as conn:  # the check and the insert: one change
            if conn.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is None:
                raise NotFound(f"No such image: {image_id}")
            conn.execute(
                "INSERT INTO build_cache (key, id, image_id, parent_id, created_by, size, created_at, "
                "last_used_at, usage_count) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 0) ON CONFLICT(key) DO UPDATE SET "
                "image_id = excluded.image_id, parent_id = excluded.parent_id, created_by = excluded.created_by, "
                "size = excluded.size, created_at = excluded.created_at, last_used_at = NULL, usage_count = 0",
                (key, cache_id(key), image_id, parent_id, created_by, int(size), time.time()))

    def holds(self, image_id: str) -> bool:
        """Whether an entry names ``image_id`` (such images are kept until the cache is pruned)."""
        return self.db.one("SELECT 1 FROM build_cache WHERE image_id = ? LIMIT 1", (image_id,)) is not None

    # -- usage and pruning --------------------------------------------------------------------

    def _rows(self) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT * FROM build_cache ORDER BY created_at, id")
        tagged = {str(r[0]) for r in self.db.query(_TAGGED_CHAINS)}
        by_image: dict[str, str] = {}
        for row in rows:
            by_image.setdefault(str(row["image_id"]), str(row["id"]))
        out = []
        for row in rows:
            image_id = str(row["image_id"])
            out.append({
                "key": str(row["key"]), "id": str(row["id"]), "image_id": image_id,
                "parent": by_image.get(str(row["parent_id"]), ""), "created_by": str(row["created_by"]),
                "size": int(row["size"]), "created_at": float(row["created_at"]),
                "last_used_at": None if row["last_used_at"] is None else float(row["last_used_at"]),
                "usage_count": int(row["usage_count"]),
                "shared": image_id in tagged, "in_use": self.in_use(image_id) is not None,
            })
        return out

    def usage(self) -> list[dict[str, Any]]:
        """The entries as ``GET /system/df`` ``BuildCache`` items (oldest first)."""
        items = []
        for row in self._rows():
            item: dict[str, Any] = {"ID": row["id"]}
            if row["parent"]:
                item["Parent"] = row["parent"]
            item.update({
                "Parents": [row["parent"]] if row["parent"] else None,
                "Type": CACHE_TYPE,
                "Description": row["created_by"],
                "InUse": row["in_use"],
                "Shared": row["shared"],
                "Size": row["size"],
                "CreatedAt": _rfc3339(row["created_at"]),
                "LastUsedAt": _rfc3339(row["last_used_at"]),
                "UsageCount": row["usage_count"],
            })
            items.append(item)
        return items

    def prune(self, all: bool = False, keep_storage: int = 0, until: float | None = None,
              filters: Any = None) -> tuple[list[str], int]:
        """``POST /build/prune``: drop entries, then the images they alone held.

        Candidates are the entries not in use, not shared unless ``all``, last used (or made)
        before ``until`` (Unix seconds; ``filters`` may carry ``until`` too, as Docker's time
        argument) and matching ``filters`` (``id``, ``parent``, ``type``, ``description``,
        ``inuse``, ``shared``, ``private``). With ``keep_storage`` > 0 the least recently used
        candidates go first, and only until the cache's total size is at most ``keep_storage``.
        Returns (cache IDs dropped, bytes of unpacked layers removed).
        """
        f = docker_filters.normalize(filters, _PRUNE_FILTERS)
        limits = [until] if until is not None else []
        now_ns = time.time_ns()
        limits += [timestamps.parse_time_arg(v, now_ns) / 1_000_000_000 for v in f.get("until", [])]
        rows = self._rows()
        total = sum(r["size"] for r in rows)

        def selected(row: dict[str, Any]) -> bool:
            last = row["last_used_at"] if row["last_used_at"] is not None else row["created_at"]
            checks = [
                not row["in_use"], all or not row["shared"], all_before(last),
                "id" not in f or any(row["id"] == v or row["key"] == v for v in f["id"]),
                "parent" not in f or row["parent"] in f["parent"],
                "type" not in f or CACHE_TYPE in f["type"],
                "description" not in f or any(v in row["created_by"] for v in f["description"]),
                "inuse" not in f or _bool_filter("inuse", f["inuse"]) == row["in_use"],
                "shared" not in f or _bool_filter("shared", f["shared"]) == row["shared"],
                "private" not in f or _bool_filter("private", f["private"]) != row["shared"],
            ]
            return builtins.all(checks)

        def all_before(last: float) -> bool:
            return builtins.all(last < limit for limit in limits)

        candidates = [r for r in rows if selected(r)]
        if keep_storage > 0:
            candidates.sort(key=lambda r: (r["last_used_at"] or r["created_at"], r["created_at"]))
            chosen = []
            for row in candidates:
                if total <= keep_storage:
                    break
                chosen.append(row)
                total -= row["size"]
            candidates = chosen
        if not candidates:
            return [], 0
        with self.db.transaction(durable=True) as conn:
            for row in candidates:
                conn.execute("DELETE FROM build_cache WHERE key = ?", (row["key"],))
        reclaimed = 0
        if self.images is not None:
            for row in reversed(candidates):  # newest first: children before their parents
                _records, freed = delete_dangling_chain(self.images, row["image_id"], in_use=self.in_use,
                                                        keep=self.holds)
                reclaimed += freed
        return [r["id"] for r in candidates], reclaimed

