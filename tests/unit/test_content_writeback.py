"""Early writeback and dropping of cached pages (content/writeback.py), and their use by a pull.

Whether a byte is in the page cache is asked with ``preadv(RWF_NOWAIT)``: it fails with EAGAIN
for data that is not cached, without reading it from the disk. tmpfs keeps every page (it has no
disk to drop them to), so these tests need a disk-backed directory: the test's tmp_path is one on
the machines we run on; elsewhere they say so.
"""

from __future__ import annotations

import ctypes
import errno
import os
import time
from pathlib import Path

import pytest

from dockyard.content import ContentStore
from dockyard.content.writeback import drop_cached, start_writeback
from dockyard.distribution.pull import Arriving, _Follower

MB = 1 << 20
TMPFS_MAGIC = 0x01021994


def cached(fd: int, offset: int, length: int = 4096) -> bool:
    try:
        os.preadv(fd, [bytearray(length)], offset, os.RWF_NOWAIT)
    except BlockingIOError:
        return False
    return True


@pytest.fixture
def disk_dir(tmp_path: Path) -> Path:
    if _fs_magic(tmp_path) == TMPFS_MAGIC:
        pytest.fail(f"{tmp_path} is on tmpfs: run with --basetemp on a disk-backed filesystem")
    return tmp_path


def _fs_magic(path: Path) -> int:
    """The filesystem's magic number (``statfs``'s ``f_type``, which ``os.statvfs`` lacks)."""

    class StatFs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 120)]

    buf = StatFs()
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.statfs(str(path).encode(), ctypes.byref(buf)) == 0
    return int(buf.f_type)


def test_dropping_a_clean_range_leaves_the_page_cache(disk_dir: Path) -> None:
    path = disk_dir / "f"
    path.write_bytes(os.urandom(8 * MB))
    with path.open("rb") as f:
        os.fsync(f.fileno())
        f.read()
        assert cached(f.fileno(), 0) and cached(f.fileno(), 7 * MB)
        drop_cached(f.fileno(), 4 * MB)
        assert not cached(f.fileno(), 0)
        assert not cached(f.fileno(), 3 * MB)
        assert cached(f.fileno(), 5 * MB)  # past the dropped range


def dirty_kb() -> int:
    """The machine's dirty page cache, in kB (``Dirty:`` of /proc/meminfo)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Dirty:"):
            return int(line.split()[1])
    raise AssertionError("no Dirty: in /proc/meminfo")


def wait_written_back(before_kb: int, amount_kb: int) -> bool:
    """True once the machine's dirty pages fell ``amount_kb`` below ``before_kb`` (in 10 s at most;
    without a writeback started, the kernel keeps dirty pages ~30 s)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if dirty_kb() <= before_kb - amount_kb:
            return True
        time.sleep(0.01)
    return False


def test_start_writeback_sends_dirty_pages_to_the_disk(disk_dir: Path) -> None:
    path = disk_dir / "f"
    with path.open("wb") as f:
        f.write(os.urandom(64 * MB))
        f.flush()
        before = dirty_kb()
        assert before >= 56 * 1024, "the written pages should be dirty"
        start_writeback(f.fileno(), 0, 64 * MB)
        assert wait_written_back(before, 48 * 1024), "the range stayed dirty: its writeback did not start"


def test_dropping_keeps_dirty_pages(disk_dir: Path) -> None:
    path = disk_dir / "f"
    with path.open("w+b") as f:
        f.write(os.urandom(4 * MB))
        f.flush()
        drop_cached(f.fileno(), 4 * MB)
        assert cached(f.fileno(), 0)  # still dirty a moment ago: kept, nothing lost
        assert f.seek(0) == 0 and len(f.read()) == 4 * MB


def test_a_bad_descriptor_is_an_error_and_nothing_to_do_is_not() -> None:
    r, w = os.pipe()
    os.close(w)
    os.close(r)
    with pytest.raises(OSError) as err:
        start_writeback(r, 0, 4096)
    assert err.value.errno == errno.EBADF
    start_writeback(r, 0, 0)  # an empty range asks nothing
    p, q = os.pipe()
    try:
        start_writeback(p, 0, 4096)  # a pipe cannot be written back: left to a later fsync
    finally:
        os.close(p)
        os.close(q)


def test_an_ingest_flush_starts_the_writeback(disk_dir: Path) -> None:
    store = ContentStore(disk_dir / "content")
    with store.writer() as writer:
        writer.write(os.urandom(64 * MB))
        before = dirty_kb()  # written through the writer's buffer: mostly dirty already
        writer.flush()
        assert wait_written_back(max(before, dirty_kb()), 48 * 1024), "flush left the ingest's pages dirty"
        info = writer.commit()
    assert store.path(info.digest).stat().st_size == 64 * MB


def test_a_pull_follower_drops_what_it_has_read(disk_dir: Path) -> None:
    path = disk_dir / "blob"
    data = os.urandom(24 * MB)
    path.write_bytes(data)
    with path.open("rb") as f:
        os.fsync(f.fileno())
        f.read()  # all cached, clean
    arriving = Arriving()
    arriving.attach(path)
    arriving.grew(len(data))
    arriving.finish()
    follower = _Follower(arriving)
    probe = os.open(path, os.O_RDONLY)
    try:
        got = bytearray()
        buf = bytearray(MB)
        while n := follower.readinto(buf):
            got += buf[:n]
        assert bytes(got) == data
        assert not cached(probe, 0) and not cached(probe, 10 * MB), "the follower kept what it read"
        assert cached(probe, len(data) - 4096), "the bytes just read stay for a tar header read again"
    finally:
        os.close(probe)
        follower.close()
