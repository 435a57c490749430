"""A container's mounts: HostConfig's Binds, Mounts, Tmpfs, VolumesFrom and the image's VOLUMEs,
turned into *mount points* at create, and into the runtime's ``MountSpec`` list at start.

Terms (Docker's):
- *mount point*: one entry of the record's ``mounts`` list, a dict in Docker's ``Mounts`` field names
  (Type, Name, Source, Destination, Driver, Mode, RW, Propagation) plus our own keys: ``Anonymous``
  (a volume made for this container, removed by ``rm -v``), ``Subpath`` (``--mount``'s
  ``volume-subpath``: mount only that directory of a named volume; API >= 1.45), ``CopyUp`` (fill the empty volume with
  the image's content at the destination), ``Options`` (tmpfs mount words), ``Listed`` (shown in
  inspect's ``Mounts``: Docker does not list ``--tmpfs`` mounts there) and ``Origin`` (``binds``:
  a ``-v`` host directory is re-created if missing at start; ``mounts``: it is an error).
- Precedence for one destination: Binds and Mounts, then VolumesFrom, then the image's volumes.
- *bind spec*: ``-v``'s ``[source:]destination[:mode]``; a source starting with ``/`` is a host
  path, any other is a volume name; no source makes an anonymous volume.
- ``HostConfig.VolumeDriver`` is the driver of the volumes of ``-v`` and of the image's VOLUMEs
  (not of ``--mount``, which names its own): as in dockerd, it is an error only when such a volume
  is created with a driver other than ``local``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from dockyard.errors import InvalidParameter, NotFound
from dockyard.runtime.spec import MountSpec
from dockyard.volumes.service import VolumeService, validate_name

MountPoint = dict[str, Any]
PROPAGATIONS = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}
TMPFS_DEFAULTS = ["noexec", "nosuid", "nodev"]  # Docker's flags for every tmpfs, overridable


def _invalid_spec(raw: str) -> InvalidParameter:
    return InvalidParameter(f"invalid volume specification: '{raw}'")


def _check_target(kind: str, target: str) -> None:
    if not target:
        raise InvalidParameter(f'invalid mount config for type "{kind}": field Target must not be empty')
    if not target.startswith("/"):
        raise InvalidParameter(f'invalid mount config for type "{kind}": invalid mount path: '
                               f"'{target}' mount path must be absolute")
    if os.path.normpath(target) == "/":
        raise InvalidParameter(f'invalid mount config for type "{kind}": invalid specification: '
                               "destination can't be '/'")


def _split_mode(raw: str, mode: str) -> tuple[bool, str]:
    """``-v``'s mode words → (read-write, propagation); Docker's ``invalid mode`` otherwise."""
    rw, propagation, seen = True, "", set[str]()
    for word in mode.split(","):
        if word in ("ro", "rw") and not seen & {"ro", "rw"}:
            rw = word == "rw"
        elif word in ("z", "Z") and not seen & {"z", "Z"}:
            pass  # SELinux relabelling: nothing to do without SELinux
        elif word in PROPAGATIONS and not propagation:
            propagation = word
        elif word == "nocopy" and word not in seen:
            pass
        else:
            raise InvalidParameter(f"invalid mode: {mode}")
        seen.add(word)
    return rw, propagation


def parse_bind(raw: str) -> MountPoint:
    """One ``HostConfig.Binds`` entry, as Docker's Linux parser reads it."""
    parts = raw.split(":")
    if len(parts) == 1:
        source, target, mode = "", parts[0], ""
    elif len(parts) == 2:
        source, target, mode = parts[0], parts[1], ""
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise _invalid_spec(raw)
    if not target:
        raise _invalid_spec(raw)
    kind = "bind" if source.startswith("/") else "volume"
    _check_target(kind, target)
    rw, propagation = _split_mode(raw, mode) if mode else (True, "")
    if kind == "volume":
        if propagation:
            raise InvalidParameter(f"invalid mode: {mode}")
        if source:
            validate_name(source)
        return {"Type": "volume", "Name": source, "Source": "", "Destination": os.path.normpath(target),
                "Driver": "local", "Mode": mode or "z", "RW": rw, "Propagation": "",
                "Anonymous": not source, "CopyUp": "nocopy" not in mode.split(","), "Origin": "binds"}
    if "nocopy" in mode.split(","):
        raise InvalidParameter(f"invalid mode: {mode}")
    return {"Type": "bind", "Source": os.path.normpath(source), "Destination": os.path.normpath(target),
            "Mode": mode, "RW": rw, "Propagation": propagation or "rprivate", "Origin": "binds"}


def _size_words(size: int) -> str:
    """``size=`` for tmpfs with the largest unit that divides it, as Docker writes it."""
    for suffix, unit in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size % unit == 0:
            return f"size={size // unit}{suffix}"
    return f"size={size}"


def parse_mount(raw: Any) -> MountPoint:
    """One ``HostConfig.Mounts`` object, with Docker's validation."""
    if not isinstance(raw, dict):
        raise InvalidParameter("invalid HostConfig.Mounts: expected a list of objects")
    kind = raw.get("Type") or ""
    source = raw.get("Source") or ""
    target = raw.get("Target") or ""

    def fail(why: str) -> InvalidParameter:
        return InvalidParameter(f'invalid mount config for type "{kind}": {why}')

    if kind not in ("bind", "volume", "tmpfs"):
        if kind == "":
            raise fail("mount type unknown")
        raise InvalidParameter(f'invalid mount config for type "{kind}": mount type unknown')
    for opts in ("BindOptions", "VolumeOptions", "TmpfsOptions"):
        if raw.get(opts) and opts.lower() != f"{kind}options":
            raise fail(f"field {opts} must not be specified")
    _check_target(kind, target)
    target = os.path.normpath(target)
    rw = not raw.get("ReadOnly")
    if kind == "bind":
        if not source:
            raise fail("field Source must not be empty")
        if not source.startswith("/"):
            raise fail(f"invalid mount path: '{source}' mount path must be absolute")
        options = raw.get("BindOptions") or {}
        if options.get("NonRecursive"):  # submounts always come along: refuse rather than ignore
            raise fail("non-recursive bind mounts are not supported by dockyard yet")
        propagation = options.get("Propagation") or "rprivate"
        if propagation not in PROPAGATIONS:
            raise fail(f"invalid propagation mode: {propagation}")
        if not os.path.exists(source):
            if options.get("CreateMountpoint"):
                os.makedirs(source, mode=0o755, exist_ok=True)
            else:
                raise fail(f"bind source path does not exist: {source}")
        return {"Type": "bind", "Source": os.path.normpath(source), "Destination": target, "Mode": "",
                "RW": rw, "Propagation": propagation, "Origin": "mounts"}
    if kind == "tmpfs":
        if source:
            raise fail("field Source must not be specified")
        options = raw.get("TmpfsOptions") or {}
        words = list(TMPFS_DEFAULTS)
        size = options.get("SizeBytes") or 0
        if not isinstance(size, int) or size < 0:
            raise fail(f"invalid tmpfs size: {size}")
        if size:
            words.append(_size_words(size))
        if options.get("Mode"):
            words.append(f"mode={int(options['Mode']) & 0o7777:o}")
        for option in options.get("Options") or []:
            words.append("=".join(str(p) for p in option) if isinstance(option, list) else str(option))
        return {"Type": "tmpfs", "Source": "", "Destination": target, "Mode": "", "RW": rw, "Propagation": "",
                "Options": words, "Origin": "mounts"}
    options = raw.get("VolumeOptions") or {}
    if source:
        validate_name(source)
    driver = (options.get("DriverConfig") or {}).get("Name") or "local"
    subpath = options.get("Subpath") or ""
    if subpath:
        if not source:
            raise fail("must not set Subpath when using anonymous volumes")
        if not isinstance(subpath, str) or not is_local(subpath):
            raise fail("subpath must be a relative path within the volume")
    point = {"Type": "volume", "Name": source, "Source": "", "Destination": target, "Driver": driver, "Mode": "",
             "RW": rw, "Propagation": "", "Anonymous": not source, "CopyUp": not options.get("NoCopy"),
             "Origin": "mounts", "VolumeLabels": options.get("Labels") or None,
             "VolumeOptions": (options.get("DriverConfig") or {}).get("Options") or None}
    if subpath:
        point["Subpath"] = subpath
    return point


def is_local(path: str) -> bool:
    """Go's ``filepath.IsLocal``: relative, not empty, and not leaving its base by ``..``."""
    if not path or path.startswith("/"):
        return False
    cleaned = os.path.normpath(path)
    return cleaned != ".." and not cleaned.startswith("../")


def resolve_subpath(base: str, subpath: str) -> str:
    """dockerd's ``safepath`` check at start: ``subpath`` of the volume directory ``base`` with its
    symlinks resolved (as the host sees them); it must exist and stay inside ``base``. Returns the
    resolved path relative to ``base``, which the runtime opens again without following any symlink
    (``runtime/mounts.py``), so a change made meanwhile cannot redirect the mount."""
    real_base = os.path.realpath(base)
    combined = os.path.join(real_base, subpath)
    try:
        resolved = os.path.realpath(combined, strict=True)
    except FileNotFoundError:
        raise NotFound(f"cannot access path {combined}: lstat {combined}: no such file or directory") from None
    except OSError as err:
        raise InvalidParameter(f"error while resolving symlinks in combined path {combined!r}: "
                               f"{err.strerror or err}") from None
    relative = os.path.relpath(resolved, real_base)
    if not is_local(relative):
        raise InvalidParameter(f"path concatenation escapes the base directory, base: {real_base}, "
                               f"subpath: {subpath}")
    return relative


def parse_tmpfs(target: str, options: str) -> MountPoint:
    """One ``HostConfig.Tmpfs`` entry: ``{"/run": "rw,size=64m"}``."""
    _check_target("tmpfs", target)
    words = [*TMPFS_DEFAULTS, *(w for w in (options or "").split(",") if w)]
    rw = "ro" not in words[len(TMPFS_DEFAULTS):]
    return {"Type": "tmpfs", "Source": "", "Destination": os.path.normpath(target), "Mode": "", "RW": rw,
            "Propagation": "", "Options": words, "Origin": "tmpfs", "Listed": False}


def _from_container(raw: str, lookup: Callable[[str], Any]) -> list[MountPoint]:
    """``--volumes-from name[:ro|rw]``: the other container's volumes and binds."""
    ref, _, mode = raw.partition(":")
    if mode not in ("", "ro", "rw"):
        raise InvalidParameter(f"invalid mode: {mode}")
    other = lookup(ref)
    copied = []
    for m in getattr(other, "mounts", []):
        if m["Type"] == "tmpfs":
            continue
        copy = {**m, "RW": bool(m["RW"]) and mode != "ro", "Anonymous": False, "Origin": "volumes-from"}
        copied.append(copy)
    return copied


def plan(host_config: dict[str, Any], config: dict[str, Any], image_volumes: Iterable[str],
         lookup: Callable[[str], Any]) -> list[MountPoint]:
    """The container's mount points (volumes not yet created), checking Docker's rules."""
    driver = host_config.get("VolumeDriver") or "local"
    if not isinstance(driver, str):
        raise InvalidParameter("invalid HostConfig.VolumeDriver: expected a string")
    chosen: dict[str, MountPoint] = {}
    for raw in host_config.get("Binds") or []:
        if not isinstance(raw, str):
            raise InvalidParameter("invalid HostConfig.Binds: expected a list of strings")
        m = parse_bind(raw)
        if m["Destination"] in chosen:
            raise InvalidParameter(f"Duplicate mount point: {m['Destination']}")
        chosen[m["Destination"]] = m
    for raw in host_config.get("Mounts") or []:
        m = parse_mount(raw)
        if m["Destination"] in chosen:
            raise InvalidParameter(f"Duplicate mount point: {m['Destination']}")
        chosen[m["Destination"]] = m
    tmpfs = host_config.get("Tmpfs") or {}
    if not isinstance(tmpfs, dict):
        raise InvalidParameter("invalid HostConfig.Tmpfs: expected an object")
    for target, options in tmpfs.items():
        m = parse_tmpfs(target, options)
        if m["Destination"] in chosen:
            raise InvalidParameter(f"Duplicate mount point: {m['Destination']}")
        chosen[m["Destination"]] = m
    for raw in host_config.get("VolumesFrom") or []:
        try:
            inherited = _from_container(raw, lookup)
        except NotFound:
            raise NotFound(f"No such container: {raw.partition(':')[0]}") from None
        for m in inherited:
            chosen.setdefault(m["Destination"], m)
    volumes = dict.fromkeys([*image_volumes, *(config.get("Volumes") or {})])
    for target in volumes:
        _check_target("volume", target)
        chosen.setdefault(os.path.normpath(target), {
            "Type": "volume", "Name": "", "Source": "", "Destination": os.path.normpath(target), "Driver": "local",
            "Mode": "", "RW": True, "Propagation": "", "Anonymous": True, "CopyUp": True, "Origin": "image"})
    if volumes:
        config["Volumes"] = {target: {} for target in volumes}
    for m in chosen.values():  # VolumeDriver is for -v and image volumes; --mount names its own
        if m["Type"] == "volume" and m["Origin"] in ("binds", "image"):
            m["Driver"] = driver
    return list(chosen.values())


async def create_volumes(mounts: list[MountPoint], volumes: VolumeService) -> list[str]:
    """Create the volumes the mount points name (or make anonymous ones) and bind-source dirs
    of ``-v``; returns the names of the anonymous volumes made, to undo a failed create."""
    made = []
    for m in mounts:
        if m["Type"] == "bind" and m.get("Origin") == "binds" and not os.path.exists(m["Source"]):
            os.makedirs(m["Source"], mode=0o755, exist_ok=True)  # Docker's -v creates a missing host dir
        if m["Type"] != "volume" or m.get("Origin") == "volumes-from":
            continue
        volume = await volumes.create(m["Name"], m.get("Driver") or "local", m.pop("VolumeOptions", None),
                                      m.pop("VolumeLabels", None))
        if not m["Name"]:
            made.append(volume.name)
        m["Name"], m["Source"], m["Driver"] = volume.name, volume.mountpoint, volume.driver
    return made


def runtime_mounts(mounts: list[MountPoint], volumes: VolumeService) -> list[MountSpec]:
    """The runtime's mounts for a start: parents before children, volumes resolved now."""
    specs = []
    for m in sorted(mounts, key=lambda m: len([p for p in m["Destination"].split("/") if p])):
        readonly = not m["RW"]
        if m["Type"] == "tmpfs":
            specs.append(MountSpec("tmpfs", "tmpfs", m["Destination"], readonly, list(m.get("Options") or [])))
            continue
        if m["Type"] == "bind":
            if not os.path.exists(m["Source"]):
                if m.get("Origin") != "binds":
                    raise InvalidParameter(f'invalid mount config for type "bind": bind source path does not '
                                           f"exist: {m['Source']}")
                os.makedirs(m["Source"], mode=0o755, exist_ok=True)
            specs.append(MountSpec("bind", m["Source"], m["Destination"], readonly,
                                   propagation=m.get("Propagation") or "rprivate"))
            continue
        volume = volumes.get(m["Name"])
        if volume.kind == "tmpfs" and m.get("Subpath"):
            # A tmpfs volume is a new, empty tmpfs at each mount: no subpath of it can exist.
            raise NotFound(f"cannot access path {m['Subpath']} in volume {m['Name']}: a type=tmpfs volume is empty "
                           "when it is mounted")
        if volume.kind == "tmpfs":
            words = [w for w in (volume.options or {}).get("o", "").split(",") if w]
            specs.append(MountSpec("tmpfs", "tmpfs", m["Destination"], readonly, words))
        elif m.get("Subpath"):
            specs.append(MountSpec("bind", volume.source, m["Destination"], readonly, propagation="rprivate",
                                   subpath=resolve_subpath(volume.source, m["Subpath"])))
        else:
            specs.append(MountSpec("bind", volume.source, m["Destination"], readonly, propagation="rprivate",
                                   copy_up=bool(m.get("CopyUp")) and volume.kind == "dir"))
    return specs


def inspect_view(mounts: list[MountPoint]) -> list[dict[str, Any]]:
    """Docker's ``Mounts`` in container inspect and list."""
    view = []
    for m in mounts:
        if m.get("Listed") is False:
            continue
        entry: dict[str, Any] = {"Type": m["Type"]}
        if m["Type"] == "volume":
            entry["Name"] = m["Name"]
        entry.update({"Source": m["Source"], "Destination": m["Destination"]})
        if m["Type"] == "volume":
            entry["Driver"] = m.get("Driver") or "local"
        entry.update({"Mode": m.get("Mode", ""), "RW": bool(m["RW"]), "Propagation": m.get("Propagation", "")})
        view.append(entry)
    return view


def volume_names(mounts: list[MountPoint], anonymous_only: bool = False) -> list[str]:
    """The volumes a container's mount points use (only those made for it with ``anonymous_only``)."""
    return [m["Name"] for m in mounts if m["Type"] == "volume" and (m.get("Anonymous") or not anonymous_only)]
