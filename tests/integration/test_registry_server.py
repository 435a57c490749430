"""Our registry server, ``dockyard registry serve`` (issue 7, server side), spoken to over raw HTTP
(``requests``), by skopeo, by dockyard's own pull and push, and by Docker's CLI through a private
dockerd: uploads (monolithic, chunked, mounted), manifests by tag and digest, tag pagination, the
catalog, referrers, deletes, the spec's error codes, read-only mode, gc, and 50 concurrent pushes
and pulls whose every digest verifies."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.daemon_harness import Daemon
from tests.integration.registry_harness import REPO, DockyardRegistry, make_test_ca, run_output
from tests.integration.test_cli_against_dockerd import Dockerd, dockerd  # noqa: F401 - the fixture

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
EMPTY = "application/vnd.oci.empty.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture()
def registry(tmp_path: Path) -> Iterator[DockyardRegistry]:
    reg = DockyardRegistry(tmp_path / "registry")
    try:
        yield reg
    finally:
        reg.close()


def errors_of(response: requests.Response) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


def push_blob(reg: DockyardRegistry, repo: str, data: bytes, session: Any = requests) -> str:
    """A monolithic upload: ``POST …/blobs/uploads/?digest=`` with the whole blob."""
    digest = sha(data)
    r = session.post(reg.url(f"/v2/{repo}/blobs/uploads/"), params={"digest": digest}, data=data, timeout=60)
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Location"] == f"/v2/{repo}/blobs/{digest}"
    return digest


def image_manifest(config: bytes, layers: list[bytes], **extra: Any) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha(layer), "size": len(layer)} for layer in layers],
            **extra}


def push_image(reg: DockyardRegistry, repo: str, ref: str, config: bytes, layers: list[bytes],
               session: Any = requests, **extra: Any) -> tuple[str, bytes]:
    for blob in (config, *layers):
        push_blob(reg, repo, blob, session)
    body = json.dumps(image_manifest(config, layers, **extra)).encode()
    r = session.put(reg.url(f"/v2/{repo}/manifests/{ref}"), data=body, headers={"Content-Type": OCI_MANIFEST},
                    timeout=60)
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == sha(body)
    return sha(body), body


def config_of(label: str) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"l": label}},
                       "rootfs": {"type": "layers", "diff_ids": []}}).encode()


def test_version_check_and_error_codes(registry: DockyardRegistry) -> None:
    r = requests.get(registry.url("/v2/"), timeout=10)
    assert r.status_code == 200 and r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    digest = sha(b"nothing")
    cases = [
        ("GET", f"/v2/a/b/blobs/{digest}", 404, "BLOB_UNKNOWN"),
        ("HEAD", f"/v2/a/b/blobs/{digest}", 404, None),
        ("GET", "/v2/a/b/blobs/sha256:zz", 400, "DIGEST_INVALID"),
        ("GET", "/v2/Upper/manifests/latest", 400, "NAME_INVALID"),
        ("GET", "/v2/a/manifests/latest", 404, "MANIFEST_UNKNOWN"),
        ("GET", f"/v2/a/manifests/{digest}", 404, "MANIFEST_UNKNOWN"),
        ("GET", "/v2/a/tags/list", 404, "NAME_UNKNOWN"),
        ("GET", "/v2/a/blobs/uploads/0123abcd", 404, "BLOB_UPLOAD_UNKNOWN"),
        ("PATCH", "/v2/a/blobs/uploads/0123abcd", 404, "BLOB_UPLOAD_UNKNOWN"),
        ("DELETE", f"/v2/a/blobs/{digest}", 404, "BLOB_UNKNOWN"),
        ("POST", f"/v2/a/manifests/{digest}", 405, "UNSUPPORTED"),
    ]
    for method, path, status, code in cases:
        r = requests.request(method, registry.url(path), timeout=10)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        if code is not None:
            assert errors_of(r) == [code], (method, path, r.text)
    # a wrong digest for the bytes sent
    r = requests.post(registry.url("/v2/a/blobs/uploads/"), params={"digest": digest}, data=b"other", timeout=10)
    assert (r.status_code, errors_of(r)) == (400, ["DIGEST_INVALID"])
    assert requests.head(registry.url(f"/v2/a/blobs/{sha(b'other')}"), timeout=10).status_code == 404
    # manifests: not JSON, a missing blob, a digest reference that does not match
    put = registry.url("/v2/a/manifests/v1")
    r = requests.put(put, data=b"{not json", headers={"Content-Type": OCI_MANIFEST}, timeout=10)
    assert (r.status_code, errors_of(r)) == (400, ["MANIFEST_INVALID"])
    body = json.dumps(image_manifest(b"{}", [b"layer"])).encode()
    r = requests.put(put, data=body, headers={"Content-Type": OCI_MANIFEST}, timeout=10)
    assert (r.status_code, errors_of(r)) == (400, ["MANIFEST_BLOB_UNKNOWN"])
    push_blob(registry, "a", b"{}")
    push_blob(registry, "a", b"layer")
    r = requests.put(registry.url(f"/v2/a/manifests/{digest}"), data=body, headers={"Content-Type": OCI_MANIFEST},
                     timeout=10)
    assert (r.status_code, errors_of(r)) == (400, ["DIGEST_INVALID"])
    r = requests.put(put, data=body, headers={"Content-Type": OCI_MANIFEST}, timeout=10)
    assert r.status_code == 201, r.text
    # blobs are per repository: another repository does not see them
    assert requests.head(registry.url(f"/v2/other/blobs/{sha(b'layer')}"), timeout=10).status_code == 404


def test_chunked_upload_status_range_and_cancel(registry: DockyardRegistry) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    digest = sha(data)
    start = requests.post(registry.url("/v2/big/blob/blobs/uploads/"), timeout=10)
    assert start.status_code == 202, start.text
    location, uuid = start.headers["Location"], start.headers["Docker-Upload-UUID"]
    assert location.endswith(uuid)
    pieces = [data[:300_000], data[300_000:700_000], data[700_000:]]
    offset = 0
    for piece in pieces:
        r = requests.patch(registry.url(location), data=piece, timeout=30, headers={
            "Content-Range": f"{offset}-{offset + len(piece) - 1}", "Content-Type": "application/octet-stream"})
        assert r.status_code == 202, r.text
        offset += len(piece)
        assert r.headers["Range"] == f"0-{offset - 1}"
        location = r.headers["Location"]
        if offset == 300_000:  # a chunk that does not continue where the upload is: 416, nothing kept
            bad = requests.patch(registry.url(location), data=b"x", headers={"Content-Range": "5-5"}, timeout=10)
            assert bad.status_code == 416 and errors_of(bad) == ["BLOB_UPLOAD_INVALID"]
    status = requests.get(registry.url(location), timeout=10)
    assert status.status_code == 204 and status.headers["Range"] == f"0-{len(data) - 1}"
    done = requests.put(registry.url(location), params={"digest": digest}, timeout=30)
    assert done.status_code == 201 and done.headers["Docker-Content-Digest"] == digest
    assert requests.get(registry.url(location), timeout=10).status_code == 404  # the session is over
    head = requests.head(registry.url(f"/v2/big/blob/blobs/{digest}"), timeout=10)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == digest
    whole = requests.get(registry.url(f"/v2/big/blob/blobs/{digest}"), timeout=30)
    assert sha(whole.content) == digest
    part = requests.get(registry.url(f"/v2/big/blob/blobs/{digest}"), headers={"Range": "bytes=1000-1999"}, timeout=10)
    assert part.status_code == 206 and part.content == data[1000:2000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    tail = requests.get(registry.url(f"/v2/big/blob/blobs/{digest}"), headers={"Range": "bytes=-10"}, timeout=10)
    assert tail.status_code == 206 and tail.content == data[-10:]
    beyond = requests.get(registry.url(f"/v2/big/blob/blobs/{digest}"), headers={"Range": f"bytes={len(data)}-"},
                          timeout=10)
    assert beyond.status_code == 416
    # a PATCH without Content-Range (Docker's streamed upload), then a PUT carrying the last bytes
    start = requests.post(registry.url("/v2/big/blob/blobs/uploads/"), timeout=10)
    r = requests.patch(registry.url(start.headers["Location"]), data=iter([b"ab", b"cd"]), timeout=10)
    assert r.status_code == 202 and r.headers["Range"] == "0-3"
    done = requests.put(registry.url(r.headers["Location"]), params={"digest": sha(b"abcdef")}, data=b"ef", timeout=10)
    assert done.status_code == 201, done.text
    # a chunk shorter than its Content-Range is dropped (416); the upload goes on from where it was,
    # and its digest (hashed as the bytes arrive) covers only the bytes kept
    start = requests.post(registry.url("/v2/big/blob/blobs/uploads/"), timeout=10)
    kept = requests.patch(registry.url(start.headers["Location"]), data=b"ab", headers={"Content-Range": "0-1"},
                          timeout=10)
    short = requests.patch(registry.url(kept.headers["Location"]), data=b"cd", headers={"Content-Range": "2-9"},
                           timeout=10)
    assert (short.status_code, errors_of(short)) == (416, ["SIZE_INVALID"])
    r = requests.patch(registry.url(kept.headers["Location"]), data=b"xy", headers={"Content-Range": "2-3"},
                       timeout=10)
    assert r.status_code == 202 and r.headers["Range"] == "0-3"
    done = requests.put(registry.url(r.headers["Location"]), params={"digest": sha(b"abxy")}, timeout=10)
    assert done.status_code == 201, done.text
    # a cancelled upload is gone
    start = requests.post(registry.url("/v2/big/blob/blobs/uploads/"), timeout=10)
    assert requests.delete(registry.url(start.headers["Location"]), timeout=10).status_code == 204
    gone = requests.get(registry.url(start.headers["Location"]), timeout=10)
    assert (gone.status_code, errors_of(gone)) == (404, ["BLOB_UPLOAD_UNKNOWN"])
    # a finished upload whose digest is wrong is refused and nothing is stored
    start = requests.post(registry.url("/v2/big/blob/blobs/uploads/"), timeout=10)
    wrong = requests.put(registry.url(start.headers["Location"]), params={"digest": sha(b"y")}, data=b"x", timeout=10)
    assert (wrong.status_code, errors_of(wrong)) == (400, ["DIGEST_INVALID"])
    assert requests.head(registry.url(f"/v2/big/blob/blobs/{sha(b'x')}"), timeout=10).status_code == 404


def test_cross_repository_mount(registry: DockyardRegistry) -> None:
    digest = push_blob(registry, "src/repo", b"shared layer")
    r = requests.post(registry.url("/v2/dst/repo/blobs/uploads/"), params={"mount": digest, "from": "src/repo"},
                      timeout=10)
    assert r.status_code == 201 and r.headers["Location"] == f"/v2/dst/repo/blobs/{digest}", r.text
    assert requests.get(registry.url(f"/v2/dst/repo/blobs/{digest}"), timeout=10).content == b"shared layer"
    # from a repository without the blob: an ordinary upload session starts instead
    other = sha(b"not there")
    r = requests.post(registry.url("/v2/dst/repo/blobs/uploads/"), params={"mount": other, "from": "src/repo"},
                      timeout=10)
    assert r.status_code == 202 and "Docker-Upload-UUID" in r.headers


def test_tags_pagination_and_catalog(registry: DockyardRegistry) -> None:
    config = config_of("tags")
    digest, body = push_image(registry, "lib/app", "t0", config, [b"l1"])
    for i in range(1, 10):
        r = requests.put(registry.url(f"/v2/lib/app/manifests/t{i}"), data=body,
                         headers={"Content-Type": OCI_MANIFEST}, timeout=10)
        assert r.status_code == 201
    push_image(registry, "another", "latest", config, [b"l1"])
    everything = requests.get(registry.url("/v2/lib/app/tags/list"), timeout=10).json()
    assert everything == {"name": "lib/app", "tags": [f"t{i}" for i in range(10)]}
    seen: list[str] = []
    url = registry.url("/v2/lib/app/tags/list?n=4")
    while url:
        r = requests.get(url, timeout=10)
        seen += r.json()["tags"]
        link = r.headers.get("Link")
        url = registry.url(link[1:link.index(">")]) if link else ""
        if link:
            assert link.endswith('; rel="next"')
    assert seen == [f"t{i}" for i in range(10)]
    assert requests.get(registry.url("/v2/lib/app/tags/list?n=3&last=t5"), timeout=10).json()["tags"] == [
        "t6", "t7", "t8"]
    assert requests.get(registry.url("/v2/lib/app/tags/list?n=0"), timeout=10).json()["tags"] == []
    assert requests.get(registry.url("/v2/_catalog"), timeout=10).json() == {"repositories": ["another", "lib/app"]}
    page = requests.get(registry.url("/v2/_catalog?n=1"), timeout=10)
    assert page.json() == {"repositories": ["another"]} and "last=another" in page.headers["Link"]
    # by tag and by digest, the same bytes, media type and digest header
    for ref in ("t3", digest):
        r = requests.get(registry.url(f"/v2/lib/app/manifests/{ref}"), timeout=10)
        assert r.content == body and r.headers["Content-Type"] == OCI_MANIFEST
        assert r.headers["Docker-Content-Digest"] == digest
        head = requests.head(registry.url(f"/v2/lib/app/manifests/{ref}"), timeout=10)
        assert head.headers["Content-Length"] == str(len(body)) and head.headers["Docker-Content-Digest"] == digest


def test_referrers_and_artifact_type_filter(registry: DockyardRegistry) -> None:
    subject_digest, subject_body = push_image(registry, "app", "v1", config_of("subject"), [b"base"])
    subject = {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject_body)}
    push_blob(registry, "app", b"{}")
    referrers = {}
    for kind, content in (("application/vnd.example.sig", b"signature"), ("application/vnd.example.sbom", b"sbom")):
        blob = push_blob(registry, "app", content)
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": kind,
                           "config": {"mediaType": EMPTY, "digest": sha(b"{}"), "size": 2},
                           "layers": [{"mediaType": "application/octet-stream", "digest": blob,
                                       "size": len(content)}],
                           "subject": subject, "annotations": {"kind": kind}}).encode()
        r = requests.put(registry.url(f"/v2/app/manifests/{sha(body)}"), data=body,
                         headers={"Content-Type": OCI_MANIFEST}, timeout=10)
        assert r.status_code == 201, r.text
        assert r.headers["OCI-Subject"] == subject_digest
        referrers[kind] = sha(body)
    # the subject need not exist: a referrer pushed before its subject is listed all the same
    index = requests.get(registry.url(f"/v2/app/referrers/{subject_digest}"), timeout=10)
    assert index.status_code == 200 and index.headers["Content-Type"] == OCI_INDEX
    listed = {d["artifactType"]: d for d in index.json()["manifests"]}
    assert {k: d["digest"] for k, d in listed.items()} == referrers
    assert listed["application/vnd.example.sig"]["annotations"] == {"kind": "application/vnd.example.sig"}
    only = requests.get(registry.url(f"/v2/app/referrers/{subject_digest}"),
                        params={"artifactType": "application/vnd.example.sbom"}, timeout=10)
    assert only.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in only.json()["manifests"]] == [referrers["application/vnd.example.sbom"]]
    # deleting a referrer takes it out of the index; an unknown subject has an empty index
    assert requests.delete(registry.url(f"/v2/app/manifests/{referrers['application/vnd.example.sig']}"),
                           timeout=10).status_code == 202
    left = requests.get(registry.url(f"/v2/app/referrers/{subject_digest}"), timeout=10).json()["manifests"]
    assert [d["digest"] for d in left] == [referrers["application/vnd.example.sbom"]]
    empty = requests.get(registry.url(f"/v2/app/referrers/{sha(b'none')}"), timeout=10)
    assert empty.status_code == 200 and empty.json()["manifests"] == []


def test_deletes_gc_and_read_only(registry: DockyardRegistry, tmp_path: Path) -> None:
    kept_digest, _ = push_image(registry, "keep", "v1", config_of("keep"), [b"kept layer"])
    gone_digest, _ = push_image(registry, "drop", "v1", config_of("drop"), [b"dropped layer"])
    requests.put(registry.url("/v2/drop/manifests/v2"), data=_, headers={"Content-Type": OCI_MANIFEST}, timeout=10)
    stray = push_blob(registry, "drop", b"never in a manifest")
    # a tag delete leaves the manifest; a digest delete takes it and its other tags
    assert requests.delete(registry.url("/v2/drop/manifests/v1"), timeout=10).status_code == 202
    assert requests.get(registry.url("/v2/drop/manifests/v1"), timeout=10).status_code == 404
    assert requests.get(registry.url(f"/v2/drop/manifests/{gone_digest}"), timeout=10).status_code == 200
    assert requests.delete(registry.url(f"/v2/drop/manifests/{gone_digest}"), timeout=10).status_code == 202
    r = requests.get(registry.url("/v2/drop/manifests/v2"), timeout=10)
    assert (r.status_code, errors_of(r)) == (404, ["MANIFEST_UNKNOWN"])
    assert requests.get(registry.url("/v2/drop/tags/list"), timeout=10).json()["tags"] == []
    assert requests.delete(registry.url(f"/v2/drop/blobs/{stray}"), timeout=10).status_code == 202
    assert requests.head(registry.url(f"/v2/drop/blobs/{stray}"), timeout=10).status_code == 404
    # gc: a dry run lists, deletes nothing; then the blobs only the dropped image had go
    unreferenced = {gone_digest, sha(config_of("drop")), sha(b"dropped layer"), stray}

    def gc(*flags: str) -> str:
        out = subprocess.run([sys.executable, "-m", "dockyard.cli.main", "registry", "gc", "--root",
                              str(registry.root), *flags], capture_output=True, text=True, timeout=60, cwd=REPO)
        assert out.returncode == 0, out.stderr
        return out.stdout

    dry = gc("--dry-run")
    assert {line.split()[-1] for line in dry.splitlines() if line.startswith("would delete ")} == unreferenced
    for digest in unreferenced:
        assert (registry.root / "content" / "blobs" / "sha256" / digest[7:]).exists()
    real = gc()
    assert {line.split()[-1] for line in real.splitlines() if line.startswith("deleted ")} == unreferenced
    for digest in unreferenced:
        assert not (registry.root / "content" / "blobs" / "sha256" / digest[7:]).exists()
    kept = requests.get(registry.url("/v2/keep/manifests/v1"), timeout=10)
    assert sha(kept.content) == kept_digest
    for desc in [kept.json()["config"], *kept.json()["layers"]]:
        assert sha(requests.get(registry.url(f"/v2/keep/blobs/{desc['digest']}"), timeout=10).content) == desc["digest"]
    # read-only: reads answer, every write is refused
    ro = DockyardRegistry(tmp_path / "read-only", "--read-only", root=registry.root)
    try:
        assert requests.get(ro.url("/v2/keep/manifests/v1"), timeout=10).status_code == 200
        for method, path in (("POST", "/v2/keep/blobs/uploads/"), ("PUT", "/v2/keep/manifests/v2"),
                             ("DELETE", "/v2/keep/manifests/v1"), ("DELETE", f"/v2/keep/blobs/{kept_digest}")):
            r = requests.request(method, ro.url(path), timeout=10)
            assert (r.status_code, errors_of(r)) == (405, ["UNSUPPORTED"]), (method, path)
    finally:
        ro.close()
    assert requests.get(registry.url("/v2/keep/manifests/v1"), timeout=10).status_code == 200


def write_oci_layout(directory: Path, tag: str, rootfs_tar: Path) -> str:
    """An OCI image layout holding one image (busybox's rootfs as one gzip layer); returns its manifest digest."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
        return sha(data)

    raw = rootfs_tar.read_bytes()
    layer = gzip.compress(raw, mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [sha(raw)]}}).encode()
    put(config)
    put(layer)
    manifest = json.dumps(image_manifest(config, [layer])).encode()
    digest = put(manifest)
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
         "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return digest


def test_skopeo_copies_in_and_out(registry: DockyardRegistry, tmp_path: Path, busybox_tar: Path) -> None:
    digest = write_oci_layout(tmp_path / "layout", "v1", busybox_tar)
    registry.skopeo_copy(f"oci:{tmp_path / 'layout'}:v1", "skopeo/bb:v1")
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/skopeo/bb:v1"],
                         check=True, capture_output=True, timeout=60).stdout
    assert sha(raw) == digest
    out = tmp_path / "out"
    subprocess.run(["skopeo", "copy", "--insecure-policy", "--src-tls-verify=false",
                    f"docker://{registry.host}/skopeo/bb@{digest}", f"oci:{out}:copied"],
                   check=True, capture_output=True, timeout=120)
    for blob in (out / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    assert sorted(p.name for p in (out / "blobs" / "sha256").iterdir()) == sorted(
        p.name for p in (tmp_path / "layout" / "blobs" / "sha256").iterdir())
    # a copy between two repositories of our server (skopeo mounts the blobs across them)
    copied = subprocess.run(["skopeo", "copy", "--insecure-policy", "--src-tls-verify=false", "--dest-tls-verify=false",
                             f"docker://{registry.host}/skopeo/bb:v1", f"docker://{registry.host}/skopeo/again:v2"],
                            capture_output=True, text=True, timeout=120)
    assert copied.returncode == 0, copied.stderr
    tags = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{registry.host}/skopeo/again"],
                          check=True, capture_output=True, timeout=60).stdout
    assert json.loads(tags)["Tags"] == ["v2"]


def test_fifty_concurrent_pushes_and_pulls(registry: DockyardRegistry) -> None:
    """25 clients push distinct images, 25 push one identical image, all at once, each then pulls
    its image back and verifies every digest; nothing is lost or corrupted."""
    shared_layer = b"identical " * 100_000

    def one(i: int) -> list[str]:
        with requests.Session() as session:
            if i % 2:
                repo, config, layer = f"distinct/n{i}", config_of(f"n{i}"), f"layer {i} ".encode() * 50_000
            else:
                repo, config, layer = "same/image", config_of("same"), shared_layer
            digest, body = push_image(registry, repo, f"t{i}", config, [layer], session)
            pulled = session.get(registry.url(f"/v2/{repo}/manifests/t{i}"), timeout=60)
            checks = [sha(pulled.content) == digest, pulled.headers["Docker-Content-Digest"] == digest]
            for desc in [pulled.json()["config"], *pulled.json()["layers"]]:
                blob = session.get(registry.url(f"/v2/{repo}/blobs/{desc['digest']}"), timeout=60)
                checks.append(sha(blob.content) == desc["digest"] and len(blob.content) == desc["size"])
            return [f"client {i}: check {n} failed" for n, ok in enumerate(checks) if not ok]

    with ThreadPoolExecutor(50) as pool:
        failures = [f for result in pool.map(one, range(50)) for f in result]
    assert not failures, failures
    tags = requests.get(registry.url("/v2/same/image/tags/list"), timeout=10).json()["tags"]
    assert sorted(tags) == sorted(f"t{i}" for i in range(0, 50, 2))
    assert len(requests.get(registry.url("/v2/_catalog"), timeout=10).json()["repositories"]) == 26
    assert not list((registry.root / "uploads").iterdir())
    assert not list((registry.root / "content" / "ingest").iterdir())


@pytest.mark.root
@pytest.mark.docker_cli
def test_dockyard_and_docker_push_and_pull(registry: DockyardRegistry, busybox_tar: Path,
                                           tmp_path_factory: pytest.TempPathFactory,
                                           dockerd: Dockerd) -> None:  # noqa: F811
    """dockyard's push (and Docker's CLI through our API) into our server, a fresh dockyard's pull back,
    then a private dockerd's pull, run, tag and push of another repository."""
    pusher = Daemon(tmp_path_factory.mktemp("dockyard-push"))
    try:
        pusher.import_busybox(busybox_tar)
        ref = f"{registry.host}/pushed/bb:v1"
        pusher.cli("tag", "busybox", ref, check=True)
        out = pusher.cli("push", ref, timeout=120)
        assert out.returncode == 0, out.stderr
        raw = requests.get(registry.url("/v2/pushed/bb/manifests/v1"), timeout=10)
        assert out.stdout.splitlines()[-1] == f"v1: digest: {sha(raw.content)} size: {len(raw.content)}"
        other = f"{registry.host}/elsewhere/bb:v1"
        pusher.cli("tag", "busybox", other, check=True)
        mounted = pusher.cli("push", other, timeout=120)
        assert mounted.returncode == 0 and ": Mounted from pushed/bb" in mounted.stdout, mounted.stdout
        fresh = Daemon(tmp_path_factory.mktemp("dockyard-fresh"))
        try:
            fresh.cli("pull", ref, timeout=120, check=True)
            assert run_output(fresh, ref, "echo", "served by dockyard") == "served by dockyard\n"
        finally:
            fresh.close()
    finally:
        pusher.close()
    pulled = dockerd.docker("pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    run = dockerd.docker("run", "--rm", "--network", "none", ref, "echo", "in dockerd")
    assert run.returncode == 0 and run.stdout == "in dockerd\n", run.stderr
    retagged = f"{registry.host}/from/dockerd:latest"
    try:
        assert dockerd.docker("tag", ref, retagged).returncode == 0
        pushed = dockerd.docker("push", retagged)
        assert pushed.returncode == 0, pushed.stderr
        digest = pushed.stdout.split("digest: ")[1].split()[0]
        got = requests.get(registry.url("/v2/from/dockerd/manifests/latest"), timeout=10,
                           headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
        assert sha(got.content) == digest == got.headers["Docker-Content-Digest"]
        for desc in [got.json()["config"], *got.json()["layers"]]:
            blob = requests.get(registry.url(f"/v2/from/dockerd/blobs/{desc['digest']}"), timeout=60)
            assert sha(blob.content) == desc["digest"]
    finally:
        dockerd.docker("rmi", ref, retagged)




ACCESS = [{"account": "alice", "name": "alice/*", "actions": ["pull", "push", "delete"]},
          {"account": "*", "name": "public/*", "actions": ["pull"]}]


def htpasswd_file(path: Path) -> Path:
    lines = [subprocess.run(["htpasswd", "-Bbn", user, password], check=True, capture_output=True,
                            text=True).stdout.strip() for user, password in (("alice", "pw-a"), ("bob", "pw-b"))]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_basic_auth_with_per_repository_rules(tmp_path: Path) -> None:
    reg = DockyardRegistry(tmp_path / "reg", auth={"htpasswd": str(htpasswd_file(tmp_path / "htpasswd")),
                                                   "realm": "test-realm", "access": ACCESS})
    try:
        r = requests.get(reg.url("/v2/"), timeout=10)
        assert (r.status_code, errors_of(r)) == (401, ["UNAUTHORIZED"])
        assert r.headers["WWW-Authenticate"] == 'Basic realm="test-realm"'
        assert requests.get(reg.url("/v2/"), auth=("alice", "wrong"), timeout=10).status_code == 401
        assert requests.get(reg.url("/v2/"), auth=("nobody", "pw-a"), timeout=10).status_code == 401
        assert requests.get(reg.url("/v2/"), auth=("alice", "pw-a"), timeout=10).status_code == 200
        with requests.Session() as alice:
            alice.auth = ("alice", "pw-a")
            digest, _ = push_image(reg, "alice/app", "v1", config_of("a"), [b"alice layer"], alice)
            assert alice.get(reg.url(f"/v2/alice/app/manifests/{digest}"), timeout=10).status_code == 200
        for user, method, path in (("bob", "GET", "/v2/alice/app/manifests/v1"),
                                   ("bob", "POST", "/v2/bob/x/blobs/uploads/"),
                                   ("alice", "POST", "/v2/public/x/blobs/uploads/"),
                                   ("bob", "DELETE", f"/v2/alice/app/manifests/{digest}")):
            r = requests.request(method, reg.url(path), auth=(user, f"pw-{user[0]}"), timeout=10)
            assert (r.status_code, errors_of(r)) == (403, ["DENIED"]), (user, method, path, r.text)
        # a mount needs pull on the source: bob cannot mount alice's blob into a repository of his
        layer = sha(b"alice layer")
        r = requests.post(reg.url("/v2/public/x/blobs/uploads/"), params={"mount": layer, "from": "alice/app"},
                          auth=("bob", "pw-b"), timeout=10)
        assert r.status_code == 403
        # skopeo with and without the right credentials
        write_oci_layout(tmp_path / "layout", "v1", _small_rootfs(tmp_path))
        reg.skopeo_copy(f"oci:{tmp_path / 'layout'}:v1", "alice/bb:v1", creds="alice:pw-a")
        refused = subprocess.run(["skopeo", "copy", "--insecure-policy", "--dest-tls-verify=false",
                                  "--dest-creds=bob:pw-b", f"oci:{tmp_path / 'layout'}:v1",
                                  f"docker://{reg.host}/alice/bb:v2"], capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0 and "403 (Forbidden)" in refused.stderr, refused.stderr
    finally:
        reg.close()


def _small_rootfs(tmp_path: Path) -> Path:
    """A one-file rootfs tarball (the auth tests need an image, not busybox)."""
    path = tmp_path / "small.tar"
    data = b"hello\n"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_bearer_token_flow_with_scopes(tmp_path: Path) -> None:
    reg = DockyardRegistry(tmp_path / "reg", auth={"htpasswd": str(htpasswd_file(tmp_path / "htpasswd")),
                                                   "mode": "token", "access": ACCESS})
    try:
        r = requests.get(reg.url("/v2/"), timeout=10)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == f'Bearer realm="http://{reg.host}/token",service="dockyard-registry"'
        r = requests.get(reg.url("/v2/alice/app/tags/list"), timeout=10)
        challenge = r.headers["WWW-Authenticate"]
        assert challenge.endswith(',scope="repository:alice/app:pull"'), challenge

        def token(user: str | None, scope: str) -> tuple[str, list[Any]]:
            answer = requests.get(reg.url("/token"), params={"service": "dockyard-registry", "scope": scope},
                                  auth=(user, f"pw-{user[0]}") if user else None, timeout=10)
            assert answer.status_code == 200, answer.text
            value = answer.json()["token"]
            claims = json.loads(_unb64(value.split(".")[1]))
            return value, claims["access"]

        alice, granted = token("alice", "repository:alice/app:pull,push")
        assert granted == [{"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}]
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {alice}"
            push_image(reg, "alice/app", "v1", config_of("t"), [b"token layer"], session)
            # the token names alice/app only; another repository asks for a new one
            other = session.get(reg.url("/v2/alice/other/tags/list"), timeout=10)
            assert other.status_code == 401 and 'error="insufficient_scope"' in other.headers["WWW-Authenticate"]
        bob, granted = token("bob", "repository:alice/app:pull,push")
        assert granted == []
        denied = requests.get(reg.url("/v2/alice/app/manifests/v1"), headers={"Authorization": f"Bearer {bob}"},
                              timeout=10)
        assert denied.status_code == 401 and 'error="insufficient_scope"' in denied.headers["WWW-Authenticate"]
        _, granted = token("bob", "repository:public/x:pull,push")
        assert granted == [{"type": "repository", "name": "public/x", "actions": ["pull"]}]
        _, granted = token(None, "repository:public/x:pull")  # anonymous: a token granting nothing
        assert granted == []
        wrong = requests.get(reg.url("/token"), params={"scope": "repository:alice/app:pull"}, auth=("alice", "nope"),
                             timeout=10)
        assert wrong.status_code == 401
        header, claims, signature = alice.split(".")
        forged_claims = json.loads(_unb64(claims))
        forged_claims["access"] = [{"type": "repository", "name": "bob/x", "actions": ["pull", "push"]}]
        forged = ".".join([header, _b64(json.dumps(forged_claims).encode()), signature])
        r = requests.get(reg.url("/v2/bob/x/tags/list"), headers={"Authorization": f"Bearer {forged}"}, timeout=10)
        assert r.status_code == 401
        # skopeo runs the whole flow itself
        write_oci_layout(tmp_path / "layout", "v1", _small_rootfs(tmp_path))
        reg.skopeo_copy(f"oci:{tmp_path / 'layout'}:v1", "alice/bb:v1", creds="alice:pw-a")
        inspected = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds=alice:pw-a",
                                    f"docker://{reg.host}/alice/bb:v1"], capture_output=True, timeout=60)
        assert inspected.returncode == 0 and json.loads(inspected.stdout)["mediaType"] == OCI_MANIFEST
        refused = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds=bob:pw-b",
                                  f"docker://{reg.host}/alice/bb:v1"], capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0
    finally:
        reg.close()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_tls_with_a_certificate_and_key(tmp_path: Path) -> None:
    ca, cert, key = make_test_ca(tmp_path / "ca")
    reg = DockyardRegistry(tmp_path / "reg", tls=(cert, key))
    try:
        r = requests.get(reg.url("/v2/"), verify=str(ca), timeout=10)
        assert r.status_code == 200 and r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(reg.url("/v2/"), timeout=10)  # not a CA the system trusts
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://{reg.host}/v2/", timeout=10)
        certs = tmp_path / "certs.d"
        certs.mkdir()
        (certs / "ca.crt").write_bytes(ca.read_bytes())
        write_oci_layout(tmp_path / "layout", "v1", _small_rootfs(tmp_path))
        subprocess.run(["skopeo", "copy", "--insecure-policy", f"--dest-cert-dir={certs}",
                        f"oci:{tmp_path / 'layout'}:v1", f"docker://{reg.host}/tls/bb:v1"],
                       check=True, capture_output=True, timeout=120)
        assert requests.get(reg.url("/v2/tls/bb/tags/list"), verify=str(ca), timeout=10).json()["tags"] == ["v1"]
    finally:
        reg.close()


@pytest.mark.root
def test_podman_pulls_and_pushes(registry: DockyardRegistry, tmp_path: Path) -> None:
    """Podman (its own storage in a temp dir, vfs: nothing mounted) pulls what skopeo put
    in, and pushes it back under another name; the pushed manifest's blobs all verify."""
    write_oci_layout(tmp_path / "layout", "v1", _small_rootfs(tmp_path))
    registry.skopeo_copy(f"oci:{tmp_path / 'layout'}:v1", "pod/src:v1")
    short = Path(tempfile.mkdtemp(prefix="pod-"))  # podman refuses a runroot over 50 characters
    podman = ["podman", "--root", str(short / "root"), "--runroot", str(short / "run"),
              "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none",
              "--tmpdir", str(short / "tmp")]
    try:
        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*podman, *args], capture_output=True, text=True, timeout=120)

        src, dst = f"{registry.host}/pod/src:v1", f"{registry.host}/pod/dst:v2"
        pulled = run("pull", "--tls-verify=false", src)
        assert pulled.returncode == 0, pulled.stderr
        assert run("tag", src, dst).returncode == 0
        pushed = run("push", "--tls-verify=false", dst)
        assert pushed.returncode == 0, pushed.stderr
        got = requests.get(registry.url("/v2/pod/dst/manifests/v2"), timeout=10,
                           headers={"Accept": f"{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"})
        assert got.status_code == 200 and sha(got.content) == got.headers["Docker-Content-Digest"]
        for desc in [got.json()["config"], *got.json()["layers"]]:
            blob = requests.get(registry.url(f"/v2/pod/dst/blobs/{desc['digest']}"), timeout=30)
            assert sha(blob.content) == desc["digest"]
    finally:
        subprocess.run([*podman, "rmi", "-a", "-f"], capture_output=True, timeout=60)
        shutil.rmtree(short, ignore_errors=True)


@pytest.mark.root
def test_dockyard_login_push_and_pull_with_tokens(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                                                  busybox_tar: Path) -> None:
    """dockyard's client (``distribution/``) runs the Bearer flow against our token endpoint: refused
    without a login, pushes after ``login``; a fresh dockyard pulls a ``public/*`` image after login
    as bob (pull only) and is refused a push there."""
    reg = DockyardRegistry(tmp_path / "reg", auth={"htpasswd": str(htpasswd_file(tmp_path / "htpasswd")),
                                                   "mode": "token", "access": [
                                                       *ACCESS, {"account": "alice", "name": "public/*",
                                                                 "actions": ["pull", "push"]}]})
    pusher = Daemon(tmp_path_factory.mktemp("dockyard-token-push"))
    try:
        pusher.import_busybox(busybox_tar)
        ref = f"{reg.host}/public/bb:v1"
        pusher.cli("tag", "busybox", ref, check=True)
        denied = pusher.cli("push", ref, timeout=60)
        assert denied.returncode != 0 and "unauthorized" in denied.stderr.lower(), denied.stdout + denied.stderr
        pusher.cli("login", "-u", "alice", "--password-stdin", reg.host, input="pw-a\n", check=True)
        pushed = pusher.cli("push", ref, timeout=120)
        assert pushed.returncode == 0, pushed.stderr
        fresh = Daemon(tmp_path_factory.mktemp("dockyard-token-pull"))
        try:
            fresh.cli("login", "-u", "bob", "--password-stdin", reg.host, input="pw-b\n", check=True)
            fresh.cli("pull", ref, timeout=120, check=True)
            assert fresh.client().images.get(ref).id == pusher.client().images.get(ref).id
            fresh.cli("tag", ref, f"{reg.host}/public/bb:by-bob", check=True)
            refused = fresh.cli("push", f"{reg.host}/public/bb:by-bob", timeout=60)
            assert refused.returncode != 0, refused.stdout
        finally:
            fresh.close()
    finally:
        pusher.close()
        reg.close()


def test_bad_requests_close_only_their_connection(registry: DockyardRegistry) -> None:
    for raw in (b"GARBAGE\r\n\r\n", b"GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
                b"PATCH /v2/a/blobs/uploads/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
        with socket.create_connection(("127.0.0.1", registry.port), timeout=10) as conn:
            conn.sendall(raw)
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(65536):
                pass
    assert requests.get(registry.url("/v2/"), timeout=10).status_code == 200
    assert "Traceback" not in registry.log()


def test_malformed_references_are_unknown_manifests(registry: DockyardRegistry) -> None:
    """A reference that is neither a tag nor a digest names no manifest: GET, HEAD and DELETE answer 404
    MANIFEST_UNKNOWN (the conformance suite's nonexistent manifest); a PUT to it is refused as invalid."""
    for method in ("GET", "HEAD", "DELETE"):
        r = requests.request(method, registry.url("/v2/a/b/manifests/.INVALID_MANIFEST_NAME"), timeout=10)
        assert r.status_code == 404, (method, r.status_code, r.text)
        if method != "HEAD":
            assert errors_of(r) == ["MANIFEST_UNKNOWN"]
    body = json.dumps(image_manifest(b"{}", [])).encode()
    push_blob(registry, "a/b", b"{}")
    r = requests.put(registry.url("/v2/a/b/manifests/.bad"), data=body, headers={"Content-Type": OCI_MANIFEST},
                     timeout=10)
    assert (r.status_code, errors_of(r)) == (400, ["MANIFEST_INVALID"])


def test_manifest_get_honours_accept(registry: DockyardRegistry) -> None:
    """A client whose Accept names other types gets 404 MANIFEST_UNKNOWN, as distribution answers;
    repeated Accept headers (Go clients send one per type), wildcards and no Accept at all are served."""
    digest, body = push_image(registry, "neg/img", "v1", config_of("neg"), [b"layer"])
    url = registry.url("/v2/neg/img/manifests/v1")
    docker_only = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    for method in ("GET", "HEAD"):
        for ref in ("v1", digest):
            r = requests.request(method, registry.url(f"/v2/neg/img/manifests/{ref}"), headers=docker_only,
                                 timeout=10)
            assert r.status_code == 404, (method, ref, r.status_code)
    refused = requests.get(url, headers=docker_only, timeout=10)
    assert errors_of(refused) == ["MANIFEST_UNKNOWN"]
    assert refused.json()["errors"][0]["message"] == \
        "OCI manifest found, but accept header does not support OCI manifests"
    weighted_out = requests.get(url, headers={"Accept": f"{OCI_MANIFEST};q=0, {OCI_INDEX}"}, timeout=10)
    assert weighted_out.status_code == 404
    for accept in (None, "*/*", f"{OCI_INDEX}, {OCI_MANIFEST};q=0.5", "application/*"):
        r = requests.get(url, headers={"Accept": accept} if accept else {}, timeout=10)
        assert r.status_code == 200 and r.content == body, accept
        assert r.headers["Content-Type"] == OCI_MANIFEST
    # two Accept header lines, the second naming the manifest's type
    with socket.create_connection(("127.0.0.1", registry.port), timeout=10) as sock:
        sock.sendall(f"GET /v2/neg/img/manifests/v1 HTTP/1.1\r\nHost: {registry.host}\r\n"
                     f"Accept: {OCI_INDEX}\r\nAccept: {OCI_MANIFEST}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(body)


def test_closing_put_keeps_the_chunk_rules(registry: DockyardRegistry) -> None:
    """The closing PUT's chunk must continue the session (else 416, the session kept, its status still
    answering) and be as long as its Content-Range says (else 416 SIZE_INVALID, nothing kept)."""
    data = b"0123456789" * 10
    start = requests.post(registry.url("/v2/put/rules/blobs/uploads/"), timeout=10)
    location = start.headers["Location"]
    first = requests.patch(registry.url(location), data=data[:40], timeout=10,
                           headers={"Content-Range": "0-39", "Content-Type": "application/octet-stream"})
    assert first.status_code == 202
    location = first.headers["Location"]
    params = {"digest": sha(data)}
    ahead = requests.put(registry.url(location), params=params, data=data[60:], timeout=10,
                         headers={"Content-Range": "60-99", "Content-Type": "application/octet-stream"})
    assert (ahead.status_code, errors_of(ahead)) == (416, ["BLOB_UPLOAD_INVALID"])
    status = requests.get(registry.url(location), timeout=10)
    assert status.status_code == 204 and status.headers["Range"] == "0-39"
    short = requests.put(registry.url(location), params=params, data=data[40:90], timeout=10,
                         headers={"Content-Range": "40-99", "Content-Type": "application/octet-stream"})
    assert (short.status_code, errors_of(short)) == (416, ["SIZE_INVALID"])
    assert requests.get(registry.url(location), timeout=10).headers["Range"] == "0-39"
    done = requests.put(registry.url(location), params=params, data=data[40:], timeout=10,
                        headers={"Content-Range": "40-99", "Content-Type": "application/octet-stream"})
    assert done.status_code == 201, done.text
    assert requests.get(registry.url(f"/v2/put/rules/blobs/{sha(data)}"), timeout=10).content == data


def test_descriptor_sizes_must_match_the_blobs(registry: DockyardRegistry) -> None:
    """A manifest whose descriptor gives a blob a size other than the blob's is refused: 400 SIZE_INVALID."""
    push_blob(registry, "sizes", b"{}")
    push_blob(registry, "sizes", b"twelve bytes")
    manifest = image_manifest(b"{}", [b"twelve bytes"])
    manifest["layers"][0]["size"] = 11
    r = requests.put(registry.url("/v2/sizes/manifests/v1"), data=json.dumps(manifest).encode(),
                     headers={"Content-Type": OCI_MANIFEST}, timeout=10)
    assert (r.status_code, errors_of(r)) == (400, ["SIZE_INVALID"])
    assert r.json()["errors"][0]["detail"] == {"digest": sha(b"twelve bytes"), "size": 11, "actual": 12}


def test_chunk_minimum_is_announced_and_only_the_last_chunk_may_be_short(tmp_path: Path) -> None:
    """With ``chunk_min_length`` the upload session announces OCI-Chunk-Min-Length; a chunk after a
    short one is refused (416), a short last chunk closed by an empty PUT is fine."""
    reg = DockyardRegistry(tmp_path / "reg", config={"chunk_min_length": 64})
    try:
        data = bytes(range(200))
        start = requests.post(reg.url("/v2/min/chunks/blobs/uploads/"), timeout=10)
        assert start.headers["OCI-Chunk-Min-Length"] == "64"
        location = start.headers["Location"]
        for first, last in ((0, 99), (100, 139)):
            r = requests.patch(reg.url(location), data=data[first:last + 1], timeout=10,
                               headers={"Content-Range": f"{first}-{last}"})
            assert r.status_code == 202, r.text
            location = r.headers["Location"]
        after_short = requests.patch(reg.url(location), data=data[140:], timeout=10,
                                     headers={"Content-Range": "140-199"})
        assert (after_short.status_code, errors_of(after_short)) == (416, ["BLOB_UPLOAD_INVALID"])
        assert requests.get(reg.url(location), timeout=10).headers["Range"] == "0-139"
        # a session whose short chunk is the last one closes fine
        again = requests.post(reg.url("/v2/min/chunks/blobs/uploads/"), timeout=10).headers["Location"]
        again = requests.patch(reg.url(again), data=data[:100], timeout=10).headers["Location"]
        again = requests.patch(reg.url(again), data=data[100:], timeout=10).headers["Location"]
        done = requests.put(reg.url(again), params={"digest": sha(data)}, timeout=10)
        assert done.status_code == 201, done.text
    finally:
        reg.close()


def test_too_many_requests_per_client(tmp_path: Path) -> None:
    """``limits``: a client with a request in progress beyond its concurrency limit gets 429
    TOOMANYREQUESTS with Retry-After; once that request is done it is served again."""
    reg = DockyardRegistry(tmp_path / "reg", config={"limits": {"concurrent_requests_per_client": 1}})
    try:
        location = requests.post(reg.url("/v2/slow/up/blobs/uploads/"), timeout=10).headers["Location"]
        with socket.create_connection(("127.0.0.1", reg.port), timeout=10) as sock:
            # a PATCH whose body is still coming: its request is in progress
            sock.sendall(f"PATCH {location} HTTP/1.1\r\nHost: {reg.host}\r\nContent-Length: 10\r\n\r\n12345".encode())
            for _ in range(500):  # until the server has read the PATCH's head
                refused = requests.get(reg.url("/v2/"), timeout=10)
                if refused.status_code == 429:
                    break
            assert errors_of(refused) == ["TOOMANYREQUESTS"]
            assert refused.headers["Retry-After"] == "1"
            sock.sendall(b"67890")
            assert sock.recv(65536).startswith(b"HTTP/1.1 202 ")
        assert requests.get(reg.url("/v2/"), timeout=10).status_code == 200
    finally:
        reg.close()
    rated = DockyardRegistry(tmp_path / "rated", config={"limits": {"requests_per_second": 0.01, "burst": 3}})
    try:
        # a burst of 3, refilled one per 100 s: the harness's readiness probe took one or more tokens
        answers = [requests.get(rated.url("/v2/"), timeout=10) for _ in range(3)]
        codes = [a.status_code for a in answers]
        assert 429 in codes and codes == sorted(codes), codes
        assert errors_of(answers[-1]) == ["TOOMANYREQUESTS"] and int(answers[-1].headers["Retry-After"]) >= 90
    finally:
        rated.close()


def test_oauth2_post_grants_on_our_token_endpoint(tmp_path: Path) -> None:
    """``POST /token``: a password grant (with ``access_type=offline``: a refresh token too), then a
    refresh_token grant; wrong passwords and refresh tokens used as access tokens are refused."""
    reg = DockyardRegistry(tmp_path / "reg", auth={"htpasswd": str(htpasswd_file(tmp_path / "htpasswd")),
                                                   "mode": "token", "access": ACCESS})
    try:
        form = {"grant_type": "password", "username": "alice", "password": "pw-a", "service": "dockyard-registry",
                "scope": "repository:alice/app:pull,push", "client_id": "docker", "access_type": "offline"}
        answer = requests.post(reg.url("/token"), data=form, timeout=10)
        assert answer.status_code == 200, answer.text
        granted = answer.json()
        assert granted["scope"] == "repository:alice/app:pull,push" and granted["expires_in"] > 0
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {granted['access_token']}"
            push_image(reg, "alice/app", "v1", config_of("post grant"), [b"post layer"], session)
        refreshed = requests.post(reg.url("/token"), timeout=10, data={
            "grant_type": "refresh_token", "refresh_token": granted["refresh_token"], "client_id": "docker",
            "service": "dockyard-registry", "scope": "repository:alice/app:pull"})
        assert refreshed.status_code == 200, refreshed.text
        pulled = requests.get(reg.url("/v2/alice/app/manifests/v1"), timeout=10,
                              headers={"Authorization": f"Bearer {refreshed.json()['access_token']}",
                                       "Accept": OCI_MANIFEST})
        assert pulled.status_code == 200
        as_access = requests.get(reg.url("/v2/alice/app/manifests/v1"), timeout=10,
                                 headers={"Authorization": f"Bearer {granted['refresh_token']}"})
        assert as_access.status_code == 401
        wrong = requests.post(reg.url("/token"), data={**form, "password": "nope"}, timeout=10)
        assert (wrong.status_code, errors_of(wrong)) == (401, ["UNAUTHORIZED"])
        offline = requests.get(reg.url("/token"), params={"offline_token": "true", "scope": form["scope"]},
                               auth=("alice", "pw-a"), timeout=10)
        assert offline.status_code == 200 and offline.json()["refresh_token"]
    finally:
        reg.close()


@pytest.mark.root
@pytest.mark.docker_cli
def test_docker_login_keeps_an_identity_token(tmp_path: Path, dockerd: Dockerd) -> None:  # noqa: F811
    """Docker's login asks our token endpoint by POST with ``access_type=offline`` and keeps the refresh
    token as its identity token; push and pull then run on refresh_token grants."""
    reg = DockyardRegistry(tmp_path / "reg", auth={"htpasswd": str(htpasswd_file(tmp_path / "htpasswd")),
                                                   "mode": "token", "access": ACCESS})
    config = tmp_path / "docker-config"
    ref = f"{reg.host}/alice/bb:v1"
    try:
        wrong = dockerd.docker("--config", str(config), "login", "-u", "alice", "--password-stdin", reg.host,
                               input=b"nope\n")
        assert wrong.returncode != 0
        login = dockerd.docker("--config", str(config), "login", "-u", "alice", "--password-stdin", reg.host,
                               input=b"pw-a\n")
        assert login.returncode == 0, login.stderr
        stored = json.loads((config / "config.json").read_text())["auths"][reg.host]
        # the identity token instead of the password: only the user name is kept beside it
        assert stored.get("identitytoken") and base64.b64decode(stored["auth"]) == b"alice:", stored
        assert dockerd.docker("tag", "busybox:latest", ref).returncode == 0
        pushed = dockerd.docker("--config", str(config), "push", ref)
        assert pushed.returncode == 0, pushed.stderr
        assert dockerd.docker("rmi", ref).returncode == 0
        pulled = dockerd.docker("--config", str(config), "pull", ref)
        assert pulled.returncode == 0, pulled.stderr
        anonymous = dockerd.docker("push", ref)
        assert anonymous.returncode != 0
    finally:
        dockerd.docker("rmi", ref)
        reg.close()


def test_sha512_blobs_and_manifests(registry: DockyardRegistry) -> None:
    """sha512 digests (OCI's second registered algorithm): monolithic and chunked uploads, HEAD, GET
    with Range, a mount, a manifest naming sha512 blobs put and fetched by its sha512 digest."""
    def sha512(data: bytes) -> str:
        return "sha512:" + hashlib.sha512(data).hexdigest()

    config, layer = config_of("sha512"), b"sha512 layer " * 1000
    r = requests.post(registry.url("/v2/long/digests/blobs/uploads/"), params={"digest": sha512(config)},
                      data=config, timeout=10)
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == sha512(config), r.text
    wrong = requests.post(registry.url("/v2/long/digests/blobs/uploads/"), params={"digest": sha512(b"x")},
                          data=config, timeout=10)
    assert (wrong.status_code, errors_of(wrong)) == (400, ["DIGEST_INVALID"])
    location = requests.post(registry.url("/v2/long/digests/blobs/uploads/"), timeout=10).headers["Location"]
    location = requests.patch(registry.url(location), data=layer[:5000], timeout=10,
                              headers={"Content-Range": "0-4999"}).headers["Location"]
    done = requests.put(registry.url(location), params={"digest": sha512(layer)}, data=layer[5000:], timeout=10)
    assert done.status_code == 201, done.text
    head = requests.head(registry.url(f"/v2/long/digests/blobs/{sha512(layer)}"), timeout=10)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(layer))
    part = requests.get(registry.url(f"/v2/long/digests/blobs/{sha512(layer)}"), headers={"Range": "bytes=13-25"},
                        timeout=10)
    assert part.status_code == 206 and part.content == layer[13:26]
    mounted = requests.post(registry.url("/v2/other/repo/blobs/uploads/"), timeout=10,
                            params={"mount": sha512(layer), "from": "long/digests"})
    assert mounted.status_code == 201
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": sha512(config), "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha512(layer), "size": len(layer)}]}
    body = json.dumps(manifest).encode()
    put = requests.put(registry.url(f"/v2/long/digests/manifests/{sha512(body)}"), data=body, timeout=10,
                       headers={"Content-Type": OCI_MANIFEST})
    assert put.status_code == 201 and put.headers["Docker-Content-Digest"] == sha512(body), put.text
    got = requests.get(registry.url(f"/v2/long/digests/manifests/{sha512(body)}"), timeout=10,
                       headers={"Accept": OCI_MANIFEST})
    assert got.status_code == 200 and got.content == body
    tagged = requests.put(registry.url("/v2/long/digests/manifests/v1"), data=body, timeout=10,
                          headers={"Content-Type": OCI_MANIFEST})
    assert tagged.headers["Docker-Content-Digest"] == sha(body)  # a tag's manifest is named by sha256


def test_push_by_digest_with_tag_parameters(registry: DockyardRegistry) -> None:
    """``PUT …/manifests/<digest>?tag=a&tag=b`` tags the manifest too and answers one ``OCI-Tag`` per tag;
    a bad tag is refused (400) and so are more than 100 tags (414), tagging nothing."""
    push_blob(registry, "tagged", b"{}")
    body = json.dumps(image_manifest(b"{}", [])).encode()
    url = registry.url(f"/v2/tagged/manifests/{sha(body)}")
    headers = {"Content-Type": OCI_MANIFEST}
    bad = requests.put(url, params=[("tag", "ok"), ("tag", ".bad")], data=body, headers=headers, timeout=10)
    assert (bad.status_code, errors_of(bad)) == (400, ["MANIFEST_INVALID"])
    many = requests.put(url, params=[("tag", f"t{i}") for i in range(101)], data=body, headers=headers, timeout=10)
    assert many.status_code == 414
    assert requests.get(registry.url("/v2/tagged/tags/list"), timeout=10).json()["tags"] == []
    r = requests.put(url, params=[("tag", "1.2.3"), ("tag", "latest"), ("tag", "1.2.3")], data=body,
                     headers=headers, timeout=10)
    assert r.status_code == 201, r.text
    assert r.headers["OCI-Tag"] == "1.2.3, latest"  # requests joins the repeated header lines
    assert requests.get(registry.url("/v2/tagged/tags/list"), timeout=10).json()["tags"] == ["1.2.3", "latest"]


def test_mount_without_from_finds_a_repository_the_client_may_pull(tmp_path: Path) -> None:
    """``?mount=`` without ``from``: mounted (201) when a repository the client may pull holds the blob,
    else an upload session (202), so a blob's presence elsewhere is not given away."""
    reg = DockyardRegistry(tmp_path / "reg", auth={"htpasswd": str(htpasswd_file(tmp_path / "htpasswd")),
                                                   "access": [*ACCESS, {"account": "bob", "name": "bob/*",
                                                                        "actions": ["pull", "push"]}]})
    alice, bob = ("alice", "pw-a"), ("bob", "pw-b")
    try:
        with requests.Session() as session:
            session.auth = alice
            digest = push_blob(reg, "alice/src", b"mount me", session)
            mounted = session.post(reg.url("/v2/alice/dst/blobs/uploads/"), params={"mount": digest}, timeout=10)
            assert mounted.status_code == 201 and mounted.headers["Location"] == f"/v2/alice/dst/blobs/{digest}"
            assert session.head(reg.url(f"/v2/alice/dst/blobs/{digest}"), timeout=10).status_code == 200
            unknown = session.post(reg.url("/v2/alice/dst/blobs/uploads/"), params={"mount": sha(b"none")},
                                   timeout=10)
            assert unknown.status_code == 202 and "/blobs/uploads/" in unknown.headers["Location"]
        refused = requests.post(reg.url("/v2/bob/dst/blobs/uploads/"), params={"mount": digest}, auth=bob, timeout=10)
        assert refused.status_code == 202
        assert requests.head(reg.url(f"/v2/bob/dst/blobs/{digest}"), auth=bob, timeout=10).status_code == 404
    finally:
        reg.close()
