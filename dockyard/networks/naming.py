"""The names a daemon root gives the host-side things it makes: bridges, veths, the nft table. Pure.

Terms:

- *default root*: ``/var/lib/dockyard``. Its names look like Docker's: the default bridge is
  ``dockyard0``, a user network's bridge ``br-<first 12 hex of the network ID>``, a container's host-side
  veth ``dyv<8 hex>``, the nft table ``dockyard``, the *run directory* (where containers' network
  namespaces are pinned, as dockerd's exec root) ``/run/dockyard``.
- *other roots* (test daemons, a second daemon): every link name starts with ``dy<6 hex of sha256(root)>``
  (the default bridge ``dyb-<8 hex>`` as the table's ``dockyard_<8 hex>``; the run directory
  ``/run/dockyard-<8 hex>``), so two daemons never
  collide, and whatever one root left behind can be found by its prefix (:meth:`Naming.owns`).

Link names fit Linux's 15 characters.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from dockyard.networks.firewall import DEFAULT_ROOT, table_for_root


def _root_hash(root: Path) -> str:
    return hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()


@dataclass(frozen=True)
class Naming:
    """Names for the daemon root ``root``."""

    root: Path
    default_root: Path = DEFAULT_ROOT

    @property
    def is_default(self) -> bool:
        return Path(self.root).resolve() == self.default_root.resolve()

    @property
    def table(self) -> str:
        return table_for_root(self.root, self.default_root)

    @property
    def prefix(self) -> str:
        """What every link of a non-default root starts with (``dy`` + 6 hex)."""
        return "dy" + _root_hash(self.root)[:6]

    @property
    def run_dir(self) -> Path:
        """Run-time state kept outside the data root (pinned namespaces are mounts: the data root
        holds none while containers run, as with dockerd's exec root)."""
        return Path("/run/dockyard") if self.is_default else Path("/run/dockyard-" + _root_hash(self.root)[:8])

    @property
    def default_bridge(self) -> str:
        return "dockyard0" if self.is_default else "dyb-" + _root_hash(self.root)[:8]

    def user_bridge(self, network_id: str) -> str:
        return f"br-{network_id[:12]}" if self.is_default else f"{self.prefix}-{network_id[:6]}"

    def veth(self) -> str:
        """A fresh host-side veth name (random: the caller checks it is free)."""
        return "dyv" + secrets.token_hex(4) if self.is_default else f"{self.prefix}v{secrets.token_hex(3)}"

    def owns(self, ifname: str) -> bool:
        """Whether the link ``ifname`` is one this root names by its prefix (the default bridge, a veth;
        on other roots user bridges too: the default root's ``br-…`` are known only from records, since a
        dockerd names its bridges so)."""
        if ifname == self.default_bridge:
            return True
        return self.is_veth(ifname) or (not self.is_default and ifname.startswith(self.prefix))

    def is_veth(self, ifname: str) -> bool:
        return ifname.startswith("dyv") if self.is_default else ifname.startswith(self.prefix + "v")
