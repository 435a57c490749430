"""Linux capabilities of a container: Docker's default set, ``--cap-add``/``--cap-drop``, and
applying a set in the container init right before ``execve``.

Terms: a *capability name* is the kernel's ``CAP_XXX`` spelling (``CAP_NET_RAW``); users may write
it without the ``CAP_`` prefix and in any case, and ``ALL`` stands for every capability. The
*sets* of a process (capabilities(7)): *bounding* (the most it can ever gain), *permitted*,
*effective*, *inheritable* (kept across execve only with matching file caps) and *ambient*.
As Docker does since CVE-2022-24769, a container gets bounding = permitted = effective = its set,
and empty inheritable and ambient sets (so a non-root user's permitted set is empty after exec).
"""

from __future__ import annotations

import ctypes
import os

from dockyard.errors import InvalidParameter
from dockyard.runtime import syscalls as sc

CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
    "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23, "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27, "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31, "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
}
"""Every capability the kernel knows (as of Linux 5.9), by name."""

DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)
"""Docker's default set for a non-privileged container (mask 0xa80425fb)."""

ALL = "ALL"


def normalize(name: str) -> str:
    """``net_raw``, ``NET_RAW``, ``cap_net_raw`` -> ``CAP_NET_RAW``; ``all`` -> ``ALL``. Raises
    :class:`InvalidParameter` with Docker's message for an unknown name."""
    upper = name.strip().upper()
    if upper == ALL:
        return ALL
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    if upper not in CAPABILITIES:
        raise InvalidParameter(f'unknown capability: "{upper}"')
    return upper


def own_bounding_set() -> int:
    """The engine's own bounding set: no container can be given more (here CAP_SYS_RESOURCE is
    missing, for one)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return (1 << (max(CAPABILITIES.values()) + 1)) - 1


def supported() -> list[str]:
    """The capabilities "all" means: those this kernel has (up to ``cap_last_cap``) that the engine
    itself holds in its bounding set."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as handle:
            last = int(handle.read())
    except (OSError, ValueError):
        last = max(CAPABILITIES.values())
    own = own_bounding_set()
    return [name for name, bit in CAPABILITIES.items() if bit <= last and own & (1 << bit)]


def unavailable(names: list[str]) -> list[str]:
    """Those of ``names`` that the engine cannot grant (not in its own bounding set)."""
    own = own_bounding_set()
    return [name for name in names if not own & (1 << CAPABILITIES[name])]


def effective_set(cap_add: list[str] | None, cap_drop: list[str] | None, privileged: bool = False) -> list[str]:
    """The container's capability set, evaluated in Docker's order (``TweakCapabilities``):

    - privileged: every capability; ``--cap-add``/``--cap-drop`` are ignored;
    - ``--cap-add ALL``: every capability, minus the dropped ones;
    - ``--cap-drop ALL``: no default, only the explicitly added ones;
    - otherwise: the defaults, minus drops, plus adds (an add of a dropped name wins).
    """
    if privileged:
        return supported()
    adds = [normalize(c) for c in cap_add or []]
    drops = [normalize(c) for c in cap_drop or []]
    if ALL in adds:
        return [c for c in supported() if c not in drops]
    if ALL in drops:
        base: list[str] = []
    else:
        base = [c for c in DEFAULT_CAPABILITIES if c not in drops]
    for cap in adds:
        if cap not in base:
            base.append(cap)
    return sorted(base, key=CAPABILITIES.__getitem__)


def mask(names: list[str]) -> int:
    """The bit mask of ``names`` (as ``/proc/PID/status`` shows it in hex)."""
    value = 0
    for name in names:
        value |= 1 << CAPABILITIES[name]
    return value


# ---- applying a set (inside the forked container init) -------------------------------------------

PR_CAPBSET_DROP = 24
PR_SET_KEEPCAPS = 8
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_libc = ctypes.CDLL(None, use_errno=True)


def drop_bounding(keep: int) -> None:
    """Remove from the bounding set every capability not in ``keep`` (needs CAP_SETPCAP)."""
    for bit in sorted(CAPABILITIES.values()):
        if keep & (1 << bit):
            continue
        try:
            sc.prctl(PR_CAPBSET_DROP, bit)
        except OSError as err:
            if err.errno != 22:  # EINVAL: the kernel does not know this capability
                raise


def keep_caps_across_setuid() -> None:
    """PR_SET_KEEPCAPS: keep the permitted set when the process switches to a non-zero uid."""
    sc.prctl(PR_SET_KEEPCAPS, 1)


def set_process_caps(effective: int, permitted: int, inheritable: int = 0) -> None:
    """capset(2) for the calling thread; then clear the ambient set."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for index in (0, 1):
        shift = 32 * index
        data[index].effective = (effective >> shift) & 0xFFFFFFFF
        data[index].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[index].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _libc.capset(ctypes.byref(header), data) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")
    try:
        sc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        pass  # kernels before 4.3 have no ambient set


def apply_final(names: list[str]) -> None:
    """Permitted = effective = ``names``, inheritable and ambient empty. Call after setuid (with
    KEEPCAPS set before it) and after :func:`drop_bounding`."""
    value = mask(names)
    set_process_caps(value, value, 0)
