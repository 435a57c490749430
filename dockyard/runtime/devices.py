"""Device access: the devices cgroup's rules and the extra device nodes of ``--device``.

Terms: a *rule* is one line of v1's ``devices.allow`` — ``<type> <major>:<minor> <access>`` with
type ``c`` (char), ``b`` (block) or ``a`` (all), ``*`` for any number, and access a subset of
``rwm`` (read, write, mknod). A container starts with ``a`` denied and then the rules of
:data:`DEFAULT_RULES` allowed (runc's and Docker's default list); each ``--device`` adds its own
rule; each ``--device-cgroup-rule`` (``HostConfig.DeviceCgroupRules``) is one more rule, checked
by :func:`check_rule` as dockerd checks it; a privileged container allows ``a``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass

DEFAULT_RULES = (
    "c *:* m",        # mknod of any char device (opening it still needs a rule)
    "b *:* m",        # mknod of any block device
    "c 1:3 rwm",      # /dev/null
    "c 1:5 rwm",      # /dev/zero
    "c 1:7 rwm",      # /dev/full
    "c 1:8 rwm",      # /dev/random
    "c 1:9 rwm",      # /dev/urandom
    "c 5:0 rwm",      # /dev/tty
    "c 5:1 rwm",      # /dev/console
    "c 5:2 rwm",      # /dev/ptmx
    "c 136:* rwm",    # /dev/pts/*
    "c 10:200 rwm",   # /dev/net/tun
)

RULE_PATTERN = re.compile(r"([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})")
"""dockerd's ``deviceCgroupRuleRegex``: type, major, minor, access."""


def check_rule(rule: str) -> str:
    """A ``DeviceCgroupRules`` entry as dockerd accepts it; raises ValueError with dockerd's text."""
    match = RULE_PATTERN.fullmatch(rule)
    if match is None:
        raise ValueError(f"invalid device cgroup rule format: '{rule}'")
    for number, which in ((match[2], "major"), (match[3], "minor")):
        if number != "*" and int(number) >= 1 << 63:  # dockerd parses them as int64
            raise ValueError(f"invalid {which} value in device cgroup rule format: '{rule}'")
    return rule


@dataclass
class DeviceNode:
    """A host device to recreate inside the container at ``path`` (``--device``)."""

    path: str          # in the container
    kind: str          # "c" or "b"
    major: int
    minor: int
    mode: int          # permission bits of the host's node
    uid: int
    gid: int
    access: str = "rwm"

    @property
    def rule(self) -> str:
        return f"{self.kind} {self.major}:{self.minor} {self.access}"


def host_device(path_on_host: str, path_in_container: str, access: str) -> DeviceNode:
    """The host node ``path_on_host`` described for the container; raises OSError/ValueError."""
    st = os.stat(path_on_host)
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise ValueError("not a device node")
    return DeviceNode(path=path_in_container, kind=kind, major=os.major(st.st_rdev), minor=os.minor(st.st_rdev),
                      mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid, access=access or "rwm")


def cgroup_rules(devices: list[DeviceNode], privileged: bool,
                 extra_rules: Sequence[str] = ()) -> list[tuple[str, str]]:
    """The v1 writes, in order: ``("devices.deny" | "devices.allow", rule)``; ``extra_rules`` are
    the container's ``DeviceCgroupRules`` (already checked), allowed after its devices' rules."""
    if privileged:
        return [("devices.allow", "a *:* rwm")]
    return [("devices.deny", "a *:* rwm"), *(("devices.allow", r) for r in DEFAULT_RULES),
            *(("devices.allow", d.rule) for d in devices),
            *(("devices.allow", r) for rule in extra_rules for r in _v1_lines(rule))]


def _v1_lines(rule: str) -> list[str]:
    """v1's kernel reads any ``a …`` line as *allow everything*, whatever its numbers and access;
    a rule of type ``a`` means char and block devices with those numbers, so it is written as two."""
    if rule.startswith("a "):
        return ["c" + rule[1:], "b" + rule[1:]]
    return [rule]


def create_nodes(root: str, devices: list[DeviceNode], resolve: Callable[[str, str], str]) -> None:
    """Inside the container's mount namespace: mknod each device under ``root`` (its parents
    made 0755). ``resolve(root, path)`` maps a container path to a host path safely
    (``rootfs.resolve_in_root``)."""
    for device in devices:
        target = resolve(root, device.path)
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        try:
            os.unlink(target)
        except FileNotFoundError:
            pass
        kind = stat.S_IFCHR if device.kind == "c" else stat.S_IFBLK
        os.mknod(target, device.mode | kind, os.makedev(device.major, device.minor))
        os.chmod(target, device.mode)
        os.chown(target, device.uid, device.gid)
