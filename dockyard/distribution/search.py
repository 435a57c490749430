"""``docker search`` on the daemon's side (``GET /images/search``): a registry index's v1 search API.

Terms (dockerd's, from its ``registry`` package):

- The *index* a search term names is its first path component when that looks like a host
  (``127.0.0.1:5000/busybox``, ``registry.example/x``, ``localhost/x``); any other term searches
  Docker Hub's index, ``https://index.docker.io``.
- The index answers ``GET /v1/search?q=<remote term>&n=<limit>`` with
  ``{"num_results", "query", "results": [{"name", "description", "star_count", "is_official",
  "is_automated"}]}``. Registries that only speak the v2 API (Docker's own registry server, ours) have no
  search: that is an error from the index, as with dockerd.
- The daemon filters the results (``stars``, ``is-official``, ``is-automated``) and keeps ``limit``
  of them (1–100, default 25).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from dockyard.distribution.auth import Credentials, TokenCache
from dockyard.distribution.client import RepositoryClient, Unreachable
from dockyard.distribution.endpoints import Endpoint, RegistrySettings
from dockyard.errors import DockyardError, InvalidParameter
from dockyard.images.reference import DEFAULT_DOMAIN, LOCALHOST

HUB_INDEX = "https://index.docker.io"
DEFAULT_LIMIT = 25
MAX_LIMIT = 100
_MAX_ANSWER = 8 << 20  # bytes of JSON read from an index


def split_search_term(term: str) -> tuple[str, str]:
    """(index domain, remote term), as dockerd's ``splitReposSearchTerm``."""
    if "/" in term:
        first, rest = term.split("/", 1)
        if "." in first or ":" in first or first == LOCALHOST:
            return first, rest
    return DEFAULT_DOMAIN, term


def search_endpoints(settings: RegistrySettings, domain: str) -> list[Endpoint]:
    """Where the index of ``domain`` answers searches: Docker Hub's index for ``docker.io`` (mirrors
    serve no search), else the registry's own endpoints (HTTPS, then HTTP when insecure)."""
    if domain == DEFAULT_DOMAIN:
        return [Endpoint(HUB_INDEX, "index.docker.io", certs_dir=settings.certs_dir)]
    return [e for e in settings.endpoints(domain) if not e.mirror]


def check_limit(limit: int) -> int:
    """``limit`` as dockerd takes it: 0 is the default, anything else must be 1–100."""
    if limit == 0:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameter(f"limit {limit} is outside the range of [1, {MAX_LIMIT}]")
    return limit


def _wanted(filters: dict[str, list[str]]) -> tuple[int, bool | None, bool | None]:
    unknown = sorted(set(filters) - {"stars", "is-official", "is-automated"})
    if unknown:
        raise InvalidParameter(f"invalid filter '{unknown[0]}'")
    stars = 0
    for value in filters.get("stars", []):
        try:
            stars = max(stars, int(value))
        except ValueError:
            raise InvalidParameter(f"invalid filter 'stars={value}'") from None

    def flag(name: str) -> bool | None:
        values = filters.get(name, [])
        if not values:
            return None
        if values[-1] not in ("true", "false", "1", "0"):
            raise InvalidParameter(f"invalid filter '{name}={values[-1]}'")
        return values[-1] in ("true", "1")

    return stars, flag("is-official"), flag("is-automated")


def select(results: list[Any], filters: dict[str, list[str]], limit: int) -> list[dict[str, Any]]:
    """The results that pass ``filters``, at most ``limit``, in Docker's shape."""
    return _select(results, _wanted(filters), limit)


def _select(results: list[Any], wanted: tuple[int, bool | None, bool | None], limit: int) -> list[dict[str, Any]]:
    stars, official, automated = wanted
    out: list[dict[str, Any]] = []
    for r in results:
        if not isinstance(r, dict) or not isinstance(r.get("name"), str):
            continue
        entry = {"name": r["name"], "description": str(r.get("description") or ""),
                 "star_count": int(r.get("star_count") or 0), "is_official": bool(r.get("is_official")),
                 "is_automated": bool(r.get("is_automated"))}
        if entry["star_count"] < stars:
            continue
        if official is not None and entry["is_official"] != official:
            continue
        if automated is not None and entry["is_automated"] != automated:
            continue
        out.append(entry)
    return out[:limit]


def search(settings: RegistrySettings, tokens: TokenCache, credentials: Credentials, term: str,
           limit: int = 0, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """Search the index ``term`` names (see the module docstring)."""
    if not term:
        raise InvalidParameter("search term must not be empty")
    limit = check_limit(limit)
    wanted = _wanted(filters or {})  # a bad filter is refused before any request
    domain, remote = split_search_term(term)
    failure: DockyardError | None = None
    for endpoint in search_endpoints(settings, domain):
        client = RepositoryClient(endpoint, "", credentials, tokens)
        try:
            with client.request("GET", f"/v1/search?q={quote(remote, safe='')}&n={limit}", retry=False) as response:
                raw = response.read_limited(_MAX_ANSWER)
        except Unreachable as e:  # HTTPS refused by a plain-HTTP insecure index: try HTTP
            failure = e
            continue
        try:
            answer = json.loads(raw)
        except ValueError:
            raise DockyardError(f"the search answer of {endpoint.url} is not JSON") from None
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise DockyardError(f"the search answer of {endpoint.url} has no results")
        return _select(results, wanted, limit)
    assert failure is not None
    raise failure
