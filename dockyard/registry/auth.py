"""Who may do what: htpasswd (bcrypt) Basic auth, or Bearer tokens this server issues itself.

Terms:
- *account*: a user of the htpasswd file (``user:$2y$…`` lines; only bcrypt hashes are accepted).
- *action*: what a request needs on a repository: ``pull`` (GET, HEAD), ``push`` (POST, PUT, PATCH)
  or ``delete`` (DELETE); a cross-repository mount needs ``pull`` on the source too. The catalog
  needs ``registry:catalog:*``.
- *access rules*: ``[{"account": "alice" | "*", "name": "alice/*", "actions": ["pull", "push"]}]``;
  ``name`` is an ``fnmatch`` pattern of repository names. Without rules every account may do
  everything, as with Docker's registry and htpasswd.
- *Basic mode*: each request carries ``Authorization: Basic``; no or wrong credentials answer 401
  ``UNAUTHORIZED`` with ``WWW-Authenticate: Basic``, a known account lacking the action 403 ``DENIED``.
- *token mode* (the Docker registry token flow): a request without a valid token answers 401 with
  ``WWW-Authenticate: Bearer realm="<this server>/token",service=…,scope=repository:<name>:<actions>``;
  the client fetches ``GET /token?service=…&scope=…`` with Basic credentials (or none: anonymous)
  and gets ``{"token": <JWT>, "expires_in": …}`` granting the asked actions its rules allow; the
  JWT is HS256-signed with a secret only this server knows. Insufficient scope is a 401 again, its
  challenge saying ``error="insufficient_scope"``.
- *OAuth2 grant* (``POST /token``, form-encoded, as Docker's client and distribution's token server
  speak it): ``grant_type=password`` with ``username``/``password``, or ``grant_type=refresh_token``
  with ``refresh_token``, plus ``service``, ``scope`` (space-separated) and ``client_id``; answers
  ``{"access_token", "token", "expires_in", "issued_at", "scope"}``. A *refresh token* (what
  ``docker login`` keeps as its identity token) is given to a password grant with
  ``access_type=offline`` (and to ``GET /token?offline_token=true`` with credentials): a JWT of this
  server's, ``typ`` ``refresh``, naming the account, valid for :data:`REFRESH_LIFETIME`; it is worth
  nothing as an access token, and it stops working when its account leaves the htpasswd file.
- *external issuer mode* (``auth.token`` in the config, see ``issuer.py``): tokens come from another
  token server; this one serves no ``/token``, needs no htpasswd, and its challenge names that
  server's realm and service.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.registry.errors import SpecError
from dockyard.registry.issuer import ExternalIssuer

TOKEN_LIFETIME = 300
REFRESH_LIFETIME = 30 * 24 * 3600
SERVICE = "dockyard-registry"


@dataclass(frozen=True)
class Need:
    """What a request needs: ``actions`` on resource ``kind``:``name`` (``repository`` or ``registry``)."""

    kind: str
    name: str
    actions: tuple[str, ...]

    @property
    def scope(self) -> str:
        return f"{self.kind}:{self.name}:{','.join(self.actions)}"


@dataclass
class AccessRule:
    account: str
    name: str
    actions: list[str]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Authorizer:
    """Checks requests against an htpasswd file and access rules, in ``mode`` ``basic`` or ``token``."""

    htpasswd: Path | None
    mode: str = "basic"
    realm: str = "dockyard-registry"
    rules: list[AccessRule] | None = None
    scheme: str = "http"
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _verified: dict[str, bool] = field(default_factory=dict)
    external: ExternalIssuer | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Authorizer:
        """From the config file's ``auth`` object: ``htpasswd`` (path), ``mode``, ``realm``, ``access``,
        or ``token`` (an external issuer: token mode, no htpasswd needed)."""
        if config.get("token"):
            return cls(None, "token", external=ExternalIssuer.from_config(config["token"]))
        mode = config.get("mode", "basic")
        if mode not in ("basic", "token"):
            raise ValueError(f"auth mode {mode!r}: want basic or token")
        rules = None
        if "access" in config:
            rules = [AccessRule(str(r["account"]), str(r["name"]), [str(a) for a in r["actions"]])
                     for r in config["access"]]
        return cls(Path(config["htpasswd"]), mode, str(config.get("realm", "dockyard-registry")), rules)

    @property
    def serves_tokens(self) -> bool:
        """Whether this server answers ``/token`` (token mode with no external issuer)."""
        return self.mode == "token" and self.external is None

    # -- accounts --------------------------------------------------------------------------------

    def _hashes(self) -> dict[str, bytes]:
        """The htpasswd file, read anew each time so edits apply at once."""
        found: dict[str, bytes] = {}
        if self.htpasswd is None:
            return found
        for line in self.htpasswd.read_text().splitlines():
            user, sep, hashed = line.strip().partition(":")
            if sep and hashed.startswith(("$2y$", "$2b$", "$2a$")):
                found[user] = hashed.encode()
        return found

    def account(self, authorization: str) -> str | None:
        """The account of a valid ``Basic`` header, or None. bcrypt is slow by design: answers are cached
        by a hash of the header and the stored hash, so a changed password is checked anew."""
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return self.password_account(user, password)

    def password_account(self, user: str, password: str) -> str | None:
        """``user`` when ``password`` is theirs, else None."""
        stored = self._hashes().get(user)
        if stored is None:
            return None
        key = hashlib.sha256(f"{user}:{password}".encode() + b"\0" + stored).hexdigest()
        if key not in self._verified:
            import bcrypt

            self._verified[key] = bcrypt.checkpw(password.encode(), stored)
        return user if self._verified[key] else None

    def allowed(self, account: str, need: Need) -> tuple[str, ...]:
        """The actions of ``need`` the rules give ``account`` (an empty account: anonymous)."""
        if need.kind == "registry":
            return need.actions if account else ()
        if self.rules is None:
            return need.actions if account else ()
        granted: set[str] = set()
        for rule in self.rules:
            if (rule.account == account or (rule.account == "*" and account)) and fnmatch.fnmatchcase(need.name, rule.name):
                granted |= set(rule.actions) if "*" not in rule.actions else set(need.actions)
        return tuple(a for a in need.actions if a in granted)

    # -- requests ----------------------------------------------------------------------------------

    def check(self, headers: dict[str, str], needs: list[Need]) -> None:
        """Pass, or raise the 401/403 spec error with its challenge for a request needing ``needs``."""
        authorization = headers.get("authorization", "")
        if self.mode == "basic":
            account = self.account(authorization)
            if account is None:
                raise _challenge("UNAUTHORIZED", f'Basic realm="{self.realm}"')
            for need in needs:
                if self.allowed(account, need) != need.actions:
                    raise SpecError("DENIED", detail=[{"Type": need.kind, "Name": need.name,
                                                       "Action": ",".join(need.actions)}])
            return
        scheme, _, token = authorization.partition(" ")
        claims = self._verify(token.strip()) if scheme.lower() == "bearer" else None
        base = self.external.challenge_base() if self.external is not None else \
            f'Bearer realm="{self._token_url(headers)}",service="{SERVICE}"'
        scope = " ".join(n.scope for n in needs)
        if claims is None:
            raise _challenge("UNAUTHORIZED", base + (f',scope="{scope}"' if scope else ""))
        granted = claims.get("access") or []
        for need in needs:
            have = {a for g in granted if g.get("type") == need.kind and g.get("name") == need.name
                    for a in g.get("actions", [])}
            if not set(need.actions) <= have:
                raise _challenge("UNAUTHORIZED", base + f',scope="{scope}",error="insufficient_scope"')

    def grants(self, headers: dict[str, str], need: Need) -> bool:
        """Whether the request's credentials (Basic, or a Bearer token) give ``need``, without raising."""
        try:
            self.check(headers, [need])
        except SpecError:
            return False
        return True

    def _token_url(self, headers: dict[str, str]) -> str:
        if self.realm.startswith(("http://", "https://")):
            return self.realm
        return f"{self.scheme}://{headers.get('host', '127.0.0.1')}/token"

    def issue(self, headers: dict[str, str], scopes: list[str], service: str, offline: bool = False) -> dict[str, Any]:
        """Answer ``GET /token``: a token for what the account may do of ``scopes`` (and a refresh token
        when ``offline`` and the request has credentials)."""
        account = ""
        if headers.get("authorization"):
            found = self.account(headers["authorization"])
            if found is None:
                raise SpecError("UNAUTHORIZED", "incorrect username or password")
            account = found
        answer = self._access_token(account, scopes, service)
        if offline and account:
            answer["refresh_token"] = self._refresh_token(account)
        return answer

    def grant(self, form: dict[str, list[str]]) -> dict[str, Any]:
        """Answer ``POST /token``: the OAuth2 password or refresh_token grant (see the module docstring)."""
        def arg(name: str) -> str:
            values = form.get(name)
            return values[-1] if values else ""

        grant_type, service = arg("grant_type"), arg("service")
        scopes = form.get("scope", [])
        if grant_type == "password":
            account = self.password_account(arg("username"), arg("password")) if arg("username") else None
            if account is None:
                raise SpecError("UNAUTHORIZED", "incorrect username or password")
            answer = self._access_token(account, scopes, service)
            if arg("access_type") == "offline":
                answer["refresh_token"] = self._refresh_token(account)
            return answer
        if grant_type == "refresh_token":
            claims = self._verify(arg("refresh_token"), typ="refresh")
            account = claims.get("sub") if claims is not None else None
            if not isinstance(account, str) or account not in self._hashes():
                raise SpecError("UNAUTHORIZED", "invalid refresh token")
            answer = self._access_token(account, scopes, service)
            answer["refresh_token"] = arg("refresh_token")
            return answer
        raise SpecError("UNSUPPORTED", f"unknown grant_type {grant_type[:50]!r}", status=400)

    def _access_token(self, account: str, scopes: list[str], service: str) -> dict[str, Any]:
        access = []
        for scope in " ".join(scopes).split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind not in ("repository", "registry") or not name:
                continue
            given = self.allowed(account, Need(kind, name, tuple(actions.split(","))))
            if given:
                access.append({"type": kind, "name": name, "actions": list(given)})
        now = int(time.time())
        claims = {"iss": SERVICE, "sub": account, "aud": service or SERVICE, "exp": now + TOKEN_LIFETIME,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        token = self._sign(claims)
        granted = " ".join(f"{a['type']}:{a['name']}:{','.join(a['actions'])}" for a in access)
        return {"token": token, "access_token": token, "expires_in": TOKEN_LIFETIME, "scope": granted,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}

    def _refresh_token(self, account: str) -> str:
        now = int(time.time())
        return self._sign({"iss": SERVICE, "sub": account, "typ": "refresh", "exp": now + REFRESH_LIFETIME,
                           "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8)})

    def _sign(self, claims: dict[str, Any]) -> str:
        signing_input = f"{_b64(json.dumps({'typ': 'JWT', 'alg': 'HS256'}).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = hmac.new(self.secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"

    def _verify(self, token: str, typ: str = "access") -> dict[str, Any] | None:
        """The claims of a valid, unexpired token: an external issuer's, or one this server signed whose
        ``typ`` (``refresh``, or none for an access token) is ``typ``; else None."""
        if self.external is not None:
            return self.external.verify(token) if typ == "access" else None
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = hmac.new(self.secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(expected, _unb64(parts[2])):
                return None
            claims = json.loads(_unb64(parts[1]))
        except (binascii.Error, ValueError):
            return None
        now = time.time()
        if not isinstance(claims, dict) or not (claims.get("nbf", 0) <= now < claims.get("exp", 0)):
            return None
        if claims.get("typ", "access") != typ:
            return None
        return claims


def _challenge(code: str, header: str) -> SpecError:
    error = SpecError(code)
    error.headers = [("WWW-Authenticate", header)]
    return error
