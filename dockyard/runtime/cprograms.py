"""The small C programs the runtime runs (the shim, docker-init): finding or building them.

A *C program* is one source file in this package compiled with gcc next to its source (or, when
that directory is read-only, under ``$XDG_CACHE_HOME/dockyard`` or ``/var/cache/dockyard``),
rebuilt when the source is newer, and overridable by an environment variable. Builds go to a temp
name and are renamed into place, so concurrent builds are safe. Link variants are tried in order
(e.g. static first, dynamic when the static libraries are missing).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import DockyardError


@dataclass(frozen=True)
class CProgram:
    source: Path
    name: str                               # the binary's file name
    env: str                                # an environment variable that names a binary to use instead
    variants: tuple[tuple[str, ...], ...]   # gcc flags before the source, tried in order
    libraries: tuple[str, ...] = ()         # link flags after the source ("-lz")

    def fresh(self, binary: Path) -> bool:
        try:
            return binary.stat().st_mtime >= self.source.stat().st_mtime and os.access(binary, os.X_OK)
        except FileNotFoundError:
            return False

    def build(self, target: Path) -> Path:
        """Compile to ``target`` (via a temp name and a rename)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.name}.", dir=target.parent)
        os.close(fd)
        try:
            errors = ""
            for flags in self.variants:
                proc = subprocess.run(["gcc", *flags, "-o", tmp, str(self.source), *self.libraries],
                                      capture_output=True, text=True)
                if proc.returncode == 0:
                    os.chmod(tmp, 0o755)
                    os.replace(tmp, target)
                    return target
                errors = proc.stderr.strip()
            raise DockyardError(f"compiling {self.source} failed: {errors}")
        except FileNotFoundError as err:  # no gcc
            raise DockyardError(f"cannot build {self.name}: {err}") from err
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def binary(self) -> Path:
        """The executable: ``$<env>`` if set; else the fresh build next to the source or in the cache."""
        override = os.environ.get(self.env)
        if override:
            return Path(override)
        local = self.source.with_name(self.name)
        if self.fresh(local):
            return local
        if os.access(local.parent, os.W_OK):
            return self.build(local)
        xdg = os.environ.get("XDG_CACHE_HOME")
        cached = (Path(xdg) / "dockyard" if xdg else Path("/var/cache/dockyard")) / self.name
        if self.fresh(cached):
            return cached
        return self.build(cached)
