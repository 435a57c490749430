"""The volume service: Docker's ``local`` volume driver over ``<root>/volumes``.

Terms:
- *volume*: ``volumes/<name>/_data`` (what containers mount) and its record (Docker's ``Name``,
  ``Driver``, ``Labels``, ``Options``, ``CreatedAt``), a row of the metadata database's ``volumes``
  table. The row is added after the directory is in place and deleted before it goes, so a crash
  leaves at worst a directory without a record, which the collector removes.
- *anonymous volume*: one created without a name; it gets a 64-hex name and Docker's label
  ``com.docker.volume.anonymous``. ``rm -v`` and ``--rm`` remove a container's anonymous volumes,
  and ``volume prune`` removes only those unless the ``all=true`` filter is given (Docker ≥ 23).
- *user*: a container whose mounts name the volume (running or not). A volume with no user is
  *dangling*. Users are known only to the containers service, so every call that needs them
  takes a ``users(name) -> [container id]`` function.
- *driver options* of the ``local`` driver: ``type=tmpfs`` (a tmpfs per mount, ``o=`` its
  options) and ``type=none,o=bind,device=/host/dir`` (a bind of an existing host directory).
  Other types (nfs, ext4 on a device, …) are refused rather than mounted on the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard import blocking
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.metadata import MetadataDB, open_db

ANONYMOUS_LABEL = "com.docker.volume.anonymous"
NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
LOCAL_OPTS = {"type", "o", "device"}

Users = Callable[[str], list[str]]
"""``users(volume name)``: the IDs of the containers that mount the volume."""


def rfc3339_seconds(ts: float) -> str:
    """Docker's ``CreatedAt`` for volumes: RFC 3339 with seconds and the local offset (``Z`` for UTC)."""
    local = time.localtime(ts)
    offset = local.tm_gmtoff or 0
    zone = "Z" if offset == 0 else f"{'+' if offset > 0 else '-'}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + zone


def validate_name(name: str) -> None:
    """Docker's rule for ``local`` volume names."""
    if not NAME_RE.fullmatch(name):
        raise InvalidParameter(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path')


def check_local_options(name: str, options: dict[str, str]) -> None:
    """Accept what the ``local`` driver can do here: no options, ``type=tmpfs``, or a bind."""
    for key in options:
        if key not in LOCAL_OPTS:
            raise InvalidParameter(f"create {name}: invalid option key: {key!r}")
    if not options:
        return
    kind = options.get("type", "")
    if kind == "tmpfs":
        return
    if kind == "none" and "bind" in options.get("o", "").split(","):
        device = options.get("device", "")
        if not device.startswith("/"):
            raise InvalidParameter(f"create {name}: a bind volume needs an absolute device path, got {device!r}")
        return
    if kind == "" and ("device" in options or "o" in options):
        raise InvalidParameter(f"create {name}: missing required option: \"type\"")
    raise InvalidParameter(f"create {name}: the local driver of dockyard supports type=tmpfs and "
                           f"type=none,o=bind,device=<dir> only, not type={kind!r}")


@dataclass
class Volume:
    """One volume's record (Docker's field names, as ``volume inspect`` prints them)."""

    name: str
    mountpoint: str
    created_at: str
    driver: str = "local"
    labels: dict[str, str] | None = None
    options: dict[str, str] | None = None

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in (self.labels or {})

    @property
    def kind(self) -> str:
        """How containers mount it: ``dir`` (``_data``), ``tmpfs`` or ``bind`` (the device)."""
        opts = self.options or {}
        if opts.get("type") == "tmpfs":
            return "tmpfs"
        if opts.get("type") == "none":
            return "bind"
        return "dir"

    @property
    def source(self) -> str:
        """The host directory a container's mount binds (the device for a bind volume)."""
        return (self.options or {}).get("device", "") if self.kind == "bind" else self.mountpoint

    def to_docker(self) -> dict[str, Any]:
        return {"CreatedAt": self.created_at, "Driver": self.driver, "Labels": self.labels,
                "Mountpoint": self.mountpoint, "Name": self.name, "Options": self.options, "Scope": "local"}


def _tree_size(path: str) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for entry in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, entry))
            except OSError:
                continue
            if not os.path.isdir(os.path.join(dirpath, entry)) or os.path.islink(os.path.join(dirpath, entry)):
                total += st.st_size
    return total


Filters = dict[str, list[str]]


def _bool_filter(key: str, values: list[str]) -> bool:
    value = values[-1].lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise InvalidParameter(f"invalid filter '{key}={values[-1]}'")


def _labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


class VolumeService:
    """Volumes under ``root/volumes``: create, list, inspect, remove, prune."""

    def __init__(self, root: Path, metadata: MetadataDB | None = None) -> None:
        self.root = root / "volumes"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o701)
        self.db = metadata if metadata is not None else open_db(root)
        self._volumes: dict[str, Volume] = {}
        self._creating: dict[str, asyncio.Future[None]] = {}  # names whose create is on the pool
        for directory in sorted(self.root.iterdir()):
            if directory.name.startswith("."):  # a create or remove that did not finish
                shutil.rmtree(directory, ignore_errors=True)
        for row in self.db.query("SELECT record FROM volumes ORDER BY name"):
            try:
                data = json.loads(row[0])
                self._volumes[data["name"]] = Volume(**data)
            except (ValueError, TypeError, KeyError):
                continue

    # -- create / lookup -----------------------------------------------------------------
    async def create(self, name: str = "", driver: str = "", options: dict[str, str] | None = None,
                     labels: dict[str, str] | None = None) -> Volume:
        """Create (or return the existing) volume ``name``; no name makes an anonymous volume. The
        directory and the row are made on the blocking pool; a second create of a name being made
        waits for the first."""
        driver = driver or "local"
        labels = dict(labels) if labels is not None else None
        if not name:
            name = secrets.token_hex(32)
            while name in self._volumes or name in self._creating:
                name = secrets.token_hex(32)
            labels = {**(labels or {}), ANONYMOUS_LABEL: ""}
        else:
            validate_name(name)
        while name in self._creating:
            with contextlib.suppress(Exception):  # its own caller gets its error
                await asyncio.shield(self._creating[name])
        existing = self._volumes.get(name)
        if existing is not None:
            if existing.driver != driver:
                raise Conflict(f"create {name}: volume name must be unique: a volume named {name} "
                               f"already exists with driver {existing.driver!r}")
            return existing
        if driver != "local":
            raise NotFound(f"create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" not found")
        if not isinstance(options or {}, dict) or not isinstance(labels or {}, dict):
            raise InvalidParameter(f"create {name}: DriverOpts and Labels must be objects")
        check_local_options(name, options or {})
        volume = Volume(name=name, mountpoint=str(self.root / name / "_data"),
                        created_at=rfc3339_seconds(time.time()), labels=labels,
                        options=dict(options) if options is not None else None)
        made: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._creating[name] = made
        try:
            await blocking.run(self._create_files, volume)
            self._volumes[name] = volume
        finally:
            del self._creating[name]
            made.set_result(None)
        return volume

    def _create_files(self, volume: Volume) -> None:
        tmp = self.root / f".{volume.name}.creating"  # names never start with "."
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "_data").mkdir(parents=True, mode=0o755)
        # The directory appears and its row is added under the database's lock, which the collector
        # holds while it decides: it never sees the one without the other.
        with self.db.transaction(durable=True) as conn:
            os.rename(tmp, self.root / volume.name)
            conn.execute("INSERT OR REPLACE INTO volumes VALUES (?, ?)", (volume.name, json.dumps(volume.__dict__)))

    def get(self, name: str) -> Volume:
        volume = self._volumes.get(name)
        if volume is None:
            raise NotFound(f"get {name}: no such volume")
        return volume

    def inspect(self, name: str) -> dict[str, Any]:
        return self.get(name).to_docker()

    # -- list --------------------------------------------------------------------------------
    def select(self, filters: Filters, users: Users, allowed: tuple[str, ...]) -> list[Volume]:
        for key in filters:
            if key not in allowed:
                raise InvalidParameter(f"invalid filter '{key}'")
        dangling = _bool_filter("dangling", filters["dangling"]) if filters.get("dangling") else None
        chosen = []
        for volume in sorted(self._volumes.values(), key=lambda v: v.name):
            labels = volume.labels or {}
            if dangling is not None and (not users(volume.name)) != dangling:
                continue
            if "name" in filters and not any(re.search(v, volume.name) for v in filters["name"]):
                continue
            if "driver" in filters and volume.driver not in filters["driver"]:
                continue
            if not _labels_match(labels, filters.get("label", [])):
                continue
            if any(_labels_match(labels, [item]) for item in filters.get("label!", [])):
                continue
            chosen.append(volume)
        return chosen

    def listing(self, filters: Filters, users: Users) -> dict[str, Any]:
        """Docker's ``GET /volumes`` answer."""
        volumes = self.select(filters, users, ("dangling", "name", "driver", "label"))
        return {"Volumes": [v.to_docker() for v in volumes], "Warnings": []}

    # -- remove / prune ------------------------------------------------------------------------
    async def remove(self, name: str, users: Users, force: bool = False) -> None:
        volume = self._volumes.get(name)
        if volume is None:
            if force:
                return
            raise NotFound(f"get {name}: no such volume")
        using = users(name)
        if using:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(using)}]")
        await self._delete(volume)

    async def _delete(self, volume: Volume) -> int:
        """Forget ``volume`` now (no one on the loop sees it any more), then delete its row and its
        files on the blocking pool; the bytes it held."""
        self._volumes.pop(volume.name, None)
        return await blocking.run(self._delete_files, volume)

    def _delete_files(self, volume: Volume) -> int:
        directory = self.root / volume.name
        size = _tree_size(str(directory / "_data"))
        # Rename first so that a crash never leaves a half-deleted volume that still looks valid.
        doomed = self.root / f".{volume.name}.removing"
        shutil.rmtree(doomed, ignore_errors=True)
        self.db.execute("DELETE FROM volumes WHERE name = ?", (volume.name,), durable=True)
        os.rename(directory, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        return size

    def _dangling_anonymous(self, names: list[str], users: Users) -> list[Volume]:
        found = [self._volumes.get(name) for name in names]
        return [v for v in found if v is not None and v.anonymous and not users(v.name)]

    async def remove_anonymous(self, names: list[str], users: Users) -> None:
        """``rm -v``: remove those of ``names`` that are anonymous and no longer used."""
        for volume in self._dangling_anonymous(names, users):
            await self._delete(volume)

    def remove_anonymous_now(self, names: list[str], users: Users) -> None:
        """``remove_anonymous`` for the daemon's recovery, before it serves (no event loop yet)."""
        for volume in self._dangling_anonymous(names, users):
            self._volumes.pop(volume.name, None)
            self._delete_files(volume)

    async def prune(self, filters: Filters, users: Users, all_by_default: bool = False) -> dict[str, Any]:
        """Remove dangling volumes: anonymous ones only unless ``all=true`` (or an API older than 1.42)."""
        prune_all = _bool_filter("all", filters["all"]) if filters.get("all") else all_by_default
        wanted = {k: v for k, v in filters.items() if k != "all"}
        deleted, reclaimed = [], 0
        for volume in self.select(wanted, users, ("label", "label!")):
            if users(volume.name) or (not prune_all and not volume.anonymous):
                continue
            reclaimed += await self._delete(volume)
            deleted.append(volume.name)
        return {"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}

    def usage(self) -> list[dict[str, Any]]:
        """Every volume with its size (for ``system df``)."""
        return [{**v.to_docker(), "UsageData": {"Size": _tree_size(v.mountpoint), "RefCount": -1}}
                for v in self._volumes.values()]

