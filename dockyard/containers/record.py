"""The container record: what the daemon knows of one container, and how it is stored.

Terms:
- *record*: the container's row in the metadata database's ``containers`` table (id, unique
  name, the record as JSON), rewritten on every change of state, so a daemon that restarts (or
  was killed) finds every container as it last was. A record whose daemon root has no open
  database (a bare directory, as in unit tests) is ``<dir>/config.json``, written atomically.
- *Config* / *HostConfig*: the two halves of Docker's create request, kept in Docker's field
  names; ``Config`` is already merged with the image's config (Env, Cmd, Entrypoint…).
- *state*: Docker's ``State`` object; ``status`` is one of created, running, paused, restarting,
  removing, exited, dead.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from dockyard import blocking
from dockyard.containers.clock import human_duration
from dockyard.containers.mounts import inspect_view
from dockyard.formats import timestamps
from dockyard.metadata import MetadataDB, opened
from dockyard.networks import ports
from dockyard.networks.ports import Published


def _fields_of(value: Any) -> dict[str, Any]:
    """A dataclass instance's fields as a dict (one level: ``json.dumps`` comes back here for the
    dataclasses within)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


@dataclass
class State:
    status: str = "created"
    pid: int = 0
    shim_pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: str = timestamps.ZERO_TIME
    finished_at: str = timestamps.ZERO_TIME
    oom_killed: bool = False
    health: dict[str, Any] | None = None  # Docker's State.Health: see containers/health.py

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused", "restarting")

    def to_docker(self) -> dict[str, Any]:
        return {
            "Status": self.status,
            "Running": self.status in ("running", "paused"),
            "Paused": self.status == "paused",
            "Restarting": self.status == "restarting",
            "OOMKilled": self.oom_killed,
            "Dead": self.status == "dead",
            "Pid": self.pid if self.running else 0,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": self.started_at,
            "FinishedAt": self.finished_at,
            **({"Health": self.health} if self.health is not None else {}),
        }


@dataclass
class Container:
    id: str
    name: str
    created: str
    image: str          # the image as the user named it ("busybox")
    image_id: str       # "sha256:…"
    path: str
    args: list[str]
    config: dict[str, Any]
    host_config: dict[str, Any]
    state_dir: str
    state: State = field(default_factory=State)
    restart_count: int = 0
    network_warning: str = ""  # no longer set (the bridge network exists); kept so old records load
    # Networking (see containers/networking.py): what the container asks of each network, and what
    # its current run got (sandbox, endpoints, published ports).
    endpoints_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    net: dict[str, Any] = field(default_factory=dict)
    mounts: list[dict[str, Any]] = field(default_factory=list)  # mount points: see containers/mounts.py
    manually_stopped: bool = False  # Docker's HasBeenManuallyStopped: see containers/restart.py

    # -- paths ----------------------------------------------------------------
    @property
    def dir(self) -> Path:
        return Path(self.state_dir)

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.id}-json.log"

    @property
    def attach_socket(self) -> Path:
        return self.dir / "attach.sock"

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    # -- persistence ------------------------------------------------------------
    def _db(self) -> MetadataDB | None:
        """The metadata database of the daemon root holding ``containers/<id>/``, if open."""
        return opened(self.dir.parent.parent)

    def snapshot(self) -> str:
        """The record as JSON, taken now (on the event loop, which owns the object): the text
        ``dataclasses.asdict`` would give, without its deep copy of every value (~7× slower)."""
        return json.dumps(_fields_of(self), default=_fields_of)

    def save_soon(self) -> None:
        """Queue the write of the record as it is now (see ``blocking.write_soon``): for the event
        loop, which must not wait on SQLite."""
        blocking.write_soon(f"container {self.id[:12]}", self.save, self.snapshot())

    def save(self, snapshot: str | None = None) -> None:
        """Write the record atomically: a crash leaves the old or the new record, never half.

        A worker thread is given a ``snapshot`` taken on the event loop: it never reads the
        object while the loop changes it."""
        text = self.snapshot() if snapshot is None else snapshot
        db = self._db()
        if db is not None:
            if not self.dir.is_dir():  # removed meanwhile: never bring a record back (as config.json could not be)
                raise FileNotFoundError(f"container directory {self.dir} is gone")
            db.execute("INSERT INTO containers VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE "
                       "SET name = excluded.name, record = excluded.record", (self.id, self.name, text))
            return
        tmp = self.dir / "config.json.tmp"
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / "config.json")

    def delete_record(self) -> None:
        """Forget the record (before the container's directory goes: a crash leaves a directory
        without a record, which recovery and the collector remove)."""
        db = self._db()
        if db is not None:
            db.execute("DELETE FROM containers WHERE id = ?", (self.id,), durable=True)

    @staticmethod
    def stored_ids(containers_root: Path) -> set[str]:
        """The IDs of the containers under ``containers_root`` that have a record."""
        db = opened(containers_root.parent)
        if db is not None:
            return {str(r[0]) for r in db.query("SELECT id FROM containers")}
        return {p.parent.name for p in containers_root.glob("*/config.json")}

    @classmethod
    def load(cls, directory: Path) -> Container:
        db = opened(directory.parent.parent)
        if db is not None:
            text = db.scalar("SELECT record FROM containers WHERE id = ?", (directory.name,))
            if text is None:
                raise ValueError(f"no record for container {directory.name}")
            data = json.loads(text)
        else:
            data = json.loads((directory / "config.json").read_text())
        data["state"] = State(**data["state"])
        return cls(**data)

    # -- Docker's views -----------------------------------------------------------
    def status_text(self, now: float | None = None) -> str:
        """The ``Status`` column of ``docker ps``: "Up 3 seconds", "Exited (0) 2 minutes ago"…"""
        now = time.time() if now is None else now
        s = self.state
        if s.status in ("running", "paused"):
            text = "Up " + human_duration(now - timestamps.stored_seconds(s.started_at))
            if s.status == "paused":
                return text + " (Paused)"
            if s.health is not None:  # Docker: "(health: starting)", "(healthy)", "(unhealthy)"
                status = s.health.get("Status", "")
                return text + (" (health: starting)" if status == "starting" else f" ({status})")
            return text
        if s.status == "restarting":
            return f"Restarting ({s.exit_code}) " + human_duration(now - timestamps.stored_seconds(s.finished_at)) + " ago"
        if s.status == "exited":
            if s.finished_at == timestamps.ZERO_TIME:
                return f"Exited ({s.exit_code})"
            return f"Exited ({s.exit_code}) " + human_duration(now - timestamps.stored_seconds(s.finished_at)) + " ago"
        if s.status == "removing":
            return "Removal In Progress"
        if s.status == "dead":
            return "Dead"
        return "Created"

    def command_text(self) -> str:
        return " ".join([self.path, *self.args]).strip()

    def published_ports(self) -> list[Published]:
        return ports.from_dicts(self.net.get("ports")) if self.state.running else []

    def network_settings(self) -> dict[str, Any]:
        """Docker's ``NetworkSettings``: each network's endpoint (addresses while running), the
        published ports, and — as Docker still fills them — the default bridge's values at the top."""
        running = self.state.running
        live = (self.net.get("endpoints") or {}) if running else {}
        networks: dict[str, Any] = {}
        for name, cfg in self.endpoints_config.items():
            got = live.get(name) or {}
            networks[name] = {
                "IPAMConfig": cfg.get("IPAMConfig"), "Links": cfg.get("Links"), "Aliases": cfg.get("Aliases"),
                "MacAddress": got.get("MacAddress") or cfg.get("MacAddress") or "", "DriverOpts": None,
                "GwPriority": 0, "NetworkID": cfg.get("NetworkID") or "", "EndpointID": got.get("EndpointID") or "",
                "Gateway": got.get("Gateway") or "", "IPAddress": got.get("IPAddress") or "",
                "IPPrefixLen": got.get("IPPrefixLen") or 0, "IPv6Gateway": got.get("IPv6Gateway") or "",
                "GlobalIPv6Address": got.get("GlobalIPv6Address") or "",
                "GlobalIPv6PrefixLen": got.get("GlobalIPv6PrefixLen") or 0, "DNSNames": got.get("DNSNames"),
            }
        bridge = live.get("bridge") or {}
        sandbox = self.net.get("sandbox") if running else ""
        return {
            "Bridge": "", "SandboxID": self.net.get("sandbox_id", "") if running else "",
            "SandboxKey": sandbox or "", "HairpinMode": False,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports.docker_ports(self.config.get("ExposedPorts"), self.published_ports()) if sandbox else {},
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
            "EndpointID": bridge.get("EndpointID", ""), "Gateway": bridge.get("Gateway", ""),
            "GlobalIPv6Address": bridge.get("GlobalIPv6Address", ""),
            "GlobalIPv6PrefixLen": bridge.get("GlobalIPv6PrefixLen", 0), "IPAddress": bridge.get("IPAddress", ""),
            "IPPrefixLen": bridge.get("IPPrefixLen", 0), "IPv6Gateway": bridge.get("IPv6Gateway", ""),
            "MacAddress": bridge.get("MacAddress", ""),
            "Networks": networks,
        }

    def inspect(self, graph_driver: dict[str, Any]) -> dict[str, Any]:
        """Docker's ``GET /containers/{id}/json`` answer."""
        return {
            "Id": self.id,
            "Created": self.created,
            "Path": self.path,
            "Args": self.args,
            "State": self.state.to_docker(),
            "Image": self.image_id,
            "ResolvConfPath": str(self.dir / "resolv.conf"),
            "HostnamePath": str(self.dir / "hostname"),
            "HostsPath": str(self.dir / "hosts"),
            "LogPath": str(self.log_path),
            "Name": "/" + self.name,
            "RestartCount": self.restart_count,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": None,
            "HostConfig": self.host_config,
            "GraphDriver": graph_driver,
            "Mounts": inspect_view(self.mounts),
            "Config": self.config,
            "NetworkSettings": self.network_settings(),
        }

    def summary(self) -> dict[str, Any]:
        """Docker's ``GET /containers/json`` entry."""
        mode = self.host_config.get("NetworkMode") or "default"
        return {
            "Id": self.id,
            "Names": ["/" + self.name],
            "Image": self.image,
            "ImageID": self.image_id,
            "Command": self.command_text(),
            "Created": int(timestamps.stored_seconds(self.created)),
            "Ports": (ports.summary_ports(self.config.get("ExposedPorts"), self.published_ports())
                      if self.net.get("sandbox") and self.state.running else []),
            "Labels": self.config.get("Labels") or {},
            "State": self.state.status,
            "Status": self.status_text(),
            "HostConfig": {"NetworkMode": mode},
            "NetworkSettings": {"Networks": self.network_settings()["Networks"]},
            "Mounts": inspect_view(self.mounts),
        }
