"""``dockyard attach``: connect our stdio to a running container's, as ``docker attach`` does.

Hijack ``POST /containers/{id}/attach`` (``stdin`` unless ``--no-stdin`` and only when the
container keeps stdin open), relay until the container exits or Ctrl-P Ctrl-Q (``--detach-keys``)
detaches (then, as Docker's CLI: ``read escape sequence``, exit 1), and exit with the container's
exit code (``POST /containers/{id}/wait``). Without a TTY,
``--sig-proxy`` (default on) forwards SIGINT/SIGTERM/SIGHUP… to the container.
"""

from __future__ import annotations

import sys

from dockyard.cli import terminal
from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import Flag, FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.engine_api import EngineAPI
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("detach-keys", "", "string", "Override the key sequence for detaching a container"),
    Flag("no-stdin", "", "bool", "Do not attach STDIN"),
    Flag("sig-proxy", "", "bool", "Proxy all received signals to the process", default=True),
])

PROXIED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def proxy_signals(api: EngineAPI, container: str) -> None:
    """Forward the signals we receive to the container (``POST /containers/{id}/kill``)."""
    import signal
    import threading

    def forward(signum: int, frame: object) -> None:
        def send() -> None:
            try:
                api.request("POST", f"/containers/{container}/kill", [("signal", str(signum))]).read()
            except (CliFailure, OSError):
                pass

        threading.Thread(target=send, daemon=True).start()

    for name in PROXIED:
        signal.signal(getattr(signal, name), forward)


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    from dockyard.cli.verbs.run import Relay, exit_status

    container = parsed.args[0]
    api = invocation.api
    info = api.json("GET", f"/containers/{container}/json")
    state = info.get("State") or {}
    if not state.get("Running"):
        raise CliFailure("You cannot attach to a stopped container, start it first", 1)
    if state.get("Paused"):
        raise CliFailure("You cannot attach to a paused container, unpause it first", 1)
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    stdin = not parsed["no-stdin"] and bool(config.get("OpenStdin"))
    if tty and stdin and not terminal.is_terminal(0):
        raise CliFailure("the input device is not a TTY", 1)
    detach_keys = None
    params = [("stream", "1"), ("stdout", "1"), ("stderr", "1")]
    if stdin:
        params.append(("stdin", "1"))
    if parsed["detach-keys"]:
        from dockyard.cli.detach_keys import parse_detach_keys

        detach_keys = parse_detach_keys(parsed["detach-keys"])
        params.append(("detachKeys", parsed["detach-keys"]))
    cid = str(info.get("Id") or container)
    pipe = api.hijack("POST", f"/containers/{cid}/attach", params)
    waiter = api.request("POST", f"/containers/{cid}/wait")
    if parsed["sig-proxy"] and not tty:
        proxy_signals(api, cid)
    relay = Relay(pipe, tty, stdin, detach_keys)
    relay.run_in_terminal(api, f"/containers/{cid}/resize")
    if relay.detached:
        # Docker's CLI ends an attach that detached this way as a failure of its input stream.
        waiter.close()
        raise CliFailure("read escape sequence", 1)
    sys.stdout.flush()
    return exit_status(api, waiter, cid)
