"""The daemon's packet filter and NAT: one nftables table of its own, changed by set and map elements.

Terms:

- *our table*: ``table ip <name>``; each daemon root has its own (:func:`table_for_root`), so daemons
  on different roots never touch each other's rules. Everything is built once by :meth:`Firewall.ensure`;
  afterwards a network is a few *set* elements and a published port one *map* element, so adding
  either is an element add in one ``nft -f -`` transaction, never a chain rebuild, and 1000 published
  ports cost 1000 map elements, no process.
- *published port* (:class:`PortForward`): traffic to ``host_ip:host_port`` (``0.0.0.0``/empty: any
  address of the host) is DNATed to ``container_ip:container_port``, both for packets arriving from
  outside (prerouting) and for the host's own connections (output), 127.0.0.1 included: the bridge
  gets ``route_localnet=1`` and packets from 127.0.0.0/8 leaving through one of our bridges are
  masqueraded, as dockerd does with ``userland-proxy=false``. A container reaching its own published
  port through the host (hairpin) is masqueraded too (its bridge port is in hairpin mode, see netlink).
- *owner*: who published a port (a container ID); stored as the element's comment so :meth:`forwards`
  can read everything back from the kernel after a daemon restart.
- Forwarding rules (chain ``forward``, ahead of iptables' ``filter FORWARD``): traffic between two
  ports of one bridge is accepted (inter-container communication); between two of our bridges it is
  dropped (network isolation) except for connections to a published port through the host's
  address (as Docker's port proxy allows); an *internal* network's traffic neither leaves nor enters
  its bridge; other networks reach the world (masqueraded out of any interface but our bridges) and
  accept from it only replies and published ports.
- *Docker coexistence*: in nftables an ``accept`` only ends one base chain; the next table's chain at
  the same hook still runs, and a dockerd sets iptables' ``filter FORWARD`` policy to DROP. So when
  the namespace has an iptables-nft ``filter FORWARD`` chain (whatever its policy; a dockerd may set
  DROP later), each of our bridges gets two rules at its top, ``-i <bridge> -j ACCEPT`` and
  ``-o <bridge> -j ACCEPT`` with the comment ``dockyard:<table>``, added with ``iptables-nft`` so
  iptables keeps understanding its table. Our own chain runs first (priority ``filter - 1``) and has
  already dropped what must not pass, so those rules only let through what we accepted. They are
  deleted with the network and by :meth:`Firewall.reset`. A dockerd started *after* our networks
  exist is caught up at the next :meth:`Firewall.ensure` (daemon start) or ``add_network``.
  Publishing a host port that a dockerd also publishes is not detected (the first DNAT wins).

- *IPv6* (networks made with ``--ipv6``): a second table, ``table ip6 <name>``, of the same layout for
  IPv6 (:func:`_skeleton6`): the network's bridge in its ``bridges``/``same_bridge``/``internal`` sets,
  its IPv6 subnet masqueraded, published ports whose container address is IPv6 in its DNAT maps. The
  host's own connections to ``[::1]`` are not DNATed (the kernel drops a packet from ``::1`` leaving
  by another link, and IPv6 has no ``route_localnet``): the network service's loopback relay
  (:mod:`relay`) serves those, one relay for every port. An IPv6 host address published to an IPv4
  container (*proxied*, as dockerd's userland proxy does it) is served by that relay alone; the ip6
  table's ``proxy6`` set only records it (owner in the comment), so it is read back after a restart.

Every nft command runs in the namespace the firewall was made for (``netns=``, default the daemon's
own), never "wherever the caller is": through libnftables (the library behind ``nft``, loaded with
ctypes) in a :class:`netns.Worker` pinned in that namespace — about 0.2 ms a transaction instead of
~3 ms for a process —, or, where the library cannot be loaded, ``nft -f -`` forked from a thread
that joined the namespace (``iptables-nft`` always runs that way).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import ipaddress
import json
import shlex
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dockyard.errors import DockyardError, InvalidParameter
from dockyard.networks import netns as ns

DEFAULT_ROOT = Path("/var/lib/dockyard")
IPTABLES = "iptables-nft"
ANY = ("", "0.0.0.0")


def table_for_root(root: Path, default_root: Path = DEFAULT_ROOT) -> str:
    """Our table's name for a daemon root: ``dockyard`` for the default root, else
    ``dockyard_<first 8 hex of sha256(resolved root path)>``."""
    if Path(root).resolve() == default_root.resolve():
        return "dockyard"
    return "dockyard_" + hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class PortForward:
    """One published port: ``host_ip:host_port`` → ``container_ip:container_port`` for ``proto``."""

    host_ip: str
    host_port: int
    container_ip: str
    container_port: int
    proto: Literal["tcp", "udp"]

    def any_address(self) -> bool:
        return self.host_ip in ANY or (self.host_family == 6 and self.host_ip == "::")

    @property
    def family(self) -> int:
        """6 when the container's address is IPv6, else 4."""
        return 6 if ":" in self.container_ip else 4

    @property
    def host_family(self) -> int:
        """The host address's family (``""`` is the container's)."""
        return 6 if ":" in self.host_ip else 4 if self.host_ip else self.family

    @property
    def proxied(self) -> bool:
        """An IPv6 host address to an IPv4 container: no DNAT can do it; the relay serves it (as
        dockerd's userland proxy does), and the ip6 table's ``proxy6`` set records it."""
        return self.host_family == 6 and self.family == 4

    def shown_host_ip(self) -> str:
        """The host address as Docker shows it: ``0.0.0.0`` / ``::`` for every address."""
        return ("0.0.0.0" if self.host_family == 4 else "::") if self.any_address() else self.host_ip


def _validate(binding: PortForward) -> None:
    if binding.proto not in ("tcp", "udp"):
        raise InvalidParameter(f"invalid proto '{binding.proto}'")
    for port in (binding.host_port, binding.container_port):
        if not 1 <= int(port) <= 65535:
            raise InvalidParameter(f"invalid port: {port}")
    checks = [(binding.container_ip, binding.family)]
    if not binding.any_address():
        checks.append((binding.host_ip, binding.host_family))
    for address, family in checks:
        kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address] = (
            ipaddress.IPv6Address if family == 6 else ipaddress.IPv4Address)
        try:
            parsed = kind(address)
        except ipaddress.AddressValueError:
            raise InvalidParameter(f"invalid IPv{family} address: {address}") from None
        if parsed.is_link_local and address == binding.container_ip:
            raise InvalidParameter(f"invalid container address: {address} is link-local")
    if binding.family == 6 and binding.host_family == 4:
        raise InvalidParameter(f"invalid binding: IPv4 host address {binding.host_ip} to IPv6 {binding.container_ip}")


def _quote(text: str) -> str:
    if '"' in text or "\n" in text or "\\" in text:
        raise InvalidParameter(f"invalid name: {text!r}")
    return f'"{text}"'


# The table's layout, in its comment: a table of another layout (an older dockyard's) is rebuilt by
# ensure(), its elements carried over.
LAYOUT = "dockyard networks, layout 1"
LAYOUT6 = "dockyard networks ipv6, layout 1"
FAMILIES = {4: "ip", 6: "ip6"}


def _skeleton(table: str) -> str:
    """The whole table, as one ``nft -f`` script (sets and maps empty)."""
    return f"""table ip {table} {{
  comment "{LAYOUT}"
  set bridges {{ type ifname; }}
  set internal {{ type ifname; }}
  set same_bridge {{ type ifname . ifname; }}
  set masq_subnets {{ type ipv4_addr; flags interval; }}
  set hairpin {{ type ipv4_addr . ipv4_addr; }}
  map dnat_any {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
  map dnat_addr {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
  chain published {{
    dnat to ip daddr . meta l4proto . th dport map @dnat_addr
    dnat to meta l4proto . th dport map @dnat_any
  }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local jump published
  }}
  chain output {{
    type nat hook output priority -100; policy accept;
    fib daddr type local jump published
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname @bridges ip saddr 127.0.0.0/8 masquerade
    ip saddr . ip daddr @hairpin masquerade
    ip saddr @masq_subnets oifname != @bridges masquerade
  }}
  chain forward {{
    type filter hook forward priority filter - 1; policy accept;
    iifname . oifname @same_bridge accept
    iifname @internal drop
    oifname @internal drop
    oifname @bridges ct status dnat accept
    iifname @bridges ct status dnat accept
    iifname @bridges oifname @bridges drop
    iifname @bridges accept
    oifname @bridges ct state established,related accept
    oifname @bridges drop
  }}
}}
"""


def _skeleton6(table: str) -> str:
    """The IPv6 table (``table ip6``), as one script: :func:`_skeleton`'s layout for IPv6 addresses.
    The host's connections to ``::1`` are left alone (see the module: the loopback relay serves them)."""
    return f"""table ip6 {table} {{
  comment "{LAYOUT6}"
  set bridges {{ type ifname; }}
  set internal {{ type ifname; }}
  set same_bridge {{ type ifname . ifname; }}
  set masq_subnets {{ type ipv6_addr; flags interval; }}
  set hairpin {{ type ipv6_addr . ipv6_addr; }}
  map dnat_any {{ type inet_proto . inet_service : ipv6_addr . inet_service; }}
  map dnat_addr {{ type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }}
  set proxy6 {{ type ipv6_addr . inet_proto . inet_service . ipv4_addr . inet_service; }}
  chain published {{
    dnat to ip6 daddr . meta l4proto . th dport map @dnat_addr
    dnat to meta l4proto . th dport map @dnat_any
  }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local jump published
  }}
  chain output {{
    type nat hook output priority -100; policy accept;
    ip6 daddr != ::1 fib daddr type local jump published
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip6 saddr . ip6 daddr @hairpin masquerade
    ip6 saddr @masq_subnets oifname != @bridges masquerade
  }}
  chain forward {{
    type filter hook forward priority filter - 1; policy accept;
    iifname . oifname @same_bridge accept
    iifname @internal drop
    oifname @internal drop
    oifname @bridges ct status dnat accept
    iifname @bridges ct status dnat accept
    iifname @bridges oifname @bridges drop
    iifname @bridges accept
    oifname @bridges ct state established,related accept
    oifname @bridges drop
  }}
}}
"""


NFT_CTX_OUTPUT_JSON = 1 << 4


class _LibNftables:
    """An nft context of libnftables, made and used only in a worker pinned in one namespace."""

    _lib: ctypes.CDLL | None = None

    @classmethod
    def library(cls) -> ctypes.CDLL | None:
        if cls._lib is None:
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("nftables") or "libnftables.so.1")
            except OSError:
                return None
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
            cls._lib = lib
        return cls._lib

    def __init__(self, path: Path, lib: ctypes.CDLL) -> None:
        self.lib = lib
        self.worker = ns.Worker(path, name=f"nft {path}")
        self.ctx = self.worker.call(self._new)

    def _new(self) -> int:
        ctx = self.lib.nft_ctx_new(0)
        if not ctx:
            raise DockyardError("nft: cannot make a libnftables context")
        self.lib.nft_ctx_buffer_output(ctx)
        self.lib.nft_ctx_buffer_error(ctx)
        return int(ctx)

    def run(self, command: str, as_json: bool) -> tuple[int, str, str]:
        def job() -> tuple[int, str, str]:
            self.lib.nft_ctx_output_set_flags(self.ctx, NFT_CTX_OUTPUT_JSON if as_json else 0)
            rc = self.lib.nft_run_cmd_from_buffer(self.ctx, command.encode())
            out = (self.lib.nft_ctx_get_output_buffer(self.ctx) or b"").decode(errors="replace")
            err = (self.lib.nft_ctx_get_error_buffer(self.ctx) or b"").decode(errors="replace")
            return rc, out, err

        return self.worker.call(job)

    def close(self) -> None:
        if self.worker.alive:
            self.worker.call(lambda: self.lib.nft_ctx_free(self.ctx))
            self.worker.close()


@dataclass
class _Network:
    bridge: str
    subnet: str | None  # the masqueraded subnet, None when not masqueraded
    internal: bool
    ipv6: bool = False  # in the ip6 table too (a network with IPv6)
    subnet6: str | None = None  # its masqueraded IPv6 subnet


class Firewall:
    """Our nft table in the namespace ``netns`` (default: the daemon's own)."""

    def __init__(self, table: str, *, netns: Path = ns.HOST) -> None:
        if not table.replace("_", "").isalnum():
            raise InvalidParameter(f"invalid table name: {table!r}")
        self.table = table
        self.netns = Path(netns)
        self._lock = threading.RLock()
        self._networks: dict[str, _Network] | None = None
        self._forwards: dict[str, list[PortForward]] | None = None
        self._lib: _LibNftables | None = None

    def close(self) -> None:
        """Let go of the nft context and its worker thread (the rules stay)."""
        with self._lock:
            if self._lib is not None:
                self._lib.close()
                self._lib = None

    # -- running commands in the namespace -------------------------------------------------------

    def _run(self, argv: list[str], script: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        def spawn() -> subprocess.CompletedProcess[str]:
            return subprocess.run(argv, input=script, capture_output=True, text=True, timeout=30)

        done = ns.run_in(self.netns, spawn)
        if check and done.returncode != 0:
            raise DockyardError(f"{argv[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done

    def _nft_command(self, command: str, as_json: bool = False) -> tuple[int, str, str]:
        """Run one nft command or script in the namespace: (status, output, errors)."""
        with self._lock:
            if self._lib is None and (lib := _LibNftables.library()) is not None:
                self._lib = _LibNftables(self.netns, lib)
            if self._lib is not None:
                return self._lib.run(command, as_json)
        argv = ["nft", "-j", *shlex.split(command)] if as_json else ["nft", "-f", "-"]
        done = self._run(argv, None if as_json else command, check=False)
        return done.returncode, done.stdout, done.stderr

    def _nft(self, script: str) -> None:
        rc, _, err = self._nft_command(script)
        if rc != 0:
            raise DockyardError(f"nft failed: {err.strip()}")

    def _list(self) -> list[dict[str, Any]] | None:
        """Our (IPv4) table as ``nft -j`` items, or None when it does not exist."""
        return self._list_table("ip")

    def _list6(self) -> list[dict[str, Any]] | None:
        """Our IPv6 table as ``nft -j`` items, or None when it does not exist."""
        return self._list_table("ip6")

    def _list_table(self, family: str) -> list[dict[str, Any]] | None:
        rc, out, err = self._nft_command(f"list table {family} {self.table}", as_json=True)
        if rc != 0:
            if "No such file or directory" in err:
                return None
            raise DockyardError(f"nft failed: {err.strip()}")
        items: list[dict[str, Any]] = json.loads(out)["nftables"]
        return items

    def _read_sysctl(self, key: str) -> str:
        return ns.run_in(self.netns, lambda: (Path("/proc/sys/net") / key).read_text().strip())

    def _write_sysctl(self, key: str, value: str, optional: bool = False) -> None:
        """Set ``/proc/sys/net/<key>`` in the namespace (only if it differs); an ``optional`` key the
        kernel does not have is skipped."""
        path = Path("/proc/sys/net") / key

        def write() -> None:
            if optional and not path.exists():
                return
            if path.read_text().strip() != value:
                path.write_text(value)

        try:
            ns.run_in(self.netns, write)
        except OSError as exc:
            raise DockyardError(f"cannot set {key.replace('/', '.')}: {exc.strerror or exc}") from exc

    # -- reading our state back -------------------------------------------------------------------

    def _load(self) -> None:
        networks: dict[str, _Network] = {}
        forwards: dict[str, list[PortForward]] = {}
        self._load_family(self._list() or [], 4, networks, forwards)
        self._load_family(self._list6() or [], 6, networks, forwards)
        self._networks, self._forwards = networks, forwards

    @staticmethod
    def _load_family(items: list[dict[str, Any]], family: int, networks: dict[str, _Network],
                     forwards: dict[str, list[PortForward]]) -> None:
        """Add what one table's ``nft -j`` items hold (``family`` 4: ``ip``, 6: ``ip6``)."""
        def network(bridge: str) -> _Network:
            net = networks.setdefault(bridge, _Network(bridge, None, False))
            net.ipv6 = net.ipv6 or family == 6
            return net

        for item in items:
            body = item.get("set") or item.get("map")
            if not body:
                continue
            name, elements = body["name"], body.get("elem", [])
            if name == "bridges":
                for bridge in elements:
                    network(bridge)
            elif name == "internal":
                for bridge in elements:
                    network(bridge).internal = True
            elif name == "masq_subnets":
                for element in elements:
                    value, bridge = _unwrap(element)
                    prefix = value["prefix"]
                    text = f"{prefix['addr']}/{prefix['len']}"
                    if family == 6:
                        network(bridge).subnet6 = text
                    else:
                        network(bridge).subnet = text
            elif name == "proxy6":
                for element in elements:
                    value, owner = _unwrap(element)
                    host_ip, proto, port, container_ip, container_port = value["concat"]
                    forwards.setdefault(owner, []).append(
                        PortForward(host_ip, int(port), container_ip, int(container_port), _proto(proto)))
            elif name in ("dnat_any", "dnat_addr"):
                for key, data in elements:
                    value, owner = _unwrap(key)
                    parts = value["concat"]
                    any_ip = "0.0.0.0" if family == 4 else "::"
                    host_ip, proto, port = (any_ip, *parts) if name == "dnat_any" else parts
                    container_ip, container_port = data["concat"]
                    forwards.setdefault(owner, []).append(
                        PortForward(host_ip, int(port), container_ip, int(container_port), _proto(proto)))

    def _state(self) -> tuple[dict[str, _Network], dict[str, list[PortForward]]]:
        if self._networks is None or self._forwards is None:
            self._load()
        assert self._networks is not None and self._forwards is not None
        return self._networks, self._forwards

    # -- the table --------------------------------------------------------------------------------

    def ensure(self) -> None:
        """Build our table if it is missing, keep it (and its elements) if it is there, rebuild it
        around its elements if it has another layout; turn on IPv4 forwarding (and, where the kernel
        has br_netfilter, ``bridge-nf-call-iptables``) in the namespace; give each known bridge its
        iptables-nft rules."""
        with self._lock:
            items = self._list()
            if items is None:
                self._nft(_skeleton(self.table))
            elif not any(item.get("table", {}).get("comment") == LAYOUT for item in items):
                self._load()
                networks, forwards = self._state()
                lines = [f"delete table ip {self.table}", _skeleton(self.table)]
                lines += [line for net in networks.values() for line in self._network_lines(net, "add")]
                lines += [line for owner, fs in forwards.items() for line in self._forward_lines(owner, fs, "add")]
                lines += self._hairpin_lines({f.container_ip for fs in forwards.values() for f in fs}, "add")
                self._nft("\n".join(lines) + "\n")
            if self._list6() is None:
                self._nft(_skeleton6(self.table))
            self._write_sysctl("ipv4/ip_forward", "1")
            # br_netfilter: traffic between two ports of one bridge passes the IP hooks too, so a
            # reply from a neighbour reached through a published port is un-NATed (as dockerd needs)
            self._write_sysctl("bridge/bridge-nf-call-iptables", "1", optional=True)
            self._load()
            networks, _ = self._state()
            for bridge, net in networks.items():
                self._docker_rules(bridge, add=True)
                if net.ipv6:
                    self._write_sysctl("ipv6/conf/all/forwarding", "1")

    def _network_lines(self, net: _Network, verb: str) -> list[str]:
        b = _quote(net.bridge)
        lines = []
        for family, subnet in ((4, net.subnet), (6, net.subnet6)):
            if family == 6 and not net.ipv6:
                continue
            table = f"{FAMILIES[family]} {self.table}"
            lines += [f"{verb} element {table} bridges {{ {b} }}",
                      f"{verb} element {table} same_bridge {{ {b} . {b} }}"]
            if net.internal:
                lines.append(f"{verb} element {table} internal {{ {b} }}")
            if subnet:
                comment = f" comment {b}" if verb == "add" else ""
                lines.append(f"{verb} element {table} masq_subnets {{ {subnet}{comment} }}")
        return lines

    def _forward_lines(self, owner: str, bindings: list[PortForward], verb: str) -> list[str]:
        lines = []
        for b in bindings:
            table = f"{FAMILIES[b.family]} {self.table}"
            data = f" comment {_quote(owner)} : {b.container_ip} . {b.container_port}" if verb == "add" else ""
            if b.proxied:
                comment = f" comment {_quote(owner)}" if verb == "add" else ""
                lines.append(f"{verb} element ip6 {self.table} proxy6 {{ {b.shown_host_ip()} . {b.proto} . "
                             f"{b.host_port} . {b.container_ip} . {b.container_port}{comment} }}")
            elif b.any_address():
                lines.append(f"{verb} element {table} dnat_any {{ {b.proto} . {b.host_port}{data} }}")
            else:
                lines.append(f"{verb} element {table} dnat_addr "
                             f"{{ {b.host_ip} . {b.proto} . {b.host_port}{data} }}")
        return lines

    def _hairpin_lines(self, ips: set[str], verb: str) -> list[str]:
        return [f"{verb} element {FAMILIES[6 if ':' in ip else 4]} {self.table} hairpin {{ {ip} . {ip} }}"
                for ip in sorted(ips)]

    def reset(self) -> None:
        """Drop our tables and our iptables-nft rules; nothing to do if they are gone."""
        with self._lock:
            if self._list6() is not None:
                self._nft(f"delete table ip6 {self.table}\n")
            if self._list() is not None:
                self._nft(f"delete table ip {self.table}\n")
            for spec in self._our_iptables_rules():
                self._run([IPTABLES, "-w", "-D", "FORWARD", *spec], check=False)
            self._networks, self._forwards = {}, {}

    # -- networks ---------------------------------------------------------------------------------

    def add_network(self, bridge: str, subnet: str, internal: bool, masquerade: bool = True,
                    subnet6: str | None = None) -> None:
        """Let ``bridge`` (which must exist) forward as a network of ours; ``subnet6``: its IPv6
        subnet (a network with IPv6: the ip6 table gets it too, and IPv6 forwarding is turned on in the
        namespace, as dockerd does). Idempotent."""
        net = str(ipaddress.IPv4Network(subnet, strict=False))
        net6 = str(ipaddress.IPv6Network(subnet6, strict=False)) if subnet6 else None
        masq = masquerade and not internal
        network = _Network(bridge, net if masq else None, internal, ipv6=net6 is not None,
                           subnet6=net6 if masq else None)
        with self._lock:
            networks, _ = self._state()
            old = networks.get(bridge)
            if old is not None and old != network:
                self.remove_network(bridge)
                networks, _ = self._state()
            if network.ipv6:
                self._write_sysctl("ipv6/conf/all/forwarding", "1")
            self._nft("\n".join(self._network_lines(network, "add")) + "\n")
            networks[bridge] = network
            self._write_sysctl(f"ipv4/conf/{bridge}/route_localnet", "1")
            self._docker_rules(bridge, add=True)

    def remove_network(self, bridge: str) -> None:
        """Forget ``bridge``: its elements and iptables-nft rules go. Idempotent."""
        with self._lock:
            self._load()
            networks, _ = self._state()
            found = networks.pop(bridge, None)
            if found is not None:
                self._nft("\n".join(self._network_lines(found, "delete")) + "\n")
            self._docker_rules(bridge, add=False)

    # -- published ports --------------------------------------------------------------------------

    def publish(self, owner: str, bindings: list[PortForward]) -> None:
        """Publish ``bindings`` for ``owner``, all or none. A host port already published (for the
        same address, or with either side on every address) fails with Docker's words."""
        for binding in bindings:
            _validate(binding)
        if not bindings:
            return
        with self._lock:
            _, forwards = self._state()
            taken = [f for fs in forwards.values() for f in fs]
            for i, binding in enumerate(bindings):
                for other in taken + bindings[:i]:
                    if (other.proto, other.host_port, other.host_family) == (
                            binding.proto, binding.host_port, binding.host_family) and (
                            other.any_address() or binding.any_address() or other.host_ip == binding.host_ip):
                        host_ip = binding.shown_host_ip()
                        host_ip = f"[{host_ip}]" if binding.host_family == 6 else host_ip
                        raise DockyardError(f"Bind for {host_ip}:{binding.host_port} failed: "
                                            "port is already allocated")
            lines = self._forward_lines(owner, bindings, "add")
            lines += self._hairpin_lines({b.container_ip for b in bindings if not b.proxied}, "add")
            self._nft("\n".join(lines) + "\n")
            forwards.setdefault(owner, []).extend(bindings)

    def unpublish(self, owner: str) -> None:
        """Withdraw every port ``owner`` published. Idempotent."""
        with self._lock:
            _, forwards = self._state()
            gone = forwards.pop(owner, [])
            if not gone:
                return
            still = {f.container_ip for fs in forwards.values() for f in fs if not f.proxied}
            lines = self._forward_lines(owner, gone, "delete")
            lines += self._hairpin_lines({b.container_ip for b in gone if not b.proxied} - still, "delete")
            try:
                self._nft("\n".join(lines) + "\n")
            except DockyardError:
                # someone changed the table behind our back: read it again and retry what is there
                self._load()
                _, forwards = self._state()
                if forwards.get(owner):
                    self.unpublish(owner)

    def pick_host_port(self, proto: Literal["tcp", "udp"], host_ip: str = "",
                       exclude: set[int] | frozenset[int] = frozenset(), also_ipv6: bool = False) -> int:
        """A host port for a binding that names none (``-p 80``, ``-P``): the lowest port of the
        namespace's ``ip_local_port_range`` that no published port of ours uses for ``proto`` on that
        address (or on every address), that is not in ``exclude``, and that no socket in the namespace
        holds (with ``also_ipv6``, on ``::`` either: one port for a binding published on both
        families, as dockerd picks it). Docker's error when none is left."""
        low, high = (int(n) for n in self._read_sysctl("ipv4/ip_local_port_range").split())
        with self._lock:
            _, forwards = self._state()
            used = {f.host_port for fs in forwards.values() for f in fs if f.proto == proto and (
                f.any_address() or host_ip in ANY or host_ip == "::" or f.host_ip == host_ip)}
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        v6_only = ":" in host_ip
        address = "0.0.0.0" if host_ip in ANY else host_ip
        probes = [] if v6_only else [(socket.AF_INET, address)]
        if also_ipv6 or v6_only:
            probes.append((socket.AF_INET6, host_ip if v6_only else "::"))

        def bindable(port: int) -> bool:
            for family, where in probes:
                with socket.socket(family, kind) as probe:
                    if family == socket.AF_INET6:
                        probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    try:
                        probe.bind((where, port))
                    except OSError:
                        return False
            return True

        def first_free() -> int | None:
            for port in range(low, high + 1):
                if port in used or port in exclude:
                    continue
                if bindable(port):
                    return port
            return None

        found = ns.run_in(self.netns, first_free)
        if found is None:
            raise DockyardError(f"Bind for {address}:0 failed: no available ports in the range {low}-{high}")
        return found

    def bridges(self) -> list[str]:
        """The bridges our table knows as networks, read back from the kernel."""
        with self._lock:
            self._load()
            networks, _ = self._state()
            return list(networks)

    def host_ports(self) -> set[tuple[str, int]]:
        """(proto, host port) of every published port, from what this firewall knows (no read back)."""
        with self._lock:
            _, forwards = self._state()
            return {(f.proto, f.host_port) for fs in forwards.values() for f in fs}

    def forwards(self) -> dict[str, list[PortForward]]:
        """Every published port by owner, read back from the kernel (after a restart, say)."""
        with self._lock:
            self._load()
            _, forwards = self._state()
            return {owner: list(fs) for owner, fs in forwards.items()}

    # -- iptables-nft's filter FORWARD (a dockerd's) ----------------------------------------------

    def _has_iptables_forward(self) -> bool:
        return self._nft_command("list chain ip filter FORWARD", as_json=True)[0] == 0

    def _docker_rules(self, bridge: str, add: bool) -> None:
        if not self._has_iptables_forward():
            return
        for direction in ("-i", "-o"):
            spec = [direction, bridge, "-m", "comment", "--comment", f"dockyard:{self.table}", "-j", "ACCEPT"]
            present = self._run([IPTABLES, "-w", "-C", "FORWARD", *spec], check=False).returncode == 0
            if add and not present:
                self._run([IPTABLES, "-w", "-I", "FORWARD", "1", *spec])
            while not add and present:
                self._run([IPTABLES, "-w", "-D", "FORWARD", *spec])
                present = self._run([IPTABLES, "-w", "-C", "FORWARD", *spec], check=False).returncode == 0

    def _our_iptables_rules(self) -> list[list[str]]:
        if not self._has_iptables_forward():
            return []
        listing = self._run([IPTABLES, "-w", "-S", "FORWARD"], check=False).stdout
        rules = []
        for line in listing.splitlines():
            words = shlex.split(line)
            if words[:2] == ["-A", "FORWARD"] and f"dockyard:{self.table}" in words:
                rules.append(words[2:])
        return rules


def _unwrap(element: Any) -> tuple[Any, str]:
    """An element of ``nft -j`` output as (value, comment): with a comment it is wrapped in ``elem``."""
    if isinstance(element, dict) and "elem" in element:
        return element["elem"]["val"], str(element["elem"].get("comment", ""))
    return element, ""


def _proto(value: object) -> Literal["tcp", "udp"]:
    if value in ("tcp", 6):
        return "tcp"
    if value in ("udp", 17):
        return "udp"
    raise DockyardError(f"unexpected protocol in our table: {value!r}")
