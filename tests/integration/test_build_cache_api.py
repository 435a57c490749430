"""The build cache over the API: /system/df's BuildCache, POST /build/prune, images held by the cache;
with Docker's CLI, our CLI and docker-py as clients.

Cache entries are made as a build would make them: intermediate images committed from containers
(each one's parent the image before), recorded in the daemon root's metadata database.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from dockyard.build.cache import BuildCache, cache_id, step_key
from dockyard.metadata import MetadataDB
from tests.integration.daemon_harness import Daemon

pytestmark = pytest.mark.root


@pytest.fixture()
def d(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path_factory.mktemp("dockyard-cache"))
    try:
        daemon.import_busybox(busybox_tar)
        yield daemon
    finally:
        daemon.close()


@pytest.fixture()
def db(d: Daemon) -> Iterator[MetadataDB]:
    database = MetadataDB(d.root / "data" / "metadata.db")  # the daemon's own, a second connection (WAL)
    try:
        yield database
    finally:
        database.close()


def cached_chain(d: Daemon, db: MetadataDB, commands: list[str], tag: str | None = None) -> list[str]:
    """busybox, then one committed image per command, each recorded in the build cache."""
    client = d.client()
    chain = [client.images.get("busybox").id]
    cache = BuildCache(db)
    for command in commands:
        container = client.containers.run(chain[-1], ["sh", "-c", command], detach=True)
        container.wait()
        image = container.commit()
        container.remove()
        created_by = f"/bin/sh -c {command}"
        cache.record(step_key(chain[-1], created_by, [], None), image.id, chain[-1], created_by, 4096 * len(chain))
        chain.append(image.id)
    if tag:
        client.images.get(chain[-1]).tag(tag)
    return chain


def keys_of(chain: list[str], commands: list[str]) -> list[str]:
    return [step_key(chain[n], f"/bin/sh -c {c}", [], None) for n, c in enumerate(commands)]


def test_system_df_lists_the_cache_in_dockers_shape(d: Daemon, db: MetadataDB) -> None:
    commands = ["echo one > /a", "head -c 5000 /dev/zero > /b"]
    chain = cached_chain(d, db, commands)
    BuildCache(db).lookup(keys_of(chain, commands)[1])
    df = d.client().df()
    first, second = df["BuildCache"]
    assert first["ID"] == cache_id(keys_of(chain, commands)[0]) and first["Type"] == "regular"
    assert first["Description"] == "/bin/sh -c echo one > /a" and first["UsageCount"] == 0
    assert first["LastUsedAt"] is None and first["CreatedAt"].endswith("Z")
    assert second["Parent"] == first["ID"] and second["Parents"] == [first["ID"]] and second["UsageCount"] == 1
    assert not first["Shared"] and not first["InUse"]
    assert df["BuilderSize"] == first["Size"] + second["Size"]
    # the intermediate image is build cache, not one of df's images (as in Docker)
    assert chain[1] not in {image["Id"] for image in df["Images"]}
    assert chain[2] in {image["Id"] for image in df["Images"]}
    api = d.client().api
    only = api._result(api._get(api._url("/system/df"), params={"type": "build-cache"}), json=True)
    assert set(only) == {"BuildCache", "BuilderSize"} and len(only["BuildCache"]) == 2


def test_our_system_df_matches_dockers(d: Daemon, db: MetadataDB) -> None:
    commands = ["echo one > /a", "head -c 5000 /dev/zero > /b", "echo three > /c"]
    chain = cached_chain(d, db, commands, tag="app:1")
    cached_chain(d, db, ["echo loose > /l"])
    BuildCache(db).lookup(keys_of(chain, commands)[2])
    an_hour_ago = time.time() - 3600  # stable "CREATED" columns, whenever the two commands run
    db.execute("UPDATE build_cache SET created_at = ?, last_used_at = CASE WHEN last_used_at IS NULL THEN NULL "
               "ELSE ? END", (an_hour_ago - 600, an_hour_ago))
    ours, theirs = d.cli("system", "df"), d.docker("system", "df")
    assert ours.returncode == theirs.returncode == 0
    assert ours.stdout.splitlines()[-1] == theirs.stdout.splitlines()[-1]
    assert ours.stdout.splitlines()[-1].split()[:4] == ["Build", "Cache", "4", "0"]
    ours, theirs = d.cli("system", "df", "-v"), d.docker("system", "df", "-v")
    cache_part = ours.stdout[ours.stdout.index("Build cache usage:"):]
    assert cache_part == theirs.stdout[theirs.stdout.index("Build cache usage:"):]
    assert cache_part.count("regular") == 4 and "true" in cache_part and "About an hour ago" in cache_part


def test_intermediates_show_only_with_images_a(d: Daemon, db: MetadataDB) -> None:
    chain = cached_chain(d, db, ["echo one > /a", "echo two > /b"], tag="app:1")
    for run in (d.cli, d.docker):
        plain = run("images", "-q", "--no-trunc").stdout.split()
        every = run("images", "-a", "-q", "--no-trunc").stdout.split()
        assert chain[1] not in plain and chain[2] in plain
        assert chain[1] in every
        assert chain[1] not in run("images", "-a", "-q", "--no-trunc", "--filter", "dangling=true").stdout.split()


def test_image_prune_keeps_cached_images_and_builder_prune_drops_them(d: Daemon, db: MetadataDB) -> None:
    tagged = cached_chain(d, db, ["echo one > /a", "echo two > /b"], tag="app:1")
    loose = cached_chain(d, db, ["head -c 9000 /dev/zero > /l", "echo x > /x"])  # an untagged build
    client = d.client()
    container = client.containers.run("busybox", ["true"], detach=True)
    container.wait()
    stray = container.commit().id  # dangling, not cached
    container.remove()
    pruned = d.docker("image", "prune", "-f")
    assert pruned.returncode == 0 and stray in pruned.stdout
    assert all(client.images.get(i) for i in tagged[1:] + loose[1:])
    # without -a: only the cache no tagged image stands on
    out = d.docker("builder", "prune", "-f")
    assert out.returncode == 0, out.stderr
    loose_ids = [cache_id(k) for k in keys_of(loose, ["head -c 9000 /dev/zero > /l", "echo x > /x"])]
    assert out.stdout.startswith("Deleted build cache objects:\n")
    assert sorted(out.stdout.split("\n\n")[0].splitlines()[1:]) == sorted(loose_ids)
    assert "Total reclaimed space: 0B" not in out.stdout
    for image_id in loose[1:]:
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(image_id)
    # -a: the rest; app:1's images stay (it stands on them), the cache no longer answers
    out = d.cli("builder", "prune", "-a", "-f")
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith("Total reclaimed space: 0B\n") and out.stdout.count("\n") == 5
    assert all(client.images.get(i) for i in tagged)
    assert BuildCache(db).lookup(keys_of(tagged, ["echo one > /a", "echo two > /b"])[0]) is None
    assert client.df()["BuildCache"] == []


def test_rmi_of_a_built_image_removes_its_cache(d: Daemon, db: MetadataDB) -> None:
    commands = ["echo one > /a", "echo two > /b"]
    chain = cached_chain(d, db, commands, tag="app:1")
    out = d.docker("rmi", "app:1")
    assert out.returncode == 0, out.stderr
    assert f"Deleted: {chain[2]}" in out.stdout and f"Deleted: {chain[1]}" in out.stdout
    assert [BuildCache(db).lookup(k) for k in keys_of(chain, commands)] == [None, None]
    assert d.client().df()["BuildCache"] == []


def test_prune_api_arguments(d: Daemon, db: MetadataDB) -> None:
    client = d.client()
    cached_chain(d, db, ["echo old > /o"])
    db.execute("UPDATE build_cache SET created_at = ?", (time.time() - 7200,))
    new = cached_chain(d, db, ["echo new > /n"])
    result: dict[str, Any] = client.api.prune_builds(filters={"until": "1h"})
    assert len(result["CachesDeleted"]) == 1 and result["SpaceReclaimed"] >= 0
    assert [c["Description"] for c in client.df()["BuildCache"]] == ["/bin/sh -c echo new > /n"]
    result = client.api.prune_builds(keep_storage=1 << 30)
    assert result["CachesDeleted"] == []  # within the limit
    bad = client.api._post(client.api._url("/build/prune"), params={"keep-storage": "lots"})
    assert bad.status_code == 400 and "keep-storage is in bytes and expects an integer, got lots" in bad.json()["message"]
    bad = client.api._post(client.api._url("/build/prune"), params={"filters": '{"label": ["a"]}'})
    assert bad.status_code == 400 and bad.json()["message"] == "invalid filter 'label'"
    assert client.images.get(new[1])


def test_system_prune_clears_the_build_cache(d: Daemon, db: MetadataDB) -> None:
    chain = cached_chain(d, db, ["echo one > /a"])
    out = d.cli("system", "prune", "-f")
    assert out.returncode == 0, out.stderr
    assert f"Deleted build cache objects:\n{cache_id(keys_of(chain, ['echo one > /a'])[0])}\n" in out.stdout
    assert d.client().df()["BuildCache"] == []
    with pytest.raises(docker.errors.ImageNotFound):
        d.client().images.get(chain[1])
