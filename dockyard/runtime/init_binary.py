"""The ``--init`` binary (``init.c``): finding or building it, like the shim (``shim.py``).

It is compiled statically, because it runs inside any image, with or without a libc. The
runtime bind-mounts it read-only at ``/sbin/docker-init`` and runs ``/sbin/docker-init -- CMD...``.
``python -m dockyard.runtime.init_binary`` builds it ahead of time.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dockyard.runtime.cprograms import CProgram

SOURCE = Path(__file__).with_name("init.c")
BINARY_NAME = "dockyard-init"


PROGRAM = CProgram(SOURCE, BINARY_NAME, "DOCKYARD_INIT", variants=(("-O2", "-Wall", "-static"),))


def init_binary() -> Path:
    """``$DOCKYARD_INIT`` if set; else ``dockyard-init`` next to ``init.c`` (built when stale), or
    under ``$XDG_CACHE_HOME/dockyard`` / ``/var/cache/dockyard`` when that directory is read-only."""
    return PROGRAM.binary()


if __name__ == "__main__":
    print(init_binary())
    sys.exit(0)
