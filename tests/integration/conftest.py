"""Integration fixtures: real daemons on temporary roots, with busybox imported."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_harness import Daemon

# Values that change by themselves on a live host (address lifetimes, route expiry, rule counters).
_VOLATILE_KEYS = {"valid_life_time", "preferred_life_time", "expires", "packets", "bytes", "used", "stats64"}


def _without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_volatile(v) for k, v in value.items() if k not in _VOLATILE_KEYS}
    if isinstance(value, list):
        return [_without_volatile(v) for v in value]
    return value


def _json_of(argv: list[str]) -> Any:
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout or "null")


def _not_ours(item: dict[str, Any]) -> bool:
    """An nft ruleset item that belongs to no table named dockyard*."""
    (kind, body), = item.items()
    table = body.get("name") if kind == "table" else body.get("table")
    return not (isinstance(table, str) and table.startswith("dockyard"))


def _foreign_link(name: object) -> bool:
    """A link named as a dockyard daemon names them (``dockyard0``, ``dy…``) by a root no daemon of
    this session used: another job's daemon on the machine, which may come and go meanwhile."""
    from dockyard.networks.naming import Naming
    from tests.integration.daemon_harness import DATA_ROOTS

    if not (isinstance(name, str) and name.startswith(("dy", "dockyard"))):
        return False
    return not any(Naming(root).owns(name) for root in DATA_ROOTS)


def host_network_state() -> dict[str, Any]:
    """The host's addresses (with every link), routes of every table, and the nft ruleset outside
    our own tables (tables named dockyard*), without the values that change on their own, and
    without the links (and their routes) of daemons other jobs run (:func:`_foreign_link`)."""
    ruleset = _json_of(["nft", "-j", "list", "ruleset"])["nftables"]
    return _without_volatile({
        "addr": [a for a in _json_of(["ip", "-j", "addr"]) if not _foreign_link(a.get("ifname"))],
        "route": [r for r in _json_of(["ip", "-j", "route", "show", "table", "all"])
                  if not _foreign_link(r.get("dev"))],
        "route6": [r for r in _json_of(["ip", "-6", "-j", "route", "show", "table", "all"])
                   if not _foreign_link(r.get("dev"))],
        "nft": [item for item in ruleset if _not_ours(item)],
    })


def _foreign_prefixes(state: dict[str, Any]) -> set[str]:
    """The link-name prefixes (``dy`` + 6 hex) of the dockyard daemons whose bridges (``dyb-`` + 8 hex,
    the names of non-default roots) were up before the session: other daemons on this machine (other
    work running beside the suite), whose bridges change state and whose veths come and go meanwhile."""
    names = {link.get("ifname", "") for link in state["addr"]}
    return {"dy" + name[4:10] for name in names if name.startswith("dyb-") and len(name) == 12}


def _without_foreign(state: dict[str, Any], prefixes: set[str]) -> dict[str, Any]:
    """``state`` without the links (and routes through them) of those other daemons."""
    def foreign(name: str) -> bool:
        return name.startswith("dyb-") and "dy" + name[4:10] in prefixes or name[:8] in prefixes

    return {**state, "addr": [link for link in state["addr"] if not foreign(link.get("ifname", ""))],
            "route": [r for r in state["route"] if not foreign(r.get("dev", ""))],
            "route6": [r for r in state["route6"] if not foreign(r.get("dev", ""))]}


@pytest.fixture(scope="session", autouse=True)
def host_network_unchanged() -> Iterator[None]:
    """The whole suite leaves the host's interfaces, addresses, routes and nft ruleset (outside our
    tables) as it found them (other dockyard daemons' links, up before the session, left out)."""
    before = host_network_state()
    prefixes = _foreign_prefixes(before)
    yield
    after = _without_foreign(host_network_state(), prefixes)
    before = _without_foreign(before, prefixes)
    for key in before:
        assert after[key] == before[key], f"the test suite changed the host's {key}"


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Iterator[Daemon]:
    """One daemon shared by the session's tests, with busybox:latest imported."""
    d = Daemon(tmp_path_factory.mktemp("dockyard"))
    try:
        d.import_busybox(busybox_tar)
        yield d
    finally:
        d.close()


@pytest.fixture()
def fresh_daemon(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Iterator[Daemon]:
    """A daemon of the test's own, for tests that kill or restart it."""
    d = Daemon(tmp_path_factory.mktemp("dockyard-own"))
    try:
        d.import_busybox(busybox_tar)
        yield d
    finally:
        d.close()


# The daemon's command runs in a mount namespace of its own where /sys/fs/cgroup is a cgroup2 mount:
# there the daemon finds a pure cgroup v2 host (on a v1 or hybrid machine, one without controllers).
CGROUP2_PREFIX = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
                  'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"', "sh")


@pytest.fixture(scope="session")
def cgroup2_daemon(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Iterator[Daemon]:
    """A daemon that sees cgroup v2 at /sys/fs/cgroup (whatever the host mounts there), with busybox."""
    d = Daemon(tmp_path_factory.mktemp("dockyard-cgroup2"), prefix=CGROUP2_PREFIX)
    try:
        d.import_busybox(busybox_tar)
        yield d
    finally:
        d.close()
