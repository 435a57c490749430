"""``dockyard import FILE|- [REPO[:TAG]]``: stream a tarball to ``POST /images/create?fromSrc=-``.

Dockerfile-style ``--change`` instructions and ``--message`` ride along as query parameters; the
daemon answers with a JSON-message stream whose last ``status`` is the new image's ID.
"""

from __future__ import annotations

import os
import sys

from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import Flag, FlagSet
from dockyard.cli.jsonmessages import StreamError, messages
from dockyard.cli.references import split_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("change", "c", "list", "Apply Dockerfile instruction to the created image"),
    Flag("message", "m", "string", "Set commit message for imported image"),
    Flag("platform", "", "string", "Set platform if server is multi-platform capable"),
])
PIECE = 1 << 20


def read_pieces(fd: int) -> Iterator[bytes]:
    while True:
        data = os.read(fd, PIECE)
        if not data:
            return
        yield data


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    source = parsed.args[0]
    params = [("fromSrc", "-")]
    if len(parsed.args) > 1:
        repo, tag, _ = split_reference(parsed.args[1])
        params.append(("repo", repo))
        if tag:
            params.append(("tag", tag))
    for change in parsed["change"]:
        params.append(("changes", change))
    if parsed["message"]:
        params.append(("message", parsed["message"]))
    if parsed["platform"]:
        params.append(("platform", parsed["platform"]))
    headers = {"Content-Type": "application/x-tar"}
    if source == "-":
        fd, close = 0, False
    else:
        try:
            fd, close = os.open(source, os.O_RDONLY), True
        except OSError as error:
            raise CliFailure(f"open {source}: {(error.strerror or str(error)).lower()}", 1) from None
        headers["Content-Length"] = str(os.fstat(fd).st_size)
    try:
        response = invocation.api.request("POST", "/images/create", params, raw_body=read_pieces(fd),
                                          headers=headers)
        for message in messages(response):
            if message.get("status"):
                sys.stdout.write(message["status"] + "\n")
    except StreamError as error:
        raise CliFailure(f"Error response from daemon: {error.text}", 1) from None
    finally:
        if close:
            os.close(fd)
    return 0
