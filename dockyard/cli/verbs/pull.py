"""``dockyard pull [-a] [--platform P] [-q] NAME[:TAG|@DIGEST]``: ``POST /images/create?fromImage=``.

As Docker's CLI: ``Using default tag: latest`` when none is given, the daemon's progress (bars in
a terminal), the stored credentials of the image's registry in ``X-Registry-Auth``, and the
pulled reference on the last line (``docker.io/library/busybox:latest``).
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

    from dockyard.cli.engine_api import EngineAPI
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("all-tags", "a", "bool", "Download all tagged images in the repository"),
    Flag("disable-content-trust", "", "bool", "Skip image verification (default true)", default=True),
    Flag("platform", "", "string", "Set platform if server is multi-platform capable"),
    Flag("quiet", "q", "bool", "Suppress verbose output"),
])


def pull_image(api: EngineAPI, image: str, out: TextIO, *, platform: str = "", all_tags: bool = False) -> None:
    """Pull ``image`` showing Docker's progress on ``out``; errors as the daemon words them."""
    name, tag, digest = references.split_reference(image)
    params = [("fromImage", name)]
    if not all_tags:
        params.append(("tag", digest or tag or references.DEFAULT_TAG))
    if platform:
        params.append(("platform", platform))
    try:
        headers = registry_auth.header_for(image)
    except registry_auth.CredentialError as error:
        raise CliFailure(str(error), 1) from None
    response = api.request("POST", "/images/create", params, headers=headers)
    try:
        display(response, out, terminal.is_terminal(out.fileno()) if hasattr(out, "fileno") else False)
    except StreamError as error:
        raise CliFailure(f"Error response from daemon: {error.text}", 1) from None


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    image = parsed.args[0]
    name, tag, digest = references.split_reference(image)
    if parsed["all-tags"] and (tag or digest):
        raise CliFailure("tag can't be used with --all-tags/-a", 1)
    if not (tag or digest or parsed["all-tags"]):
        if not parsed["quiet"]:
            sys.stdout.write(f"Using default tag: {references.DEFAULT_TAG}\n")
        image = f"{name}:{references.DEFAULT_TAG}"
    out: TextIO = open("/dev/null", "w") if parsed["quiet"] else sys.stdout  # noqa: SIM115 - closed below
    try:
        pull_image(invocation.api, image, out, platform=parsed["platform"], all_tags=parsed["all-tags"])
    finally:
        if out is not sys.stdout:
            out.close()
    sys.stdout.write(_canonical(image if not parsed["all-tags"] else name) + "\n")
    return 0


def _canonical(image: str) -> str:
    """The reference spelt out, as Docker prints it after a pull: ``docker.io/library/busybox:latest``."""
    domain = registry_auth.registry_of(image)
    if domain != "docker.io" or image.startswith("docker.io/"):
        return image if not image.startswith("index.docker.io/") else "docker.io/" + image.split("/", 1)[1]
    path = image
    if "/" not in image.split("@", 1)[0].split(":", 1)[0]:
        path = "library/" + image
    return "docker.io/" + path
