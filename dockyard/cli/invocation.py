"""What one ``dockyard`` command line carries into its verb: the daemon host and a lazy API client."""

from __future__ import annotations

from dockyard.cli.engine_api import EngineAPI

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.tls import TLSSettings


class Invocation:
    """The global options; ``api`` is created (and the daemon pinged) on first use."""

    def __init__(self, host: str, explicit: bool, debug: bool = False, tls: TLSSettings | None = None) -> None:
        self.host = host
        self.explicit = explicit
        self.debug = debug
        self.tls = tls
        self._api: EngineAPI | None = None

    @property
    def api(self) -> EngineAPI:
        if self._api is None:
            self._api = EngineAPI(self.host, self.explicit, self.tls)
        return self._api
