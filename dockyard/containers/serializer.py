"""One serializer per container: the lifecycle operations on a container run one at a time.

Terms:
- *operation*: a verb that changes a container or its files: create, start, stop, kill, restart,
  pause, unpause, remove (also prune's), rename, update, commit, exec create and exec start.
  Each runs inside ``async with serializer.operation(c, "start"):``.
- *phase*: what the container is going through, from the operation in flight: ``starting``,
  ``stopping``, ``removing``… and ``idle`` between operations. The record's ``State.status``
  (created, running, exited…) stays the one truth about the container itself; the phase only
  says which operation holds it.
- *removed*: the terminal phase. An operation queued behind a remove finds the container gone
  and fails with NotFound, as if it had arrived after it.

Operations queue in arrival order (an :class:`asyncio.Lock` wakes its waiters first come, first
served), so a ``rm`` or ``prune`` arriving during a ``start`` waits for the start to finish and
then sees a running container, instead of deleting the directory under a spawning shim.

What is *not* an operation: reading (inspect, list, logs, wait, attach, stats, top), and the
exit of a container, which the service records at once from the shim's pidfd (it never waits,
so it cannot interleave with an operation's step). Waiting for an exit (stop's timeout, kill's
SIGKILL wait) happens outside the serializer, so ``kill`` answers during a long ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from dockyard.errors import NotFound

PHASES = {"create": "creating", "start": "starting", "stop": "stopping", "kill": "stopping",
          "restart": "restarting", "pause": "pausing", "unpause": "unpausing", "remove": "removing",
          "rename": "renaming", "update": "updating", "commit": "committing", "exec": "exec-starting"}
"""The phase each operation puts its container in while it runs."""


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0          # operations holding or waiting for the lock
    phase: str = "idle"


class Serializer:
    """The serializers of one daemon's containers; ``exists(id)`` says whether a container is
    still there once an operation's turn comes."""

    def __init__(self, exists: Callable[[str], bool]) -> None:
        self._exists = exists
        self._slots: dict[str, _Slot] = {}

    def phase(self, cid: str) -> str:
        """The phase of container ``cid``: ``idle``, an operation's phase, or ``removed``."""
        slot = self._slots.get(cid)
        if slot is not None:
            return slot.phase
        return "idle" if self._exists(cid) else "removed"

    @contextlib.asynccontextmanager
    async def operation(self, cid: str, name: str, *, new: bool = False) -> AsyncIterator[None]:
        """Run one operation on ``cid`` (``new``: the container is being created, not there yet)."""
        slot = self._slots.setdefault(cid, _Slot())
        slot.users += 1
        try:
            async with slot.lock:
                if not new and not self._exists(cid):
                    slot.phase = "removed"
                    raise NotFound(f"No such container: {cid}")
                slot.phase = PHASES[name]
                try:
                    yield
                finally:
                    slot.phase = "idle" if self._exists(cid) else "removed"
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._slots[cid]  # nobody holds or waits: the next operation makes a new one

    def busy(self) -> dict[str, str]:
        """Container ID → phase, for the containers with an operation in flight."""
        return {cid: slot.phase for cid, slot in self._slots.items() if slot.lock.locked()}
