"""Host devices for the device-rule tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import pytest


class BlockDevice(NamedTuple):
    path: str  # on the host
    major: int
    minor: int


def openable_block_device() -> BlockDevice:
    """A block device this (root) test process can open: a disk, else a loop
    device. A container's failure to open it then comes from its device rules, not from the host
    (a sandbox may forbid opening its disks even to root)."""
    for entry in sorted(os.listdir("/sys/dev/block")):
        fields = dict(line.split("=", 1) for line in (Path("/sys/dev/block") / entry / "uevent").read_text().split())
        name = fields.get("DEVNAME", "")
        if not name or name.startswith("ram"):
            continue
        try:
            os.close(os.open(f"/dev/{name}", os.O_RDONLY | os.O_NONBLOCK))
        except OSError:
            continue
        major, minor = entry.split(":")
        return BlockDevice(f"/dev/{name}", int(major), int(minor))
    pytest.fail("no block device opens on this host: a container's denial could not be told from the host's")
