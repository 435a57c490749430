"""Where a repository is pulled from: the daemon's registry settings and the endpoints they give.

Terms (dockerd's, from its ``registry`` package):

- A registry *domain* is the first part of a normalised reference: ``docker.io``,
  ``127.0.0.1:5000``. ``docker.io`` is served by ``https://registry-1.docker.io``.
- A *mirror* (``registry-mirrors`` in ``daemon.json``) stands in for ``docker.io`` only: pulls of
  ``docker.io`` repositories try each mirror first, then Docker Hub itself.
- An *insecure* registry (``insecure-registries``: CIDRs or ``host[:port]``; ``127.0.0.0/8`` always)
  is tried over HTTPS without verifying its certificate, then over plain HTTP.
- A secure registry's TLS uses the system CAs plus ``<certs-dir>/<host[:port]>/*.crt`` (default
  ``/etc/docker/certs.d``), and a client certificate from ``*.cert`` + ``*.key`` there, as dockerd does.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidParameter
from dockyard.images.reference import DEFAULT_DOMAIN

DEFAULT_HUB = "https://registry-1.docker.io"
DEFAULT_CERTS_DIR = Path("/etc/docker/certs.d")
DEFAULT_INSECURE_CIDR = "127.0.0.0/8"
DEFAULT_MAX_CONCURRENT_DOWNLOADS = 3
DEFAULT_MAX_CONCURRENT_UPLOADS = 5


@dataclass(frozen=True)
class Endpoint:
    """One base URL to try for a registry: ``scheme://host[:port]`` (a mirror may add a path)."""

    url: str
    host: str  # the registry's host[:port], naming its certs.d directory
    verify_tls: bool = True
    mirror: bool = False
    certs_dir: Path = DEFAULT_CERTS_DIR

    @property
    def plain_http(self) -> bool:
        return self.url.startswith("http://")

    def tls_context(self) -> ssl.SSLContext:
        return tls_context(self.host, self.verify_tls, self.certs_dir)


def tls_context(host: str, verify: bool, certs_dir: Path = DEFAULT_CERTS_DIR) -> ssl.SSLContext:
    """System CAs plus the host's certs.d CAs and client certificate; no checks when not ``verify``."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    directory = certs_dir / host
    if directory.is_dir():
        for ca in sorted(directory.glob("*.crt")):
            context.load_verify_locations(cafile=str(ca))
        for cert in sorted(directory.glob("*.cert")):
            key = cert.with_suffix(".key")
            if not key.exists():
                raise InvalidParameter(f"missing key {key.name} for client certificate {cert.name}")
            context.load_cert_chain(str(cert), str(key))
    return context


@dataclass
class RegistrySettings:
    """The daemon's registry settings (``daemon.json``: ``registry-mirrors``, ``insecure-registries``,
    ``max-concurrent-downloads``, ``max-concurrent-uploads``)."""

    mirrors: list[str] = field(default_factory=list)
    insecure_registries: list[str] = field(default_factory=list)
    max_concurrent_downloads: int = DEFAULT_MAX_CONCURRENT_DOWNLOADS
    max_concurrent_uploads: int = DEFAULT_MAX_CONCURRENT_UPLOADS
    certs_dir: Path = DEFAULT_CERTS_DIR

    def __post_init__(self) -> None:
        self.mirrors = [validate_mirror(m) for m in self.mirrors]
        self._cidrs: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
            ipaddress.ip_network(DEFAULT_INSECURE_CIDR)]
        self._insecure_hosts: list[str] = []
        for entry in self.insecure_registries:
            if "://" in entry:
                raise InvalidParameter(f"insecure registry {entry} should not contain '://'")
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                self._insecure_hosts.append(entry.rstrip("/"))
                continue
            if "/" in entry and network not in self._cidrs:
                self._cidrs.append(network)
            elif "/" not in entry:
                self._insecure_hosts.append(entry)
        for name, value in (("max-concurrent-downloads", self.max_concurrent_downloads),
                            ("max-concurrent-uploads", self.max_concurrent_uploads)):
            if not isinstance(value, int) or value < 1:
                raise InvalidParameter(f"invalid {name} value: {value}")

    def is_secure(self, host: str) -> bool:
        """Whether ``host[:port]`` must be reached over verified TLS (dockerd's ``isSecureIndex``)."""
        if host in self._insecure_hosts:
            return False
        name = host
        if name.startswith("["):
            name = name[1:].partition("]")[0]
        elif name.count(":") == 1:
            name = name.partition(":")[0]
        if name == "localhost":
            name = "127.0.0.1"
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return True
        return not any(address in cidr for cidr in self._cidrs)

    def endpoints(self, domain: str) -> list[Endpoint]:
        """The base URLs to try for ``domain``, in order."""
        out: list[Endpoint] = []
        if domain == DEFAULT_DOMAIN:
            for mirror in self.mirrors:
                host = mirror.split("://", 1)[1].split("/", 1)[0]
                out.append(Endpoint(mirror.rstrip("/"), host, verify_tls=self.is_secure(host), mirror=True,
                                    certs_dir=self.certs_dir))
            out.append(Endpoint(DEFAULT_HUB, DEFAULT_DOMAIN, certs_dir=self.certs_dir))
            return out
        if self.is_secure(domain):
            return [Endpoint(f"https://{domain}", domain, certs_dir=self.certs_dir)]
        return [Endpoint(f"https://{domain}", domain, verify_tls=False, certs_dir=self.certs_dir),
                Endpoint(f"http://{domain}", domain, verify_tls=False, certs_dir=self.certs_dir)]

    def info(self) -> dict[str, Any]:
        """``RegistryConfig`` (and the two limits' names) as dockerd's ``GET /info`` shows them."""
        index_configs: dict[str, Any] = {
            DEFAULT_DOMAIN: {"Name": DEFAULT_DOMAIN, "Mirrors": list(self.mirrors), "Secure": True, "Official": True},
        }
        for host in self._insecure_hosts:
            index_configs[host] = {"Name": host, "Mirrors": [], "Secure": False, "Official": False}
        return {
            "AllowNondistributableArtifactsCIDRs": [],
            "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": [str(c) for c in self._cidrs],
            "IndexConfigs": index_configs,
            "Mirrors": list(self.mirrors),
        }


def validate_mirror(value: str) -> str:
    """dockerd's ``ValidateMirror``: an http(s) URL without credentials, query or fragment; ends in ``/``."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise InvalidParameter(f"invalid mirror: unsupported scheme {scheme!r} in {value!r}")
    if "@" in rest.split("/", 1)[0] or "?" in rest or "#" in rest or not rest.split("/", 1)[0]:
        raise InvalidParameter(f"invalid mirror: {value!r}")
    return value if value.endswith("/") else value + "/"
