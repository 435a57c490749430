"""``dockyard inspect``: containers, then images, networks, volumes, plugins (or ``--type``), as a
JSON array or a template.

Without ``--format`` the objects print as one JSON array indented by 4 spaces; with it, each
object's rendering is followed by a newline. Names found as none print ``Error: No such object``.
As Docker's CLI, an untyped lookup asks ``GET /info`` whether the daemon is a swarm manager before
trying plugins (swarm objects are looked up only on a manager: dockyard is none).
"""

from __future__ import annotations

import sys

from dockyard.cli import jsoncodec
from dockyard.cli.failure import CliFailure, DaemonError
from dockyard.cli.flags import Flag, FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.engine_api import EngineAPI
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("format", "f", "string", "Format output using a custom template"),
    Flag("size", "s", "bool", "Display total file sizes if the type is container"),
    Flag("type", "", "string", "Only inspect objects of the given type"),
])

PATHS = {"container": "/containers/{}/json", "image": "/images/{}/json", "network": "/networks/{}",
         "volume": "/volumes/{}", "plugin": "/plugins/{}/json", "service": "/services/{}", "task": "/tasks/{}",
         "node": "/nodes/{}", "secret": "/secrets/{}", "config": "/configs/{}"}
SWARM_KINDS = ("service", "task", "node", "secret", "config")


def _swarm_manager(api: EngineAPI) -> bool:
    """Docker's ``isSwarmManager``: ``GET /info``'s ``Swarm.ControlAvailable`` (an error is printed, and means no)."""
    try:
        info = api.json("GET", "/info") or {}
    except CliFailure as failure:
        if failure.message.startswith("Cannot connect"):
            raise
        sys.stderr.write(failure.message + "\n")
        return False
    return bool((info.get("Swarm") or {}).get("ControlAvailable"))


def lookup(api: EngineAPI, name: str, kind: str | None, size: bool) -> Any:
    """The object's JSON (a network's Go-typed for templates), or raise ``CliFailure`` with Docker's message."""
    from dockyard.cli.client import quote

    swarm: bool | None = None
    for each in [kind] if kind else ["container", "image", "network", "volume", *SWARM_KINDS[:3], "plugin",
                                     *SWARM_KINDS[3:]]:
        if not kind and each in SWARM_KINDS:
            if swarm is None:
                swarm = _swarm_manager(api)
            if not swarm:
                continue
        params = [("size", "1")] if size and each == "container" else []
        try:
            found = api.json("GET", PATHS[each].format(quote(name)), params)
        except DaemonError as error:
            if error.status_code != 404 or kind:
                raise
            continue
        return ("network", found) if each == "network" else found
    raise CliFailure(f"Error: No such object: {name}", 1)


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    kind = parsed["type"] or None
    if "type" in parsed.changed and not kind:
        raise CliFailure('type is empty: must be one of "' + '", "'.join(sorted(PATHS)) + '"', 1)
    if kind is not None and kind not in PATHS:
        raise CliFailure(f'unknown type: "{kind}": must be one of "' + '", "'.join(sorted(PATHS)) + '"', 1)
    template = None
    if parsed["format"]:
        from dockyard.cli.template import Template, TemplateError, prepare

        try:
            template = Template(prepare(parsed["format"])[1])
        except TemplateError as error:
            raise CliFailure(f"template parsing error: {error}", 64) from None
    api = invocation.api
    found: list[Any] = []
    errors: list[str] = []
    for name in parsed.args:
        try:
            found.append(lookup(api, name, kind, parsed["size"]))
        except CliFailure as failure:
            if failure.message.startswith("Cannot connect"):
                raise
            errors.append(failure.message)
    networks = {id(item[1]) for item in found if isinstance(item, tuple)}
    found = [item[1] if isinstance(item, tuple) else item for item in found]
    if template is None:
        sys.stdout.write(jsoncodec.dumps(found, "    ") + "\n")
    else:
        from dockyard.cli.template import TemplateError
        from dockyard.cli.verbs.network import typed_network

        for item in found:
            try:
                typed = typed_network(item) if id(item) in networks else item
                try:
                    sys.stdout.write(template.execute(typed) + "\n")
                except TemplateError:
                    if typed is item:
                        raise
                    sys.stdout.write(template.execute(item) + "\n")  # Docker's raw fallback
            except TemplateError as error:
                sys.stdout.flush()
                raise CliFailure(f"template parsing error: {error}", 1) from None
    sys.stdout.flush()
    for message in errors:
        sys.stderr.write(message + "\n")
    return 1 if errors else 0
