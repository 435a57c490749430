"""What the runtime needs to start one container: the process to run and where its root lives.

The containers service builds these from a container record; :func:`dockyard.runtime.spawn.spawn`
consumes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dockyard.runtime.devices import DeviceNode
from dockyard.runtime.security import SecuritySpec

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""Docker's default ``PATH`` for a container whose image sets none."""


@dataclass
class ProcessSpec:
    """The container's first process."""

    args: list[str]      # Entrypoint + Cmd combined; args[0] searched in PATH from env when it has no '/'
    env: list[str]       # "KEY=VALUE"; PATH, HOSTNAME, HOME (and TERM=xterm with a tty) added if missing
    cwd: str             # WorkingDir; "" means "/"; created (owned by the user) if missing, as Docker does
    user: str            # Docker user spec, resolved inside the rootfs
    tty: bool
    open_stdin: bool     # False: stdin is /dev/null


@dataclass
class MountSpec:
    """One mount the container's init makes after the overlay (see ``runtime/mounts.py``).

    ``type`` is ``bind`` (``source`` is a host path) or ``tmpfs``; ``options`` are mount(8)-style
    (``ro``, ``noexec``, ``size=64m``, ``mode=1777``…); ``propagation`` is Docker's (``rprivate``…);
    ``copy_up``: fill an empty ``source`` directory with the image's content at ``destination``;
    ``subpath``: a relative path under ``source`` with no symlinks left in it, bound instead of ``source``."""

    type: str
    source: str
    destination: str
    readonly: bool = False
    options: list[str] = field(default_factory=list)
    propagation: str = ""
    copy_up: bool = False
    subpath: str = ""  # bind ``source/subpath``, opened without following symlinks (a volume's subpath)


@dataclass
class ContainerSpec:
    """One container: its layers, namespaces, process, and where its shim keeps state."""

    id: str              # 64 hex chars
    state_dir: Path      # containers/<id>/: the shim's socket, exit record and shim.log go here
    lowerdirs: list[Path]  # image layers, top-most first (at least one)
    upperdir: Path
    workdir: Path
    rootfs: Path         # an existing empty dir: the overlay is mounted here inside the container's mount ns
    hostname: str
    network: str         # "none" (new netns with only lo, up) | "host" (the host's netns) | the path of a
    #                      network namespace to join (a pinned one, or another container's /proc/PID/ns/net)
    process: ProcessSpec
    log_path: Path
    log_max_size: int = 0
    log_max_file: int = 1
    log_compress: bool = False  # gzip rotated log files (the local log driver)
    etc_files: dict[str, Path] = field(default_factory=dict)  # "/etc/hosts" -> host file, bind-mounted
    security: SecuritySpec = field(default_factory=SecuritySpec)  # Docker's defaults: caps, seccomp, masks
    mounts: list[MountSpec] = field(default_factory=list)  # volumes, binds, tmpfs; applied in order
    devices: list[DeviceNode] = field(default_factory=list)  # --device nodes, made in the container's /dev
    oom_score_adj: int = 0  # the init's /proc/PID/oom_score_adj (its children inherit it), as Docker sets it


def container_env(process: ProcessSpec, hostname: str, home: str) -> list[str]:
    """The environment the process starts with: ``process.env`` plus Docker's defaults for
    ``PATH``, ``HOSTNAME``, ``HOME`` and (with a tty) ``TERM`` when the spec does not set them."""
    env = list(process.env)
    keys = {item.partition("=")[0] for item in env}
    defaults = [("PATH", DEFAULT_PATH), ("HOSTNAME", hostname), ("HOME", home)]
    if process.tty:
        defaults.append(("TERM", "xterm"))
    for key, value in defaults:
        if key not in keys:
            env.append(f"{key}={value}")
    return env
