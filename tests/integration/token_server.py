"""A token server for a real ``docker-registry`` in token-auth mode (the Docker registry token spec).

``GET /token?service=…&scope=repository:<name>:<actions>`` with Basic credentials answers
``{"token": <JWT>, "expires_in": 300}``: an RS256 JWT signed with a key made by ``openssl`` (signed by
``openssl dgst`` too: no crypto library needed), carrying its certificate in ``x5c`` so the registry
checks it against the ``rootcertbundle`` it is configured with, and granting the asked actions
(``pull``, ``push``) to the known users; anonymous requests get a token granting nothing.
"""

from __future__ import annotations

import base64
import http.server
import json
import secrets
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

ISSUER = "dockyard-test-issuer"
SERVICE = "dockyard-test-registry"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class TokenServer:
    def __init__(self, workdir: Path, users: dict[str, str]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.key, self.cert = workdir / "token.key", workdir / "token.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=dockyard token signer", "-keyout", str(self.key), "-out", str(self.cert)],
                       check=True, capture_output=True, timeout=60)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"], check=True,
                             capture_output=True, timeout=60).stdout
        self._x5c = base64.b64encode(der).decode()
        self.users = users
        self.issued: list[dict[str, Any]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._answer(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def registry_auth_config(self) -> str:
        """The ``auth:`` section of the registry's config."""
        return (f"auth:\n  token:\n    realm: {self.realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
                f"    rootcertbundle: {self.cert}\n")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, h: http.server.BaseHTTPRequestHandler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(h.path).query)
        user = ""
        header = h.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[len("Basic "):]).decode().partition(":")
            if self.users.get(user) != password:
                body = json.dumps({"details": "incorrect username or password"}).encode()
                h.send_response(401)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)
                return
        access = []
        for scope in " ".join(query.get("scope", [])).split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind == "repository" and user:
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        self.issued.append({"user": user, "scopes": query.get("scope", []), "service": query.get("service", [""])[0]})
        body = json.dumps({"token": self._jwt(user, access), "expires_in": 300}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _jwt(self, user: str, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {"iss": ISSUER, "sub": user, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                                   input=signing_input.encode(), check=True, capture_output=True, timeout=60).stdout
        return f"{signing_input}.{_b64(signature)}"
