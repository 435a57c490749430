"""Registry authentication: challenges, credentials, and the bearer-token flow.

Terms (the Docker registry token spec, which OCI distribution registries follow):

- A *challenge* is a registry's ``WWW-Authenticate`` answer to an unauthenticated request:
  ``Basic realm="…"``, or ``Bearer realm="https://auth…/token",service="…",scope="…"``.
- *Credentials* are what a client sends in ``X-Registry-Auth`` (base64url JSON with ``username``,
  ``password``, ``serveraddress``, or an ``identitytoken``/``registrytoken``).
- A *scope* names what a token allows: ``repository:library/busybox:pull``. A token is fetched
  from the challenge's realm (with Basic credentials when there are some, anonymously otherwise)
  and cached per realm, service, scope and user until it expires.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from dataclasses import dataclass

from dockyard.errors import InvalidParameter

_TOKEN_TTL_DEFAULT = 60.0  # the token spec's default when a token server names no expiry
_TOKEN_EARLY = 5.0  # refresh this long before a token expires


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: its scheme (lower case) and parameters."""

    scheme: str
    params: dict[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` header (RFC 7235: schemes, each with ``key=value`` or
    ``key="quoted \\"value\\""`` parameters, separated by commas)."""
    out: list[Challenge] = []
    i, n = 0, len(header)
    current: Challenge | None = None
    while i < n:
        while i < n and header[i] in " \t,":
            i += 1
        start = i
        while i < n and header[i] not in " \t,=":
            i += 1
        token = header[start:i]
        if not token:
            break
        j = i
        while j < n and header[j] in " \t":
            j += 1
        if j < n and header[j] == "=" and current is not None:
            i = j + 1
            while i < n and header[i] in " \t":
                i += 1
            if i < n and header[i] == '"':
                i += 1
                value = []
                while i < n and header[i] != '"':
                    if header[i] == "\\" and i + 1 < n:
                        i += 1
                    value.append(header[i])
                    i += 1
                i += 1
                current.params[token.lower()] = "".join(value)
            else:
                start = i
                while i < n and header[i] not in " \t,":
                    i += 1
                current.params[token.lower()] = header[start:i]
        else:
            current = Challenge(token.lower(), {})
            out.append(current)
    return out


@dataclass(frozen=True)
class Credentials:
    """A user's credentials for one registry (empty: anonymous)."""

    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth refresh token, from a `docker login` to a token server
    registry_token: str = ""  # a bearer token to send as is

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)

    def basic(self) -> str:
        """The ``Authorization`` value for Basic auth."""
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def decode_registry_auth(header: str) -> Credentials:
    """Decode ``X-Registry-Auth`` (base64url of a JSON object, padded or not; empty: anonymous)."""
    header = header.strip()
    if not header:
        return Credentials()
    padded = header + "=" * (-len(header) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.encode())
        data = json.loads(raw or b"{}")
    except (ValueError, binascii.Error):
        raise InvalidParameter("invalid X-Registry-Auth header: not base64url-encoded JSON") from None
    if not isinstance(data, dict):
        raise InvalidParameter("invalid X-Registry-Auth header: not a JSON object")
    return credentials_of(data)


def credentials_of(data: dict[str, object]) -> Credentials:
    """Credentials out of Docker's AuthConfig JSON (``X-Registry-Auth`` or the ``POST /auth`` body)."""

    def text(key: str) -> str:
        value = data.get(key)
        return value if isinstance(value, str) else ""

    username, password = text("username"), text("password")
    if not username and text("auth"):
        try:
            username, _, password = base64.b64decode(text("auth")).decode().partition(":")
        except (ValueError, binascii.Error):
            raise InvalidParameter("invalid auth configuration: bad 'auth' field") from None
    return Credentials(username, password, text("identitytoken"), text("registrytoken"))


@dataclass
class _Token:
    value: str
    expires_at: float


class TokenCache:
    """Bearer tokens by (realm, service, scope, user), kept until shortly before they expire."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, str, str], _Token] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str, str]) -> str | None:
        with self._lock:
            token = self._tokens.get(key)
            if token is None or token.expires_at - _TOKEN_EARLY <= time.monotonic():
                self._tokens.pop(key, None)
                return None
            return token.value

    def put(self, key: tuple[str, str, str, str], value: str, expires_in: float | None) -> None:
        ttl = expires_in if expires_in and expires_in > 0 else _TOKEN_TTL_DEFAULT
        with self._lock:
            self._tokens[key] = _Token(value, time.monotonic() + ttl)

    def drop(self, key: tuple[str, str, str, str]) -> None:
        with self._lock:
            self._tokens.pop(key, None)
