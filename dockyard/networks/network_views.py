"""Networks in Docker's shapes: ``GET /networks`` (with its filters) and ``GET /networks/{id}``. Pure.

Filters of ``GET /networks`` (Docker's): ``driver``, ``id`` (prefix), ``name`` (substring), ``label``
(``key`` or ``key=value``), ``scope`` (only ``local`` here), ``type`` (``custom`` or ``builtin``),
``dangling`` (user networks no container is on). The list leaves ``Containers`` empty, as dockerd does;
inspect fills it from the endpoints.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dockyard import filters as docker_filters
from dockyard.errors import InvalidParameter
from dockyard.networks.records import Endpoint, Network

LIST_FILTERS = ("driver", "id", "label", "name", "scope", "type", "dangling")


def labels_match(labels: dict[str, str], wanted: Iterable[str]) -> bool:
    """Every ``key`` / ``key=value`` of ``wanted`` is in ``labels``."""
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def listing(networks: list[Network], used: set[str], raw_filters: Any) -> list[dict[str, Any]]:
    """``networks`` that pass the filters, oldest first; ``used``: IDs of networks with endpoints."""
    f = docker_filters.normalize(raw_filters, LIST_FILTERS)
    for t in f.get("type", []):
        if t not in ("custom", "builtin"):
            raise InvalidParameter(f"invalid filter: 'type'='{t}'")
    dangling = None
    for d in f.get("dangling", []):
        if d.lower() not in ("true", "false", "1", "0"):
            raise InvalidParameter(f"invalid filter 'dangling={d}'")
        dangling = d.lower() in ("true", "1")
    out = []
    for net in sorted(networks, key=lambda n: n.created):
        if "driver" in f and net.driver not in f["driver"]:
            continue
        if "id" in f and not any(net.id.startswith(v) for v in f["id"]):
            continue
        if "name" in f and not any(v in net.name for v in f["name"]):
            continue
        if "scope" in f and "local" not in f["scope"]:
            continue
        if "type" in f and ("builtin" if net.default else "custom") not in f["type"]:
            continue
        if not labels_match(net.labels, f.get("label", [])):
            continue
        if dangling is not None and dangling != (not net.default and net.id not in used):
            continue
        out.append(to_docker(net, []))
    return out


def to_docker(net: Network, endpoints: list[Endpoint]) -> dict[str, Any]:
    """Docker's network object; ``Containers`` from ``endpoints`` (the network's)."""
    config: list[dict[str, Any]] = []
    if net.subnet:
        # as given: a subnet asked for without a gateway shows no gateway (dockerd)
        entry: dict[str, Any] = {"Subnet": net.subnet}
        if net.gateway_given or not net.ipam_configured:
            entry["Gateway"] = net.gateway
        if net.ip_range:
            entry["IPRange"] = net.ip_range
        if net.aux_addresses:
            entry["AuxiliaryAddresses"] = dict(net.aux_addresses)
        config = [entry]
    if net.ipv6 and net.subnet6:
        entry6: dict[str, Any] = {"Subnet": net.subnet6}
        if net.gateway6_given or not net.ipam6_configured:
            entry6["Gateway"] = net.gateway6
        if net.ip_range6:
            entry6["IPRange"] = net.ip_range6
        if net.aux_addresses6:
            entry6["AuxiliaryAddresses"] = dict(net.aux_addresses6)
        # dockerd lists the configs given first, then what IPAM picked: a given IPv6 subnet comes
        # before a picked IPv4 one
        config = [entry6, *config] if net.ipam6_configured and not net.ipam_configured else [*config, entry6]
    containers = {ep.container_id: {"Name": ep.container_name, "EndpointID": ep.endpoint_id, "MacAddress": ep.mac,
                                    "IPv4Address": f"{ep.ip}/{ep.prefixlen}" if ep.ip else "",
                                    "IPv6Address": f"{ep.ip6}/{ep.prefixlen6}" if ep.ip6 else ""}
                  for ep in endpoints}
    return {
        "Name": net.name, "Id": net.id, "Created": net.created, "Scope": "local", "Driver": net.driver,
        "EnableIPv4": True, "EnableIPv6": net.ipv6,
        "IPAM": {"Driver": "default", "Options": net.ipam_options, "Config": config},
        "Internal": net.internal, "Attachable": net.attachable, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": containers,
        "Options": dict(net.options), "Labels": dict(net.labels),
    }
