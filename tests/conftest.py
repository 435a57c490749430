"""Fixtures shared by every test: an offline busybox rootfs, as a tar and unpacked."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.images.busybox_rootfs import write_busybox_rootfs_tar

BUSYBOX = Path("/bin/busybox")


def is_root() -> bool:
    return os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Integration tests need root; CI runs as root, so they run there. On a machine without
    # root they are reported as not run, loudly, rather than passing silently.
    if is_root():
        return
    skip = pytest.mark.skip(reason="needs root (namespaces, overlayfs)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uncompressed busybox rootfs tarball (bin/busybox + applet links, etc/passwd, etc/group)."""
    if not BUSYBOX.exists():
        pytest.fail("/bin/busybox is missing: install Debian's busybox-static (install.sh does)")
    path = tmp_path_factory.mktemp("busybox") / "rootfs.tar"
    with path.open("wb") as out:
        write_busybox_rootfs_tar(out, BUSYBOX)
    return path


@pytest.fixture(scope="session")
def busybox_rootfs(busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The busybox rootfs unpacked into a directory (read it only; copy before writing)."""
    root = tmp_path_factory.mktemp("busybox-rootfs")
    with tarfile.open(busybox_tar) as tar:
        tar.extractall(root, filter="fully_trusted")
    yield root
