"""The flags of ``run`` and ``create`` beyond the basic ones, in groups.

Each group is a module with ``FLAGS`` (its flags) and ``apply(parsed, body)``, which fills the
``POST /containers/create`` body (mostly its ``HostConfig``) from the parsed command line:
``security`` (capabilities, seccomp, read-only, users, namespaces, devices), ``resources``
(cgroup limits), ``mounts`` (volumes, binds, tmpfs), ``supervision`` (restart policy,
healthcheck, log driver) and ``networking`` (networks, endpoints, published ports, DNS, hosts).
"""

from __future__ import annotations

from dockyard.cli.options import mounts, networking, resources, security, supervision

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Flag, Parsed

GROUPS = (security, resources, mounts, supervision, networking)


def flags() -> list[Flag]:
    return [flag for group in GROUPS for flag in group.FLAGS]


def aliases() -> dict[str, str]:
    """Second long names of the groups' flags (``--net`` for ``--network``), as Docker has them."""
    return dict(networking.ALIASES)


def apply(parsed: Parsed, body: dict[str, Any]) -> None:
    """Fill ``body`` group by group. Docker's CLI checks published ports after volumes and before the
    restart policy, and the networks last, so a command line with several mistakes names the one
    Docker's names."""
    security.apply(parsed, body)
    resources.apply(parsed, body)
    mounts.apply(parsed, body)
    networking.apply_ports(parsed, body)
    supervision.apply(parsed, body)
    networking.apply(parsed, body)
