"""Published ports: what a container asks for (``HostConfig.PortBindings``, ``PublishAllPorts``) and how
Docker reports what it got. Pure.

Terms:

- *port key*: Docker's ``"80/tcp"`` (``"80"`` means tcp); ``ExposedPorts`` and ``PortBindings`` are
  keyed by it.
- *request* (:class:`PortRequest`): one host binding asked for: the container port and protocol, the
  host address (``""`` → the daemon's default, dockerd's ``ip`` key, itself ``0.0.0.0`` by default; a
  request on that default is *implicit*, and on a network with IPv6 it is published on ``::`` too,
  with the same host port, as Docker 28 does; an IPv6 host address (``[::]``, ``[::1]``) is published
  only to a container with an IPv6 address),
  and a host port range (``low == high == 0``: any free port, as ``-p 80`` and ``-P`` ask;
  ``low < high``: the first free port of that range, as ``-p 8000-8010:80``).
- *binding* (:class:`Published`): what was published: both ports and the host address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from typing import Any, Literal

from dockyard.errors import InvalidParameter

Proto = Literal["tcp", "udp"]


@dataclass(frozen=True)
class PortRequest:
    container_port: int
    proto: Proto
    host_ip: str
    low: int
    high: int
    implicit: bool = False  # the host address is the daemon's default (no HostIp given)

    @property
    def family(self) -> int:
        return 6 if ":" in self.host_ip else 4


@dataclass(frozen=True)
class Published:
    container_port: int
    proto: Proto
    host_ip: str
    host_port: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_key(key: str) -> tuple[int, Proto]:
    """``"80/tcp"`` → (80, "tcp"); Docker's errors for a bad port or protocol."""
    port_text, _, proto = str(key).partition("/")
    proto = (proto or "tcp").lower()
    if proto == "sctp":
        raise InvalidParameter("sctp ports are not supported by dockyard")
    if proto not in ("tcp", "udp"):
        raise InvalidParameter(f"invalid proto: {proto}")
    try:
        port = int(port_text)
    except ValueError:
        raise InvalidParameter(f"invalid containerPort: {port_text}") from None
    if not 1 <= port <= 65535:
        raise InvalidParameter(f"invalid containerPort: {port_text}")
    return port, proto  # type: ignore[return-value]


def _host_range(text: str) -> tuple[int, int]:
    text = (text or "").strip()
    if text in ("", "0"):
        return 0, 0
    low_text, dash, high_text = text.partition("-")
    try:
        low = int(low_text)
        high = int(high_text) if dash else low
    except ValueError:
        raise InvalidParameter(f"invalid hostPort: {text}") from None
    if not (1 <= low <= 65535 and 1 <= high <= 65535) or high < low:
        raise InvalidParameter(f"invalid hostPort: {text}")
    return low, high


def _host_ip(text: str, default_ip: str) -> str:
    text = (text or "").strip("[]")
    if not text:
        return default_ip
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidParameter(f"invalid IP address: {text}") from None
    if address.version == 6 and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)  # as dockerd: an IPv4-mapped address is its IPv4 address
    return str(address)


def requests(port_bindings: Any, publish_all: bool, exposed: Any, default_ip: str = "0.0.0.0") -> list[PortRequest]:
    """Every binding a container asks for, in a stable order (by container port, then as given)."""
    if port_bindings is not None and not isinstance(port_bindings, dict):
        raise InvalidParameter("invalid PortBindings: expected an object")
    out: list[PortRequest] = []
    bound: set[tuple[int, str]] = set()
    for key, bindings in sorted((port_bindings or {}).items(), key=lambda kv: parse_key(kv[0])):
        port, proto = parse_key(key)
        bound.add((port, proto))
        for binding in bindings or [{}]:
            if not isinstance(binding, dict):
                raise InvalidParameter("invalid PortBindings: expected a list of objects")
            given = str(binding.get("HostIp") or "")
            host_ip = _host_ip(given, default_ip)
            low, high = _host_range(str(binding.get("HostPort") or ""))
            out.append(PortRequest(port, proto, host_ip, low, high, implicit=not given.strip("[]")))
    if publish_all:
        for key in sorted(exposed or {}, key=parse_key):
            port, proto = parse_key(key)
            if (port, proto) not in bound:
                out.append(PortRequest(port, proto, default_ip, 0, 0, implicit=True))
    return out


def docker_ports(exposed: Any, published: list[Published]) -> dict[str, Any]:
    """``NetworkSettings.Ports``: every exposed or published port key → its bindings (None when none)."""
    out: dict[str, Any] = {}
    for key in exposed or {}:
        port, proto = parse_key(key)
        out[f"{port}/{proto}"] = None
    for p in published:
        key = f"{p.container_port}/{p.proto}"
        out[key] = (out.get(key) or []) + [{"HostIp": p.host_ip or "0.0.0.0", "HostPort": str(p.host_port)}]
    return out


def summary_ports(exposed: Any, published: list[Published]) -> list[dict[str, Any]]:
    """``GET /containers/json``'s ``Ports``: published ports, then exposed ones not published."""
    out: list[dict[str, Any]] = [
        {"IP": p.host_ip or "0.0.0.0", "PrivatePort": p.container_port, "PublicPort": p.host_port, "Type": p.proto}
        for p in published]
    done = {(p.container_port, p.proto) for p in published}
    for key in exposed or {}:
        port, proto = parse_key(key)
        if (port, proto) not in done:
            out.append({"PrivatePort": port, "Type": proto})
    return out


def from_dicts(items: Any) -> list[Published]:
    return [Published(int(i["container_port"]), i["proto"], str(i["host_ip"]), int(i["host_port"]))
            for i in items or []]
