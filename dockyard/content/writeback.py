"""Page-cache control for a file being written and read once: start its writeback early, drop it once read.

*Writeback* is the kernel writing a file's dirty (cached, not yet on disk) pages to the disk. A blob
that streams in is fsynced at its commit; if nothing started the writeback before, that fsync
writes the whole blob then, on the pull's critical path. :func:`start_writeback` asks the kernel
to begin writing a range now (``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which does not wait for
the disk), so the commit's fsync finds little left to do.

*Dropping* (:func:`drop_cached`, ``posix_fadvise(POSIX_FADV_DONTNEED)``) lets go of a range's clean
cached pages once the reader is past them: a pull reads each downloaded byte once, for its
unpack, and the pages it frees are the first the kernel hands out again (to the unpacked files).
Fresh pages cost more than reused ones where the host reclaims a guest's free memory (a VM with
free page reporting, as the CI machines have: ~2 ms per MB more, measured). Dirty pages are left
alone by the kernel, so dropping never loses data; it only costs a re-read from disk if the range
is read again.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable

_Function = Callable[[int, int, int, int], int]

_SYNC_FILE_RANGE_WRITE = 2


class _Libc:
    """``sync_file_range`` from the C library, loaded on first use (Python's ``os`` lacks it)."""

    function: _Function | None = None

    @classmethod
    def sync_file_range(cls) -> _Function:
        if cls.function is None:
            function = ctypes.CDLL(None, use_errno=True).sync_file_range
            function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
            function.restype = ctypes.c_int
            cls.function = function
        return cls.function


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing ``length`` bytes of ``fd`` from ``offset`` to the disk, without waiting for it.

    Only a bad descriptor is an error: a file that cannot be written back early (a pipe, a
    filesystem without it) is left to the fsync that comes later."""
    if length <= 0:
        return
    if _Libc.sync_file_range()(fd, offset, length, _SYNC_FILE_RANGE_WRITE) != 0:
        err = ctypes.get_errno()
        if err == errno.EBADF:
            raise OSError(err, os.strerror(err))


def drop_cached(fd: int, length: int) -> None:
    """Let go of the clean cached pages of ``fd``'s first ``length`` bytes (dirty ones stay)."""
    if length > 0:
        os.posix_fadvise(fd, 0, length, os.POSIX_FADV_DONTNEED)
