"""Network modes a container can be created with, until real networks exist.

- ``none``: a network namespace of its own with only ``lo`` (up).
- ``host``: the host's network namespace, and the host's hostname unless one is given.
- ``bridge`` / ``default``: Docker's default. The bridge network (NAT, port publishing) is not
  built yet, so such a container gets what ``none`` gives — an isolated namespace with loopback
  only — and the create answer carries a warning saying so. Nothing fails silently.
- anything else (a user network, ``container:<id>``) is refused with Docker's error.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import InvalidParameter, NotFound

BRIDGE_WARNING = ("dockyard: the bridge network is not implemented yet; this container gets an isolated "
                  "network namespace with loopback only (as with --network none)")

HOSTS_LOCAL = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""


@dataclass(frozen=True)
class NetworkPlan:
    """What the runtime does for a container's network: ``namespace`` is "none" or "host"."""

    mode: str
    namespace: str
    warning: str = ""


def plan(mode: str) -> NetworkPlan:
    mode = mode or "default"
    if mode in ("none",):
        return NetworkPlan(mode, "none")
    if mode == "host":
        return NetworkPlan(mode, "host")
    if mode in ("bridge", "default"):
        return NetworkPlan(mode, "none", BRIDGE_WARNING)
    if mode.startswith("container:"):
        raise InvalidParameter(f"network mode {mode!r} is not supported by dockyard yet")
    raise NotFound(f"network {mode} not found")


def write_etc_files(directory: Path, network: NetworkPlan, hostname: str) -> dict[str, Path]:
    """Write the container's hostname, hosts and resolv.conf; returns container path → host file."""
    files = {"/etc/hostname": directory / "hostname", "/etc/hosts": directory / "hosts",
             "/etc/resolv.conf": directory / "resolv.conf"}
    files["/etc/hostname"].write_text(hostname + "\n")
    if network.namespace == "host":
        try:
            hosts = Path("/etc/hosts").read_text()
        except OSError:
            hosts = HOSTS_LOCAL
        files["/etc/hosts"].write_text(hosts)
    else:
        files["/etc/hosts"].write_text(HOSTS_LOCAL)
    try:
        resolv = Path("/etc/resolv.conf").read_text()
    except OSError:
        resolv = ""
    if network.namespace != "host":
        # Without a bridge there is no route out; keep the host's search options but no
        # loopback resolvers, which would point into the container's own empty namespace.
        resolv = "".join(line + "\n" for line in resolv.splitlines()
                         if not line.startswith("nameserver 127.") and not line.startswith("nameserver ::1"))
    files["/etc/resolv.conf"].write_text(resolv)
    return files


def host_hostname() -> str:
    return socket.gethostname()
