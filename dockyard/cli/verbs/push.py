"""``dockyard push [-a] [-q] NAME[:TAG]``: ``POST /images/{name}/push?tag=``, Docker's progress on stdout.

As Docker's CLI: ``Using default tag: latest`` when none is given (``--all-tags``: every local tag of
the repository), and the stored credentials of the image's registry in ``X-Registry-Auth``.
"""

from __future__ import annotations

import sys

from dockyard.cli import references, registry_auth, terminal
from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import Flag, FlagSet
from dockyard.cli.jsonmessages import StreamError
from dockyard.cli.progress import display

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("all-tags", "a", "bool", "Push all tags of an image to the repository"),
    Flag("disable-content-trust", "", "bool", "Skip image signing (default true)", default=True),
    Flag("quiet", "q", "bool", "Suppress verbose output"),
])


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    image = parsed.args[0]
    name, tag, digest = references.split_reference(image)
    if digest:
        raise CliFailure("cannot push a digest reference", 1)
    if parsed["all-tags"] and tag:
        raise CliFailure("tag can't be used with --all-tags/-a", 1)
    if not tag and not parsed["all-tags"]:
        if not parsed["quiet"]:
            sys.stdout.write(f"Using default tag: {references.DEFAULT_TAG}\n")
        tag = references.DEFAULT_TAG
    try:
        found = registry_auth.credentials(registry_auth.registry_of(name))
    except registry_auth.CredentialError as error:
        raise CliFailure(str(error), 1) from None
    headers = {"X-Registry-Auth": registry_auth.header(found)}
    response = invocation.api.request("POST", f"/images/{name}/push", [("tag", tag)] if tag else [],
                                      headers=headers)
    out: TextIO = open("/dev/null", "w") if parsed["quiet"] else sys.stdout  # noqa: SIM115 - closed below
    try:
        display(response, out, terminal.is_terminal(1) and not parsed["quiet"])
    except StreamError as error:
        raise CliFailure(f"Error response from daemon: {error.text}", 1) from None
    finally:
        if out is not sys.stdout:
            out.close()
    if parsed["quiet"]:
        sys.stdout.write(f"{name}:{tag}\n" if tag else f"{name}\n")
    return 0
