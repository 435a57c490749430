"""`run`/`create` flags of the mounts group: see `dockyard.cli.options`.

As Docker's CLI sends them:
- ``-v SRC:DST[:MODE]`` → ``HostConfig.Binds`` (the daemon parses it); ``-v /path`` (no source) →
  ``Config.Volumes`` (an anonymous volume).
- ``--mount type=…,source=…,target=…`` is parsed here (CSV, Docker's keys and errors) into a
  ``HostConfig.Mounts`` object.
- ``--tmpfs /path[:OPTS]`` → ``HostConfig.Tmpfs``; ``--volumes-from C[:ro|rw]`` → ``HostConfig.VolumesFrom``.
"""

from __future__ import annotations

from dockyard.cli.failure import FlagError
from dockyard.cli.flags import Flag
from dockyard.cli.units import ram_in_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Parsed

FLAGS: list[Flag] = [
    Flag("mount", "", "list", "Attach a filesystem mount to the container", type_name="mount"),
    Flag("tmpfs", "", "list", "Mount a tmpfs directory"),
    Flag("volume", "v", "list", "Bind mount a volume"),
    Flag("volume-driver", "", "string", "Optional volume driver for the container"),
    Flag("volumes-from", "", "list", "Mount volumes from the specified container(s)"),
]

_BOOL_KEYS = {"readonly", "ro", "volume-nocopy", "bind-nonrecursive", "bind-create-mountpoint"}
def _bool(key: str, value: str) -> bool:
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise ValueError(f"invalid value for {key}: {value}")


def parse_mount(text: str) -> dict[str, Any]:
    """One ``--mount`` value as Docker's CLI builds the API's Mount object; ``ValueError`` with its message."""
    import csv

    fields = next(csv.reader([text]), [])
    mount: dict[str, Any] = {"Type": "volume"}
    bind: dict[str, Any] = {}
    volume: dict[str, Any] = {}
    tmpfs: dict[str, Any] = {}
    for field in fields:
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        if not eq:
            if key in _BOOL_KEYS:
                value = "true"
            else:
                raise ValueError(f"invalid field '{field}' must be a key=value pair")
        if key == "type":
            mount["Type"] = value
        elif key in ("source", "src"):
            mount["Source"] = value
        elif key in ("target", "dst", "destination"):
            mount["Target"] = value
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _bool(key, value)
        elif key == "consistency":
            mount["Consistency"] = value
        elif key == "bind-propagation":
            bind["Propagation"] = value
        elif key == "bind-nonrecursive":
            bind["NonRecursive"] = _bool(key, value)
        elif key == "bind-create-mountpoint":
            bind["CreateMountpoint"] = _bool(key, value)
        elif key == "volume-nocopy":
            volume["NoCopy"] = _bool(key, value)
        elif key == "volume-label":
            name, _, label = value.partition("=")
            volume.setdefault("Labels", {})[name] = label
        elif key == "volume-driver":
            volume.setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            name, _, opt = value.partition("=")
            volume.setdefault("DriverConfig", {}).setdefault("Options", {})[name] = opt
        elif key == "volume-subpath":
            volume["Subpath"] = value
        elif key == "tmpfs-size":
            size = ram_in_bytes(value)
            if size is None:
                raise ValueError(f"invalid value for {key}: {value}")
            tmpfs["SizeBytes"] = size
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(value, 8)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {value}") from None
        else:
            raise ValueError(f"unexpected key '{key}' in '{field}'")
    kind = mount["Type"]
    if not kind:
        raise ValueError("type is required")
    if not mount.get("Target"):
        raise ValueError("target is required")
    for prefix, options, name in (("volume", volume, "VolumeOptions"), ("bind", bind, "BindOptions"),
                                  ("tmpfs", tmpfs, "TmpfsOptions")):
        if options:
            if kind != prefix:
                raise ValueError(f"cannot mix '{prefix}-*' options with mount type '{kind}'")
            mount[name] = options
    return mount


def apply(parsed: Parsed, body: dict[str, Any]) -> None:
    """Fill the create body from this group's flags."""
    host = body.setdefault("HostConfig", {})
    binds: list[str] = []
    volumes: dict[str, dict[str, str]] = {}
    for spec in parsed["volume"]:
        if not spec:
            raise FlagError("invalid empty volume spec")  # Docker 28 refuses it in parse, not as a flag value
        if ":" in spec:
            binds.append(spec)
        else:
            volumes[spec] = {}
    if binds:
        host["Binds"] = binds
    if volumes:
        body["Volumes"] = volumes
    mounts = []
    for text in parsed["mount"]:
        try:
            mounts.append(parse_mount(text))
        except ValueError as error:
            raise FlagError(f'invalid argument "{text}" for "--mount" flag: {error}') from None
    if mounts:
        host["Mounts"] = mounts
    tmpfs = {}
    for text in parsed["tmpfs"]:
        target, _, options = text.partition(":")
        tmpfs[target] = options
    if tmpfs:
        host["Tmpfs"] = tmpfs
    if parsed["volumes-from"]:
        host["VolumesFrom"] = list(parsed["volumes-from"])
    if parsed["volume-driver"]:
        host["VolumeDriver"] = parsed["volume-driver"]
