"""Log drivers: which ones exist, their options and defaults, and what the shim is told.

Terms:
- *driver*: ``HostConfig.LogConfig.Type``. ``json-file`` (Docker's default) and ``local`` both
  make the shim write our json-file lines to ``<id>-json.log``; ``local`` gzips the files it
  rotates out (``<log>.1.gz`` … ) as Docker's local driver compresses its rotated files.
  ``none`` keeps no log at all, and ``logs`` answers Docker's error for it.
- *log opts*: ``LogConfig.Config``. Unknown keys are refused with Docker's message.
- *rotation*: when the live file would pass ``max-size`` bytes it becomes ``<log>.1`` (``.1.gz``
  when compressing), the older ones shift up, and at most ``max-file`` files are kept, the live one
  included.
- *daemon defaults*: ``daemon.json``'s ``log-driver`` and ``log-opts``. As dockerd does, a
  container without a driver gets the daemon's, and the daemon's opts fill in the keys a container
  did not set only when both use the same driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dockyard.errors import InvalidParameter, NotImplementedYet
from dockyard.formats.sizes import from_human_size

DRIVERS = ("json-file", "local", "none")
OPTIONS = {
    # labels/env/tag: accepted as Docker accepts them; they only add attributes Docker's
    # json-file puts in "attrs", which our format does not carry.
    "json-file": {"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"},
    "local": {"max-size", "max-file", "compress"},
    "none": set(),
}
BUILTIN_DEFAULTS = {
    "json-file": {"max-size": str(10 << 20), "max-file": "3"},   # dockyard rotates json-file by default
    "local": {"max-size": str(20 << 20), "max-file": "5", "compress": "true"},  # Docker's local defaults
    "none": {},
}
NO_READING = "configured logging driver does not support reading"



class ReadingUnsupported(NotImplementedYet):
    """``logs`` of a container whose driver keeps nothing to read (Docker answers 501)."""


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


@dataclass(frozen=True)
class LogSettings:
    """What the shim needs: whether to log at all, rotation limits, compression."""

    driver: str
    max_size: int = 0       # bytes; 0: never rotate
    max_file: int = 1
    compress: bool = False

    @property
    def enabled(self) -> bool:
        return self.driver != "none"


def validate_driver(name: str) -> str:
    if name not in DRIVERS:
        raise InvalidParameter(f'error looking up logging plugin {name}: plugin "{name}" not found')  # dockerd's
    return name


def validate_opts(driver: str, opts: dict[str, str]) -> None:
    """Docker's messages for unknown keys and bad values."""
    allowed = OPTIONS[driver]
    for key in opts:
        if key not in allowed:
            if driver == "json-file":
                raise InvalidParameter(f"unknown log opt '{key}' for json-file log driver")
            raise InvalidParameter(f"unknown log opt '{key}' for log driver {driver}")
    settings(driver, opts)


def _bool(value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidParameter(f'invalid boolean value for compress: strconv.ParseBool: parsing "{value}": invalid syntax')


def settings(driver: str, opts: dict[str, str]) -> LogSettings:
    """The shim's settings for a container's (already merged) log config."""
    if driver == "none":
        return LogSettings("none")
    merged = {**BUILTIN_DEFAULTS[driver], **opts}
    try:
        max_size = from_human_size(str(merged["max-size"]))  # decimal units, as Docker's log drivers
    except InvalidParameter:
        raise InvalidParameter(f"invalid value for max-size: {merged['max-size']}") from None
    raw_files = str(merged["max-file"])
    if not raw_files.lstrip("-").isdigit():
        raise InvalidParameter(f"invalid value for max-file: {raw_files}")
    max_file = int(raw_files)
    if max_file < 1:
        raise InvalidParameter("max-file cannot be less than 1")
    compress = _bool(str(merged.get("compress", "false")))
    if compress and max_file <= 1:
        raise InvalidParameter("compression cannot be enabled when max file count is 1")
    return LogSettings(driver, max_size, max_file, compress)


def resolve(log_config: dict[str, Any], default_driver: str, default_opts: dict[str, str]) -> dict[str, Any]:
    """A create request's ``LogConfig`` with the daemon's defaults (``daemon.json``) applied, validated.

    The built-in rotation defaults (:data:`BUILTIN_DEFAULTS`) are checked together with the options
    but not stored: :func:`settings` applies them at start, and inspect shows only what was asked,
    as Docker's ``{}`` for a container created without log options."""
    driver = validate_driver(log_config.get("Type") or default_driver)
    opts = {str(k): str(v) for k, v in (log_config.get("Config") or {}).items()}
    if driver == (default_driver or "json-file"):
        opts = {**default_opts, **opts}
    validate_opts(driver, opts)  # with the built-in defaults, as settings() merges them
    return {"Type": driver, "Config": opts}


def check_daemon_defaults(driver: str, opts: dict[str, str]) -> None:
    """``daemon.json``'s ``log-driver`` and ``log-opts``, checked as a container's would be."""
    validate_opts(validate_driver(driver), opts)
