"""Restart policies, decided as Docker's restart manager decides them.

Terms:
- *policy*: ``HostConfig.RestartPolicy`` = ``{"Name": no|always|on-failure|unless-stopped,
  "MaximumRetryCount": N}``; ``N`` only with ``on-failure`` (0 = no limit).
- *manually stopped*: the user stopped or killed the container through the API (Docker's
  ``HasBeenManuallyStopped``). It is kept in the container record, so it survives a daemon
  restart, and cleared by a user's ``start``.
- *restart manager*: the per-container state that lives as long as the daemon (or until the user
  starts the container again): how many restarts it did, the current back-off, and whether it was
  *canceled* (``stop``/``kill``/``rm`` cancel it; a canceled manager never restarts again).
- *back-off*: the wait before a restart: 100 ms, doubled on every restart up to 1 minute, and back
  to 100 ms when the container had run for at least 10 seconds.

At daemon start (:func:`restart_at_boot`), containers that were started before and whose policy says
so are started again: ``always`` even when the user had stopped them, ``unless-stopped`` only when
they had not, ``on-failure`` when the last exit was non-zero and retries are left.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dockyard.containers.record import Container
from dockyard.errors import InvalidParameter
from dockyard.formats import timestamps

log = logging.getLogger("dockyard.containers.restart")

POLICIES = ("no", "always", "on-failure", "unless-stopped")
DEFAULT_TIMEOUT = 0.1       # seconds: the first back-off
MAX_TIMEOUT = 60.0          # the back-off never exceeds one minute
BACKOFF_MULTIPLIER = 2
RESET_AFTER = 10.0          # a run this long resets the back-off


@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"
    maximum_retry_count: int = 0

    @property
    def is_none(self) -> bool:
        return self.name in ("", "no")

    def to_docker(self) -> dict[str, Any]:
        return {"Name": self.name or "no", "MaximumRetryCount": self.maximum_retry_count}


def parse_policy(raw: Any) -> RestartPolicy:
    """Validate ``HostConfig.RestartPolicy`` with Docker's messages."""
    if raw in (None, {}):
        return RestartPolicy()
    if not isinstance(raw, dict):
        raise InvalidParameter("invalid restart policy: expected an object")
    name = raw.get("Name") or ""
    count = raw.get("MaximumRetryCount") or 0
    if not isinstance(count, int) or isinstance(count, bool):
        raise InvalidParameter("invalid restart policy: maximum retry count must be an integer")
    if name in ("", "no", "always", "unless-stopped"):
        if count != 0:
            raise InvalidParameter("invalid restart policy: maximum retry count can only be used with 'on-failure'")
    elif name == "on-failure":
        if count < 0:
            raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")
    else:
        raise InvalidParameter(f"invalid restart policy: unknown policy '{name}'; use one of "
                               "'no', 'always', 'on-failure', or 'unless-stopped'")
    return RestartPolicy(name or "no", count)


def check_host_config(host: dict[str, Any]) -> dict[str, Any]:
    """The normalised ``RestartPolicy`` of a create request; refuses it next to ``AutoRemove``."""
    policy = parse_policy(host.get("RestartPolicy"))
    if host.get("AutoRemove") and not policy.is_none:
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    return policy.to_docker()


def update_policy(host: dict[str, Any], raw: Any) -> dict[str, Any]:
    """For ``POST /containers/{id}/update``: the new ``RestartPolicy`` to store in ``host``.

    Raises Docker's error when the container is ``AutoRemove``. The caller saves the record and
    calls :meth:`RestartManager.set_policy` on the container's live manager, if any."""
    policy = parse_policy(raw)
    if host.get("AutoRemove") and not policy.is_none:
        raise InvalidParameter("Restart policy cannot be updated because AutoRemove is enabled for the container")
    host["RestartPolicy"] = policy.to_docker()
    return host["RestartPolicy"]


class RestartManager:
    """One container's restart decisions for this daemon's lifetime (Docker's restartmanager)."""

    def __init__(self, policy: RestartPolicy, restart_count: int = 0) -> None:
        self.policy = policy
        self.restart_count = restart_count
        self.timeout = 0.0
        self.canceled = False

    def set_policy(self, policy: RestartPolicy) -> None:
        self.policy = policy

    def cancel(self) -> None:
        self.canceled = True

    def should_restart(self, exit_code: int, manually_stopped: bool, ran_for: float) -> float | None:
        """The back-off to wait before restarting, or None when the container stays stopped."""
        if self.policy.is_none or self.canceled:
            return None
        if ran_for >= RESET_AFTER:
            self.timeout = 0.0
        if self.timeout == 0:
            self.timeout = DEFAULT_TIMEOUT
        elif self.timeout < MAX_TIMEOUT:
            self.timeout *= BACKOFF_MULTIPLIER
        self.timeout = min(self.timeout, MAX_TIMEOUT)
        name = self.policy.name
        restart = False
        if name == "always":
            restart = True
        elif name == "unless-stopped":
            restart = not manually_stopped
        elif name == "on-failure":
            limit = self.policy.maximum_retry_count
            if limit == 0 or self.restart_count < limit:
                restart = exit_code != 0
        if not restart:
            return None
        self.restart_count += 1
        return self.timeout


def restart_at_boot(host: dict[str, Any], exit_code: int, manually_stopped: bool, restart_count: int,
                    started_before: bool) -> bool:
    """Whether a stopped container is started again when the daemon starts (Docker's restore)."""
    if not started_before:
        return False
    manager = RestartManager(parse_policy(host.get("RestartPolicy")), restart_count)
    return manager.should_restart(exit_code, manually_stopped, 0.0) is not None


class RestartScheduler:
    """Applies the policies to the containers of one daemon: decides after each exit, waits the
    back-off with the container in status ``restarting``, then starts it again through ``start``
    (the service's start, called as ``start(id, True)`` for a restart by policy)."""

    def __init__(self, start: Callable[[str, bool], Awaitable[None]]) -> None:
        self._start = start
        self._managers: dict[str, RestartManager] = {}
        self._pending: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def manager(self, c: Container) -> RestartManager:
        found = self._managers.get(c.id)
        if found is None:
            found = self._managers[c.id] = RestartManager(parse_policy(c.host_config.get("RestartPolicy")),
                                                          c.restart_count)
        return found

    def set_policy(self, c: Container) -> None:
        """After ``update`` changed ``c.host_config["RestartPolicy"]``."""
        if c.id in self._managers:
            self._managers[c.id].set_policy(parse_policy(c.host_config.get("RestartPolicy")))

    def update(self, c: Container, raw: Any) -> None:
        """``POST /containers/{id}/update`` with a ``RestartPolicy``: validate, store, apply.

        For the update route: ``containers.restarts.update(c, body["RestartPolicy"])``."""
        update_policy(c.host_config, raw)
        c.save_soon()
        self.set_policy(c)

    # -- hooks called by the service --------------------------------------------------------------
    def on_exit(self, c: Container) -> bool:
        """Right after an exit was recorded: schedule a restart if the policy says so."""
        if c.state.status != "exited":
            return False  # the process never ran (start failed): Docker does not restart that
        ran_for = max(0.0, timestamps.stored_seconds(c.state.finished_at) - timestamps.stored_seconds(c.state.started_at))
        delay = self.manager(c).should_restart(c.state.exit_code, c.manually_stopped, ran_for)
        if delay is None:
            return False
        c.restart_count += 1
        c.state.status = "restarting"
        c.save_soon()
        loop = asyncio.get_running_loop()
        self._pending[c.id] = loop.call_later(delay, self._fire, c)
        return True

    def on_user_start(self, c: Container) -> None:
        """A start by the user (or at daemon start): a fresh manager, count and stop flag, as Docker."""
        self.forget(c)
        c.restart_count = 0
        c.manually_stopped = False

    def on_user_stop(self, c: Container, cancel: bool = True) -> bool:
        """The user stopped, killed or removes ``c``: it counts as manually stopped, and (unless the
        signal is not the stop signal) no restart happens any more. True when ``c`` was waiting to
        restart: it is now simply exited, and no signal needs to be sent."""
        c.manually_stopped = True
        if cancel:
            self.manager(c).cancel()
            handle = self._pending.pop(c.id, None)
            if handle is not None:
                handle.cancel()
        waiting = c.state.status == "restarting"
        if waiting and cancel:
            c.state.status = "exited"
        c.save_soon()
        return waiting

    def forget(self, c: Container) -> None:
        handle = self._pending.pop(c.id, None)
        if handle is not None:
            handle.cancel()
        self._managers.pop(c.id, None)

    def boot(self, containers: Iterable[Container]) -> None:
        """At daemon start: start again the stopped containers whose policy wants it."""
        for c in containers:
            if c.state.status != "exited":
                continue
            if restart_at_boot(c.host_config, c.state.exit_code, c.manually_stopped, c.restart_count,
                               c.state.started_at != timestamps.ZERO_TIME):
                self._spawn(c, False)

    def close(self) -> list[asyncio.Task[None]]:
        """The daemon stops: no more restarts are scheduled; returns the starts in progress (to
        await: a start cancelled half-way would leave a half-made container)."""
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
        return list(self._tasks)

    # -- internals ---------------------------------------------------------------------------------
    def _fire(self, c: Container) -> None:
        self._pending.pop(c.id, None)
        if c.state.status == "restarting" and not self.manager(c).canceled:
            self._spawn(c, True)

    def _spawn(self, c: Container, by_policy: bool) -> None:
        task = asyncio.get_running_loop().create_task(self._run_start(c, by_policy))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_start(self, c: Container, by_policy: bool) -> None:
        try:
            await self._start(c.id, by_policy)
        except Exception as exc:  # logged; the container stays stopped, as in Docker
            log.error("restarting container %s failed: %s", c.id[:12], exc)
            if c.state.status == "restarting":
                c.state.status = "exited"
                c.state.error = str(exc)
                c.save_soon()

