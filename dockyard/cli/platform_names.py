"""Go's names for this machine's OS and architecture (``linux/amd64``), as Docker prints them."""

from __future__ import annotations

import os

_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def go_os_arch() -> str:
    uname = os.uname()
    return f"{uname.sysname.lower()}/{_GO_ARCH.get(uname.machine, uname.machine)}"
