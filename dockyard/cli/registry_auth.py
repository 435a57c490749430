"""Registry credentials the way Docker's CLI keeps them: ``config.json`` and credential helpers.

Terms:

- The *config file* is ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``). Its
  ``auths`` map a registry key to ``{"auth": base64("user:password")}`` (or an ``identitytoken``);
  ``credsStore`` names a helper for every registry and ``credHelpers`` one per registry.
- A *credential helper* ``docker-credential-<name>`` takes ``get``/``store``/``erase`` as its
  argument and JSON (or the server address) on stdin, as in docker-credential-helpers.
- The *registry key* of Docker Hub is ``https://index.docker.io/v1/``; of any other registry its
  ``host[:port]``.
- ``X-Registry-Auth`` is the base64url JSON of ``{"username", "password", "serveraddress"}``
  (or ``identitytoken``) that the CLI sends with a pull or push.
"""

from __future__ import annotations

import base64
import os
import subprocess

from dockyard.cli import jsoncodec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

INDEX_SERVER = "https://index.docker.io/v1/"
_HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")


class CredentialError(Exception):
    """A credential helper or the config file failed."""


def config_dir() -> str:
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def config_path() -> str:
    return os.path.join(config_dir(), "config.json")


def registry_of(reference: str) -> str:
    """The registry domain of an image reference, as Docker splits it (``busybox`` → ``docker.io``)."""
    name = reference.split("@", 1)[0]
    first, slash, _ = name.partition("/")
    if slash and (first == "localhost" or "." in first or ":" in first or first.lower() != first):
        return "docker.io" if first == "index.docker.io" else first
    return "docker.io"


def registry_key(server: str) -> str:
    """The ``auths`` key for a registry named as a user writes it (URL or host)."""
    host = server
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme):]
    host = host.split("/", 1)[0]
    return INDEX_SERVER if host in _HUB_NAMES or not host else host


def load_config() -> dict[str, Any]:
    try:
        with open(config_path(), encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise CredentialError(f"reading {config_path()}: {e.strerror}") from None
    try:
        data = jsoncodec.loads(text) if text.strip() else {}
    except ValueError as e:
        raise CredentialError(f"{config_path()}: {e}") from None
    return data if isinstance(data, dict) else {}


def save_config(data: dict[str, Any]) -> None:
    os.makedirs(config_dir(), mode=0o700, exist_ok=True)
    tmp = config_path() + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(jsoncodec.dumps(data, indent="\t") + "\n")
    os.replace(tmp, config_path())


def _helper_of(config: dict[str, Any], key: str) -> str:
    helpers = config.get("credHelpers") or {}
    host = key if key != INDEX_SERVER else "docker.io"
    if isinstance(helpers, dict) and isinstance(helpers.get(host) or helpers.get(key), str):
        return str(helpers.get(host) or helpers.get(key))
    store = config.get("credsStore")
    return store if isinstance(store, str) else ""


def _run_helper(helper: str, action: str, payload: str) -> str:
    program = f"docker-credential-{helper}"
    try:
        done = subprocess.run([program, action], input=payload, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise CredentialError(f'error getting credentials - err: exec: "{program}": executable file not found '
                              "in $PATH") from None
    if done.returncode != 0:
        text = (done.stdout or done.stderr).strip()
        if action == "get" and "credentials not found" in text.lower():
            return ""
        raise CredentialError(f"error {action}ing credentials - err: {program} {action}: {text}")
    return done.stdout


def credentials(server: str) -> dict[str, str]:
    """The stored credentials for ``server`` (``{}`` when there are none)."""
    key = registry_key(server)
    config = load_config()
    helper = _helper_of(config, key)
    if helper:
        out = _run_helper(helper, "get", key)
        if not out.strip():
            return {}
        try:
            found = jsoncodec.loads(out)
        except ValueError:
            raise CredentialError(f"docker-credential-{helper} get: invalid answer") from None
        username, secret = str(found.get("Username") or ""), str(found.get("Secret") or "")
        if username == "<token>":
            return {"identitytoken": secret, "serveraddress": key}
        return {"username": username, "password": secret, "serveraddress": key}
    auths = config.get("auths") or {}
    entry = next((v for k, v in auths.items() if registry_key(k) == key), None) if isinstance(auths, dict) else None
    if not isinstance(entry, dict):
        return {}
    found_auth: dict[str, str] = {"serveraddress": key}
    if entry.get("auth"):
        try:
            username, _, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
        except ValueError:
            raise CredentialError(f"{config_path()}: invalid auth for {key}") from None
        found_auth.update(username=username, password=password)
    if entry.get("identitytoken"):
        found_auth["identitytoken"] = str(entry["identitytoken"])
    return found_auth if len(found_auth) > 1 else {}


def store(server: str, username: str, password: str, identity_token: str = "") -> str:
    """Keep credentials for ``server`` (in its helper, else base64 in ``config.json``); returns where."""
    key = registry_key(server)
    config = load_config()
    helper = _helper_of(config, key)
    if helper:
        secret_user, secret = ("<token>", identity_token) if identity_token else (username, password)
        _run_helper(helper, "store", jsoncodec.dumps({"ServerURL": key, "Username": secret_user, "Secret": secret}))
        auths = config.setdefault("auths", {})
        auths[key] = {}
        save_config(config)
        return f"the {helper} credential helper"
    entry: dict[str, str] = {"auth": base64.b64encode(f"{username}:{'' if identity_token else password}".encode())
                             .decode()}
    if identity_token:
        entry["identitytoken"] = identity_token
    config.setdefault("auths", {})[key] = entry
    save_config(config)
    return config_path()


def erase(server: str) -> bool:
    """Forget the credentials for ``server``; returns whether there were any."""
    key = registry_key(server)
    config = load_config()
    helper = _helper_of(config, key)
    auths = config.get("auths") or {}
    found = False
    for k in [k for k in auths if registry_key(k) == key]:
        del auths[k]
        found = True
    if helper:
        try:
            _run_helper(helper, "erase", key)
            found = True
        except CredentialError:
            pass
    if found:
        save_config(config)
    return found


def header(credentials_dict: dict[str, str]) -> str:
    """``X-Registry-Auth`` for these credentials (base64url JSON)."""
    return base64.urlsafe_b64encode(jsoncodec.dumps(credentials_dict).encode()).decode()


def header_for(reference: str) -> dict[str, str]:
    """The request headers that carry the stored credentials for ``reference``'s registry."""
    found = credentials(registry_of(reference))
    return {"X-Registry-Auth": header(found)} if found else {}
