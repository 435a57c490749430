"""The daemon's configuration: flags and a ``daemon.json`` in dockerd's format.

Keys known so far (dockerd's names): ``data-root``, ``hosts``, ``log-level``, ``debug``,
``pidfile``, ``log-driver``, ``log-opts`` (the containers' default log driver and its options),
``tls``, ``tlsverify``, ``tlscacert``, ``tlscert``, ``tlskey`` and ``group`` (see
``daemon/listeners.py``), ``registry-mirrors``, ``insecure-registries``, ``max-concurrent-downloads``,
``max-concurrent-uploads`` (:class:`~dockyard.distribution.endpoints.RegistrySettings`), ``ip`` and
``userland-proxy``, ``ipv6`` and ``fixed-cidr-v6`` (the default bridge's IPv6)
(:class:`~dockyard.networks.service.NetworkOptions`). An unknown key, or a key given both as a flag and in the file, is an
error, worded as dockerd words it. A flag counts as given when its value is not ``None``
(``--tls=false`` is given).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.containers import logdrivers
from dockyard.daemon.listeners import TLSOptions, check_tcp_hosts
from dockyard.distribution.endpoints import (
    DEFAULT_MAX_CONCURRENT_DOWNLOADS,
    DEFAULT_MAX_CONCURRENT_UPLOADS,
    RegistrySettings,
)
from dockyard.errors import InvalidParameter
from dockyard.networks.service import NetworkOptions

DEFAULT_ROOT = Path("/var/lib/dockyard")
DEFAULT_HOST = "unix:///run/dockyard.sock"
DEFAULT_CONFIG_FILE = Path("/etc/dockyard/daemon.json")
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
KNOWN_KEYS = {"data-root", "hosts", "log-level", "debug", "pidfile", "log-driver", "log-opts",
              "tls", "tlsverify", "tlscacert", "tlscert", "tlskey", "group",
              "registry-mirrors", "insecure-registries", "max-concurrent-downloads", "max-concurrent-uploads",
              "ip", "userland-proxy", "ipv6", "fixed-cidr-v6"}


@dataclass
class DaemonConfig:
    root: Path = DEFAULT_ROOT
    hosts: list[str] = field(default_factory=lambda: [DEFAULT_HOST])
    log_level: str = "info"
    debug: bool = False
    pidfile: Path | None = None
    log_opts: dict[str, str] = field(default_factory=dict)
    log_driver: str = "json-file"
    tls: TLSOptions = field(default_factory=TLSOptions)
    group: str | None = None
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    network: NetworkOptions = field(default_factory=NetworkOptions)


def load_config(flags: dict[str, Any], config_file: Path | None) -> DaemonConfig:
    """Merge flags (only those the user set) with the config file; dockerd's errors for conflicts."""
    file_values: dict[str, Any] = {}
    path = config_file or DEFAULT_CONFIG_FILE
    if path.exists():
        try:
            file_values = json.loads(path.read_text() or "{}")
        except ValueError as exc:
            raise InvalidParameter(f"unable to configure the Docker daemon with file {path}: {exc}") from exc
        if not isinstance(file_values, dict):
            raise InvalidParameter(f"unable to configure the Docker daemon with file {path}: not a JSON object")
    elif config_file is not None:
        raise InvalidParameter(f"unable to configure the Docker daemon with file {path}: "
                               "open: no such file or directory")
    unknown = sorted(set(file_values) - KNOWN_KEYS)
    if unknown:
        raise InvalidParameter("the following directives don't match any configuration option: " + ", ".join(unknown))
    given = {k: v for k, v in flags.items() if v is not None and v != []}
    both = sorted(k for k in file_values if k in given)
    if both:
        details = ", ".join(f"{k}: (from flag: {flags[k]}, from file: {file_values[k]})" for k in both)
        raise InvalidParameter("the following directives are specified both as a flag and in the "
                               f"configuration file: {details}")
    merged = {**file_values, **given}
    config = DaemonConfig()
    if "data-root" in merged:
        config.root = Path(merged["data-root"]).absolute()
    if merged.get("hosts"):
        hosts = merged["hosts"]
        config.hosts = [hosts] if isinstance(hosts, str) else list(hosts)
    for host in config.hosts:
        if not (host.startswith("unix://") or host.startswith("tcp://") or host.startswith("/")):
            raise InvalidParameter(f"invalid host: {host}: only unix:// and tcp:// are supported")
    level = merged.get("log-level", "info")
    if level not in LOG_LEVELS:
        raise InvalidParameter(f"unable to parse logging level: {level}")
    config.log_level = level
    config.debug = bool(merged.get("debug"))
    if merged.get("pidfile"):
        config.pidfile = Path(merged["pidfile"])
    opts = merged.get("log-opts") or {}
    if not isinstance(opts, dict):
        raise InvalidParameter("log-opts: expected a JSON object")
    config.log_opts = {str(k): str(v) for k, v in opts.items()}
    config.log_driver = str(merged.get("log-driver") or "json-file")
    logdrivers.check_daemon_defaults(config.log_driver, config.log_opts)
    config.tls = TLSOptions.resolve(_optional_bool(merged, "tls"), _optional_bool(merged, "tlsverify"),
                                    merged.get("tlscacert"), merged.get("tlscert"), merged.get("tlskey"))
    check_tcp_hosts(config.hosts, config.tls)
    if merged.get("group") is not None:
        config.group = str(merged["group"])
    config.registry = _registry_settings(merged)
    config.network = _network_options(merged)
    return config


def _network_options(merged: dict[str, Any]) -> NetworkOptions:
    """dockerd's ``ip`` (the default host address of published ports) and ``userland-proxy``."""
    options = NetworkOptions()
    if merged.get("ip") is not None:
        import ipaddress

        try:
            options.default_bind_ip = str(ipaddress.IPv4Address(str(merged["ip"])))
        except ValueError:
            raise InvalidParameter(f"invalid IP address: {merged['ip']}") from None
    proxy = _optional_bool(merged, "userland-proxy")
    if proxy is not None:
        options.userland_proxy = proxy
    options.ipv6 = bool(_optional_bool(merged, "ipv6"))
    fixed = merged.get("fixed-cidr-v6")
    if fixed:
        import ipaddress

        try:
            options.fixed_cidr_v6 = str(ipaddress.IPv6Network(str(fixed), strict=False))
        except ValueError:
            raise InvalidParameter(f"parse fixed-cidr-v6 failed: invalid CIDR address: {fixed}") from None
    return options


def _optional_bool(values: dict[str, Any], key: str) -> bool | None:
    value = values.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise InvalidParameter(f"{key}: expected true or false, got {value!r}")


def _registry_settings(merged: dict[str, Any]) -> RegistrySettings:
    def strings(key: str) -> list[str]:
        value = merged.get(key) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidParameter(f"{key}: expected a list of strings")
        return list(value)

    def count(key: str, default: int) -> int:
        value = merged.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidParameter(f"{key}: expected an integer")
        return value

    return RegistrySettings(mirrors=strings("registry-mirrors"), insecure_registries=strings("insecure-registries"),
                            max_concurrent_downloads=count("max-concurrent-downloads", DEFAULT_MAX_CONCURRENT_DOWNLOADS),
                            max_concurrent_uploads=count("max-concurrent-uploads", DEFAULT_MAX_CONCURRENT_UPLOADS))
