"""Integration fixtures: real daemons on temporary roots, with busybox imported."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_harness import Daemon


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
