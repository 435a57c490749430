"""The ``--init`` binary (``init.c``): finding or building it, like the shim (``shim.py``).

It is compiled statically, because it runs inside any image, with or without a libc. The
runtime bind-mounts it read-only at ``/sbin/docker-init`` and runs ``/sbin/docker-init -- CMD...``.
``python -m dockyard.runtime.init_binary`` builds it ahead of time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from dockyard.errors import DockyardError

SOURCE = Path(__file__).with_name("init.c")
BINARY_NAME = "dockyard-init"


def _fresh(binary: Path) -> bool:
    try:
        return binary.stat().st_mtime >= SOURCE.stat().st_mtime and os.access(binary, os.X_OK)
    except FileNotFoundError:
        return False


def compile_init(target: Path) -> Path:
    """Compile ``init.c`` statically to ``target`` (a temp name, then a rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{BINARY_NAME}.", dir=target.parent)
    os.close(fd)
    try:
        proc = subprocess.run(["gcc", "-O2", "-Wall", "-static", "-o", tmp, str(SOURCE)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise DockyardError(f"compiling {SOURCE} failed: {proc.stderr.strip()}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    except FileNotFoundError as err:
        raise DockyardError(f"cannot build the init binary: {err}") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def init_binary() -> Path:
    """``$DOCKYARD_INIT`` if set; else ``dockyard-init`` next to ``init.c`` (built when stale), or
    under ``$XDG_CACHE_HOME/dockyard`` / ``/var/cache/dockyard`` when that directory is read-only."""
    override = os.environ.get("DOCKYARD_INIT")
    if override:
        return Path(override)
    local = SOURCE.with_name(BINARY_NAME)
    if _fresh(local):
        return local
    if os.access(local.parent, os.W_OK):
        return compile_init(local)
    xdg = os.environ.get("XDG_CACHE_HOME")
    cached = (Path(xdg) / "dockyard" if xdg else Path("/var/cache/dockyard")) / BINARY_NAME
    if _fresh(cached):
        return cached
    return compile_init(cached)


if __name__ == "__main__":
    print(init_binary())
    sys.exit(0)
