"""Choosing the host ports of a container's published ports.

Terms: a *request* (:class:`~dockyard.networks.ports.PortRequest`) names a host port, a range, or none;
the firewall's own published ports are never handed out twice (``Firewall.publish`` refuses with
Docker's "port is already allocated"). With dockerd's ``userland-proxy`` on (its default) a host port
that a process of the host holds is refused too, as dockerd's proxy would fail to bind it — publishing
itself is always an nft DNAT element, never a process.
"""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

from dockyard.errors import DockyardError
from dockyard.networks import netns
from dockyard.networks.firewall import Firewall, PortForward
from dockyard.networks.ports import PortRequest, Published


def targets(req: PortRequest, container_ip: str, container_ip6: str, proxy_6to4: bool = False) -> list[tuple[str, str]]:
    """Where a request is published, as (host address, container address) pairs, Docker 28's rules:
    an IPv4 host address to the container's IPv4 address; an implicit ``0.0.0.0`` also from ``::`` to
    its IPv6 address when it has one; an IPv6 host address to its IPv6 address. A container without an
    IPv6 address gets the IPv6 ones at its IPv4 address when ``proxy_6to4`` (dockerd's userland proxy,
    on by default, on a host with IPv6: the relay serves them), else none."""
    relay_to_v4 = proxy_6to4 and not container_ip6
    if req.family == 4:
        out = [(req.host_ip, container_ip)]
        if req.implicit and req.host_ip in ("0.0.0.0", "") and (container_ip6 or relay_to_v4):
            out.append(("::", container_ip6 or container_ip))
        return out
    if container_ip6:
        return [(req.host_ip, container_ip6)]
    return [(req.host_ip, container_ip)] if relay_to_v4 else []


def choose_ports(fw: Firewall, wanted: list[PortRequest], container_ip: str, userland_proxy: bool,
                 host_netns: Path = netns.HOST, container_ip6: str = "",
                 proxy_6to4: bool = False) -> tuple[list[Published], list[PortForward]]:
    """A host port for each request — the one named, the first free one of a range, or (none named)
    the firewall's pick —, the same for each of its :func:`targets`; returns what to report and what
    to publish."""
    taken_now: dict[str, set[int]] = {"tcp": set(), "udp": set()}
    published: list[Published] = []
    forwards: list[PortForward] = []
    # ports of ours: the firewall refuses them in Docker's words (the loopback relay holds [::1] of some)
    ours = fw.host_ports() if userland_proxy else set()
    for req in wanted:
        pairs = targets(req, container_ip, container_ip6, proxy_6to4 and userland_proxy)
        if not pairs:
            continue
        if req.low == 0:
            port = fw.pick_host_port(req.proto, req.host_ip, exclude=taken_now[req.proto],
                                     also_ipv6=any(":" in host for host, _ in pairs))
        elif req.low == req.high:
            port = req.low
            if userland_proxy and (req.proto, port) not in ours:
                for host_ip, _ in pairs:
                    check_host_port(replace(req, host_ip=host_ip), port, container_ip, host_netns)
        else:
            port = _first_free(fw, req, taken_now[req.proto], container_ip, host_netns, [h for h, _ in pairs])
        taken_now[req.proto].add(port)
        for host_ip, target in pairs:
            published.append(Published(req.container_port, req.proto, host_ip, port))
            forwards.append(PortForward(host_ip, port, target, req.container_port, req.proto))
    return published, forwards


def _first_free(fw: Firewall, req: PortRequest, exclude: set[int], container_ip: str, host_netns: Path,
                host_ips: list[str]) -> int:
    used = {(f.proto, f.host_port) for fs in fw.forwards().values() for f in fs}
    for port in range(req.low, req.high + 1):
        if port in exclude or (req.proto, port) in used:
            continue
        try:
            for host_ip in host_ips:
                check_host_port(replace(req, host_ip=host_ip), port, container_ip, host_netns)
        except DockyardError:
            continue
        return port
    raise DockyardError(f"Bind for {req.host_ip}:{req.low}-{req.high} failed: port is already allocated")


def check_host_port(req: PortRequest, port: int, container_ip: str, host_netns: Path = netns.HOST) -> None:
    """Refuse a host port a process of the host holds (dockerd's words when its proxy cannot bind)."""
    kind = socket.SOCK_STREAM if req.proto == "tcp" else socket.SOCK_DGRAM
    family = socket.AF_INET6 if req.family == 6 else socket.AF_INET

    def probe() -> bool:
        with socket.socket(family, kind) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                s.bind((req.host_ip if req.host_ip not in ("", "0.0.0.0") else "0.0.0.0", port))
            except OSError:
                return False
            return True

    free = probe() if Path(host_netns) == netns.HOST else netns.run_in(host_netns, probe)
    if not free:
        host = f"[{req.host_ip}]" if req.family == 6 else req.host_ip
        raise DockyardError(f"failed to bind host port for {host}:{port}:{container_ip}:"
                            f"{req.container_port}/{req.proto}: address already in use")
