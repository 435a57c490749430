"""Turning a create request into a container's Config and HostConfig, as Docker does.

Docker's rules, kept here in one place:
- ``Entrypoint`` given in the request replaces the image's, and then the image's ``Cmd`` is
  dropped too; ``Entrypoint: [""]`` resets it to none.
- ``Cmd`` given replaces the image's; both may be a string (old clients) or a list.
- ``Env`` is the image's, with the request's entries replacing those of the same key.
- ``Labels`` are the image's plus the request's; WorkingDir, User, StopSignal fall back to the image's.
- HostConfig fields this engine does not act on yet are refused when set to anything but their
  empty value, so that nothing is silently ignored.
"""

from __future__ import annotations

from typing import Any

from dockyard.containers import restart, security
from dockyard.containers.health import merge_config
from dockyard.errors import InvalidParameter

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
"""The size of every container's /dev/shm (``runtime/rootfs.py``), Docker's default."""

# HostConfig keys we act on; the rest must be empty (0, "", [], {}, None, False).
HOST_CONFIG_HANDLED = {
    "NetworkMode", "AutoRemove", "LogConfig", "RestartPolicy", "ConsoleSize", "UsernsMode",
    "Binds", "Mounts", "Tmpfs", "VolumesFrom", "VolumeDriver",  # containers/mounts.py
    "Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota",
    "CpusetCpus", "CpusetMems", "PidsLimit", "OomKillDisable", "Devices", "DeviceCgroupRules",
    "MemorySwappiness", "OomScoreAdj", "CpuCount",  # containers/resources.py
    *security.HOST_CONFIG_FIELDS,  # CapAdd, Privileged, SecurityOpt, IpcMode…: containers/security.py
    "PortBindings", "PublishAllPorts", "Dns", "DnsSearch", "DnsOptions", "ExtraHosts", "Links",  # networking.py
    # Accepted with their empty/default values only (checked below): Docker's CLI always sends them.
}
HOST_CONFIG_DEFAULTS: dict[str, Any] = {
    "CgroupnsMode": ("", "private", "host"),
    "Isolation": ("", "default"),
    "Cgroup": ("",),
    "ShmSize": (0, DEFAULT_SHM_SIZE),
    "Runtime": ("", "runc", "dockyard"),
}


def _as_list(value: Any, field: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidParameter(f"invalid {field}: expected a string or a list of strings")


def _is_empty(value: Any) -> bool:
    return value in (None, "", 0, False, [], {}) or (isinstance(value, dict) and all(_is_empty(v) for v in value.values()))


def merge_env(image_env: list[str], env: list[str]) -> list[str]:
    merged: dict[str, str] = {}
    for entry in [*image_env, *env]:
        key = entry.split("=", 1)[0]
        if not key:
            raise InvalidParameter(f"invalid environment variable: {entry}")
        merged[key] = entry
    return list(merged.values())


def build_config(body: dict[str, Any], image_config: dict[str, Any]) -> dict[str, Any]:
    """The container's ``Config``: the request merged with the image's config."""
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: the create request must be an object")
    entrypoint = _as_list(body.get("Entrypoint"), "Entrypoint")
    cmd = _as_list(body.get("Cmd"), "Cmd")
    if entrypoint is not None:
        if entrypoint == [""]:
            entrypoint = []
        if cmd is None:
            cmd = []
    else:
        entrypoint = list(image_config.get("Entrypoint") or [])
        if cmd is None:
            cmd = list(image_config.get("Cmd") or [])
    if cmd == [] and entrypoint == []:
        raise InvalidParameter("No command specified")
    env = body.get("Env") or []
    if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
        raise InvalidParameter("invalid Env: expected a list of KEY=VALUE strings")
    labels = dict(image_config.get("Labels") or {})
    labels.update(body.get("Labels") or {})
    config: dict[str, Any] = {
        "Hostname": body.get("Hostname") or "",
        "Domainname": body.get("Domainname") or "",
        "User": body.get("User") or image_config.get("User") or "",
        "AttachStdin": bool(body.get("AttachStdin")),
        "AttachStdout": bool(body.get("AttachStdout")),
        "AttachStderr": bool(body.get("AttachStderr")),
        "ExposedPorts": body.get("ExposedPorts") or image_config.get("ExposedPorts"),
        "Tty": bool(body.get("Tty")),
        "OpenStdin": bool(body.get("OpenStdin")),
        "StdinOnce": bool(body.get("StdinOnce")),
        "Env": merge_env(list(image_config.get("Env") or []), env),
        "Cmd": cmd or None,
        "Image": body.get("Image") or "",
        "Volumes": body.get("Volumes") or image_config.get("Volumes"),
        "WorkingDir": body.get("WorkingDir") or image_config.get("WorkingDir") or "",
        "Entrypoint": entrypoint or None,
        "OnBuild": image_config.get("OnBuild"),
        "Labels": labels,
    }
    health = merge_config(body.get("Healthcheck"), image_config.get("Healthcheck"))
    if health is not None:
        config["Healthcheck"] = health  # probes: containers/health.py
    shell = body.get("Shell") or image_config.get("Shell")
    if shell:
        if not isinstance(shell, list) or not all(isinstance(x, str) for x in shell):
            raise InvalidParameter("invalid Shell: expected a list of strings")
        config["Shell"] = shell  # runs CMD-SHELL healthchecks
    stop_signal = body.get("StopSignal") or image_config.get("StopSignal")
    if stop_signal:
        config["StopSignal"] = stop_signal
    if body.get("StopTimeout") is not None:
        config["StopTimeout"] = body["StopTimeout"]
    if not any(e.startswith("PATH=") for e in config["Env"]):
        config["Env"].insert(0, f"PATH={DEFAULT_PATH}")
    return config


def build_host_config(raw: Any) -> dict[str, Any]:
    """The container's ``HostConfig``, refusing settings this engine would otherwise ignore."""
    host = dict(raw or {})
    if not isinstance(raw or {}, dict):
        raise InvalidParameter("invalid HostConfig: expected an object")
    for key, value in host.items():
        if key in HOST_CONFIG_HANDLED:
            continue
        allowed = HOST_CONFIG_DEFAULTS.get(key)
        if allowed is not None:
            if value not in allowed:
                raise InvalidParameter(f"HostConfig.{key}={value!r} is not supported by dockyard yet")
            continue
        if not _is_empty(value):
            raise InvalidParameter(f"HostConfig.{key} is not supported by dockyard yet")
    if host.get("UsernsMode") not in (None, "", "host"):
        raise InvalidParameter(f"HostConfig.UsernsMode={host['UsernsMode']!r} is not supported: dockyard runs "
                               "containers in the host's user namespace (no userns-remap), so only \"host\" "
                               "is accepted")
    log_config = host.get("LogConfig") or {}
    if not isinstance(log_config, dict):
        raise InvalidParameter("invalid LogConfig: expected an object")
    host.setdefault("NetworkMode", "default")
    host.setdefault("AutoRemove", False)
    # dockerd's adaptContainerSettings: the values in effect, for fields sent empty. The cgroup
    # namespace is the host's: dockyard does not unshare it (dockerd's default on cgroup v1).
    host["ShmSize"] = host.get("ShmSize") or DEFAULT_SHM_SIZE
    host["CgroupnsMode"] = host.get("CgroupnsMode") or "host"
    if host.get("OomKillDisable") is None:
        host["OomKillDisable"] = False
    # The driver stays "" when not given: the service fills in the daemon's (see logdrivers.py).
    host["LogConfig"] = {"Type": log_config.get("Type") or "", "Config": dict(log_config.get("Config") or {})}
    host["RestartPolicy"] = restart.check_host_config(host)
    security.check_host_config(host)
    return host
