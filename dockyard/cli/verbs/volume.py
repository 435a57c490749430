"""``dockyard volume create|ls|inspect|rm|prune``: the ``/volumes`` routes, printed as Docker's CLI prints them."""

from __future__ import annotations

import sys

from dockyard.cli import jsoncodec, units
from dockyard.cli.each import for_each
from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import Flag, FlagSet
from dockyard.cli.listing import filters_param, render

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

_FILTER = Flag("filter", "f", "list", "Provide filter values (e.g. \"dangling=true\")", type_name="filter")
_LS = FlagSet([
    _FILTER,
    Flag("format", "", "string", "Format output using a custom template"),
    Flag("quiet", "q", "bool", "Only display volume names"),
])
_RM = FlagSet([Flag("force", "f", "bool", "Force the removal of one or more volumes")])
FLAGS = {
    "volume": FlagSet([]),
    "volume create": FlagSet([
        Flag("driver", "d", "string", "Specify volume driver name", default="local"),
        Flag("label", "", "list", "Set metadata for a volume"),
        Flag("name", "", "string", ""),
        Flag("opt", "o", "list", "Set driver specific options", type_name="map"),
    ]),
    "volume ls": _LS,
    "volume list": _LS,
    "volume inspect": FlagSet([Flag("format", "f", "string", "Format output using a custom template")]),
    "volume rm": _RM,
    "volume remove": _RM,
    "volume prune": FlagSet([
        Flag("all", "a", "bool", "Remove all unused volumes, not just anonymous ones"),
        Flag("filter", "", "list", "Provide filter values (e.g. \"label=<label>\")", type_name="filter"),
        Flag("force", "f", "bool", "Do not prompt for confirmation"),
    ]),
}
DEFAULT_FORMAT = "table {{.Driver}}\t{{.Name}}"
HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
           "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "Group": "GROUP",
           "Availability": "AVAILABILITY", "Status": "STATUS", "CreatedAt": "CREATED AT"}
SUBCOMMANDS = """
Usage:  dockyard volume COMMAND

Manage volumes

Commands:
  create      Create a volume
  inspect     Display detailed information on one or more volumes
  ls          List volumes
  prune       Remove unused local volumes
  rm          Remove one or more volumes

Run 'dockyard volume COMMAND --help' for more information on a command.
"""


def key_values(values: list[str], what: str) -> dict[str, str]:
    """``--label k=v`` / ``-o k=v`` into a map (a bare ``k`` means an empty value)."""
    out: dict[str, str] = {}
    for value in values:
        key, _, val = value.partition("=")
        if not key:
            raise CliFailure(f'invalid argument "{value}" for "{what}" flag: invalid key', 125)
        out[key] = val
    return out


def volume_row(volume: dict[str, Any]) -> dict[str, Any]:
    labels = volume.get("Labels") or {}
    return {
        "Name": volume.get("Name", ""), "Driver": volume.get("Driver", ""), "Scope": volume.get("Scope", ""),
        "Mountpoint": volume.get("Mountpoint", ""), "CreatedAt": volume.get("CreatedAt", ""),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())), "Links": "N/A", "Size": "N/A",
        "Group": "", "Availability": "", "Status": "",
    }


def _create(invocation: Invocation, parsed: Parsed) -> int:
    name = parsed.args[0] if parsed.args else ""
    if parsed["name"]:
        if name and name != parsed["name"]:
            raise CliFailure("conflicting options: either specify --name or provide positional arg, not both", 1)
        name = parsed["name"]
    body = {"Name": name, "Driver": parsed["driver"] or "local",
            "DriverOpts": key_values(parsed["opt"], "-o, --opt"), "Labels": key_values(parsed["label"], "--label")}
    volume = invocation.api.json("POST", "/volumes/create", body=body)
    sys.stdout.write(volume["Name"] + "\n")
    return 0


def _ls(invocation: Invocation, parsed: Parsed) -> int:
    params = [("filters", filters_param(parsed["filter"]))] if parsed["filter"] else []
    answer = invocation.api.json("GET", "/volumes", params) or {}
    rows = [volume_row(v) for v in answer.get("Volumes") or []]
    format_text = parsed["format"] or ""
    if parsed["quiet"] and (not format_text or format_text.strip().startswith("table")):
        format_text = "{{.Name}}"
    sys.stdout.write(render(format_text or DEFAULT_FORMAT, rows, HEADERS))
    for warning in answer.get("Warnings") or []:
        sys.stderr.write(warning + "\n")
    return 0


def _inspect(invocation: Invocation, parsed: Parsed) -> int:
    found: list[Any] = []
    errors: list[str] = []
    for name in parsed.args:
        try:
            found.append(invocation.api.json("GET", f"/volumes/{name}"))
        except CliFailure as failure:
            if failure.message.startswith("Cannot connect"):
                raise
            errors.append(failure.message)
    if parsed["format"]:
        from dockyard.cli.template import Template, TemplateError, prepare

        try:
            template = Template(prepare(parsed["format"])[1])
            for item in found:
                sys.stdout.write(template.execute(item) + "\n")
        except TemplateError as error:
            sys.stdout.flush()
            raise CliFailure(f"template parsing error: {error}", 1) from None
    else:
        sys.stdout.write(jsoncodec.dumps(found, "    ") + "\n")
    sys.stdout.flush()
    for message in errors:
        sys.stderr.write(message + "\n")
    return 1 if errors else 0


def _rm(invocation: Invocation, parsed: Parsed) -> int:
    params = [("force", "1")] if parsed["force"] else []
    def act(name: str) -> str:
        invocation.api.request("DELETE", f"/volumes/{name}", params)
        return name

    return for_each(parsed.args, act)


def _prune(invocation: Invocation, parsed: Parsed) -> int:
    filters = list(parsed["filter"])
    if parsed["all"]:
        if any(f.startswith("all=") for f in filters):
            raise CliFailure("conflicting options: cannot specify both --all and --filter all=1", 1)
        filters.append("all=true")
    if not parsed["force"]:
        what = "all local volumes" if parsed["all"] else "anonymous local volumes"
        sys.stdout.write(f"WARNING! This will remove {what} not used by at least one container.\n"
                         "Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    params = [("filters", filters_param(filters))] if filters else []
    report = invocation.api.json("POST", "/volumes/prune", params) or {}
    deleted = report.get("VolumesDeleted") or []
    if deleted:
        sys.stdout.write("Deleted Volumes:\n" + "".join(name + "\n" for name in deleted) + "\n")
    sys.stdout.write(f"Total reclaimed space: {units.human_size(report.get('SpaceReclaimed') or 0, 4)}\n")
    return 0


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    sub = verb.partition(" ")[2]
    if not sub:
        sys.stdout.write(SUBCOMMANDS)
        return 0
    handler = {"create": _create, "ls": _ls, "list": _ls, "inspect": _inspect, "rm": _rm, "remove": _rm,
               "prune": _prune}[sub]
    return handler(invocation, parsed)
