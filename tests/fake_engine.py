"""A fake Docker Engine API on a unix socket, for comparing what two CLIs send and print.

The *fake engine* records every request (method, path, query, JSON body) and answers from a small
in-memory world in Docker's shapes: a few networks, one container with published ports. It knows
nothing of real containers; its answers are the ones dockerd 28 gives for these objects, so the
same argv given to Docker's CLI and to ours can be compared request for request and output for
output. Answers do not change with the requests (nothing is really created or removed), so runs of
both CLIs see the same world.
"""

from __future__ import annotations

import json
import os
import socketserver
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

API_VERSION = "1.47"

NETWORKS: list[dict[str, Any]] = [
    {
        "Name": "bridge", "Id": "b6a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d",
        "Created": "2026-12-01T10:00:00.123456789Z", "Scope": "local", "Driver": "bridge", "EnableIPv4": True,
        "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": None,
                                       "Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]},
        "Internal": False, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
        "ConfigOnly": False, "Containers": {},
        "Options": {"com.docker.network.bridge.default_bridge": "true",
                    "com.docker.network.bridge.name": "docker0"},
        "Labels": {},
    },
    {
        "Name": "host", "Id": "5f0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c",
        "Created": "2026-11-30T09:00:00.5Z", "Scope": "local", "Driver": "host", "EnableIPv4": True,
        "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": None, "Config": None},
        "Internal": False, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
        "ConfigOnly": False, "Containers": {}, "Options": {}, "Labels": {},
    },
    {
        "Name": "appnet", "Id": "0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d",
        "Created": "2026-12-02T11:22:33.000000001+01:00", "Scope": "local", "Driver": "bridge",
        "EnableIPv4": True, "EnableIPv6": True,
        "IPAM": {"Driver": "default", "Options": {},
                 "Config": [{"Subnet": "10.30.0.0/24", "IPRange": "10.30.0.128/25", "Gateway": "10.30.0.1"}]},
        "Internal": True, "Attachable": True, "Ingress": False, "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {"c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc": {
            "Name": "web", "EndpointID": "e1", "MacAddress": "02:42:0a:1e:00:02",
            "IPv4Address": "10.30.0.2/24", "IPv6Address": ""}},
        "Options": {"com.docker.network.driver.mtu": "1400"},
        "Labels": {"team": "blue", "tier": "front"},
    },
    {
        "Name": "ingress", "Id": "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b",
        "Created": "2026-12-03T08:00:00Z", "Scope": "swarm", "Driver": "overlay", "EnableIPv4": True,
        "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": None, "Config": [{"Subnet": "10.0.0.0/24"}]},
        "Internal": False, "Attachable": False, "Ingress": True, "ConfigFrom": {"Network": ""},
        "ConfigOnly": False, "Containers": None, "Options": None, "Labels": None,
    },
    {
        "Name": "net10", "Id": "9" * 64, "Created": "0001-01-01T00:00:00Z", "Scope": "local", "Driver": "bridge",
        "EnableIPv4": True, "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": {}, "Config": []},
        "Internal": False, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
        "ConfigOnly": False, "Containers": {}, "Options": {}, "Labels": {"only": "one"},
    },
    {
        "Name": "net9", "Id": "8" * 64, "Created": "2026-12-04T23:59:59.999-07:00", "Scope": "local",
        "Driver": "macvlan", "EnableIPv4": True, "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": {}, "Config": []}, "Internal": False, "Attachable": False,
        "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": {}, "Options": {},
        "Labels": {},
    },
]

PORTS = {
    "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}],
    "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
    "443/tcp": None,
    "9000/sctp": [{"HostIp": "::1", "HostPort": "9001"}],
    "22/tcp": [{"HostIp": "", "HostPort": "2222"}],
}
CONTAINER = {
    "Id": "c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc", "Name": "/web",
    "State": {"Status": "running", "Running": True},
    "Config": {"Image": "busybox", "Tty": False},
    "HostConfig": {"NetworkMode": "bridge"},
    "NetworkSettings": {"Ports": PORTS, "Networks": {}},
}
BARE = {**CONTAINER, "Id": "ba5e" + "0" * 60, "Name": "/bare", "NetworkSettings": {"Ports": {}, "Networks": {}}}


PRUNE_REPORTS = {
    "/containers/prune": {"ContainersDeleted": ["c0ffee01"], "SpaceReclaimed": 1024},
    "/volumes/prune": {"VolumesDeleted": ["vol1"], "SpaceReclaimed": 2048},
    "/images/prune": {"ImagesDeleted": [{"Untagged": "old:1"}, {"Deleted": "sha256:" + "ab" * 32}],
                      "SpaceReclaimed": 4_000_000},
    "/build/prune": {"CachesDeleted": ["k1", "k2"], "SpaceReclaimed": 100},
}


LISTED = [
    {"Id": CONTAINER["Id"], "Names": ["/web"], "Image": "busybox", "Command": "httpd -f", "Created": 1700000000,
     "State": "running", "Status": "Up 2 hours", "Labels": {}, "Mounts": [],
     "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
               {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
               {"IP": "127.0.0.1", "PrivatePort": 53, "PublicPort": 5353, "Type": "udp"},
               {"PrivatePort": 443, "Type": "tcp"}, {"PrivatePort": 444, "Type": "tcp"},
               {"PrivatePort": 446, "Type": "tcp"},
               {"IP": "0.0.0.0", "PrivatePort": 8000, "PublicPort": 8000, "Type": "tcp"},
               {"IP": "0.0.0.0", "PrivatePort": 8001, "PublicPort": 8001, "Type": "tcp"},
               {"IP": "0.0.0.0", "PrivatePort": 8003, "PublicPort": 8003, "Type": "tcp"},
               {"IP": "0.0.0.0", "PrivatePort": 9000, "PublicPort": 9000, "Type": "sctp"}],
     "NetworkSettings": {"Networks": {"appnet": {}}}},
    {"Id": BARE["Id"], "Names": ["/bare"], "Image": "busybox", "Command": "true", "Created": 1700000000,
     "State": "exited", "Status": "Exited (0) 1 hour ago", "Labels": {}, "Mounts": [], "Ports": [],
     "NetworkSettings": {"Networks": {}}},
]


@dataclass
class Request:
    """One recorded request: ``path`` without the ``/v1.xx`` prefix, ``query`` as parsed pairs."""

    method: str
    path: str
    query: list[tuple[str, str]]
    body: Any

    def key(self) -> tuple[str, str, list[tuple[str, str]], Any]:
        return self.method, self.path, sorted(self.query), self.body


@dataclass
class FakeEngine:
    """The server: ``socket`` is its path, ``requests`` what it has been sent (``/_ping`` excluded)."""

    socket: str
    requests: list[Request] = field(default_factory=list)
    server: socketserver.UnixStreamServer | None = None
    api_version: str = API_VERSION  # what ``/_ping`` announces (clients negotiate down to it)

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def take(self) -> list[Request]:
        taken, self.requests[:] = list(self.requests), []
        return taken


def _find_network(ref: str) -> dict[str, Any] | None:
    for net in NETWORKS:
        if ref in (net["Name"], net["Id"]):
            return net
    matches = [net for net in NETWORKS if net["Id"].startswith(ref)]
    return matches[0] if len(matches) == 1 else None


def _find_container(ref: str) -> dict[str, Any] | None:
    for box in (CONTAINER, BARE):
        if ref in (box["Name"].lstrip("/"), box["Id"]) or (len(ref) >= 3 and box["Id"].startswith(ref)):
            return box
    return None


def answer(method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    """dockerd's status and JSON answer to one request, from the fake world."""
    parts = path.strip("/").split("/")
    if path == "/networks" and method == "GET":
        return 200, NETWORKS
    if path == "/networks/create" and method == "POST":
        name = (body or {}).get("Name", "")
        if any(net["Name"] == name for net in NETWORKS):
            return 409, {"message": f"network with name {name} already exists"}
        return 201, {"Id": "f00d" * 16, "Warning": ""}
    if path == "/networks/prune" and method == "POST":
        return 200, {"NetworksDeleted": ["appnet", "oldnet"]}
    if path in PRUNE_REPORTS and method == "POST":
        return 200, PRUNE_REPORTS[path]
    if parts[0] == "networks" and len(parts) >= 2:
        net = _find_network(parts[1])
        if net is None:
            return 404, {"message": f"network {parts[1]} not found"}
        if len(parts) == 2 and method == "GET":
            return 200, net
        if len(parts) == 2 and method == "DELETE":
            if net["Name"] in ("bridge", "host"):
                return 403, {"message": f"{net['Name']} is a pre-defined network and cannot be removed"}
            return 204, None
        if len(parts) == 3 and method == "POST" and parts[2] in ("connect", "disconnect"):
            container = (body or {}).get("Container", "")
            if _find_container(container) is None:
                return 404, {"message": f"No such container: {container}"}
            return 200, None
    if path == "/info" and method == "GET":
        return 200, {"Swarm": {"ControlAvailable": False, "LocalNodeState": "inactive"}}
    if path.startswith("/volumes/") and method == "GET":
        name = path[len("/volumes/"):]
        if name == "data":
            return 200, {"Name": "data", "Driver": "local", "Mountpoint": "/var/lib/docker/volumes/data/_data",
                         "Labels": None, "Scope": "local", "Options": None, "CreatedAt": "2026-12-01T10:00:00Z"}
        return 404, {"message": f"get {name}: no such volume"}
    if path == "/containers/json" and method == "GET":
        return 200, LISTED
    if path == "/containers/create" and method == "POST":
        return 201, {"Id": "d0d0" * 16, "Warnings": []}
    if parts[0] == "containers" and len(parts) == 3 and parts[2] == "start" and method == "POST":
        return 204, None
    if parts[0] == "containers" and len(parts) == 3 and parts[2] == "wait" and method == "POST":
        return 200, {"StatusCode": 0}
    if parts[0] == "containers" and len(parts) == 3 and parts[2] == "json" and method == "GET":
        box = _find_container(parts[1])
        if box is None:
            return 404, {"message": f"No such container: {parts[1]}"}
        return 200, box
    return 404, {"message": "page not found"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine: FakeEngine

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _reply(self, status: int, payload: Any, head_only: bool = False) -> None:
        data = b"" if payload is None else (json.dumps(payload) + "\n").encode()
        self.send_response(status)
        self.send_header("Api-Version", self.engine.api_version)
        self.send_header("Content-Type", "application/json" if payload is not None else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head_only:
            self.wfile.write(data)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                raw += self.rfile.read(size)
                self.rfile.readline()
        else:
            raw = self.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)  # as dockerd's router decodes it: `%7B` and `{` are one name
        if path.startswith("/v") and "/" in path[1:]:
            path = "/" + path[1:].split("/", 1)[1]
        if path == "/_ping":
            self._reply(200, None, head_only=self.command == "HEAD")
            return
        body = json.loads(raw) if raw.strip() else None
        query = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
        self.engine.requests.append(Request(self.command, path, query, body))
        status, payload = answer(self.command, path, urllib.parse.parse_qs(url.query), body)
        self._reply(status, payload)

    do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = _handle


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up early (Docker's CLI after a HEAD /_ping) is no error here

    def get_request(self) -> tuple[Any, Any]:
        conn, _ = self.socket.accept()
        return conn, ("fake", 0)  # BaseHTTPRequestHandler wants a (host, port) client address


def start(directory: str | None = None, api_version: str = API_VERSION) -> FakeEngine:
    """Serve a fake engine on a fresh socket (in ``directory``, default a new temp dir)."""
    where = directory or tempfile.mkdtemp(prefix="fake-engine-")
    engine = FakeEngine(os.path.join(where, "engine.sock"), api_version=api_version)
    handler = type("Handler", (_Handler,), {"engine": engine})
    engine.server = _Server(engine.socket, handler)
    threading.Thread(target=engine.server.serve_forever, daemon=True).start()
    return engine


def stop(engine: FakeEngine) -> None:
    if engine.server is not None:
        engine.server.shutdown()
        engine.server.server_close()
    try:
        os.unlink(engine.socket)
    except FileNotFoundError:
        pass
