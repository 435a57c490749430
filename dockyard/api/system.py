"""System routes: ``_ping`` (version negotiation), ``version`` and ``info``."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from typing import Any

import dockyard
from dockyard.api.http import BytesResponse, JSONResponse, Request, Response
from dockyard.api.router import API_VERSION, MIN_API_VERSION, Router
from dockyard.containers.resources import cgroup_features
from dockyard.containers.service import ContainerService
from dockyard.distribution.endpoints import RegistrySettings
from dockyard.formats import timestamps
from dockyard.images.service import ImageService

PING_HEADERS = [("Builder-Version", "1"), ("Cache-Control", "no-cache, no-store, must-revalidate"),
                ("Pragma", "no-cache"), ("Swarm", "inactive")]

GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def cgroup_version() -> str:
    """"2" on a unified hierarchy, "1" when controllers live on v1 (hybrid counts as 1)."""
    return "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "Linux"


def backing_filesystem(path: Path) -> str:
    """The type of the filesystem holding ``path`` (``extfs`` for ext2/3/4, as Docker names it)."""
    best, kind = "", "unknown"
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                target = left.split()[4]
                if (str(path) == target or str(path).startswith(target.rstrip("/") + "/")) and len(target) >= len(best):
                    best, kind = target, right.split()[0]
    except OSError:
        pass
    return "extfs" if kind in ("ext2", "ext3", "ext4") else kind


def _mem_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def version_info() -> dict[str, Any]:
    arch = GO_ARCH.get(platform.machine(), platform.machine())
    details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "dockyard",
               "GoVersion": "python" + platform.python_version(), "Os": "linux", "Arch": arch,
               "KernelVersion": platform.release(), "BuildTime": "", "Experimental": "false"}
    return {
        "Platform": {"Name": "dockyard"},
        "Components": [{"Name": "Engine", "Version": dockyard.__version__, "Details": details}],
        "Version": dockyard.__version__,
        **{k: v for k, v in details.items() if k != "Experimental"},
    }


def register(router: Router, root: Path, containers: ContainerService, images: ImageService,
             daemon_id: str, registry: RegistrySettings) -> None:
    async def ping(request: Request) -> Response:
        return BytesResponse(body=b"OK" if request.method != "HEAD" else b"", headers=list(PING_HEADERS))

    router.add("GET", "/_ping", ping)
    router.add("HEAD", "/_ping", ping)

    @router.route("GET", "/version")
    async def version(request: Request) -> Response:
        return JSONResponse(version_info())

    @router.route("GET", "/info")
    async def info(request: Request) -> Response:
        counts = containers.counts()
        return JSONResponse({
            "ID": daemon_id,
            **counts,
            "Images": len(images.list(all=True)),
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", backing_filesystem(root)], ["Supports d_type", "true"]],
            "Plugins": {"Volume": ["local"], "Network": ["host", "null"], "Authorization": None,
                        "Log": ["json-file", "local", "none"]},
            **cgroup_features(),  # MemoryLimit, SwapLimit, CpuCfsPeriod… (containers/resources.py)
            "KernelMemory": False, "KernelMemoryTCP": False, "IPv4Forwarding": False,
            "BridgeNfIptables": False, "BridgeNfIp6tables": False, "Debug": False,
            "NFd": len(os.listdir("/proc/self/fd")), "NGoroutines": 0, "SystemTime": timestamps.now(),
            "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": cgroup_version(),
            "NEventsListener": 0, "KernelVersion": platform.release(), "OperatingSystem": _os_name(),
            "OSVersion": "", "OSType": "linux", "Architecture": platform.machine(),
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": registry.info(),
            "NCPU": os.cpu_count() or 1, "MemTotal": _mem_total(), "GenericResources": None,
            "DockerRootDir": str(root), "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
            "Name": socket.gethostname(), "Labels": [], "ExperimentalBuild": False,
            "ServerVersion": dockyard.__version__,
            "Runtimes": {"dockyard": {"path": "dockyard-shim"}}, "DefaultRuntime": "dockyard",
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                      "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "docker-init",
            "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""}, "InitCommit": {"ID": ""},
            "SecurityOptions": ["name=seccomp,profile=builtin"], "CDISpecDirs": [], "Warnings": [],
        })
