"""The build cache: step keys, lookup/record, usage in /system/df's shape, prune, and how images hold entries."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import pytest

from dockyard.build.cache import BuildCache, cache_id, step_key
from dockyard.errors import InvalidParameter, NotFound
from dockyard.images.dangling_chain import delete_dangling_chain
from dockyard.images.image_prune import prune_images
from dockyard.images.service import ImageService

PARENT = "sha256:" + "a" * 64


def tiny_tar(content: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("f.txt")
        info.size, info.mtime = len(content), 1_600_000_000
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


@pytest.fixture
def svc(tmp_path: Path) -> ImageService:
    return ImageService(tmp_path / "root")


def make_image(svc: ImageService, content: bytes, parent: str | None = None, ref: str | None = None) -> str:
    image_id = svc.import_tarball(io.BytesIO(tiny_tar(content)), ref)  # type: ignore[arg-type]
    if parent:
        svc.store.set_parent(image_id, parent)
    return image_id


def build_chain(svc: ImageService, cache: BuildCache, steps: int, tag: str | None = None,
                salt: bytes = b"") -> list[str]:
    """A base image, then ``steps`` cached intermediate images on it; the last one tagged ``tag``."""
    base = make_image(svc, b"base" + salt, ref="base:latest")
    chain = [base]
    for n in range(steps):
        image_id = make_image(svc, b"step%d" % n + salt, parent=chain[-1])
        cache.record(step_key(chain[-1], f"/bin/sh -c echo {n}", [], None), image_id, chain[-1],
                     f"/bin/sh -c echo {n}", 100 * (n + 1))
        chain.append(image_id)
    if tag:
        svc.tag(chain[-1], tag)
    return chain


# -- step keys ---------------------------------------------------------------------------------

def test_each_part_of_a_step_changes_its_key() -> None:
    base = step_key(PARENT, "/bin/sh -c #(nop) ENV a=b", ["A=1"], "sha256:" + "1" * 64)
    assert len(base) == 64 and all(c in "0123456789abcdef" for c in base)
    assert step_key(PARENT, "/bin/sh -c #(nop) ENV a=b", ["A=1"], "sha256:" + "1" * 64) == base
    assert step_key("sha256:" + "b" * 64, "/bin/sh -c #(nop) ENV a=b", ["A=1"], "sha256:" + "1" * 64) != base
    assert step_key(PARENT, "/bin/sh -c #(nop) ENV a=c", ["A=1"], "sha256:" + "1" * 64) != base
    assert step_key(PARENT, "/bin/sh -c #(nop) ENV a=b", ["A=2"], "sha256:" + "1" * 64) != base
    assert step_key(PARENT, "/bin/sh -c #(nop) ENV a=b", [], "sha256:" + "1" * 64) != base
    assert step_key(PARENT, "/bin/sh -c #(nop) ENV a=b", ["A=1"], "sha256:" + "2" * 64) != base
    assert step_key(PARENT, "/bin/sh -c #(nop) ENV a=b", ["A=1"], None) != base


def test_parts_cannot_run_into_each_other() -> None:
    assert step_key(PARENT, "|1 A=x /bin/sh -c echo", ["B=1"], None) != step_key(PARENT, "|1 A=x /bin/sh -c",
                                                                                  ["echo", "B=1"], None)
    assert step_key(PARENT, "x", [], "") != step_key(PARENT, "x", [], None)
    assert step_key(PARENT, "x", ["A=1", "B=2"], None) != step_key(PARENT, "x", ["A=1,B=2"], None)


def test_a_copy_key_ignores_mtimes_through_the_checksum(tmp_path: Path) -> None:
    # The content part of a COPY step's key is CopyPlan.checksum, which names no mtime: the same
    # files touched again give the same key; changed content or mode gives another.
    import os

    from dockyard.build.copying import plan_copy

    def key() -> str:
        plan = plan_copy(tmp_path, ["a", "d"], "/dest/", workdir="/", is_add=False, chown=None, chmod=None)
        return step_key(PARENT, "/bin/sh -c #(nop) COPY multi:x in /dest/ ", [], plan.checksum)

    (tmp_path / "a").write_bytes(b"one")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"f")
    before = key()
    os.utime(tmp_path / "a", (1, 1))
    os.utime(tmp_path / "d" / "f", (2, 2))
    os.utime(tmp_path / "d", (3, 3))
    assert key() == before
    os.chmod(tmp_path / "a", 0o600)
    assert key() != before
    os.chmod(tmp_path / "a", 0o644)
    (tmp_path / "d" / "f").write_bytes(b"g")
    assert key() != before


# -- record and lookup ---------------------------------------------------------------------------

def test_lookup_finds_what_was_recorded_and_counts_uses(svc: ImageService) -> None:
    cache = BuildCache(svc.metadata)
    base = make_image(svc, b"base", ref="base:latest")
    child = make_image(svc, b"child", parent=base)
    key = step_key(base, "/bin/sh -c echo hi", [], None)
    assert cache.lookup(key) is None
    cache.record(key, child, base, "/bin/sh -c echo hi", 6)
    assert cache.lookup(key) == child and cache.lookup(key) == child
    [item] = cache.usage()
    assert item["ID"] == cache_id(key) and item["UsageCount"] == 2 and item["LastUsedAt"].endswith("Z")
    assert cache.holds(child) and not cache.holds(base)


def test_recording_needs_an_existing_image(svc: ImageService) -> None:
    with pytest.raises(NotFound, match="No such image: sha256:"):
        BuildCache(svc.metadata).record("k" * 64, PARENT, PARENT, "x", 0)


def test_recording_a_key_again_points_it_at_the_new_image(svc: ImageService) -> None:
    cache = BuildCache(svc.metadata)
    base = make_image(svc, b"base", ref="base:latest")
    first, second = make_image(svc, b"one", parent=base), make_image(svc, b"two", parent=base)
    key = step_key(base, "/bin/sh -c date", [], None)
    cache.record(key, first, base, "/bin/sh -c date", 1)
    cache.lookup(key)
    cache.record(key, second, base, "/bin/sh -c date", 2)
    assert cache.lookup(key) == second
    [item] = cache.usage()
    assert item["Size"] == 2 and item["UsageCount"] == 1


def test_rmi_of_a_cached_image_removes_its_entry(svc: ImageService) -> None:
    cache = BuildCache(svc.metadata)
    chain = build_chain(svc, cache, 2, tag="app:1")
    keys = [step_key(chain[n], f"/bin/sh -c echo {n}", [], None) for n in range(2)]
    assert [cache.lookup(k) for k in keys] == chain[1:]
    records = svc.remove("app:1")
    # Docker's rmi prunes the untagged parents too: both intermediates go, and their entries with them
    assert {"Deleted": chain[2]} in records and {"Deleted": chain[1]} in records
    assert [cache.lookup(k) for k in keys] == [None, None] and cache.usage() == []
    assert svc.store.exists(chain[0])


def test_rmi_noprune_keeps_the_parents_and_their_entries(svc: ImageService) -> None:
    cache = BuildCache(svc.metadata)
    chain = build_chain(svc, cache, 2, tag="app:1")
    svc.remove("app:1", prune=False)
    assert cache.lookup(step_key(chain[1], "/bin/sh -c echo 1", [], None)) is None
    assert cache.lookup(step_key(chain[0], "/bin/sh -c echo 0", [], None)) == chain[1]


# -- usage -----------------------------------------------------------------------------------

def test_usage_has_dockers_build_cache_shape(svc: ImageService) -> None:
    cache = BuildCache(svc.metadata)
    chain = build_chain(svc, cache, 2, tag="app:1")
    first, second = cache.usage()
    assert set(first) == {"ID", "Parents", "Type", "Description", "InUse", "Shared", "Size", "CreatedAt",
                          "LastUsedAt", "UsageCount"}
    assert first["Type"] == "regular" and first["Description"] == "/bin/sh -c echo 0" and first["Size"] == 100
    assert first["Parents"] is None and first["LastUsedAt"] is None and first["UsageCount"] == 0
    assert second["Parent"] == first["ID"] and second["Parents"] == [first["ID"]]
    assert first["Shared"] and second["Shared"]  # both in app:1's chain
    assert not first["InUse"]
    in_use = BuildCache(svc.metadata, in_use=lambda image_id: "c1" if image_id == chain[2] else None)
    assert [item["InUse"] for item in in_use.usage()] == [False, True]


# -- prune -----------------------------------------------------------------------------------

def test_prune_keeps_shared_entries_unless_all(svc: ImageService) -> None:
    cache = BuildCache(svc.metadata, svc)
    tagged = build_chain(svc, cache, 2, tag="app:1")
    loose = build_chain(svc, cache, 2, salt=b"x")  # a build that was not tagged (or failed)
    ids = [item["ID"] for item in cache.usage()]
    deleted, reclaimed = cache.prune()
    assert deleted == ids[2:] and reclaimed > 0
    assert not svc.store.exists(loose[1]) and not svc.store.exists(loose[2])
    assert all(svc.store.exists(i) for i in tagged)
    deleted, reclaimed = cache.prune(all=True)
    assert deleted == ids[:2] and reclaimed == 0  # the images stay: app:1 stands on them
    assert all(svc.store.exists(i) for i in tagged) and cache.usage() == []


def test_prune_never_drops_entries_in_use(svc: ImageService) -> None:
    chain = build_chain(svc, BuildCache(svc.metadata), 1)
    cache = BuildCache(svc.metadata, svc, in_use=lambda image_id: "c1" if image_id == chain[1] else None)
    assert cache.prune(all=True) == ([], 0)
    assert svc.store.exists(chain[1])


def test_prune_keep_storage_drops_the_least_recently_used_first(svc: ImageService) -> None:
    cache = BuildCache(svc.metadata, svc)
    chains = [build_chain(svc, cache, 1, salt=bytes([65 + n])) for n in range(3)]  # sizes 100 each
    keys = [step_key(c[0], "/bin/sh -c echo 0", [], None) for c in chains]
    cache.lookup(keys[0])  # chain 0 used last: the others are older
    time.sleep(0.01)
    cache.lookup(keys[0])
    deleted, _ = cache.prune(keep_storage=150)
    assert set(deleted) == {cache_id(keys[1]), cache_id(keys[2])}
    assert cache.lookup(keys[0]) == chains[0][1]
    assert cache.prune(keep_storage=150) == ([], 0)  # 100 bytes left: within the limit


def test_prune_until_keeps_recent_entries(svc: ImageService) -> None:
    cache = BuildCache(svc.metadata, svc)
    old = build_chain(svc, cache, 1, salt=b"old")
    cut = time.time()
    time.sleep(0.01)
    new = build_chain(svc, cache, 1, salt=b"new")
    deleted, _ = cache.prune(until=cut)
    assert deleted == [cache_id(step_key(old[0], "/bin/sh -c echo 0", [], None))]
    assert cache.prune(filters={"until": ["1h"]}) == ([], 0)  # made less than an hour ago
    assert svc.store.exists(new[1]) and not svc.store.exists(old[1])


def test_prune_filters(svc: ImageService) -> None:
    cache = BuildCache(svc.metadata, svc)
    build_chain(svc, cache, 2)
    first, second = cache.usage()
    assert cache.prune(filters={"description": ["echo 1"]})[0] == [second["ID"]]
    assert cache.prune(filters={"type": ["exec.cachemount"]}) == ([], 0)
    assert cache.prune(filters={"id": [first["ID"]]})[0] == [first["ID"]]
    with pytest.raises(InvalidParameter, match="invalid filter 'label'"):
        cache.prune(filters={"label": ["a"]})
    with pytest.raises(InvalidParameter):
        cache.prune(filters={"until": ["yesterday"]})


# -- images held by the cache ----------------------------------------------------------------------

def test_image_prune_keeps_cached_intermediates(svc: ImageService) -> None:
    cache = BuildCache(svc.metadata, svc)
    tagged = build_chain(svc, cache, 2, tag="app:1")
    loose = build_chain(svc, cache, 1, salt=b"x")
    stray = make_image(svc, b"stray")  # dangling, not cached
    result = prune_images(svc, {}, lambda image_id: None, held=cache.holds)
    assert result["ImagesDeleted"][0] == {"Deleted": stray}
    assert not svc.store.exists(stray)
    assert all(svc.store.exists(i) for i in tagged + loose)


def test_images_list_shows_intermediates_only_with_all(svc: ImageService) -> None:
    cache = BuildCache(svc.metadata, svc)
    chain = build_chain(svc, cache, 2, tag="app:1")
    listed = {s["Id"] for s in svc.list()}
    assert chain[2] in listed and chain[0] in listed and chain[1] not in listed
    assert chain[1] in {s["Id"] for s in svc.list(all=True)}
    assert chain[1] not in {s["Id"] for s in svc.list(all=True, filters={"dangling": ["true"]})}


def test_a_dangling_chain_stops_at_the_first_held_image(svc: ImageService) -> None:
    cache = BuildCache(svc.metadata, svc)
    chain = build_chain(svc, cache, 3)
    records, freed = delete_dangling_chain(svc, chain[3], in_use=lambda i: None,
                                           keep=lambda i: i == chain[1])
    assert [r["Deleted"] for r in records if r["Deleted"] in chain] == [chain[3], chain[2]] and freed > 0
    assert svc.store.exists(chain[1])


def test_image_prune_all_takes_built_images_and_their_cache(svc: ImageService) -> None:
    cache = BuildCache(svc.metadata, svc)
    chain = build_chain(svc, cache, 2, tag="app:1")
    kept = build_chain(svc, cache, 1, tag="used:1", salt=b"u")
    result = prune_images(svc, {"dangling": ["false"]}, lambda i: "c1" if i == kept[1] else None, held=cache.holds)
    deleted = [r["Deleted"] for r in result["ImagesDeleted"] if "Deleted" in r]
    assert chain[2] in deleted and chain[1] in deleted and {"Untagged": "app:1"} in result["ImagesDeleted"]
    assert svc.store.exists(kept[1]) and svc.store.exists(kept[0])  # in use, and its base under it
    assert [item["Description"] for item in cache.usage()] == ["/bin/sh -c echo 0"]  # used:1's entry only


def test_the_collector_keeps_what_the_cache_holds(svc: ImageService, tmp_path: Path) -> None:
    from dockyard.images import garbage

    cache = BuildCache(svc.metadata, svc)
    chain = build_chain(svc, cache, 2)
    layers = [layer.chain_id for image_id in chain for layer in svc.store.get(image_id).layers]
    garbage.collect(svc, tmp_path / "root")
    assert all(svc.store.exists(i) for i in chain) and all(svc.snapshots.has(c) for c in layers)
    assert [cache.lookup(step_key(chain[n], f"/bin/sh -c echo {n}", [], None)) for n in range(2)] == chain[1:]
