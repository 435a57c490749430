"""A container's control groups: create, join, write, freeze, read, remove.

Terms:
- *mode*: ``"2"`` when ``/sys/fs/cgroup`` is a unified (cgroup2) hierarchy (it has
  ``cgroup.controllers``, even an empty one); ``"1"`` otherwise. A *hybrid* host (v1 controllers, a
  tmpfs at ``/sys/fs/cgroup`` and a cgroup2 at ``/sys/fs/cgroup/unified``) counts as v1, as runc and
  Docker treat it.
- *controller*: on v1 one hierarchy per controller, mounted at ``/sys/fs/cgroup/<controller>``
  (``cpu`` and ``cpuacct`` may be one co-mounted hierarchy; paths are de-duplicated by realpath).
  On v2 every controller's files live in the one directory; ``devices`` is always there (v2 has no
  devices controller: device rules are a program attached to the directory, see :meth:`Cgroup.confine_devices`).
- A container's cgroup is ``dockyard/<id>`` under each hierarchy (v1) or under the root (v2).
  The init joins it before it execs, so every process of the container inherits it.

All paths hang off ``root`` so that unit tests can use a fake tree.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from dockyard.runtime.bpf import attach_device_program
from dockyard.runtime.device_bpf import Policy, program

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "dockyard"
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer", "blkio")
V2_CONTROLLERS = ("cpu", "cpuset", "memory", "pids", "io")


def mode(root: Path = CGROUP_ROOT) -> str:
    """``"2"`` on a unified hierarchy (with or without controllers), else ``"1"`` (hybrid included)."""
    return "2" if (root / "cgroup.controllers").is_file() else "1"


def v1_available(root: Path = CGROUP_ROOT) -> dict[str, Path]:
    """The v1 hierarchies we use that this host mounts: controller -> its mount point."""
    found = {}
    for name in V1_CONTROLLERS:
        path = root / name
        if (path / "cgroup.procs").exists():
            found[name] = path
    return found


def v2_available(root: Path = CGROUP_ROOT) -> set[str]:
    try:
        return set((root / "cgroup.controllers").read_text().split()) & set(V2_CONTROLLERS)
    except OSError:
        return set()


@dataclass
class Cgroup:
    """One container's cgroup: ``dirs`` maps each controller to its directory (on v2 all the same)."""

    id: str
    version: str
    dirs: dict[str, Path]

    @classmethod
    def of(cls, cid: str, root: Path = CGROUP_ROOT) -> Cgroup:
        """Where container ``cid``'s cgroup is (or would be) on this host."""
        version = mode(root)
        if version == "2":
            here = root / PARENT / cid
            return cls(cid, version, {"devices": here, **{name: here for name in v2_available(root)}})
        return cls(cid, version, {name: base / PARENT / cid for name, base in v1_available(root).items()})

    def has(self, controller: str) -> bool:
        return controller in self.dirs

    def unique_dirs(self) -> list[Path]:
        seen: dict[str, Path] = {}
        for path in self.dirs.values():
            seen.setdefault(os.path.realpath(path.parent.parent) + "/" + path.name, path)
        return list(seen.values())

    def exists(self) -> bool:
        return any(path.is_dir() for path in self.dirs.values())

    # -- creation ------------------------------------------------------------------------------
    def create(self) -> None:
        """Make the directories (and the ``dockyard`` parent), ready for limits and ``join``."""
        for attempt in range(3):
            try:
                self._create_once()
                return
            except FileNotFoundError:
                # Another daemon removed the empty ``dockyard`` parent between our mkdirs: redo.
                if attempt == 2:
                    raise

    def _create_once(self) -> None:
        if self.version == "2":
            path = self._v2_dir()
            root = path.parent.parent
            wanted = " ".join("+" + c for c in sorted(self.dirs) if c != "devices")
            if wanted:
                _write(root / "cgroup.subtree_control", wanted)
            path.parent.mkdir(exist_ok=True)
            if wanted:
                _write(path.parent / "cgroup.subtree_control", wanted)
            path.mkdir(exist_ok=True)
            return
        for path in self.unique_dirs():
            for level in (path.parent, path):
                level.mkdir(exist_ok=True)
                if self.dirs.get("cpuset") == path:
                    # A new v1 cpuset level starts empty and no task may join it until filled.
                    for name in ("cpuset.cpus", "cpuset.mems"):
                        if not (level / name).read_text().strip():
                            _write(level / name, (level.parent / name).read_text().strip())

    def confine_devices(self, writes: list[tuple[str, str]]) -> None:
        """Apply device rules, given as v1 rule writes in order (``devices.cgroup_rules``): on v1
        write them to the devices controller; on v2 attach the equivalent device program
        (``device_bpf``), replacing one attached before. Raises OSError when they cannot be
        applied, so that no container runs with more device access than its rules give."""
        try:
            policy = Policy.from_writes(writes)
        except ValueError as err:
            raise OSError(errno.EINVAL, str(err)) from err  # what v1's devices.allow answers to it
        if self.version == "2":
            try:
                attach_device_program(self._v2_dir(), program(policy))
            except OSError as err:
                raise OSError(err.errno, "cgroup v2: cannot attach the device program (BPF_CGROUP_DEVICE) "
                                         f"that enforces the device rules: {err.strerror}") from err
            return
        if not self.has("devices"):
            if policy == Policy(default_allow=True):
                return
            raise OSError(errno.ENODEV, "the devices cgroup (v1) is not mounted: the device rules cannot be applied")
        for name, rule in writes:
            self.write("devices", name, rule)

    def join(self, pid: int) -> None:
        """Move process ``pid`` (its whole thread group) into every hierarchy."""
        for path in self.unique_dirs():
            _write(path / "cgroup.procs", str(pid))

    # -- files -------------------------------------------------------------------------------------
    def path(self, controller: str, name: str) -> Path:
        return self.dirs[controller] / name

    def read(self, controller: str, name: str) -> str:
        return self.path(controller, name).read_text()

    def read_int(self, controller: str, name: str, default: int = 0) -> int:
        try:
            text = self.read(controller, name).strip()
        except (OSError, KeyError):
            return default
        if text == "max":
            return -1
        try:
            return int(text)
        except ValueError:
            return default

    def read_keyed(self, controller: str, name: str) -> dict[str, int]:
        """A flat-keyed file (``memory.stat``, ``cpu.stat``, ``memory.events``): key -> int."""
        out: dict[str, int] = {}
        try:
            text = self.read(controller, name)
        except (OSError, KeyError):
            return out
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            try:
                out[key] = int(value.strip())
            except ValueError:
                continue
        return out

    def write(self, controller: str, name: str, value: str) -> None:
        _write(self.path(controller, name), value)

    # -- freezer ----------------------------------------------------------------------------------
    def freeze(self, timeout: float = 10.0) -> None:
        self._set_frozen(True, timeout)

    def thaw(self, timeout: float = 10.0) -> None:
        self._set_frozen(False, timeout)

    def frozen(self) -> bool:
        if self.version == "2":
            if not self.dirs:
                return False
            try:
                return "frozen 1" in (self._v2_dir() / "cgroup.events").read_text().splitlines()
            except OSError:
                return False
        if not self.has("freezer"):
            return False
        try:
            return self.read("freezer", "freezer.state").strip() == "FROZEN"
        except OSError:
            return False

    def _v2_dir(self) -> Path:
        return next(iter(self.dirs.values()))

    def _set_frozen(self, on: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if self.version == "2":
            directory = self._v2_dir()
            _write(directory / "cgroup.freeze", "1" if on else "0")
            while self.frozen() != on:
                if time.monotonic() > deadline:
                    raise OSError(errno.EBUSY, "the cgroup did not change its frozen state")
                time.sleep(0.005)
            return
        state = "FROZEN" if on else "THAWED"
        while True:
            # A v1 freezer may stay FREEZING while tasks are in uninterruptible sleep: write again.
            self.write("freezer", "freezer.state", state)
            if self.read("freezer", "freezer.state").strip() == state:
                return
            if time.monotonic() > deadline:
                raise OSError(errno.EBUSY, "the cgroup did not change its frozen state")
            time.sleep(0.005)

    def pids(self) -> list[int]:
        for path in self.unique_dirs():
            try:
                return [int(p) for p in (path / "cgroup.procs").read_text().split()]
            except OSError:
                continue
        return []

    # -- removal -------------------------------------------------------------------------------------
    def remove(self, timeout: float = 2.0) -> None:
        """Kill what is left inside (thawing it first), then remove every directory and the empty
        ``dockyard`` parents. Missing directories are fine; raises OSError if one stays busy."""
        if not self.exists():
            return
        with _suppress():
            if self.frozen():
                self.thaw()
        deadline = time.monotonic() + timeout
        for path in self.unique_dirs():
            while path.is_dir():
                try:
                    path.rmdir()
                except FileNotFoundError:
                    break
                except OSError as err:
                    if err.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    for pid in _procs(path):
                        with _suppress():
                            os.kill(pid, signal.SIGKILL)
                    time.sleep(0.01)
            with _suppress():
                path.parent.rmdir()  # only succeeds when no other container uses it


class AttachPrimer:
    """Starts, ahead of a container's ``join``, the wait that join's first ``cgroup.procs`` write
    would otherwise make on the start's critical path.

    Moving a process between cgroups takes the kernel's global ``cgroup_threadgroup_rwsem`` for
    writing, and the first writer after a quiet spell waits for an RCU grace period (5–18 ms
    measured here on a 6.18 kernel, v1 or v2 alike); writers within about one more grace period after
    it pass at once (~0.1 ms). :meth:`prime` (called when a container is created or starts) moves the
    daemon into the cgroup it already is in — a migration that changes nothing — in a thread of its
    own, so the grace period runs while the start prepares the rootfs and forks; the init's join
    then waits only for what is left of it, if anything. One priming at a time (a second one while
    the first waits would change nothing); failures are ignored (it is only ahead of time)."""

    def __init__(self, root: Path = CGROUP_ROOT) -> None:
        self.root = root
        self._busy = threading.Lock()

    def prime(self) -> None:
        if not self._busy.acquire(blocking=False):
            return
        try:
            threading.Thread(target=self._run, name="cgroup-primer", daemon=True).start()
        except BaseException:
            self._busy.release()
            raise

    def _run(self) -> None:
        try:
            target = self._own_procs_file()
            if target is not None:
                _write(target, str(os.getpid()))
        except OSError:
            pass
        finally:
            self._busy.release()

    def _own_procs_file(self) -> Path | None:
        """The ``cgroup.procs`` of the cgroup this process is in, in one hierarchy (v2 preferred)."""
        lines = [line.split(":", 2) for line in Path("/proc/self/cgroup").read_text().splitlines()]
        for _, controllers, path in sorted(lines, key=lambda fields: fields[1] != ""):
            if controllers == "":
                bases = [self.root / "unified", self.root] if mode(self.root) == "1" else [self.root]
            else:
                bases = [self.root / controllers.removeprefix("name=")]
            for base in bases:
                procs = base / path.lstrip("/") / "cgroup.procs"
                if (base / "cgroup.procs").exists() and procs.exists():
                    return procs
        return None


attach_primer = AttachPrimer()
"""The daemon's (one per process: the kernel's lock is global)."""


def _procs(path: Path) -> list[int]:
    try:
        return [int(p) for p in (path / "cgroup.procs").read_text().split()]
    except OSError:
        return []


class _suppress:
    """``contextlib.suppress(OSError)`` without the import in this hot path."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, value: object, tb: object) -> bool:
        return isinstance(value, OSError)


def _write(path: Path, value: str) -> None:
    """One ``write(2)`` of ``value`` to a cgroup file (the kernel acts on each write)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)
