"""`run`/`create` flags of the security group: see `dockyard.cli.options`.

Isolation flags → ``HostConfig`` fields, as Docker's CLI sends them: ``--cap-add``/``--cap-drop``
→ ``CapAdd``/``CapDrop``; ``--privileged``; ``--security-opt`` → ``SecurityOpt`` (a
``seccomp=<file>`` is read here and sent as ``seccomp=<compact JSON>``, as Docker's CLI does);
``--read-only`` → ``ReadonlyRootfs``; ``--group-add``; ``--ulimit name=soft[:hard]`` →
``Ulimits``; ``--ipc``/``--pid``/``--uts``/``--userns`` → ``IpcMode``/``PidMode``/``UTSMode``/``UsernsMode``; ``--sysctl
k=v`` → ``Sysctls``. Bad values fail with pflag's ``invalid argument`` wording (exit 125).
"""

from __future__ import annotations

from dockyard.cli.failure import FlagError
from dockyard.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Parsed

FLAGS: list[Flag] = [
    Flag("cap-add", "", "list", "Add Linux capabilities"),
    Flag("cap-drop", "", "list", "Drop Linux capabilities"),
    Flag("group-add", "", "list", "Add additional groups to join"),
    Flag("ipc", "", "string", "IPC mode to use"),
    Flag("pid", "", "string", "PID namespace to use"),
    Flag("privileged", "", "bool", "Give extended privileges to this container"),
    Flag("read-only", "", "bool", "Mount the container's root filesystem as read only"),
    Flag("security-opt", "", "list", "Security Options"),
    Flag("sysctl", "", "list", "Sysctl options", type_name="map"),
    Flag("ulimit", "", "list", "Ulimit options", type_name="ulimit"),
    Flag("userns", "", "string", "User namespace to use"),
    Flag("uts", "", "string", "UTS namespace to use"),
]

ULIMIT_NAMES = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
                "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")
_SYSCTL_NAMES = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                 "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def _invalid(value: str, flag: str, reason: str) -> FlagError:
    return FlagError(f'invalid argument "{value}" for "--{flag}" flag: {reason}')


def parse_ulimit(text: str) -> dict[str, Any]:
    """Docker's ``units.ParseUlimit``: ``nofile=1024[:2048]`` → ``{"Name", "Hard", "Soft"}``."""
    name, has_value, limits = text.partition("=")
    if not has_value:
        raise _invalid(text, "ulimit", f"invalid ulimit argument: {text}")
    if name not in ULIMIT_NAMES:
        raise _invalid(text, "ulimit", f"invalid ulimit type: {name}")
    parts = limits.split(":")
    if len(parts) > 2:
        raise _invalid(text, "ulimit", f"too many limit value arguments - {limits}, can only have up to two, "
                       "`soft[:hard]`")
    try:
        soft = int(parts[0])
        hard = int(parts[1]) if len(parts) == 2 else soft
    except ValueError:
        raise _invalid(text, "ulimit", f'strconv.ParseInt: parsing "{limits}": invalid syntax') from None
    if soft > hard and hard != -1:
        raise _invalid(text, "ulimit", f"ulimit soft limit must be less than or equal to hard limit: "
                       f"{soft} > {hard}")
    return {"Name": name, "Hard": hard, "Soft": soft}


def parse_sysctl(text: str) -> tuple[str, str]:
    """Docker's ``ValidateSysctl``: ``k=v`` with a namespaced key."""
    key, has_value, value = text.partition("=")
    allowed = key in _SYSCTL_NAMES or key.startswith(("fs.mqueue.", "net."))
    if not has_value or not allowed:
        raise _invalid(text, "sysctl", f"sysctl '{text}' is not allowed")
    return key, value


def security_opt(text: str) -> str:
    """One ``--security-opt`` as Docker's CLI sends it: a seccomp profile file becomes its JSON."""
    import json

    key, has_value, value = text.partition("=")
    if not has_value and key != "no-new-privileges":
        key, has_value, value = text.partition(":")
    if (not has_value or not value) and key != "no-new-privileges":
        raise FlagError(f'Invalid --security-opt: "{text}"')
    if key != "seccomp" or value in ("builtin", "unconfined"):
        return text
    try:
        with open(value, encoding="utf-8") as handle:
            raw = handle.read()
    except OSError as err:
        raise FlagError(f"opening seccomp profile ({value}) failed: open {value}: "
                        f"{(err.strerror or str(err)).lower()}") from None
    try:
        compact = json.dumps(json.loads(raw), separators=(",", ":"))
    except ValueError as err:
        raise FlagError(f"compacting json for seccomp profile ({value}) failed: {err}") from None
    return f"seccomp={compact}"


def apply(parsed: Parsed, body: dict[str, Any]) -> None:
    """Fill the create body from this group's flags."""
    host = body.setdefault("HostConfig", {})
    if parsed["cap-add"]:
        host["CapAdd"] = list(parsed["cap-add"])
    if parsed["cap-drop"]:
        host["CapDrop"] = list(parsed["cap-drop"])
    if parsed["privileged"]:
        host["Privileged"] = True
    if parsed["read-only"]:
        host["ReadonlyRootfs"] = True
    if parsed["security-opt"]:
        host["SecurityOpt"] = [security_opt(text) for text in parsed["security-opt"]]
    if parsed["group-add"]:
        host["GroupAdd"] = list(parsed["group-add"])
    if parsed["ulimit"]:
        host["Ulimits"] = [parse_ulimit(text) for text in parsed["ulimit"]]
    if parsed["sysctl"]:
        host["Sysctls"] = dict(parse_sysctl(text) for text in parsed["sysctl"])
    if parsed["userns"] not in (None, "", "host"):
        raise FlagError("--userns: invalid USER mode")
    for flag, key in (("ipc", "IpcMode"), ("pid", "PidMode"), ("uts", "UTSMode"), ("userns", "UsernsMode")):
        if parsed[flag]:
            host[key] = parsed[flag]
