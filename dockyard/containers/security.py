"""The security half of a create request: checking HostConfig's isolation fields as Docker does,
and turning a stored HostConfig into the runtime's :class:`SecuritySpec`.

Fields handled here: ``CapAdd``, ``CapDrop``, ``Privileged``, ``SecurityOpt``, ``ReadonlyRootfs``,
``GroupAdd``, ``Ulimits``, ``IpcMode``, ``PidMode``, ``UTSMode``, ``Sysctls``, ``Init``,
``MaskedPaths`` and ``ReadonlyPaths``. A *security option* is one ``SecurityOpt`` entry:
``no-new-privileges[=bool]``, ``seccomp=unconfined|builtin|<profile JSON>`` (Docker's CLI reads
the profile file and sends its JSON), ``systempaths=unconfined``, ``apparmor=unconfined`` and
``label=disable`` (accepted: there is nothing to turn off here).
"""

from __future__ import annotations

from typing import Any

from dockyard.errors import InvalidParameter
from dockyard.runtime import capabilities as caps
from dockyard.runtime import seccomp
from dockyard.runtime.security import (
    DEFAULT_MASKED_PATHS,
    DEFAULT_READONLY_PATHS,
    RLIMITS,
    SecuritySpec,
    Ulimit,
)

HOST_CONFIG_FIELDS = frozenset({
    "CapAdd", "CapDrop", "Privileged", "SecurityOpt", "ReadonlyRootfs", "GroupAdd", "Ulimits",
    "IpcMode", "PidMode", "UTSMode", "Sysctls", "Init", "MaskedPaths", "ReadonlyPaths",
})
"""The HostConfig keys this module acts on."""

NAMESPACED_SYSCTLS = frozenset({
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
    "kernel.shmmni", "kernel.shm_rmid_forced",
})
"""The IPC-namespaced sysctls runc accepts by name (besides ``fs.mqueue.*`` and ``net.*``)."""


def _bool(value: str) -> bool | None:
    """Go's strconv.ParseBool."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def parse_security_opts(opts: list[str]) -> dict[str, Any]:
    """``{"no_new_privileges": bool, "seccomp": str, "systempaths_unconfined": bool}`` from
    ``SecurityOpt``, with moby's ``invalid --security-opt`` errors."""
    out: dict[str, Any] = {"no_new_privileges": False, "seccomp": "", "systempaths_unconfined": False}
    for opt in opts:
        if opt == "no-new-privileges":
            out["no_new_privileges"] = True
            continue
        if opt == "disable":
            continue
        if "=" in opt:
            key, _, value = opt.partition("=")
        elif ":" in opt:
            key, _, value = opt.partition(":")
        else:
            raise InvalidParameter(f'invalid --security-opt 1: "{opt}"')
        if key == "seccomp":
            if value == "builtin":
                value = ""
            elif value != seccomp.UNCONFINED:
                seccomp.parse(value)
            out["seccomp"] = value
        elif key == "no-new-privileges":
            flag = _bool(value)
            if flag is None:
                raise InvalidParameter(f'invalid --security-opt 2: "{opt}"')
            out["no_new_privileges"] = flag
        elif key == "systempaths" and value == "unconfined":
            out["systempaths_unconfined"] = True
        elif (key, value) in (("apparmor", "unconfined"), ("label", "disable")):
            continue  # no AppArmor or SELinux here: unconfined is what there is
        elif key in ("apparmor", "label"):
            raise InvalidParameter(f"security option {opt!r} is not supported by dockyard "
                                   "(no AppArmor or SELinux support)")
        else:
            raise InvalidParameter(f'invalid --security-opt 2: "{opt}"')
    return out


def _str_list(value: Any, key: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f"invalid HostConfig.{key}: expected a list of strings")
    return list(value)


def _namespace_mode(value: Any, kind: str, allowed: tuple[str, ...]) -> str:
    mode = value or ""
    if not isinstance(mode, str):
        raise InvalidParameter(f"invalid {kind} mode: {mode}")
    if mode.startswith("container:"):
        if mode == "container:":
            raise InvalidParameter(f"invalid {kind} mode: {mode}")
        raise InvalidParameter(f"{kind} mode {mode!r} (sharing another container's namespace) is not "
                               "supported by dockyard yet")
    if mode not in allowed:
        raise InvalidParameter(f"invalid {kind} mode: {mode}")
    return mode


def check_sysctls(sysctls: dict[str, str], network_mode: str, ipc_mode: str) -> None:
    """runc's rules: only namespaced sysctls, and never one of a namespace shared with the host."""
    for key in sysctls:
        if key in NAMESPACED_SYSCTLS or key.startswith("fs.mqueue."):
            if ipc_mode == "host":
                raise InvalidParameter(f'sysctl "{key}" not allowed in host IPC namespace')
            continue
        if key.startswith("net."):
            if network_mode == "host":
                raise InvalidParameter(f'sysctl "{key}" not allowed in host network namespace')
            continue
        raise InvalidParameter(f'sysctl "{key}" is not in a separate kernel namespace')


def _ulimits(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidParameter("invalid HostConfig.Ulimits: expected a list")
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise InvalidParameter("invalid HostConfig.Ulimits: expected objects with Name, Soft, Hard")
        name, soft, hard = item.get("Name"), item.get("Soft", 0), item.get("Hard", 0)
        if name not in RLIMITS:
            raise InvalidParameter(f"invalid ulimit type: {name}")
        if not isinstance(soft, int) or not isinstance(hard, int):
            raise InvalidParameter(f"invalid ulimit {name}: Soft and Hard must be integers")
        if hard >= 0 and (soft < 0 or soft > hard):
            raise InvalidParameter(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        out.append({"Name": name, "Soft": soft, "Hard": hard})
    return out


def check_host_config(host: dict[str, Any]) -> None:
    """Validate and normalize the security fields of ``host`` in place (Docker's messages)."""
    cap_add = _str_list(host.get("CapAdd"), "CapAdd")
    cap_drop = _str_list(host.get("CapDrop"), "CapDrop")
    for name in [*(cap_add or []), *(cap_drop or [])]:
        caps.normalize(name)
    host["CapAdd"], host["CapDrop"] = cap_add, cap_drop
    host["Privileged"] = bool(host.get("Privileged"))
    host["ReadonlyRootfs"] = bool(host.get("ReadonlyRootfs"))
    opts = _str_list(host.get("SecurityOpt"), "SecurityOpt")
    parsed = parse_security_opts(opts or [])
    host["SecurityOpt"] = opts
    host["GroupAdd"] = _str_list(host.get("GroupAdd"), "GroupAdd")
    host["Ulimits"] = _ulimits(host.get("Ulimits"))
    ipc = _namespace_mode(host.get("IpcMode"), "IPC", ("", "private", "shareable", "host", "none"))
    host["IpcMode"] = ipc or "private"
    host["PidMode"] = _namespace_mode(host.get("PidMode"), "PID", ("", "host"))
    host["UTSMode"] = _namespace_mode(host.get("UTSMode"), "UTS", ("", "host"))
    sysctls = host.get("Sysctls")
    if sysctls is not None:
        if not isinstance(sysctls, dict) or not all(isinstance(v, str) for v in sysctls.values()):
            raise InvalidParameter("invalid HostConfig.Sysctls: expected an object of strings")
        check_sysctls(sysctls, str(host.get("NetworkMode") or ""), host["IpcMode"])
        if not sysctls:
            host.pop("Sysctls")
    if host.get("Init") is not None and not isinstance(host["Init"], bool):
        raise InvalidParameter("invalid HostConfig.Init: expected a boolean")
    unconfined = host["Privileged"] or parsed["systempaths_unconfined"]
    for key, default in (("MaskedPaths", DEFAULT_MASKED_PATHS), ("ReadonlyPaths", DEFAULT_READONLY_PATHS)):
        given = _str_list(host.get(key), key)
        host[key] = None if unconfined else (given if given is not None else list(default))


def check_request(config: dict[str, Any], host: dict[str, Any]) -> None:
    """Checks that need both halves of the request."""
    if host.get("UTSMode") == "host" and config.get("Hostname"):
        raise InvalidParameter("Conflicting options: hostname and the UTS mode")


def _paths(host: dict[str, Any], key: str, default: tuple[str, ...]) -> list[str]:
    """A record from before these fields existed has no key: it gets Docker's defaults."""
    if key not in host:
        return [] if host.get("Privileged") else list(default)
    return list(host.get(key) or [])


def security_spec(host: dict[str, Any]) -> SecuritySpec:
    """The runtime's confinement for a container with this (checked) HostConfig."""
    privileged = bool(host.get("Privileged"))
    opts = parse_security_opts(host.get("SecurityOpt") or [])
    return SecuritySpec(
        capabilities=caps.effective_set(host.get("CapAdd"), host.get("CapDrop"), privileged),
        privileged=privileged,
        seccomp=seccomp.UNCONFINED if privileged else opts["seccomp"],
        no_new_privileges=opts["no_new_privileges"],
        masked_paths=_paths(host, "MaskedPaths", DEFAULT_MASKED_PATHS),
        readonly_paths=_paths(host, "ReadonlyPaths", DEFAULT_READONLY_PATHS),
        readonly_rootfs=bool(host.get("ReadonlyRootfs")),
        group_add=list(host.get("GroupAdd") or []),
        ulimits=[Ulimit(u["Name"], u["Soft"], u["Hard"]) for u in host.get("Ulimits") or []],
        ipc={"": "private", "shareable": "private"}.get(host.get("IpcMode") or "", host.get("IpcMode") or ""),
        pid="host" if host.get("PidMode") == "host" else "private",
        uts="host" if host.get("UTSMode") == "host" else "private",
        sysctls=dict(host.get("Sysctls") or {}),
        init=bool(host.get("Init")),
    )
