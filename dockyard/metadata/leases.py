"""Leases: what protects content while it is being written from the garbage collector.

Terms:
- *lease*: a row (ID, purpose, owning pid, creation and expiry times) held for the duration of
  an ingest, a load, an import or a commit (``with hold(db, "load"):``). It is deleted when the
  operation ends, however it ends.
- *live*: a lease that has not expired and whose owner is this process. A lease left by a
  daemon that died (``kill -9``) is not live: nothing is in flight after a restart.
- *fence*: the creation time of the oldest live lease. The collector keeps every blob, ingest
  file, temp file, layer and container directory made at or after the fence (minus a tenth of a second
  for the coarse clock of file times), so an operation in flight never loses what it has written before its
  records exist. With no live lease there is no fence.
- *resources*: ``(kind, key)`` pairs a lease names explicitly (``("layer", chain ID)``,
  ``("blob", digest)``); they are kept as long as the lease lives, whatever their age.
  :func:`current_lease` is the lease the calling thread holds, so lower layers can name what they
  write without being handed the lease.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from dockyard.metadata.db import MetadataDB

DEFAULT_TTL = 6 * 3600.0
FENCE_SLACK = 0.1  # file times come from the kernel's coarse clock, a tick behind time.time()

_local = threading.local()
_STARTED = time.time()  # a lease older than this process is a dead daemon's, even if the pid was reused


@dataclass(frozen=True)
class Lease:
    """A held lease (see the module docstring)."""

    db: MetadataDB
    id: str
    purpose: str
    created_at: float

    def add(self, kind: str, key: str) -> None:
        """Name a resource this lease protects."""
        self.db.execute("INSERT OR IGNORE INTO lease_resources VALUES (?, ?, ?)", (self.id, kind, key))


def current_lease() -> Lease | None:
    """The innermost lease the calling thread holds, if any."""
    stack: list[Lease] = getattr(_local, "stack", [])
    return stack[-1] if stack else None


@contextlib.contextmanager
def hold(db: MetadataDB, purpose: str, ttl: float = DEFAULT_TTL) -> Iterator[Lease]:
    """Hold a lease for the ``with`` block; it is released (deleted) when the block ends."""
    now = time.time()
    lease = Lease(db, secrets.token_hex(16), purpose, now)
    db.execute("INSERT INTO leases VALUES (?, ?, ?, ?, ?)", (lease.id, purpose, os.getpid(), now, now + ttl))
    stack: list[Lease] = getattr(_local, "stack", None) or []
    _local.stack = stack
    stack.append(lease)
    try:
        yield lease
    finally:
        stack.remove(lease)
        db.execute("DELETE FROM leases WHERE id = ?", (lease.id,))


def is_live(pid: int, created_at: float, expires_at: float) -> bool:
    return pid == os.getpid() and created_at >= _STARTED - FENCE_SLACK and expires_at > time.time()


def fence(db: MetadataDB) -> float | None:
    """The time before which nothing is protected by age (see the module docstring); None: no fence."""
    times = [float(r["created_at"]) for r in db.query("SELECT created_at, pid, expires_at FROM leases")
             if is_live(int(r["pid"]), float(r["created_at"]), float(r["expires_at"]))]
    return min(times) - FENCE_SLACK if times else None


def protected(db: MetadataDB) -> dict[str, set[str]]:
    """The resources named by live leases, by kind."""
    out: dict[str, set[str]] = {}
    for r in db.query("SELECT r.kind, r.key, l.pid, l.created_at, l.expires_at FROM lease_resources r "
                      "JOIN leases l ON l.id = r.lease_id"):
        if is_live(int(r["pid"]), float(r["created_at"]), float(r["expires_at"])):
            out.setdefault(str(r["kind"]), set()).add(str(r["key"]))
    return out


def stale(db: MetadataDB) -> list[str]:
    """IDs of the leases that are not live (expired, or left by a daemon that is gone)."""
    return [str(r["id"]) for r in db.query("SELECT id, pid, created_at, expires_at FROM leases")
            if not is_live(int(r["pid"]), float(r["created_at"]), float(r["expires_at"]))]


def drop(db: MetadataDB, lease_ids: list[str]) -> None:
    with db.transaction():
        for lease_id in lease_ids:
            db.execute("DELETE FROM leases WHERE id = ?", (lease_id,))
