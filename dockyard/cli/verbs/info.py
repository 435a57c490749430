"""``dockyard info``: a Docker-like summary of ``GET /info``."""

from __future__ import annotations

import sys

from dockyard.cli import units
from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import Flag, FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([Flag("format", "f", "string", "Format output using a custom template")])
CLIENT_VERSION = "0.1.0"


def _flag(value: Any) -> str:
    return "true" if value else "false"


def server_lines(info: dict[str, Any]) -> list[str]:
    lines = ["Server:",
             f" Containers: {info.get('Containers', 0)}",
             f"  Running: {info.get('ContainersRunning', 0)}",
             f"  Paused: {info.get('ContainersPaused', 0)}",
             f"  Stopped: {info.get('ContainersStopped', 0)}",
             f" Images: {info.get('Images', 0)}",
             f" Server Version: {info.get('ServerVersion', '')}",
             f" Storage Driver: {info.get('Driver', '')}"]
    for pair in info.get("DriverStatus") or []:
        if len(pair) == 2:
            lines.append(f"  {pair[0]}: {pair[1]}")
    lines += [f" Logging Driver: {info.get('LoggingDriver', '')}",
              f" Cgroup Driver: {info.get('CgroupDriver', '')}",
              f" Cgroup Version: {info.get('CgroupVersion', '')}",
              f" Kernel Version: {info.get('KernelVersion', '')}",
              f" Operating System: {info.get('OperatingSystem', '')}",
              f" OSType: {info.get('OSType', '')}",
              f" Architecture: {info.get('Architecture', '')}",
              f" CPUs: {info.get('NCPU', 0)}",
              f" Total Memory: {units.bytes_size(info.get('MemTotal') or 0)}",
              f" Name: {info.get('Name', '')}",
              f" ID: {info.get('ID', '')}",
              f" Docker Root Dir: {info.get('DockerRootDir', '')}",
              f" Debug Mode: {_flag(info.get('Debug'))}",
              f" Experimental: {_flag(info.get('ExperimentalBuild'))}",
              f" Live Restore Enabled: {_flag(info.get('LiveRestoreEnabled'))}"]
    return lines


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    client = ["Client:", f" Version:    {CLIENT_VERSION}", " Context:    default",
              f" Debug Mode: {_flag(invocation.debug)}"]
    try:
        info = invocation.api.json("GET", "/info")
    except CliFailure:
        if not parsed["format"]:
            sys.stdout.write("\n".join(client) + "\n\n")
            sys.stdout.flush()
        raise
    if parsed["format"]:
        from dockyard.cli.listing import template_failure
        from dockyard.cli.template import TemplateError, render_text

        try:
            sys.stdout.write(render_text(parsed["format"], info) + "\n")
        except TemplateError as error:
            raise template_failure(error) from None
        return 0
    for warning in info.get("Warnings") or []:
        sys.stderr.write(warning + "\n")
    sys.stdout.write("\n".join(client + [""] + server_lines(info)) + "\n")
    return 0
