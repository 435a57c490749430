"""Choosing the host ports of a container's published ports.

Terms: a *request* (:class:`~dockyard.networks.ports.PortRequest`) names a host port, a range, or none;
the firewall's own published ports are never handed out twice (``Firewall.publish`` refuses with
Docker's "port is already allocated"). With dockerd's ``userland-proxy`` on (its default) a host port
that a process of the host holds is refused too, as dockerd's proxy would fail to bind it — publishing
itself is always an nft DNAT element, never a process.
"""

from __future__ import annotations

import socket
from pathlib import Path

from dockyard.errors import DockyardError
from dockyard.networks import netns
from dockyard.networks.firewall import Firewall, PortForward
from dockyard.networks.ports import PortRequest, Published


def choose_ports(fw: Firewall, wanted: list[PortRequest], container_ip: str, userland_proxy: bool,
                 host_netns: Path = netns.HOST) -> tuple[list[Published], list[PortForward]]:
    """A host port for each request: the one named, the first free one of a range, or (none named)
    the firewall's pick; returns what to report and what to publish."""
    taken_now: dict[str, set[int]] = {"tcp": set(), "udp": set()}
    published: list[Published] = []
    forwards: list[PortForward] = []
    for req in wanted:
        if req.low == 0:
            port = fw.pick_host_port(req.proto, req.host_ip, exclude=taken_now[req.proto])
        elif req.low == req.high:
            port = req.low
            if userland_proxy:
                check_host_port(req, port, container_ip, host_netns)
        else:
            port = _first_free(fw, req, taken_now[req.proto], container_ip, host_netns)
        taken_now[req.proto].add(port)
        published.append(Published(req.container_port, req.proto, req.host_ip, port))
        forwards.append(PortForward(req.host_ip, port, container_ip, req.container_port, req.proto))
    return published, forwards


def _first_free(fw: Firewall, req: PortRequest, exclude: set[int], container_ip: str, host_netns: Path) -> int:
    used = {(f.proto, f.host_port) for fs in fw.forwards().values() for f in fs}
    for port in range(req.low, req.high + 1):
        if port in exclude or (req.proto, port) in used:
            continue
        try:
            check_host_port(req, port, container_ip, host_netns)
        except DockyardError:
            continue
        return port
    raise DockyardError(f"Bind for {req.host_ip}:{req.low}-{req.high} failed: port is already allocated")


def check_host_port(req: PortRequest, port: int, container_ip: str, host_netns: Path = netns.HOST) -> None:
    """Refuse a host port a process of the host holds (dockerd's words when its proxy cannot bind)."""
    kind = socket.SOCK_STREAM if req.proto == "tcp" else socket.SOCK_DGRAM

    def probe() -> bool:
        with socket.socket(socket.AF_INET, kind) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((req.host_ip if req.host_ip not in ("", "0.0.0.0") else "0.0.0.0", port))
            except OSError:
                return False
            return True

    free = probe() if Path(host_netns) == netns.HOST else netns.run_in(host_netns, probe)
    if not free:
        raise DockyardError(f"failed to bind host port for {req.host_ip}:{port}:{container_ip}:"
                            f"{req.container_port}/{req.proto}: address already in use")
