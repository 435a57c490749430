"""``dockyard logs``: ``GET /containers/{id}/logs``, demultiplexed unless the container has a TTY."""

from __future__ import annotations

from dockyard.cli import stdcopy, terminal, units
from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import Flag, FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("details", "", "bool", "Show extra details provided to logs"),
    Flag("follow", "f", "bool", "Follow log output"),
    Flag("since", "", "string", "Show logs since timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative "
         "(e.g. \"42m\" for 42 minutes)"),
    Flag("tail", "n", "string", "Number of lines to show from the end of the logs", default="all"),
    Flag("timestamps", "t", "bool", "Show timestamps"),
    Flag("until", "", "string", "Show logs before a timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative "
         "(e.g. \"42m\" for 42 minutes)"),
])


def _time_param(value: str) -> str:
    try:
        return units.api_timestamp(value)
    except ValueError as error:
        raise CliFailure(str(error), 1) from None


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    api = invocation.api
    name = parsed.args[0]
    container = api.json("GET", f"/containers/{name}/json")
    tty = bool((container.get("Config") or {}).get("Tty"))
    params = [("stdout", "1"), ("stderr", "1")]
    if parsed["since"]:
        params.append(("since", _time_param(parsed["since"])))
    if parsed["until"]:
        params.append(("until", _time_param(parsed["until"])))
    if parsed["timestamps"]:
        params.append(("timestamps", "1"))
    if parsed["follow"]:
        params.append(("follow", "1"))
    params.append(("tail", parsed["tail"] or "all"))
    if parsed["details"]:
        params.append(("details", "1"))
    response = api.request("GET", f"/containers/{name}/logs", params)
    demuxer = None if tty else stdcopy.Demuxer()
    for data in response.chunks():
        if demuxer is None:
            terminal.write_all(1, data)
            continue
        for stream, payload in demuxer.feed(data):
            terminal.write_all(2 if stream in (stdcopy.STDERR, stdcopy.SYSTEMERR) else 1, payload)
    return 0
