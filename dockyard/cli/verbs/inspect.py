"""``dockyard inspect``: containers, then images (or ``--type``), as a JSON array or a template.

Without ``--format`` the objects print as one JSON array indented by 4 spaces; with it, each
object's rendering is followed by a newline. Names found as neither print ``Error: No such object``.
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

PATHS = {"container": "/containers/{}/json", "image": "/images/{}/json"}


def lookup(api: EngineAPI, name: str, kind: str | None, size: bool) -> Any:
    """The object's JSON, or raise ``CliFailure`` with Docker's message."""
    kinds = [kind] if kind else ["container", "image"]
    for each in kinds:
        params = [("size", "1")] if size and each == "container" else []
        try:
            return api.json("GET", PATHS[each].format(name), params)
        except DaemonError as error:
            if error.status_code != 404 or kind:
                raise
    raise CliFailure(f"Error: No such object: {name}", 1)


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    kind = parsed["type"] or None
    if kind is not None and kind not in PATHS:
        raise CliFailure(f'"{kind}" is not a valid value for --type', 1)
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
    if template is None:
        sys.stdout.write(jsoncodec.dumps(found, "    ") + "\n")
    else:
        from dockyard.cli.template import TemplateError

        for item in found:
            try:
                sys.stdout.write(template.execute(item) + "\n")
            except TemplateError as error:
                sys.stdout.flush()
                raise CliFailure(f"template parsing error: {error}", 1) from None
    sys.stdout.flush()
    for message in errors:
        sys.stderr.write(message + "\n")
    return 1 if errors else 0
