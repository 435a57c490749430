"""Network and endpoint records, kept in the metadata database (tables ``networks`` and ``endpoints``).

Terms:

- *network*: what ``docker network create`` makes (or one of the three every daemon has: ``bridge``,
  ``host``, ``none``). ``driver`` is ``bridge``, ``host`` or ``null`` as in Docker; a bridge network has
  a *bridge* device on the host, a *subnet* and a *gateway* (the bridge's address).
- *endpoint*: a running container's attachment to one network — the host-side veth, the address
  inside (``ip``/``prefixlen``, and ``ip6``/``prefixlen6`` on a network with IPv6), the MAC, the
  aliases and DNS names. Endpoints exist while the container
  runs (as in Docker, where a stopped container has none); a network that has any cannot be removed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from dockyard.metadata.db import MetadataDB


@dataclass
class Network:
    id: str
    name: str
    driver: str                      # "bridge" | "host" | "null"
    created: str
    bridge: str = ""                 # the host's bridge device ("" for host/null)
    subnet: str = ""                 # "172.18.0.0/16"
    gateway: str = ""                # "172.18.0.1"
    ip_range: str = ""               # --ip-range, "" for the whole subnet
    aux_addresses: dict[str, str] = field(default_factory=dict)  # --aux-address: name → address, never handed out
    internal: bool = False
    attachable: bool = False
    ipam_configured: bool = False    # the subnet was asked for (IPAM.Config given), not picked
    gateway_given: bool = False      # so was the gateway (inspect shows a config as it was given)
    ipam_options: dict[str, str] | None = None  # IPAM.Options as given (null when none was)
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    default: bool = False            # one of bridge/host/none, never removed
    # IPv6 (``--ipv6``): the same as above for the network's IPv6 subnet ("" when it has none)
    ipv6: bool = False
    subnet6: str = ""                # "fd5c:1f2e:9a01::/64"
    gateway6: str = ""               # "fd5c:1f2e:9a01::1"
    ip_range6: str = ""
    aux_addresses6: dict[str, str] = field(default_factory=dict)
    ipam6_configured: bool = False
    gateway6_given: bool = False

    @property
    def predefined(self) -> bool:
        return self.default

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Network:
        data = json.loads(text)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Endpoint:
    network_id: str
    container_id: str
    container_name: str
    endpoint_id: str
    ip: str = ""
    prefixlen: int = 0
    gateway: str = ""
    mac: str = ""
    host_ifname: str = ""            # the veth's host end
    ifname: str = "eth0"             # the veth's end inside the container
    aliases: list[str] = field(default_factory=list)
    dns_names: list[str] = field(default_factory=list)
    ipam_ip: str = ""                # IPAMConfig.IPv4Address asked for
    links: list[str] = field(default_factory=list)
    upstreams: list[str] = field(default_factory=list)  # where the embedded DNS forwards this container's queries
    ip6: str = ""                    # the IPv6 address inside ("" on a network without IPv6)
    prefixlen6: int = 0
    gateway6: str = ""
    ipam_ip6: str = ""               # IPAMConfig.IPv6Address asked for

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Endpoint:
        data = json.loads(text)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


class NetworkStore:
    """The two tables, over the root's metadata database."""

    def __init__(self, db: MetadataDB) -> None:
        self.db = db

    def networks(self) -> list[Network]:
        return [Network.from_json(r[0]) for r in self.db.query("SELECT record FROM networks")]

    def save_network(self, net: Network) -> None:
        self.db.execute("INSERT INTO networks VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE "
                        "SET name = excluded.name, record = excluded.record", (net.id, net.name, net.to_json()),
                        durable=True)

    def delete_network(self, network_id: str) -> None:
        with self.db.transaction(durable=True) as conn:
            conn.execute("DELETE FROM endpoints WHERE network_id = ?", (network_id,))
            conn.execute("DELETE FROM networks WHERE id = ?", (network_id,))

    def endpoints(self, network_id: str | None = None, container_id: str | None = None) -> list[Endpoint]:
        where, params = [], []
        if network_id is not None:
            where.append("network_id = ?")
            params.append(network_id)
        if container_id is not None:
            where.append("container_id = ?")
            params.append(container_id)
        sql = "SELECT record FROM endpoints" + (" WHERE " + " AND ".join(where) if where else "")
        return [Endpoint.from_json(r[0]) for r in self.db.query(sql, tuple(params))]

    def save_endpoint(self, ep: Endpoint) -> None:
        self.db.execute("INSERT INTO endpoints VALUES (?, ?, ?) ON CONFLICT(network_id, container_id) DO UPDATE "
                        "SET record = excluded.record", (ep.network_id, ep.container_id, ep.to_json()))

    def delete_endpoint(self, network_id: str, container_id: str) -> None:
        self.db.execute("DELETE FROM endpoints WHERE network_id = ? AND container_id = ?", (network_id, container_id))

