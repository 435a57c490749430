"""TLS to a ``tcp://`` daemon, configured as Docker's CLI configures it.

Terms (Docker's):

- *tlsverify*: check the daemon's certificate against ``--tlscacert`` (and its name against the
  host); default on when ``DOCKER_TLS_VERIFY`` is non-empty. Given at all, it turns TLS on.
- *tls*: speak TLS without checking the daemon (``--tls``, or ``DOCKER_TLS`` non-empty).
- *cert path*: ``DOCKER_CERT_PATH``, else ``~/.docker``; ``ca.pem``, ``cert.pem`` and ``key.pem``
  there are the defaults of ``--tlscacert``, ``--tlscert`` and ``--tlskey``. The client certificate
  is sent when its files exist (a daemon with ``--tlsverify`` refuses clients without one).

Only ``tcp://`` hosts use TLS. ``ssl`` (and ``socket``, which it needs) are imported only when a
connection is made, so a unix-socket CLI never pays for them.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.client import Address


class TLSSettings:
    """Resolved files and whether the daemon is verified; ``cert``/``key`` are ``""`` when not sent."""

    __slots__ = ("ca", "cert", "key", "verify", "_context")

    def __init__(self, ca: str, cert: str, key: str, verify: bool) -> None:
        self.ca = ca
        self.cert = cert
        self.key = key
        self.verify = verify
        self._context: Any = None

    def context(self) -> Any:
        """The ``ssl.SSLContext`` (built once); unreadable files end the command as Docker's CLI does."""
        if self._context is not None:
            return self._context
        import ssl

        from dockyard.cli.failure import CliFailure

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.verify:
            try:
                context.load_verify_locations(cafile=self.ca)
            except (OSError, ssl.SSLError) as error:
                raise CliFailure(f'could not read CA certificate "{self.ca}": {_reason(error)}', 1) from None
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert or self.key:
            try:
                context.load_cert_chain(self.cert, self.key)
            except (OSError, ssl.SSLError) as error:
                raise CliFailure(f'could not load X509 key pair (cert: "{self.cert}", key: "{self.key}"): '
                                 f"{_reason(error)}", 1) from None
        self._context = context
        return context


def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error)


def settings(values: dict[str, Any], changed: set[str], environ: Any = None) -> TLSSettings | None:
    """The TLS settings from the global flags and environment, or ``None`` for plain TCP."""
    env = os.environ if environ is None else environ
    verify = bool(values["tlsverify"]) if "tlsverify" in changed else bool(env.get("DOCKER_TLS_VERIFY"))
    use_tls = bool(values["tls"]) if "tls" in changed else bool(env.get("DOCKER_TLS"))
    if not (use_tls or verify or "tlsverify" in changed):
        return None
    cert_dir = env.get("DOCKER_CERT_PATH") or os.path.join(os.path.expanduser("~"), ".docker")
    files = {}
    for flag, name in (("tlscacert", "ca.pem"), ("tlscert", "cert.pem"), ("tlskey", "key.pem")):
        path = values[flag] or os.path.join(cert_dir, name)
        if flag != "tlscacert" and flag not in changed and not os.path.exists(path):
            path = ""  # a default client certificate that does not exist is simply not sent
        files[flag] = path
    return TLSSettings(files["tlscacert"], files["tlscert"], files["tlskey"], verify)


def connect(address: Address, tls: TLSSettings, timeout: float | None) -> Any:
    """A TLS connection to ``address`` (``tcp``), handshake done; ``OSError`` if it fails."""
    import socket

    context = tls.context()
    raw = socket.create_connection((address.host, address.port), timeout)
    try:
        sock = context.wrap_socket(raw, server_hostname=address.host)
    except BaseException:
        raw.close()
        raise
    sock.settimeout(None)
    return sock
