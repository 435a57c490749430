"""``dockyard create``: ``run``'s flags and create request, without starting; prints the ID."""

from __future__ import annotations

import sys

from dockyard.cli import terminal
from dockyard.cli.failure import CliFailure
from dockyard.cli.verbs.run import FLAGS as RUN_FLAGS
from dockyard.cli.verbs.run import api_version_problem, attached_streams, create, create_body

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = RUN_FLAGS


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    image, command = parsed.args[0], parsed.args[1:]
    attach = attached_streams(parsed)
    console = terminal.window_size(1) if parsed["tty"] else None
    body = create_body(parsed, image, command, attach, console, verb)
    problem = api_version_problem(invocation.api, body)
    if problem:
        raise CliFailure(problem, 1)
    container_id = create(invocation.api, body, parsed["name"], parsed["pull"], parsed["platform"])
    sys.stdout.write(container_id + "\n")
    return 0
