"""``stop``, ``kill``, ``rm`` and ``wait``: one request per container named.

Each success prints its line (the name as given, or the exit code for ``wait``); each failure
prints ``Error response from daemon: ...`` to stderr; the exit status is 1 if any failed.
"""

from __future__ import annotations

from dockyard.cli.each import for_each
from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import Flag, FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.engine_api import EngineAPI
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = {
    "stop": FlagSet([
        Flag("signal", "s", "string", "Signal to send to the container"),
        Flag("time", "t", "int", "Seconds to wait before killing the container"),
    ]),
    "kill": FlagSet([Flag("signal", "s", "string", "Signal to send to the container")]),
    "rm": FlagSet([
        Flag("force", "f", "bool", "Force the removal of a running container (uses SIGKILL)"),
        Flag("link", "l", "bool", "Remove the specified link"),
        Flag("volumes", "v", "bool", "Remove anonymous volumes associated with the container"),
    ]),
    "wait": FlagSet([]),
}


def _one(api: EngineAPI, verb: str, name: str, parsed: Parsed) -> str:
    """Act on one container; return the line to print."""
    if verb == "stop":
        params = []
        if parsed["time"] is not None:
            params.append(("t", str(parsed["time"])))
        if parsed["signal"]:
            params.append(("signal", parsed["signal"]))
        api.request("POST", f"/containers/{name}/stop", params).read()
        return name
    if verb == "kill":
        params = [("signal", parsed["signal"])] if parsed["signal"] else []
        api.request("POST", f"/containers/{name}/kill", params).read()
        return name
    if verb == "rm":
        params = []
        if parsed["force"]:
            params.append(("force", "1"))
        if parsed["volumes"]:
            params.append(("v", "1"))
        if parsed["link"]:
            params.append(("link", "1"))
        api.request("DELETE", f"/containers/{name}", params).read()
        return name
    result = api.json("POST", f"/containers/{name}/wait")
    error = (result or {}).get("Error") or {}
    if error.get("Message"):
        raise CliFailure(error["Message"], 1)
    return str((result or {}).get("StatusCode", ""))


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    api = invocation.api
    return for_each(parsed.args, lambda name: _one(api, verb, name, parsed))
