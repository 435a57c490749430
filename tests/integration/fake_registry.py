"""A small registry written for the tests: it serves given manifests and blobs over plain HTTP on
127.0.0.1 and misbehaves on request, and it can demand Bearer tokens from its own token endpoint.

It is not a registry implementation: it answers exactly ``GET/HEAD /v2/``, ``/v2/<repo>/manifests/<ref>``,
``/v2/<repo>/blobs/<digest>`` (with ``Range``) and ``GET /token``. ``faults`` (a set, changed by the
test) picks the misbehaviour: ``wrong-digest`` (every blob's last byte flipped), ``drop-once`` (the
first blob answer is cut in the middle; ``Range`` then resumes it), ``drop-always``,
``manifest-500``, ``manifest-429-once``, ``token-expire-once`` (the first token is refused after use),
``stall`` (half of each blob, then nothing until ``release`` is set or 60 s pass), ``redirect-blobs``
(each blob answered with a 307 to ``http://localhost:<port>/storage/<digest>``: another host, as a
CDN is; ``storage_auth`` records whether those requests carried an ``Authorization``), ``no-range``
(``Range`` ignored: every blob answer is the whole blob, ``200``).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import threading
from typing import Any


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry:
    def __init__(self, users: dict[str, str] | None = None) -> None:
        self.manifests: dict[tuple[str, str], tuple[str, bytes]] = {}  # (repo, tag or digest) -> (type, bytes)
        self.blobs: dict[str, bytes] = {}
        self.faults: set[str] = set()
        self.users = users  # None: anonymous; else Bearer tokens for these users
        self.tokens: set[str] = set()
        self.token_requests: list[dict[str, str]] = []
        self.requests: list[tuple[str, str, str]] = []  # (method, path, Range)
        self.storage_auth: list[bool] = []
        self._lock = threading.Lock()
        self._dropped = False
        self._429 = False
        self._expired = False
        self.release = threading.Event()
        self.stalled = threading.Event()  # set once a blob answer has stalled
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                registry._handle(self, body=True)

            def do_HEAD(self) -> None:
                registry._handle(self, body=False)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def add_image(self, repo: str, tag: str, media_type: str, manifest: bytes, blobs: dict[str, bytes]) -> str:
        digest = digest_of(manifest)
        self.manifests[(repo, tag)] = (media_type, manifest)
        self.manifests[(repo, digest)] = (media_type, manifest)
        self.blobs.update(blobs)
        return digest

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    # -- answering -----------------------------------------------------------------------------

    def _send(self, h: http.server.BaseHTTPRequestHandler, status: int, data: bytes = b"",
              headers: dict[str, str] | None = None, body: bool = True) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if body:
            h.wfile.write(data)

    def _error(self, h: http.server.BaseHTTPRequestHandler, status: int, code: str, message: str,
               headers: dict[str, str] | None = None) -> None:
        data = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self._send(h, status, data, {"Content-Type": "application/json", **(headers or {})})

    def _handle(self, h: http.server.BaseHTTPRequestHandler, body: bool) -> None:
        path = h.path.split("?", 1)[0]
        self.requests.append((h.command, path, h.headers.get("Range", "")))
        if path == "/token":
            return self._token(h)
        if path.startswith("/storage/"):
            self.storage_auth.append("Authorization" in h.headers)
            return self._blob(h, path[len("/storage/"):], body)
        if self.users is not None and not self._authorized(h):
            challenge = (f'Bearer realm="http://{self.host}/token",service="fake-registry"'
                         + (f',scope="repository:{path.split("/")[2]}:pull"' if path.count("/") > 3 else ""))
            return self._error(h, 401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": challenge})
        if path == "/v2/":
            return self._send(h, 200, b"{}", {"Content-Type": "application/json"}, body)
        parts = path[len("/v2/"):].rsplit("/", 2)
        if len(parts) != 3:
            return self._error(h, 404, "NOT_FOUND", "not found")
        repo, kind, ref = parts
        if kind == "manifests":
            if "manifest-500" in self.faults:
                return self._send(h, 500, b"boom", {"Content-Type": "text/plain"})
            if "manifest-429-once" in self.faults and not self._429:
                self._429 = True
                return self._error(h, 429, "TOOMANYREQUESTS", "slow down", {"Retry-After": "0"})
            found = self.manifests.get((repo, ref))
            if found is None:
                return self._error(h, 404, "MANIFEST_UNKNOWN", "manifest unknown")
            media_type, data = found
            return self._send(h, 200, data, {"Content-Type": media_type, "Docker-Content-Digest": digest_of(data)},
                              body)
        if kind == "blobs":
            if "redirect-blobs" in self.faults:
                port = self.host.rsplit(":", 1)[1]
                return self._send(h, 307, b"", {"Location": f"http://localhost:{port}/storage/{ref}"}, body)
            return self._blob(h, ref, body)
        return self._error(h, 404, "NOT_FOUND", "not found")

    def _blob(self, h: http.server.BaseHTTPRequestHandler, digest: str, body: bool) -> None:
        data = self.blobs.get(digest)
        if data is None:
            return self._error(h, 404, "BLOB_UNKNOWN", "blob unknown to registry")
        if "wrong-digest" in self.faults and len(data) > 1000:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        start = 0
        rng = h.headers.get("Range", "")
        if rng.startswith("bytes=") and rng.endswith("-") and "no-range" not in self.faults:
            start = int(rng[len("bytes="):-1])
        drop = len(data) > 1000 and ("drop-always" in self.faults or ("drop-once" in self.faults and not self._dropped))
        status = 206 if start else 200
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(data) - start))
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        if not body:
            return
        if "stall" in self.faults and len(data) > 1000:
            h.wfile.write(data[start:start + (len(data) - start) // 2])
            h.wfile.flush()
            self.stalled.set()
            self.release.wait(60)
            h.close_connection = True
            return
        if drop:
            with self._lock:
                self._dropped = True
            h.wfile.write(data[start:start + (len(data) - start) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(2)
            return
        h.wfile.write(data[start:])

    def _authorized(self, h: http.server.BaseHTTPRequestHandler) -> bool:
        header = h.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        token = header[len("Bearer "):]
        if token not in self.tokens:
            return False
        if "token-expire-once" in self.faults and not self._expired and h.path != "/v2/":
            self._expired = True
            self.tokens.discard(token)
            return False
        return True

    def _token(self, h: http.server.BaseHTTPRequestHandler) -> None:
        query = dict(p.split("=", 1) for p in h.path.split("?", 1)[1].split("&")) if "?" in h.path else {}
        user = ""
        header = h.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[len("Basic "):]).decode().partition(":")
            if (self.users or {}).get(user) != password:
                return self._send(h, 401, json.dumps({"details": "incorrect username or password"}).encode(),
                                  {"Content-Type": "application/json"})
        self.token_requests.append({**query, "user": user})
        if not user:  # this registry has no anonymous access
            return self._send(h, 401, json.dumps({"details": "anonymous access denied"}).encode(),
                              {"Content-Type": "application/json"})
        token = secrets.token_hex(16)
        self.tokens.add(token)
        self._send(h, 200, json.dumps({"token": token, "expires_in": 300}).encode(),
                   {"Content-Type": "application/json"})
