"""``docker login`` on the daemon's side (``POST /auth``): check credentials against a registry.

dockerd's way: ``GET /v2/`` at the registry (Docker Hub for an empty or ``index.docker.io`` server
address); a ``Basic`` challenge is answered with the credentials and must then give ``200``; a
``Bearer`` challenge must yield a token for them from its realm (no scope).
"""

from __future__ import annotations

from dockyard.distribution.auth import Credentials, TokenCache
from dockyard.distribution.client import RegistryError, RepositoryClient, TokenRefused, Unreachable
from dockyard.distribution.endpoints import RegistrySettings
from dockyard.errors import DockyardError, InvalidParameter, Unauthorized
from dockyard.images.reference import DEFAULT_DOMAIN, DOMAIN_AND_PORT_RE

_HUB_ADDRESSES = ("", "docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/",
                  "https://index.docker.io/v1", "index.docker.io/v1/")


def registry_domain(server_address: str) -> str:
    """The registry a login names: ``https://index.docker.io/v1/`` (or nothing) is ``docker.io``."""
    if server_address in _HUB_ADDRESSES:
        return DEFAULT_DOMAIN
    host = server_address
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme):]
    host = host.split("/", 1)[0] or DEFAULT_DOMAIN
    if not DOMAIN_AND_PORT_RE.fullmatch(host):
        raise InvalidParameter(f"invalid registry address {server_address!r}: {host!r} is not a host name")
    return host


def login(settings: RegistrySettings, tokens: TokenCache, credentials: Credentials, server_address: str) -> None:
    """Raise :class:`Unauthorized` unless the registry accepts ``credentials``."""
    domain = registry_domain(server_address)
    endpoints = [e for e in settings.endpoints(domain) if not e.mirror]
    failure: DockyardError | None = None
    for endpoint in endpoints:
        client = RepositoryClient(endpoint, "", credentials, tokens)
        try:
            client.request("GET", "/v2/", retry=False).close()
            return
        except Unreachable as e:  # HTTPS refused by a plain-HTTP insecure registry: try HTTP
            failure = e
        except TokenRefused as e:  # dockerd's wording
            raise Unauthorized(f'Get "{endpoint.url}/v2/": {e.message}') from None
        except RegistryError as e:
            if e.http_status == 401:
                raise Unauthorized(f"login attempt to {endpoint.url}/v2/ failed with status: 401 Unauthorized") from None
            raise
    assert failure is not None
    raise failure
