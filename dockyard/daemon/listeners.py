"""Where the daemon listens: ``-H`` hosts, TLS on TCP listeners, the unix socket's group.

Terms (dockerd's):

- *listener*: one ``-H`` host, ``unix:///path`` or ``tcp://ADDR:PORT``.
- *TLS*: the TCP listeners speak HTTPS with the server's ``--tlscert``/``--tlskey``.
- *tlsverify*: mutual TLS: a client must show a certificate signed by ``--tlscacert``. Only this
  authenticates anyone; ``--tls`` implies it unless ``--tlsverify=false`` is given.
- *explicit opt-out*: a TCP listener without TLS is refused unless TLS was switched off by hand
  (``--tls=false``, or ``"tls": false`` in daemon.json); then dockerd's warnings are logged.
- *socket group*: the group owning the unix sockets (mode 0660); dockerd's default ``docker`` is
  used when that group exists, a group named with ``-G`` must exist.
"""

from __future__ import annotations

import grp
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import InvalidParameter

log = logging.getLogger("dockyard.daemon")

DEFAULT_SOCKET_GROUP = "docker"


@dataclass(frozen=True)
class TCPAddress:
    """A parsed ``tcp://HOST:PORT`` listener."""

    text: str
    host: str
    port: int


def parse_tcp(host: str) -> TCPAddress:
    """``tcp://HOST:PORT`` (``[v6]:PORT`` too); a missing or bad port is an error that says so."""
    rest = host[len("tcp://"):].rstrip("/")
    name, sep, port = rest.rpartition(":")
    if not sep or "]" in port or not name and rest.startswith("["):
        raise InvalidParameter(f"invalid host: {host}: a tcp host needs a port (tcp://ADDRESS:PORT, "
                               "e.g. tcp://127.0.0.1:2376)")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidParameter(f"invalid host: {host}: invalid port {port!r}")
    return TCPAddress(host, name.strip("[]") or "0.0.0.0", int(port))


@dataclass
class TLSOptions:
    """The TLS settings as resolved from flags and daemon.json (see the module's terms).

    ``tls`` is ``None`` when neither ``tls`` nor ``tlsverify`` was given: that, with a TCP listener,
    is what gets refused.
    """

    tls: bool | None = None
    verify: bool = False
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    @classmethod
    def resolve(cls, tls: bool | None, tlsverify: bool | None, ca: str | None, cert: str | None,
                key: str | None) -> TLSOptions:
        """dockerd's rules: any ``tlsverify`` turns TLS on; ``tls`` alone implies ``tlsverify``."""
        if tlsverify is not None:
            tls = True
        verify = bool(tls) if tlsverify is None else tlsverify
        options = cls(tls, verify, Path(ca) if ca else None, Path(cert) if cert else None,
                      Path(key) if key else None)
        if tls:
            if options.cert is None or options.key is None:
                raise InvalidParameter("invalid TLS configuration: --tlscert and --tlskey are required with --tls")
            if verify and options.ca is None:
                raise InvalidParameter("invalid TLS configuration: --tlsverify needs --tlscacert "
                                       "(the CA that signs the clients' certificates)")
        return options

    @property
    def authenticates(self) -> bool:
        return bool(self.tls) and self.verify

    def server_context(self) -> ssl.SSLContext | None:
        """The TLS context for TCP listeners, or ``None`` without TLS. Files are read now."""
        if not self.tls:
            return None
        assert self.cert is not None and self.key is not None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert, self.key)
            if self.verify:
                assert self.ca is not None
                context.load_verify_locations(cafile=str(self.ca))
        except (OSError, ssl.SSLError) as exc:
            raise InvalidParameter(f"invalid TLS configuration: {exc}") from exc
        context.verify_mode = ssl.CERT_REQUIRED if self.verify else ssl.CERT_NONE
        context.set_alpn_protocols(["http/1.1"])
        return context


def check_tcp_hosts(hosts: list[str], options: TLSOptions) -> None:
    """Refuse a TCP listener without TLS client verification unless TLS was switched off by hand."""
    for host in hosts:
        if not host.startswith("tcp://"):
            continue
        parse_tcp(host)
        if options.tls is None:
            raise InvalidParameter(
                f"refusing to listen on {host} without TLS: anyone who can reach it would get root on this "
                "machine. Use --tlsverify --tlscacert=CA --tlscert=CERT --tlskey=KEY (mutual TLS), or "
                "--tls=false to listen without authentication anyway")


def warn_unauthenticated(host: str) -> None:
    """dockerd's warnings for a TCP listener that does not verify its clients."""
    for line in ("Binding to IP address without --tlsverify is insecure and gives root access on this machine "
                 "to everyone who has access to your network.",
                 "Binding to an IP address, even on localhost, can also give access to scripts run in a "
                 "browser. Be safe out there!",
                 "[DEPRECATION NOTICE] In future versions this will be a hard failure preventing the daemon "
                 "from starting! Learn more at: https://docs.docker.com/go/api-security/"):
        log.warning("%s  host=%s", line, host)


def socket_gid(group: str | None) -> int | None:
    """The gid for the unix sockets: ``group`` (must exist), else ``docker`` if it exists, else none."""
    name = group or DEFAULT_SOCKET_GROUP
    try:
        return int(name) if name.isdigit() else grp.getgrnam(name).gr_gid
    except KeyError:
        if group and group != DEFAULT_SOCKET_GROUP:
            raise InvalidParameter(f"group {group} not found") from None
        log.warning("could not change group of the API socket to %s: group %s not found", name, name)
        return None


def own_socket(path: str, gid: int | None) -> None:
    """Mode 0660, owned by root and the socket group (dockerd's ``NewUnixSocket``)."""
    if gid is not None:
        os.chown(path, 0, gid)
    os.chmod(path, 0o660)
