"""Network namespaces persisted by a bind mount, and running code inside one from a thread.

A *persisted* (or *pinned*) namespace is one kept alive by bind-mounting its ``nsfs`` file
(``/proc/thread-self/ns/net`` of the thread that made it) onto a plain file, as ``ip netns add``
does under ``/run/netns``; it lives until that mount goes, whatever processes join or leave it.

Nothing here ever changes the namespace of the calling thread: every namespace switch
(``unshare``/``setns``) happens in a fresh thread made for the job, which ends afterwards. Linux
lets one thread of a process sit in another network namespace than its siblings, so sockets made in
that thread (netlink, UDP, TCP) belong to the namespace for the rest of their lives.
"""

from __future__ import annotations

import ctypes
import os
import queue
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

from dockyard.errors import DockyardError
from dockyard.runtime import syscalls as sc
from dockyard.runtime.loopback import loopback_up

T = TypeVar("T")

# The namespace of the process (its main thread), which the daemon calls "the host's".
HOST = Path("/proc/self/ns/net")
_libc = ctypes.CDLL(None, use_errno=True)


def identity(path: Path) -> tuple[int, int]:
    """``(st_dev, st_ino)`` of a namespace file: two paths name the same namespace iff these are equal."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _in_thread(fn: Callable[[], T], name: str) -> T:
    """Run ``fn`` in a new thread and return its result (or raise its exception) in the caller."""
    outcome: dict[str, object] = {}

    def body() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def enter(path: Path) -> None:
    """setns() the *calling thread* into the namespace at ``path``. Only for threads made for it."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(fd, sc.CLONE_NEWNET)
    finally:
        os.close(fd)


def create(path: Path) -> None:
    """Make a new network namespace, pinned by a bind mount at ``path``, with ``lo`` up.

    ``path`` must not exist yet (its parent must); on failure nothing is left behind.
    """
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)

    def make() -> None:
        sc.unshare(sc.CLONE_NEWNET)
        loopback_up()
        sc.mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", path, None, sc.MS_BIND)

    try:
        _in_thread(make, "netns-create")
    except BaseException:
        remove(path)
        raise


def move(source: Path, path: Path) -> None:
    """Pin the namespace pinned at ``source`` at ``path`` instead (``path`` must not exist yet; its
    parent must): a bind mount of the pin, then ``source`` removed. On failure ``path`` is not left
    behind and ``source`` still pins the namespace."""
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)
    try:
        sc.mount(str(source), str(path), None, sc.MS_BIND)
    except BaseException:
        remove(path)
        raise
    remove(Path(source))


def remove(path: Path) -> None:
    """Unmount the namespace pinned at ``path`` and delete the file; nothing to do if it is gone.

    The namespace itself ends when no process, socket or other mount holds it any more.
    """
    path = Path(path)
    while True:
        try:
            sc.umount2(path, sc.MNT_DETACH | sc.UMOUNT_NOFOLLOW)
        except OSError as exc:
            # EINVAL: not a mount point (any more); ENOENT: no such file
            if exc.errno in (22, 2):
                break
            raise
    try:
        path.unlink()
    except FileNotFoundError:
        pass


NSFS_MAGIC = 0x6E736673
_STATFS = struct.Struct("q")  # struct statfs begins with f_type (a long on 64-bit Linux)


def is_pinned(path: Path) -> bool:
    """Whether ``path`` is a namespace file (a mount of nsfs), not the plain file under it."""
    buf = ctypes.create_string_buffer(256)
    if _libc.statfs(os.fsencode(path), buf) != 0:
        return False
    return bool(_STATFS.unpack_from(buf.raw)[0] == NSFS_MAGIC)


def run_in(path: Path, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a fresh thread that has joined the namespace at ``path``; return what it returns.

    For making sockets inside the namespace: a socket keeps the namespace it was made in. The
    calling thread's namespace never changes. Raises :class:`DockyardError` when ``path`` is not
    a network namespace.
    """
    path = Path(path)

    def body() -> T:
        try:
            enter(path)
        except OSError as exc:
            raise DockyardError(f"cannot enter network namespace {path}: {exc.strerror or exc}") from exc
        return fn()

    return _in_thread(body, "netns-run")


class Worker:
    """A thread that joined the namespace at ``path`` once and then runs the jobs given to it, one at a
    time, for as long as it is open: for resources that must be made and used in that namespace
    (a netlink socket, an nft context), without paying a thread per call.

    Before each job the worker checks that it is still in that namespace (``/proc/thread-self/ns/net``
    against ``path``, by ``(st_dev, st_ino)``) and refuses the job otherwise.
    """

    def __init__(self, path: Path, name: str = "netns-worker") -> None:
        self.path = Path(path)
        self.expected = identity(self.path)
        self._jobs: queue.SimpleQueue[tuple[Callable[[], object], Future[object]] | None] = queue.SimpleQueue()
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name=name, daemon=True)
        self._thread.start()
        ready.result()

    def _serve(self, ready: Future[None]) -> None:
        try:
            enter(self.path)
        except OSError as exc:
            ready.set_exception(DockyardError(f"cannot enter network namespace {self.path}: {exc.strerror or exc}"))
            return
        ready.set_result(None)
        while (job := self._jobs.get()) is not None:
            fn, result = job
            if not result.set_running_or_notify_cancel():
                continue
            try:
                here = identity(Path(f"/proc/self/task/{threading.get_native_id()}/ns/net"))
                if here != self.expected:
                    raise DockyardError(f"refusing to work in network namespace {here[1]}: "
                                        f"{self.path} is {self.expected[1]}")
                result.set_result(fn())
            except BaseException as exc:
                result.set_exception(exc)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the worker (inside the namespace) and return its result."""
        return self.submit(fn).result()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Queue ``fn`` for the worker (inside the namespace); its result comes in the future."""
        if not self._thread.is_alive():
            raise DockyardError(f"the worker for network namespace {self.path} is closed")
        result: Future[T] = Future()
        self._jobs.put((fn, result))  # type: ignore[arg-type]
        return result

    def close(self) -> None:
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
