"""The content store: atomic, verified ingest and digest validation."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from dockyard.content import ContentStore, Descriptor, validate_digest
from dockyard.errors import CorruptContent, InvalidParameter, NotFound


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


def test_put_and_read_back(store: ContentStore) -> None:
    d = store.put_bytes(b"hello")
    assert d == digest(b"hello")
    assert store.exists(d) and store.read_bytes(d) == b"hello" and store.size(d) == 5
    assert store.path(d) == store.root / "blobs" / "sha256" / d[7:]
    assert store.list() == [d]
    with store.open(d) as f:
        assert f.read() == b"hello"


def test_ingest_streams_and_verifies(store: ContentStore) -> None:
    data = os.urandom(3 << 20)
    info = store.ingest(io.BytesIO(data), expected=digest(data), size=len(data))
    assert (info.digest, info.size) == (digest(data), len(data))
    assert store.read_bytes(info.digest) == data


def test_digest_mismatch_leaves_nothing(store: ContentStore) -> None:
    wrong = digest(b"other")
    with pytest.raises(CorruptContent, match=rf"digest mismatch: expected {wrong}, got {digest(b'data')}"):
        store.ingest(io.BytesIO(b"data"), expected=wrong)
    assert store.list() == []
    assert list((store.root / "ingest").iterdir()) == []


def test_size_mismatch_leaves_nothing(store: ContentStore) -> None:
    with pytest.raises(CorruptContent, match="size mismatch"):
        store.ingest(io.BytesIO(b"data"), size=3)
    with pytest.raises(CorruptContent, match="size mismatch"):
        store.ingest(io.BytesIO(b"data"), size=5)
    assert store.list() == [] and list((store.root / "ingest").iterdir()) == []


def test_failing_stream_leaves_nothing(store: ContentStore) -> None:
    class Broken(io.RawIOBase):
        def readinto(self, b: object) -> int:
            raise OSError("boom")

    with pytest.raises(OSError):
        store.ingest(Broken())  # type: ignore[arg-type]
    assert list((store.root / "ingest").iterdir()) == []


def test_writer_aborts_without_commit(store: ContentStore) -> None:
    with store.writer() as w:
        w.write(b"abc")
    assert store.list() == [] and list((store.root / "ingest").iterdir()) == []


def test_delete(store: ContentStore) -> None:
    d = store.put_bytes(b"x")
    assert store.delete(d) is True and store.delete(d) is False
    with pytest.raises(NotFound):
        store.read_bytes(d)


@pytest.mark.parametrize("bad", [
    "", "sha256:", "sha256:abc", "sha256:" + "A" * 64, "sha512:" + "a" * 64, "sha256:" + "a" * 63 + "/",
    "sha256:../../etc/passwd", "../" + "a" * 64, "sha256:" + "a" * 65, "a" * 64, " sha256:" + "a" * 64,
    "sha256:" + "a" * 64 + "\n",
])
def test_bad_digests_are_refused(store: ContentStore, bad: str) -> None:
    with pytest.raises(InvalidParameter):
        validate_digest(bad)
    with pytest.raises(InvalidParameter):
        store.path(bad)
    with pytest.raises(InvalidParameter):
        store.exists(bad)
    with pytest.raises(InvalidParameter):
        store.ingest(io.BytesIO(b""), expected=bad)


def test_descriptor_round_trip() -> None:
    d = Descriptor("application/vnd.oci.image.layer.v1.tar", digest(b"x"), 1, {"a": "b"})
    assert Descriptor.from_json(d.to_json()) == d
    with pytest.raises(InvalidParameter):
        Descriptor.from_json({"mediaType": "x", "digest": "sha256:zz", "size": 1})
