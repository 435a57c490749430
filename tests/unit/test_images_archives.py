"""Image archives: save writes both Docker's archive and an OCI layout; load takes either, verified,
all or nothing; image prune."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.errors import CorruptContent, InvalidParameter, NotFound
from dockyard.images.archive_load import load_archive
from dockyard.images.archive_save import save_images
from dockyard.images.image_prune import prune_images
from dockyard.images.service import ImageService


def tiny_tar(content: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(content), 1_600_000_000
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def svc(tmp_path: Path) -> ImageService:
    return ImageService(tmp_path / "root")


@pytest.fixture
def other(tmp_path: Path) -> ImageService:
    return ImageService(tmp_path / "other")


def save(svc: ImageService, *names: str) -> bytes:
    out = io.BytesIO()
    save_images(svc, list(names), out, svc.root)
    return out.getvalue()


def load(svc: ImageService, data: bytes) -> list[str]:
    (svc.root / "tmp").mkdir(exist_ok=True)
    return load_archive(svc, io.BytesIO(data), svc.root / "tmp")


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else b"") for m in tar}  # type: ignore[union-attr]


def store_snapshot(svc: ImageService) -> tuple[list[str], list[str], list[str], dict[str, str]]:
    return (svc.content.list(), svc.snapshots.list_layers(), svc.store.ids(), svc.store.all_references())


def oci_layout(layers: list[bytes], diff_ids: list[str] | None = None, name: str = "docker.io/library/oci:v1",
               layer_type: str = "application/vnd.oci.image.layer.v1.tar+gzip",
               compress: Callable[[bytes], bytes] = gzip.compress) -> bytes:
    """A hand-made OCI layout tar with compressed layers, an index nesting a platform index."""
    blobs: dict[str, bytes] = {}
    layer_descs = []
    for raw in layers:
        packed = compress(raw)
        blobs[sha(packed)] = packed
        layer_descs.append({"mediaType": layer_type, "digest": sha(packed), "size": len(packed)})
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids or [sha(r) for r in layers]},
                         "created": "2024-01-01T00:00:00Z"}).encode()
    blobs[sha(config)] = config
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha(config), "size": len(config)},
                           "layers": layer_descs}).encode()
    blobs[sha(manifest)] = manifest
    from dockyard.images.service import host_arch
    arch, _ = host_arch()
    platform_index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                 "manifests": [
                                     {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                      "digest": "sha256:" + "0" * 64, "size": 10,
                                      "platform": {"os": "linux", "architecture": "s390x-not-this-one"}},
                                     {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                      "digest": sha(manifest), "size": len(manifest),
                                      "platform": {"os": "linux", "architecture": arch}}]}).encode()
    blobs[sha(platform_index)] = platform_index
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(platform_index),
         "size": len(platform_index), "annotations": {"io.containerd.image.name": name}}]}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": json.dumps(index).encode()}
        files.update({f"blobs/sha256/{d[7:]}": b for d, b in blobs.items()})
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_save_writes_docker_archive_and_oci_layout(svc: ImageService) -> None:
    image_id = svc.import_tarball(io.BytesIO(tiny_tar(b"one\n")), "app:v1")
    svc.tag("app:v1", "app", "v2")
    data = members(save(svc, "app"))  # a bare repository name saves all its tags
    manifest = json.loads(data["manifest.json"])
    assert len(manifest) == 1
    assert manifest[0]["Config"] == f"blobs/sha256/{image_id[7:]}"
    assert sorted(manifest[0]["RepoTags"]) == ["app:v1", "app:v2"]
    (layer_path,) = manifest[0]["Layers"]
    assert sha(data[layer_path]) == svc.resolve("app:v1").diff_ids[0]  # uncompressed, named by diff ID
    assert json.loads(data["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(data["index.json"])
    names = sorted(m["annotations"]["io.containerd.image.name"] for m in index["manifests"])
    assert names == ["docker.io/library/app:v1", "docker.io/library/app:v2"]
    assert {m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]} == {"v1", "v2"}
    oci_manifest = json.loads(data["blobs/sha256/" + index["manifests"][0]["digest"][7:]])
    assert oci_manifest["config"]["digest"] == image_id
    assert json.loads(data["repositories"]) == {"app": {"v1": layer_path[13:], "v2": layer_path[13:]}}
    assert list(data).count(layer_path) == 1


def test_save_by_id_is_untagged_and_missing_names_fail(svc: ImageService) -> None:
    image_id = svc.import_tarball(io.BytesIO(tiny_tar(b"one\n")), "app:v1")
    manifest = json.loads(members(save(svc, image_id[7:19]))["manifest.json"])
    assert manifest[0]["RepoTags"] is None
    with pytest.raises(NotFound, match="No such image: nothere:latest"):
        save(svc, "nothere")


def test_round_trip_of_several_images(svc: ImageService, other: ImageService) -> None:
    a = svc.import_tarball(io.BytesIO(tiny_tar(b"a\n")), "a:1")
    b = svc.import_tarball(io.BytesIO(tiny_tar(b"b\n")), None)
    messages = load(other, save(svc, "a:1", b))
    assert messages == ["Loaded image: a:1", f"Loaded image ID: {b}"]
    assert other.resolve("a:1").id == a
    assert other.store.exists(b)
    assert (other.rootfs_layers("a:1")[0] / "hello.txt").read_bytes() == b"a\n"
    # loading again moves nothing and says so
    assert load(other, save(svc, "a:1")) == ["Loaded image: a:1"]


def test_load_retag_reports_the_renamed_image(svc: ImageService, other: ImageService) -> None:
    svc.import_tarball(io.BytesIO(tiny_tar(b"new\n")), "a:1")
    old = other.import_tarball(io.BytesIO(tiny_tar(b"old\n")), "a:1")
    messages = load(other, save(svc, "a:1"))
    assert messages[0] == f"The image a:1 already exists, renaming the old one with ID {old} to empty string"


@pytest.mark.parametrize("compress", [gzip.compress, lambda d: __import__("bz2").compress(d),
                                      lambda d: __import__("lzma").compress(d)])
def test_compressed_archives_load(svc: ImageService, other: ImageService, compress: object) -> None:
    svc.import_tarball(io.BytesIO(tiny_tar(b"z\n")), "z:1")
    assert load(other, compress(save(svc, "z:1"))) == ["Loaded image: z:1"]  # type: ignore[operator]


def test_zstd_archive_without_the_module_is_a_clear_error(other: ImageService,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # zstandard is a dependency; a machine without it (a broken install) must still get a clear error.
    monkeypatch.setitem(sys.modules, "zstandard", None)  # makes `import zstandard` raise ImportError
    with pytest.raises(InvalidParameter, match="zstandard"):
        load(other, b"\x28\xb5\x2f\xfd" + b"\0" * 64)


def test_oci_layout_with_nested_platform_index(other: ImageService) -> None:
    data = oci_layout([tiny_tar(b"base\n"), tiny_tar(b"top\n")])
    assert load(other, data) == ["Loaded image: oci:v1"]
    image = other.resolve("oci:v1")
    assert len(image.chain_ids) == 2
    assert other.store.get(image.id).layers[0].media_type == "application/vnd.oci.image.layer.v1.tar"


def test_diff_id_mismatch_is_refused_and_leaves_nothing(other: ImageService) -> None:
    before = store_snapshot(other)
    good, bad = tiny_tar(b"good\n"), tiny_tar(b"bad\n")
    data = oci_layout([good, bad], diff_ids=[sha(good), sha(tiny_tar(b"other\n"))])
    with pytest.raises(CorruptContent, match="mismatch"):
        load(other, data)
    assert store_snapshot(other) == before
    assert not list((other.root / "tmp").iterdir())


def test_blob_digest_mismatch_is_refused(svc: ImageService, other: ImageService) -> None:
    svc.import_tarball(io.BytesIO(tiny_tar(b"x\n")), "x:1")
    saved = members(save(svc, "x:1"))
    layer_path = json.loads(saved["manifest.json"])[0]["Layers"][0]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in saved.items():
            if not data or path == "manifest.json":
                continue
            if path == layer_path:  # same diff ID content, but the path promises another digest
                path = "blobs/sha256/" + "1" * 64
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        manifest = json.loads(saved["manifest.json"])
        manifest[0]["Layers"] = ["blobs/sha256/" + "1" * 64]
        raw = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    before = store_snapshot(other)
    with pytest.raises(CorruptContent, match="digest mismatch"):
        load(other, buf.getvalue())
    assert store_snapshot(other) == before


def test_garbage_is_refused(other: ImageService) -> None:
    with pytest.raises(InvalidParameter):
        load(other, b"not a tar at all" * 100)


def test_prune_dangling_then_all(svc: ImageService) -> None:
    kept = svc.import_tarball(io.BytesIO(tiny_tar(b"k\n")), "kept:1")
    dangling = svc.import_tarball(io.BytesIO(tiny_tar(b"d\n")), None)
    report = prune_images(svc, None, lambda image_id: None)
    assert report["ImagesDeleted"][0] == {"Deleted": dangling}
    assert report["SpaceReclaimed"] > 0
    assert prune_images(svc, None, lambda image_id: None) == {"ImagesDeleted": None, "SpaceReclaimed": 0}
    assert prune_images(svc, {"dangling": ["false"]}, lambda image_id: "c1")["ImagesDeleted"] is None
    report = prune_images(svc, {"dangling": ["false"], "until": ["1h"]}, lambda image_id: None)
    assert report["ImagesDeleted"] is None  # created just now: not before an hour ago
    report = prune_images(svc, {"dangling": ["false"]}, lambda image_id: None)
    assert report["ImagesDeleted"][:2] == [{"Untagged": "kept:1"}, {"Deleted": kept}]
    with pytest.raises(InvalidParameter):
        prune_images(svc, {"bogus": ["1"]}, lambda image_id: None)


def test_history_sizes_per_layer_and_oci_config_in_inspect(other: ImageService) -> None:
    from dockyard.images.history import image_history

    small, large = tiny_tar(b"s\n"), tiny_tar(b"L" * 50_000)
    load(other, oci_layout([small, large]))
    image = other.resolve("oci:v1")
    config = other.store.config(image.id)
    config["history"] = [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD small"},
                         {"created": "2024-01-01T00:00:01Z", "created_by": "ENV A=1", "empty_layer": True},
                         {"created": "2024-01-01T00:00:02Z", "created_by": "ADD large", "comment": "big"}]
    raw = json.dumps(config).encode()
    layers = other.store.get(image.id).layers
    new_id = other.store.create(raw, layers)
    other.tag(new_id, "hist", "v1")
    entries = image_history(other, "hist:v1")
    assert [e["CreatedBy"] for e in entries] == ["ADD large", "ENV A=1", "ADD small"]
    assert entries[0]["Id"] == new_id and entries[0]["Tags"] == ["hist:v1"] and entries[0]["Comment"] == "big"
    assert [e["Id"] for e in entries[1:]] == ["<missing>", "<missing>"]
    assert entries[1]["Size"] == 0
    assert entries[0]["Size"] == other.snapshots.layer(layers[1].chain_id).size >= 50_000
    assert entries[2]["Size"] == other.snapshots.layer(layers[0].chain_id).size < 50_000
    inspected = other.inspect("oci:v1")
    assert inspected["Config"]["Cmd"] == ["sh"] and inspected["Config"]["Hostname"] == ""
    assert inspected["RootFS"]["Layers"] == image.diff_ids


def test_leftovers_of_an_interrupted_load_are_swept(svc: ImageService) -> None:
    from dockyard.images.leftovers import sweep_leftovers

    kept = svc.import_tarball(io.BytesIO(tiny_tar(b"kept\n")), "kept:1")
    # what a load killed between unpacking and recording leaves: a layer, its blob, spool, ingest
    orphan_raw = tiny_tar(b"orphan\n")
    orphan = svc.snapshots.unpack(None, io.BytesIO(orphan_raw))
    svc.content.put_bytes(orphan_raw)
    spool = svc.root / "tmp"
    (spool / "load-abc" / "blobs").mkdir(parents=True)
    (spool / "unrelated").mkdir()
    (svc.content.root / "ingest" / "deadbeef").write_bytes(b"partial")
    # a container standing on a layer no image lists any more (a forced rmi)
    standing_raw = tiny_tar(b"standing\n")
    standing = svc.snapshots.unpack(None, io.BytesIO(standing_raw))
    svc.snapshots.prepare("c1", svc.snapshots.lowerdirs([standing]))
    swept = sweep_leftovers(svc, spool)
    assert (swept.spools, swept.ingests, swept.layers) == (1, 1, [orphan])
    assert not svc.snapshots.has(orphan) and not svc.content.exists(orphan)
    assert svc.snapshots.has(standing) and svc.resolve("kept:1").id == kept
    assert (spool / "unrelated").is_dir()
    # once the container's snapshot (its row in the metadata database) is gone, its layer is an orphan
    svc.snapshots.remove_container("c1")
    (svc.snapshots.root / "containers" / "c2").mkdir()  # a directory without a snapshot row stands on nothing
    assert sweep_leftovers(svc, spool).layers == [standing]
    assert not svc.snapshots.has(standing)


def test_old_docker_archive_with_linked_duplicate_layer(other: ImageService) -> None:
    layer = tiny_tar(b"same\n")
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [sha(layer), sha(layer)]}}).encode()
    manifest = json.dumps([{"Config": f"{sha(config)[7:]}.json", "RepoTags": ["old:1"],
                            "Layers": ["aaa/layer.tar", "bbb/layer.tar"]}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in ((f"{sha(config)[7:]}.json", config), ("aaa/layer.tar", layer), ("manifest.json", manifest)):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("bbb/layer.tar")
        link.type, link.linkname = tarfile.SYMTYPE, "../aaa/layer.tar"
        tar.addfile(link)
        escape = tarfile.TarInfo("ccc/layer.tar")
        escape.type, escape.linkname = tarfile.SYMTYPE, "../../../../etc/passwd"
        tar.addfile(escape)
    assert load(other, gzip.compress(buf.getvalue())) == ["Loaded image: old:1"]
    assert len(other.resolve("old:1").chain_ids) == 2


def test_oci_zstd_layer(other: ImageService) -> None:
    import zstandard  # a dependency (pyproject.toml): never skipped

    layer = tiny_tar(b"zstd layer\n")
    data = oci_layout([layer], layer_type="application/vnd.oci.image.layer.v1.tar+zstd",
                      compress=zstandard.ZstdCompressor().compress)
    assert load(other, data) == ["Loaded image: oci:v1"]
    assert (other.rootfs_layers("oci:v1")[0] / "hello.txt").read_bytes() == b"zstd layer\n"


@pytest.mark.parametrize("entries", [
    [("blobs", b"a file"), ("blobs/sha256/x", b"under it")],  # a file where a directory must be
    [("manifest.json", b"{not json")],
    [("manifest.json", b'[{"Config": "missing.json", "Layers": []}]')],
    [("index.json", b'{"manifests": [{"mediaType": "x", "digest": "sha256:' + b"a" * 64 + b'", "size": 2}]}'),
     ("blobs/sha256/" + "a" * 64, b"[]")],
    [("repositories", b"{}")],
])
def test_malformed_archives_are_refused_cleanly(other: ImageService, entries: list[tuple[str, bytes]]) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in entries:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    before = store_snapshot(other)
    with pytest.raises((InvalidParameter, NotFound, CorruptContent)):
        load(other, buf.getvalue())
    assert store_snapshot(other) == before
    assert not list((other.root / "tmp").iterdir())
