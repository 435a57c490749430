"""The image service: import, resolve, tag, rmi semantics, and the API shapes of list/inspect."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.images.service import ImageService, short_id
from dockyard.metadata.registry import forget


def tiny_tar(content: bytes = b"hello\n") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(content), 1_600_000_000
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


@pytest.fixture
def svc(tmp_path: Path) -> ImageService:
    return ImageService(tmp_path / "root")


def imp(svc: ImageService, ref: str | None, content: bytes = b"hello\n", **kw: object) -> str:
    return svc.import_tarball(io.BytesIO(tiny_tar(content)), ref, **kw)  # type: ignore[arg-type]


def test_import_builds_a_docker_shaped_config(svc: ImageService) -> None:
    raw = tiny_tar()
    image_id = svc.import_tarball(io.BytesIO(gzip.compress(raw)), "busybox",
                                  ['CMD ["sh"]', "ENV A=1"], message="", platform="linux/arm64/v8")
    image = svc.resolve("busybox")
    assert image.id == image_id and image.repo_tags == ["busybox:latest"] and image.repo_digests == []
    cfg = image.config
    assert cfg["os"] == "linux" and cfg["architecture"] == "arm64" and cfg["variant"] == "v8"
    assert cfg["comment"] == "Imported from -"
    assert cfg["history"] == [{"created": cfg["created"], "comment": "Imported from -"}]
    assert cfg["rootfs"]["type"] == "layers" and image.diff_ids == cfg["rootfs"]["diff_ids"]
    assert cfg["config"]["Cmd"] == ["sh"] and cfg["config"]["Env"] == ["A=1"]
    # the ID is the digest of the stored config; the layer blob is the uncompressed tar
    assert svc.content.exists(image_id)
    assert svc.content.read_bytes(image.diff_ids[0]) == raw
    manifest = json.loads(svc.content.read_bytes(svc.store.get(image_id).manifest))
    assert manifest["config"]["digest"] == image_id
    assert manifest["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    assert image.size == 6
    assert (svc.rootfs_layers(image)[0] / "hello.txt").read_bytes() == b"hello\n"


def test_import_message_platform_and_bad_input(svc: ImageService) -> None:
    image_id = imp(svc, None, message="my message")
    assert svc.resolve(image_id).config["comment"] == "my message"
    with pytest.raises(InvalidParameter, match="FOO is not a valid change command"):
        imp(svc, "x", changes=["FOO bar"])
    with pytest.raises(InvalidParameter, match="cannot import digest reference"):
        imp(svc, "x@sha256:" + "a" * 64)
    with pytest.raises(InvalidParameter, match="operating system is not supported"):
        imp(svc, "x", platform="windows/amd64")
    with pytest.raises(InvalidParameter, match="must be lowercase"):
        imp(svc, "X")


def test_resolve_by_every_spelling(svc: ImageService) -> None:
    image_id = imp(svc, "user/app:v1")
    hexpart = image_id[7:]
    for ref in ("user/app:v1", "docker.io/user/app:v1", image_id, hexpart, hexpart[:12], hexpart[:1],
                "sha256:" + hexpart[:5]):
        assert svc.resolve_id(ref) == image_id
    with pytest.raises(NotFound) as e:
        svc.resolve("busybox")
    assert e.value.message == "No such image: busybox:latest"
    with pytest.raises(NotFound, match="No such image: user/app:latest"):
        svc.resolve("user/app")
    with pytest.raises(InvalidParameter):
        svc.resolve("UPPER")


def test_tag_and_list_shape(svc: ImageService) -> None:
    image_id = imp(svc, "busybox", changes=["LABEL a=b"])
    assert svc.tag("busybox", "user/app", "v1") == "user/app:v1"
    assert svc.tag(image_id[7:19], "localhost:5000/x", "") == "localhost:5000/x:latest"
    [summary] = svc.list()
    assert set(summary) == {"Id", "ParentId", "RepoTags", "RepoDigests", "Created", "Size", "SharedSize",
                            "VirtualSize", "Labels", "Containers"}
    assert summary["Id"] == image_id and summary["ParentId"] == ""
    assert summary["RepoTags"] == ["busybox:latest", "localhost:5000/x:latest", "user/app:v1"]
    assert isinstance(summary["Created"], int) and summary["SharedSize"] == -1 and summary["Containers"] == -1
    assert summary["Labels"] == {"a": "b"} and summary["Size"] == summary["VirtualSize"] == 6
    assert svc.list(filters={"reference": ["user/*"]})[0]["RepoTags"] == ["user/app:v1"]
    assert svc.list(filters={"reference": {"busybox": True}})[0]["RepoTags"] == ["busybox:latest"]
    assert svc.list(filters={"reference": ["nomatch"]}) == []
    assert len(svc.list(filters={"label": ["a=b"]})) == 1 and svc.list(filters={"label": ["a=c"]}) == []
    assert len(svc.list(filters={"label": ["a"]})) == 1
    with pytest.raises(InvalidParameter, match="invalid filter 'bogus'"):
        svc.list(filters={"bogus": ["1"]})
    with pytest.raises(InvalidParameter):
        svc.tag("busybox", "sha256", "x")


def test_dangling_filter_and_retag_moves_the_tag(svc: ImageService) -> None:
    first = imp(svc, "app", b"one")
    second = imp(svc, "app", b"two")
    assert first != second
    assert svc.resolve_id("app") == second
    dangling = svc.list(filters={"dangling": ["true"]})
    assert [s["Id"] for s in dangling] == [first] and dangling[0]["RepoTags"] == []
    assert [s["Id"] for s in svc.list(filters={"dangling": ["false"]})] == [second]
    with pytest.raises(InvalidParameter, match="Invalid filter 'dangling=maybe'"):
        svc.list(filters={"dangling": ["maybe"]})


def test_inspect_shape(svc: ImageService) -> None:
    image_id = imp(svc, "busybox", changes=["ENV A=1"])
    out = svc.inspect("busybox")
    for key in ("Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Container", "ContainerConfig",
                "DockerVersion", "Author", "Config", "Architecture", "Os", "Size", "VirtualSize", "GraphDriver",
                "RootFS", "Metadata"):
        assert key in out, key
    assert out["Id"] == image_id and out["RepoTags"] == ["busybox:latest"]
    assert out["Config"]["Env"] == ["A=1"] and out["Os"] == "linux"
    assert out["RootFS"] == {"Type": "layers", "Layers": svc.resolve(image_id).diff_ids}
    assert out["GraphDriver"]["Name"] == "overlay2"
    assert Path(out["GraphDriver"]["Data"]["UpperDir"]).is_dir()
    assert out["Created"].endswith("Z") and "T" in out["Created"]
    assert out["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"
    assert svc.inspect(imp(svc, None, b"x"))["Metadata"]["LastTagTime"] == "0001-01-01T00:00:00Z"


def test_rmi_of_one_of_several_tags_only_untags(svc: ImageService) -> None:
    image_id = imp(svc, "busybox")
    svc.tag("busybox", "other", "")
    assert svc.remove("busybox") == [{"Untagged": "busybox:latest"}]
    assert svc.resolve_id("other") == image_id


def test_rmi_of_the_last_tag_deletes_image_layers_and_blobs(svc: ImageService) -> None:
    image_id = imp(svc, "busybox")
    chain = svc.resolve(image_id).chain_ids[0]
    assert svc.remove("busybox") == [{"Untagged": "busybox:latest"}, {"Deleted": image_id}, {"Deleted": chain}]
    assert svc.list() == [] and svc.content.list() == [] and svc.snapshots.list_layers() == []
    with pytest.raises(NotFound):
        svc.resolve(image_id)


def test_rmi_keeps_layers_another_image_uses(svc: ImageService) -> None:
    a = imp(svc, "a", changes=["ENV X=1"])
    b = imp(svc, "b", changes=["ENV X=2"])  # same layer, other config
    assert a != b
    assert svc.remove("a") == [{"Untagged": "a:latest"}, {"Deleted": a}]
    assert (svc.rootfs_layers("b")[0] / "hello.txt").exists()
    assert svc.content.exists(svc.resolve("b").diff_ids[0])


def test_rmi_by_id_with_several_repositories_needs_force(svc: ImageService) -> None:
    image_id = imp(svc, "busybox")
    svc.tag("busybox", "other", "")
    with pytest.raises(Conflict) as e:
        svc.remove(image_id[7:19])
    assert e.value.message == (f"conflict: unable to delete {short_id(image_id)} (must be forced) - "
                               "image is referenced in multiple repositories")
    out = svc.remove(image_id[7:19], force=True)
    assert out[:2] == [{"Untagged": "busybox:latest"}, {"Untagged": "other:latest"}]
    assert out[2] == {"Deleted": image_id}


def test_rmi_by_id_with_one_tag_untags_and_deletes(svc: ImageService) -> None:
    image_id = imp(svc, "busybox")
    assert svc.remove(image_id)[:2] == [{"Untagged": "busybox:latest"}, {"Deleted": image_id}]


def test_rmi_of_an_image_a_container_uses(svc: ImageService) -> None:
    image_id = imp(svc, "busybox")
    cid = "0123456789ab" + "f" * 52
    with pytest.raises(Conflict) as e:
        svc.remove("busybox", in_use=lambda i: cid if i == image_id else None)
    assert e.value.message == (f'conflict: unable to remove repository reference "busybox" (must force) - '
                               f"container 0123456789ab is using its referenced image {short_id(image_id)}")
    with pytest.raises(Conflict) as e:
        svc.remove(image_id, in_use=lambda i: cid)
    assert e.value.message == (f"conflict: unable to delete {short_id(image_id)} (cannot be forced) - "
                               "image is being used by running container 0123456789ab")
    with pytest.raises(Conflict, match="must be forced.*stopped container 0123456789ab"):
        svc.remove(image_id, in_use=lambda i: cid, running=lambda i: None)
    # forced untag of the last tag while a container runs: untagged, image kept (quietly)
    assert svc.remove("busybox", force=True, in_use=lambda i: cid) == [{"Untagged": "busybox:latest"}]
    assert svc.resolve_id(image_id) == image_id
    # forced delete with a stopped container: deleted, its layers kept for the container
    out = svc.remove(image_id, force=True, in_use=lambda i: cid, running=lambda i: None)
    assert out == [{"Deleted": image_id}]
    assert len(svc.snapshots.list_layers()) == 1


def test_rmi_of_unknown_image(svc: ImageService) -> None:
    with pytest.raises(NotFound, match="No such image: nope:latest"):
        svc.remove("nope")


def test_references_survive_a_restart(svc: ImageService, tmp_path: Path) -> None:
    image_id = imp(svc, "busybox")
    forget(tmp_path / "root")  # close the database, as a daemon that stops would
    again = ImageService(tmp_path / "root")
    assert again.resolve_id("busybox") == image_id
    assert again.store.all_references() == {"docker.io/library/busybox:latest": image_id}
    assert not (tmp_path / "root/images/repositories.json").exists()  # records are in the database only


def test_container_layer(svc: ImageService) -> None:
    imp(svc, "busybox")
    cid = "c" * 64
    lowers, upper, work, rootfs = svc.prepare_container(cid, "busybox")
    assert lowers == svc.rootfs_layers("busybox") and upper.is_dir() and work.is_dir() and rootfs.is_dir()
    gd = svc.graph_driver(cid)
    assert gd["Name"] == "overlay2" and gd["Data"]["LowerDir"] == str(lowers[0])
    assert gd["Data"]["UpperDir"] == str(upper) and gd["Data"]["MergedDir"] == str(rootfs)
    assert svc.remove_container_layer(cid) and not upper.exists()


def test_failed_import_leaves_nothing(svc: ImageService) -> None:
    raw = tiny_tar()
    with pytest.raises(Exception):  # noqa: B017 - CorruptContent
        svc.import_tarball(io.BytesIO(raw[:600]), "x", [])
    assert svc.content.list() == [] and svc.snapshots.list_layers() == [] and svc.list() == []
    assert os.listdir(svc.root / "content" / "ingest") == []


@pytest.mark.root
def test_import_busybox_fixture(svc: ImageService, busybox_tar: Path) -> None:
    with busybox_tar.open("rb") as f:
        image_id = svc.import_tarball(f, "busybox:latest", ['CMD ["sh"]'])
    [lower] = svc.rootfs_layers(image_id)
    assert (lower / "bin/busybox").stat().st_mode & 0o111
    assert os.stat(lower / "bin/sh").st_ino == os.stat(lower / "bin/busybox").st_ino
    assert (lower / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert (lower / "root").stat().st_uid == 0
    assert svc.list()[0]["RepoTags"] == ["busybox:latest"]
