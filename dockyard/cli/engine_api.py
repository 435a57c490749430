"""The Engine API as the CLI uses it: which daemon, which API version, JSON calls, Docker's errors.

Terms:

- *host*: the daemon's address in Docker's syntax; from ``-H/--host``, else ``DOCKYARD_HOST``,
  else the *default* ``unix:///run/dockyard.sock``. Only the default is *autostarted*.
- *negotiation*: ``GET /_ping`` returns the daemon's ``Api-Version``; requests then go to
  ``/v{min(ours, theirs)}/...`` like Docker's client does.
- *optimistic first request*: a command's first request goes to ``/v{ours}/...`` without the ping
  (a round trip saved on every command) when it can be sent again: a daemon that finds our version
  too new answers 400 before doing anything ("client version … is too new"), and a daemon that is
  not there is started (the default host) — either way the ping negotiates and the request is sent
  once more. A request with a streamed body, or whose answer the caller checks itself, negotiates
  first as before.
"""

from __future__ import annotations

import os

from dockyard.cli import client, jsoncodec
from dockyard.cli.failure import CliFailure, ConnectFailure, DaemonError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.tls import TLSSettings

DEFAULT_HOST = "unix:///run/dockyard.sock"
CLIENT_API_VERSION = "1.47"
FALLBACK_API_VERSION = "1.24"  # what Docker assumes when /_ping carries no Api-Version
PLAIN_PORT, TLS_PORT = 2375, 2376  # Docker's defaults for a tcp:// host without a port



def _version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (0,)


def choose_host(flag_value: str | None, environ: dict[str, str] | None = None) -> tuple[str, bool]:
    """The host to use and whether the user named it (``-H`` or ``DOCKYARD_HOST``)."""
    env = os.environ if environ is None else environ
    if flag_value:
        return flag_value, True
    if env.get("DOCKYARD_HOST"):
        return env["DOCKYARD_HOST"], True
    return DEFAULT_HOST, False


class EngineAPI:
    """A negotiated connection target: every call opens a socket, sends, and reads the head."""

    def __init__(self, host: str, explicit: bool, tls: TLSSettings | None = None) -> None:
        self.host = host
        self.explicit = explicit
        try:
            self.address = client.parse_address(host, TLS_PORT if tls is not None else PLAIN_PORT)
        except ValueError as error:
            raise CliFailure(str(error), 1) from None
        self.address.tls = tls
        self.server_api_version: str | None = None
        self.api_version: str | None = None
        self._tried_autostart = False

    # -- version negotiation -------------------------------------------------------------

    def negotiate(self) -> str:
        """Ping the daemon (starting it if it is the default one and absent); return the API version."""
        if self.api_version is not None:
            return self.api_version
        try:
            response = client.request(self.address, "GET", "/_ping")
        except OSError as error:
            if self.explicit or self._tried_autostart or not self._autostartable(error):
                raise self._connect_failure(error) from None
            self._tried_autostart = True
            from dockyard.cli import autostart

            autostart.start_daemon(self.address)
            return self.negotiate()
        response.read()
        server = response.headers.get("api-version") or FALLBACK_API_VERSION
        self.server_api_version = server
        ours = CLIENT_API_VERSION
        self.api_version = server if _version_key(server) < _version_key(ours) else ours
        return self.api_version

    @staticmethod
    def _autostartable(error: OSError) -> bool:
        return isinstance(error, FileNotFoundError | ConnectionRefusedError)

    def _connect_failure(self, error: OSError) -> CliFailure:
        if isinstance(error, PermissionError):
            return CliFailure(f"permission denied while trying to connect to the dockyard daemon socket "
                              f"at {self.host}: {error.strerror}", 1)
        return ConnectFailure(self.host)

    def _transport_failure(self, error: OSError) -> CliFailure:
        """Connecting failed (Docker's "Cannot connect"), or the exchange broke off later."""
        if isinstance(error, FileNotFoundError | ConnectionRefusedError | PermissionError):
            return self._connect_failure(error)
        return CliFailure(f"error during connect: {error}", 1)

    # -- requests ------------------------------------------------------------------------

    def target(self, path: str, params: Any = (), optimistic: bool = False) -> str:
        """The request target; ``optimistic``: our own version when none is negotiated yet."""
        items = params.items() if isinstance(params, dict) else params
        version = (self.api_version or CLIENT_API_VERSION) if optimistic else self.negotiate()
        return f"/v{version}{path}{client.query_string(items)}"

    def _retry_negotiated(self, error: OSError | None, status: int = 0, message: str = "") -> bool:
        """After an optimistic first request failed: whether negotiating (which starts the default
        daemon when it is absent) and sending it again may help — it does so first."""
        if self.api_version is not None:
            return False
        if error is not None:
            if self.explicit or self._tried_autostart or not self._autostartable(error):
                return False
        elif not (status == 400 and message.startswith("client version ") and " is too new" in message):
            return False
        self.negotiate()
        return True

    def request(self, method: str, path: str, params: Any = (), body: Any = None,
                raw_body: Any = None, headers: dict[str, str] | None = None,
                check: bool = True) -> client.Response:
        """Send a request; ``body`` is encoded as JSON, ``raw_body`` is sent as is.

        With ``check`` a 4xx/5xx answer raises ``DaemonError`` carrying the daemon's message.
        """
        all_headers = dict(headers or {})
        payload = raw_body
        if body is not None:
            payload = jsoncodec.dumps(body).encode("utf-8")
            all_headers.setdefault("Content-Type", "application/json")
        optimistic = check and (payload is None or isinstance(payload, bytes | bytearray))
        while True:
            target = self.target(path, params, optimistic)
            try:
                response = client.request(self.address, method, target, payload, all_headers)
            except OSError as error:
                if optimistic and self._retry_negotiated(error):
                    continue
                raise self._transport_failure(error) from None
            if check and not response.ok:
                message = response.error_message()
                if optimistic and self._retry_negotiated(None, response.status, message):
                    continue
                raise DaemonError(response.status, message)
            return response

    def json(self, method: str, path: str, params: Any = (), body: Any = None) -> Any:
        return self.request(method, path, params, body).json()

    def hijack(self, method: str, path: str, params: Any = (),
               body: Any = None) -> client.Hijacked:
        """Upgrade to a raw stream (attach); raises ``DaemonError`` if the daemon refuses."""
        payload = jsoncodec.dumps(body).encode("utf-8") if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        while True:
            target = self.target(path, params, optimistic=True)
            try:
                response, pipe = client.hijack(self.address, method, target, payload, headers)
            except OSError as error:
                if self._retry_negotiated(error):
                    continue
                raise self._transport_failure(error) from None
            if pipe is None:
                if response.ok:
                    response.close()
                    raise CliFailure(f"error during hijack: unexpected status {response.status}", 1)
                message = response.error_message()
                if self._retry_negotiated(None, response.status, message):
                    continue
                raise DaemonError(response.status, message)
            return pipe
