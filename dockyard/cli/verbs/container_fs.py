"""``dockyard diff``, ``export`` and ``commit``: a container's filesystem as changes, a tar, or an image.

- ``diff CONTAINER``: ``GET /containers/{id}/changes``, one ``C|A|D path`` line per change.
- ``export [-o FILE] CONTAINER``: ``GET /containers/{id}/export`` to FILE or stdout (never to a
  terminal, like Docker).
- ``commit [-a] [-m] [-c]... [-p] CONTAINER [REPO[:TAG]]``: ``POST /commit``; prints the new ID.
"""

from __future__ import annotations

import os
import sys

from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import Flag, FlagSet
from dockyard.cli.references import split_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

DIFF_FLAGS = FlagSet([])
EXPORT_FLAGS = FlagSet([Flag("output", "o", "string", "Write to a file, instead of STDOUT")])
COMMIT_FLAGS = FlagSet([
    Flag("author", "a", "string", 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")'),
    Flag("change", "c", "list", "Apply Dockerfile instruction to the created image"),
    Flag("message", "m", "string", "Commit message"),
    Flag("pause", "p", "bool", "Pause container during commit", default=True),
])
FLAGS = {"diff": DIFF_FLAGS, "export": EXPORT_FLAGS, "commit": COMMIT_FLAGS}
KINDS = {0: "C", 1: "A", 2: "D"}


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    name = verb.split()[-1]
    if name == "diff":
        return diff(invocation, parsed)
    if name == "export":
        return export(invocation, parsed)
    return commit(invocation, parsed)


def diff(invocation: Invocation, parsed: Parsed) -> int:
    changes = invocation.api.request("GET", f"/containers/{parsed.args[0]}/changes").json() or []
    sys.stdout.write("".join(f"{KINDS.get(c.get('Kind'), '?')} {c.get('Path')}\n" for c in changes))
    return 0


def export(invocation: Invocation, parsed: Parsed) -> int:
    output = parsed["output"]
    if not output and sys.stdout.isatty():
        raise CliFailure("cowardly refusing to save to a terminal. Use the -o flag or redirect", 1)
    response = invocation.api.request("GET", f"/containers/{parsed.args[0]}/export")
    if output:
        tmp = f"{output}.dockyard-tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                for chunk in response.chunks():
                    f.write(chunk)
            os.replace(tmp, output)
        except OSError as error:
            raise CliFailure(f"failed to export container: {error.strerror or error}", 1) from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return 0
    out = sys.stdout.buffer
    for chunk in response.chunks():
        out.write(chunk)
    out.flush()
    return 0


def commit(invocation: Invocation, parsed: Parsed) -> int:
    params = [("container", parsed.args[0])]
    if len(parsed.args) > 1:
        repo, tag, _ = split_reference(parsed.args[1])
        params += [("repo", repo), ("tag", tag)]
    params += [("comment", parsed["message"] or ""), ("author", parsed["author"] or ""),
               ("pause", "1" if parsed["pause"] else "0")]
    params += [("changes", change) for change in parsed["change"]]
    answer = invocation.api.request("POST", "/commit", params, body={}).json()
    sys.stdout.write(f"{answer.get('Id', '')}\n")
    return 0
