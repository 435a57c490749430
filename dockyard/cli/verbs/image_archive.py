"""``dockyard save`` and ``dockyard load``: image archives through ``GET /images/get`` and
``POST /images/load``.

``save`` writes the tar to ``-o FILE`` (through a temp file renamed into place, so a failed
save leaves no partial file) or to stdout, and like Docker refuses a terminal stdout. ``load``
streams ``-i FILE`` or stdin to the daemon and prints its ``Loaded image: …`` lines.
"""

from __future__ import annotations

import os
import sys

from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import Flag, FlagSet
from dockyard.cli.jsonmessages import StreamError, messages
from dockyard.cli.terminal import is_terminal, write_all

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

SAVE_FLAGS = FlagSet([
    Flag("output", "o", "string", "Write to a file, instead of STDOUT"),
])
LOAD_FLAGS = FlagSet([
    Flag("input", "i", "string", "Read from tar archive file, instead of STDIN"),
    Flag("quiet", "q", "bool", "Suppress the load output"),
])
FLAGS = {"save": SAVE_FLAGS, "image save": SAVE_FLAGS, "load": LOAD_FLAGS, "image load": LOAD_FLAGS}
PIECE = 1 << 20


def _pieces(fd: int) -> Iterator[bytes]:
    while data := os.read(fd, PIECE):
        yield data


def save(invocation: Invocation, parsed: Parsed) -> int:
    output = parsed["output"] or ""
    if not output and is_terminal(1):
        raise CliFailure("cowardly refusing to save to a terminal. Use the -o flag or redirect", 1)
    if output and not os.path.isdir(os.path.dirname(os.path.abspath(output))):
        raise CliFailure("failed to save image: invalid output path: stat "
                         f"{os.path.dirname(output) or '.'}: no such file or directory", 1)
    params = [("names", name) for name in parsed.args]
    response = invocation.api.request("GET", "/images/get", params)
    if not output:
        for chunk in response.chunks():
            write_all(1, chunk)
        return 0
    directory = os.path.dirname(os.path.abspath(output))
    temp = os.path.join(directory, f".{os.path.basename(output)}.tmp-{os.getpid()}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as error:
        raise CliFailure(f"failed to save image: invalid output path: {error.strerror}", 1) from None
    try:
        for chunk in response.chunks():
            write_all(fd, chunk)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(temp, output)
    finally:
        if fd >= 0:
            os.close(fd)
        if os.path.exists(temp):
            os.unlink(temp)
    return 0


def load(invocation: Invocation, parsed: Parsed) -> int:
    source = parsed["input"] or ""
    headers = {"Content-Type": "application/x-tar"}
    if source:
        try:
            fd, close = os.open(source, os.O_RDONLY), True
        except OSError as error:
            raise CliFailure(f"open {source}: {(error.strerror or str(error)).lower()}", 1) from None
        headers["Content-Length"] = str(os.fstat(fd).st_size)
    else:
        if is_terminal(0):
            raise CliFailure("requested load from stdin, but stdin is empty", 1)
        fd, close = 0, False
    params = [("quiet", "1")] if parsed["quiet"] else []
    try:
        response = invocation.api.request("POST", "/images/load", params, raw_body=_pieces(fd), headers=headers)
        for message in messages(response):
            if message.get("stream"):
                sys.stdout.write(message["stream"])
        sys.stdout.flush()
    except StreamError as error:
        raise CliFailure(error.text, 1) from None
    finally:
        if close:
            os.close(fd)
    return 0


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    return save(invocation, parsed) if verb.endswith("save") else load(invocation, parsed)
