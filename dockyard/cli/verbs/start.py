"""``dockyard start``: start containers; with ``-a``/``-i``, attach to one and exit with its code.

Attached, the order is ``run``'s: hijack attach, send wait, start, relay, exit with the wait's code.
Detached, each name is printed as it starts; failures print ``Error response from daemon: …``
and the verb ends with ``Error: failed to start containers: a, b`` (exit 1), as Docker's CLI.
"""

from __future__ import annotations

import sys

from dockyard.cli import terminal
from dockyard.cli.failure import CliFailure, DaemonError
from dockyard.cli.flags import Flag, FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("attach", "a", "bool", "Attach STDOUT/STDERR and forward signals"),
    Flag("detach-keys", "", "string", "Override the key sequence for detaching a container"),
    Flag("interactive", "i", "bool", "Attach container's STDIN"),
])


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    api = invocation.api
    if parsed["attach"] or parsed["interactive"]:
        if len(parsed.args) > 1:
            raise CliFailure("you cannot start and attach multiple containers at once", 1)
        return _start_attached(invocation, parsed)
    failed = []
    for name in parsed.args:
        try:
            api.request("POST", f"/containers/{name}/start").read()
        except CliFailure as failure:
            if not isinstance(failure, DaemonError):
                raise
            sys.stdout.flush()
            sys.stderr.write(failure.message + "\n")
            failed.append(name)
            continue
        sys.stdout.write(name + "\n")
        sys.stdout.flush()
    if failed:
        raise CliFailure("Error: failed to start containers: " + ", ".join(failed), 1)
    return 0


def _start_attached(invocation: Invocation, parsed: Parsed) -> int:
    from dockyard.cli.verbs.attach import proxy_signals
    from dockyard.cli.verbs.run import Relay, exit_status, start_error_status

    api = invocation.api
    info = api.json("GET", f"/containers/{parsed.args[0]}/json")
    cid = str(info["Id"])
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    stdin = parsed["interactive"] and bool(config.get("OpenStdin"))
    if tty and stdin and not terminal.is_terminal(0):
        raise CliFailure("the input device is not a TTY", 1)
    detach_keys = None
    if parsed["detach-keys"]:
        from dockyard.cli.detach_keys import parse_detach_keys

        detach_keys = parse_detach_keys(parsed["detach-keys"])
    params = [("stream", "1"), ("stdout", "1"), ("stderr", "1")] + ([("stdin", "1")] if stdin else [])
    pipe = api.hijack("POST", f"/containers/{cid}/attach", params)
    waiter = api.request("POST", f"/containers/{cid}/wait", [("condition", "next-exit")])
    try:
        api.request("POST", f"/containers/{cid}/start").read()
    except DaemonError as error:
        pipe.close()
        waiter.close()
        raise CliFailure(error.message, start_error_status(error.daemon_message)) from None
    if not tty:
        proxy_signals(api, cid)
    relay = Relay(pipe, tty, stdin, detach_keys)
    relay.run_in_terminal(api, f"/containers/{cid}/resize")
    if relay.detached:
        waiter.close()
        return 0
    return exit_status(api, waiter, cid)
