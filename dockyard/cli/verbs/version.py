"""``dockyard version``: the Client and Server sections of Docker's ``docker version``."""

from __future__ import annotations

import sys

from dockyard.cli.engine_api import CLIENT_API_VERSION
from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import Flag, FlagSet
from dockyard.cli.platform_names import go_os_arch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([Flag("format", "f", "string", "Format output using a custom template")])
CLIENT_VERSION = "0.1.0"


def _row(indent: str, label: str, value: object, width: int) -> str:
    return f"{indent}{(label + ':').ljust(width)}{value}"


def ansic_time(rfc3339: str) -> str:
    """Go's ``time.ANSIC`` rendering (``Thu May  7 21:09:36 2026``) of an RFC 3339 time; as is on failure."""
    from dockyard.cli.units import parse_rfc3339

    moment = parse_rfc3339(rfc3339)
    if moment is None:
        return rfc3339
    import time

    parts = time.gmtime(moment)
    return time.strftime("%a %b ", parts) + f"{parts.tm_mday:>2}" + time.strftime(" %H:%M:%S %Y", parts)


def client_section(server_api: str | None) -> list[str]:
    api = CLIENT_API_VERSION
    if server_api is not None and server_api != CLIENT_API_VERSION:
        api = f"{server_api} (downgraded from {CLIENT_API_VERSION})"
    py = sys.version_info
    return ["Client:",
            _row(" ", "Version", CLIENT_VERSION, 19),
            _row(" ", "API version", api, 19),
            _row(" ", "Python version", f"{py.major}.{py.minor}.{py.micro}", 19),
            _row(" ", "OS/Arch", go_os_arch(), 19),
            _row(" ", "Context", "default", 19)]


def server_section(info: dict[str, Any]) -> list[str]:
    platform = (info.get("Platform") or {}).get("Name") or ""
    lines = ["Server:" + (f" {platform}" if platform else "")]
    components = info.get("Components") or [{"Name": "Engine", "Version": info.get("Version", ""),
                                             "Details": {}}]
    for component in components:
        name = component.get("Name", "")
        lines.append(f" {name}:")
        lines.append(_row("  ", "Version", component.get("Version", ""), 18))
        if name == "Engine":
            api = info.get("ApiVersion", "")
            if info.get("MinAPIVersion"):
                api += f" (minimum version {info['MinAPIVersion']})"
            lines.append(_row("  ", "API version", api, 18))
            if info.get("GoVersion"):
                lines.append(_row("  ", "Go version", info["GoVersion"], 18))
            lines.append(_row("  ", "Git commit", info.get("GitCommit", ""), 18))
            lines.append(_row("  ", "Built", ansic_time(info.get("BuildTime", "")), 18))
            lines.append(_row("  ", "OS/Arch", f"{info.get('Os', '')}/{info.get('Arch', '')}", 18))
            lines.append(_row("  ", "Experimental", str(bool(info.get("Experimental"))).lower(), 18))
        else:
            for key, value in (component.get("Details") or {}).items():
                lines.append(_row("  ", key, value, 18))
    return lines


def template_data(client_api: str, info: dict[str, Any]) -> dict[str, Any]:
    """What ``--format`` sees, under Go's field names as Docker's CLI has them: the JSON key
    ``ApiVersion`` is the field ``APIVersion`` (``{{.Server.APIVersion}}``, ``{{.Client.APIVersion}}``)."""
    server = {("APIVersion" if key == "ApiVersion" else key): value for key, value in info.items()}
    os_name, arch = go_os_arch().split("/")
    client = {"Version": CLIENT_VERSION, "APIVersion": client_api, "DefaultAPIVersion": CLIENT_API_VERSION,
              "Os": os_name, "Arch": arch, "Context": "default", "Platform": {"Name": ""}}
    return {"Client": client, "Server": server}


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    api = invocation.api
    try:
        api.negotiate()  # the server's API version is shown
        info = api.json("GET", "/version")
    except CliFailure as failure:
        sys.stdout.write("\n".join(client_section(None)) + "\n")
        sys.stdout.flush()
        raise failure from None
    if parsed["format"]:
        from dockyard.cli.listing import template_failure
        from dockyard.cli.template import TemplateError, render_text

        try:
            sys.stdout.write(render_text(parsed["format"], template_data(api.api_version or CLIENT_API_VERSION, info)) + "\n")
        except TemplateError as error:
            raise template_failure(error) from None
        return 0
    lines = client_section(api.server_api_version) + [""] + server_section(info)
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
