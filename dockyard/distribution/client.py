"""An HTTP client for one repository of one registry (OCI distribution API / Docker registry v2).

It speaks plain ``http.client`` (no third-party HTTP stack in the engine): one connection per
request, redirects followed (``Authorization`` dropped when the host changes: blob redirects go
to storage that must not see registry credentials), and the registry's auth challenges answered:

1. a request goes out with the token cached for this repository's scope, if any;
2. a ``401`` names the scheme: ``Basic`` (credentials sent as is) or ``Bearer`` (a token fetched
   from the realm, :mod:`dockyard.distribution.auth`), and the request is sent once more;
3. a ``401`` on a cached token drops it and fetches a fresh one (a token revoked early).

Idempotent requests are retried with back-off on connection errors, ``5xx`` and ``429``
(``Retry-After`` honoured, capped). Registry errors (``{"errors": [{"code", "message"}]}``)
become messages as Docker prints them: ``manifest unknown: manifest unknown``.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from typing import BinaryIO

from dockyard.distribution.auth import Challenge, Credentials, TokenCache, parse_challenges
from dockyard.distribution.endpoints import Endpoint, tls_context
from dockyard.errors import DockyardError, InvalidParameter

_TIMEOUT = 60.0
_MAX_REDIRECTS = 5
RETRIES = 3
_BACKOFF = 0.25  # seconds before the first retry; doubled each time
_MAX_RETRY_AFTER = 5.0
_MAX_ERROR_BODY = 64 << 10
_MAX_TOKEN_BODY = 1 << 20
_USER_AGENT = "dockyard/0.1.0"
_SEND_BLOCK = 1 << 20  # bytes per send of a file body (http.client sends 8 KiB at a time by default)

Body = bytes | BinaryIO | None


class RegistryError(DockyardError):
    """A registry answered with an error status; ``status`` is its HTTP status, ``codes`` its error codes."""

    def __init__(self, message: str, http_status: int, codes: list[str]) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.codes = codes
        if http_status == 404:
            self.status = 404
        elif http_status in (401, 403):
            self.status = 401


class TokenRefused(RegistryError):
    """The token server refused the credentials (or anonymous access)."""


class Unreachable(DockyardError):
    """The registry could not be reached (connection refused, TLS failure, dropped connection)."""


class TLSFailure(Unreachable):
    """The TLS handshake failed (a bad certificate, or a registry that speaks plain HTTP): not retried."""


@dataclass
class Response:
    """A registry's answer whose body has not been read yet; ``close`` it."""

    status: int
    headers: http.client.HTTPMessage
    raw: http.client.HTTPResponse
    connection: http.client.HTTPConnection

    def read(self, n: int = -1) -> bytes:
        return self.raw.read(n) if n >= 0 else self.raw.read()

    def read_limited(self, limit: int) -> bytes:
        """The whole body; an error when it is longer than ``limit``."""
        data = self.raw.read(limit + 1)
        if len(data) > limit:
            raise InvalidParameter(f"registry answer larger than {limit} bytes")
        return data

    def close(self) -> None:
        self.raw.close()
        self.connection.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def error_message(status: int, reason: str, body: bytes) -> tuple[str, list[str]]:
    """Docker's text for a registry error answer, and the error codes it carries."""
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        doc = None
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if isinstance(errors, list) and errors:
        parts, codes = [], []
        for e in errors:
            if not isinstance(e, dict):
                continue
            code = str(e.get("code") or "UNKNOWN")
            codes.append(code)
            parts.append(f"{code.lower().replace('_', ' ')}: {e.get('message') or ''}".rstrip(": "))
        if parts:
            return "; ".join(parts), codes
    if isinstance(doc, dict) and isinstance(doc.get("details"), str):  # some token servers
        return doc["details"], []
    return f"received unexpected HTTP status: {status} {reason}", []


class RepositoryClient:
    """Requests to repository ``repository`` at ``endpoint`` with ``credentials`` (see the module
    docstring); ``actions`` are the token scope's actions (``pull``, or ``pull,push``)."""

    def __init__(self, endpoint: Endpoint, repository: str, credentials: Credentials, tokens: TokenCache,
                 actions: str = "pull") -> None:
        self.endpoint = endpoint
        self.repository = repository
        self.credentials = credentials
        self.tokens = tokens
        self.actions = actions
        self.extra_scopes: list[str] = []  # e.g. pull on the repository a blob is mounted from
        self._authorization: str | None = None
        self._token_key: tuple[str, str, str, str] | None = None

    # -- requests ------------------------------------------------------------------------

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, body: Body = None,
                *, ok: tuple[int, ...] = (200,), retry: bool = True) -> Response:
        """Send ``method path`` (a path under the endpoint, or an absolute URL); answer with a status
        in ``ok`` or raise :class:`RegistryError` / :class:`Unreachable`."""
        url = path if "://" in path else self.endpoint.url + path
        attempts = RETRIES if retry and method in ("GET", "HEAD") else 1
        delay = _BACKOFF
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._authorized(method, url, dict(headers or {}), body)
            except Unreachable as e:
                if last or isinstance(e, TLSFailure):
                    raise
                time.sleep(delay)
                delay *= 2
                continue
            if response.status in ok:
                return response
            transient = response.status >= 500 or response.status == 429
            if transient and not last:
                wait = _retry_after(response.headers.get("Retry-After"), delay)
                response.close()
                time.sleep(wait)
                delay *= 2
                continue
            raise self._error(response)
        raise AssertionError("unreachable")

    def _error(self, response: Response) -> RegistryError:
        try:
            body = response.read(_MAX_ERROR_BODY)
        except (OSError, http.client.HTTPException):
            body = b""
        finally:
            response.close()
        message, codes = error_message(response.status, response.raw.reason, body)
        return RegistryError(message, response.status, codes)

    def _authorized(self, method: str, url: str, headers: dict[str, str], body: Body) -> Response:
        if self._authorization is None and self.credentials.registry_token:
            self._authorization = "Bearer " + self.credentials.registry_token
        for attempt in range(3):  # anonymous, answered, and once more with a fresh token
            if self._authorization:
                headers["Authorization"] = self._authorization
            if attempt and body is not None and not isinstance(body, bytes):
                body.seek(0)  # a file sent once already: send it again from its start
            response = self._send(method, url, headers, body)
            if response.status != 401 or attempt == 2:
                return response
            refused = headers.get("Authorization")
            if self._token_key is not None:  # the token we sent was refused: never reuse it
                self.tokens.drop(self._token_key)
                self._token_key = None
            authorization = self._answer(parse_challenges(response.headers.get("WWW-Authenticate", "")))
            if authorization is None or authorization == refused:
                return response
            response.close()
            self._authorization = authorization
        raise AssertionError("unreachable")

    def _answer(self, challenges: list[Challenge]) -> str | None:
        """The ``Authorization`` that answers the first challenge we support, or None."""
        for challenge in challenges:
            if challenge.scheme == "bearer" and challenge.params.get("realm"):
                return "Bearer " + self._token(challenge)
            if challenge.scheme == "basic":
                if self.credentials.anonymous or not self.credentials.username:
                    return None
                return self.credentials.basic()
        return None

    def _token(self, challenge: Challenge) -> str:
        realm = challenge.params["realm"]
        service = challenge.params.get("service", "")
        scopes = [f"repository:{self.repository}:{self.actions}"] if self.repository else []  # none: a login
        scopes += self.extra_scopes
        scope = " ".join(scopes)
        key = (realm, service, scope, self.credentials.username or self.credentials.identity_token[:16])
        cached = self.tokens.get(key)
        if cached is not None:
            self._token_key = key
            return cached
        query = [("scope", s) for s in scopes]
        if service:
            query.insert(0, ("service", service))
        headers: dict[str, str] = {}
        body: bytes | None = None
        method = "GET"
        if self.credentials.identity_token:  # an OAuth2 refresh token from an earlier login
            method = "POST"
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urllib.parse.urlencode([("grant_type", "refresh_token"), ("service", service),
                                           ("client_id", "dockyard"), *(q for q in query if q[0] == "scope"),
                                           ("refresh_token", self.credentials.identity_token)]).encode()
            url = realm
        else:
            url = realm + (("&" if "?" in realm else "?") + urllib.parse.urlencode(query) if query else "")
            if self.credentials.username:
                headers["Authorization"] = self.credentials.basic()
        response = self._send(method, url, headers, body)
        try:
            if response.status != 200:
                data = response.read(_MAX_ERROR_BODY)
                message, codes = error_message(response.status, response.raw.reason, data)
                if response.status in (401, 403):
                    if not codes:
                        message = ("unauthorized: incorrect username or password" if self.credentials.username
                                   else f"unauthorized: {message}")
                    raise TokenRefused(message, 401, codes or ["UNAUTHORIZED"])
                raise RegistryError(f"getting a token from {realm}: {message}", response.status, codes)
            try:
                doc = json.loads(response.read_limited(_MAX_TOKEN_BODY))
            except ValueError:
                raise RegistryError(f"token server {realm} answered with invalid JSON", 502, []) from None
        finally:
            response.close()
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token server {realm} answered without a token", 502, [])
        expires = doc.get("expires_in")
        self.tokens.put(key, token, float(expires) if isinstance(expires, int | float) else None)
        self._token_key = key
        return token

    def _send(self, method: str, url: str, headers: dict[str, str], body: Body) -> Response:
        """One exchange, following redirects."""
        first_host = urllib.parse.urlsplit(url).netloc
        for _ in range(_MAX_REDIRECTS + 1):
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidParameter(f"registry gave an unusable URL: {url}")
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
            conn = self._connection(parts.scheme, parts.netloc)
            sent = {"User-Agent": _USER_AGENT, **headers}
            if parts.netloc != first_host:
                sent.pop("Authorization", None)
            try:
                conn.request(method, target, body=body, headers=sent)
                raw = conn.getresponse()
            except ssl.SSLError as e:
                conn.close()
                raise TLSFailure(f"{method.capitalize()} \"{url}\": {_describe(e)}") from None
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise Unreachable(f"{method.capitalize()} \"{url}\": {_describe(e)}") from None
            if raw.status in (301, 302, 303, 307, 308) and raw.getheader("Location"):
                url = urllib.parse.urljoin(url, raw.getheader("Location") or "")
                raw.close()
                conn.close()
                if raw.status == 303:
                    method, body = "GET", None
                continue
            return Response(raw.status, raw.headers, raw, conn)
        raise Unreachable(f"{method.capitalize()} \"{url}\": too many redirects")

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        if scheme == "http":
            return http.client.HTTPConnection(netloc, timeout=_TIMEOUT, blocksize=_SEND_BLOCK)
        same_registry = netloc == urllib.parse.urlsplit(self.endpoint.url).netloc
        verify = self.endpoint.verify_tls if same_registry else True
        host = self.endpoint.host if same_registry else netloc
        return http.client.HTTPSConnection(netloc, timeout=_TIMEOUT, blocksize=_SEND_BLOCK,
                                           context=tls_context(host, verify, self.endpoint.certs_dir))


def _retry_after(header: str | None, default: float) -> float:
    try:
        return min(max(float(header or ""), 0.0), _MAX_RETRY_AFTER)
    except ValueError:
        return default


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text[0].lower() + text[1:] if text else text
