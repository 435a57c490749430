"""``dockyard build [OPTIONS] PATH | -``: send a build context to ``POST /build`` and show the build.

As Docker's classic CLI (``DOCKER_BUILDKIT=0``): the context is tarred here
(:mod:`dockyard.cli.build_context`), the options become Docker's query parameters (``t``,
``dockerfile``, ``buildargs`` and ``labels`` as JSON, ``target``, ``nocache``, ``pull``, ``q``,
``platform``, ``networkmode``, ``rm``, ``forcerm``, ``cachefrom``, ``extrahosts``), and the answer — a
JSON-message stream — is shown as it comes: ``stream`` text as is (``Step 1/5 : FROM busybox``,
`` ---> Using cache``, ``Successfully built …``), pull progress of ``FROM`` like ``pull``'s, the
image ID from ``aux``. An ``error`` line ends the build: its text goes to stderr and the exit
status is its ``errorDetail.code`` (the failing ``RUN``'s exit code), else 1.

``-q`` (or ``--progress=quiet``) shows only the image ID; ``--iidfile`` writes it to a file.
``--progress=plain`` shows the build on stderr as BuildKit's plain printer does, ``tty`` as its
screen redrawn in place (plain when stderr is not a terminal), and ``auto`` (the default) the tty
view on a terminal and the classic output above otherwise, which scripts read (see
:mod:`dockyard.cli.build_progress`); in those views stdout stays empty, as with BuildKit.
"""

from __future__ import annotations

import os
import sys

from dockyard.cli import jsoncodec, units
from dockyard.cli.build_context import BuildContext, from_directory, from_stdin
from dockyard.cli.failure import CliFailure, FlagError
from dockyard.cli.flags import Flag, FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, TextIO

    from dockyard.cli.build_progress import BuildView
    from dockyard.cli.client import Response
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("add-host", "", "list", "Add a custom host-to-IP mapping (host:ip)", type_name="list"),
    Flag("build-arg", "", "list", "Set build-time variables", type_name="list"),
    Flag("cache-from", "", "list", "Images to consider as cache sources", type_name="strings"),
    Flag("file", "f", "string", "Name of the Dockerfile (Default is 'PATH/Dockerfile')"),
    Flag("force-rm", "", "bool", "Always remove intermediate containers"),
    Flag("iidfile", "", "string", "Write the image ID to the file"),
    Flag("label", "", "list", "Set metadata for an image", type_name="list"),
    Flag("network", "", "string", "Set the networking mode for the RUN instructions during build",
         default="default"),
    Flag("no-cache", "", "bool", "Do not use cache when building the image"),
    Flag("platform", "", "string", "Set platform if server is multi-platform capable"),
    Flag("progress", "", "string", "Set type of progress output (auto, plain, tty, quiet)", default="auto"),
    Flag("pull", "", "bool", "Always attempt to pull a newer version of the image"),
    Flag("quiet", "q", "bool", "Suppress the build output and print image ID on success"),
    Flag("rm", "", "bool", "Remove intermediate containers after a successful build", default=True),
    Flag("tag", "t", "list", 'Name and optionally a tag in the "name:tag" format', type_name="list"),
    Flag("target", "", "string", "Set the target build stage to build."),
])
PROGRESS_MODES = ("auto", "plain", "tty", "quiet", "rawjson")


def build_args(values: list[str], environ: dict[str, str]) -> dict[str, str | None]:
    """``--build-arg``: ``KEY=value``, or ``KEY`` alone taking the CLI's environment (null if unset)."""
    out: dict[str, str | None] = {}
    for value in values:
        key, eq, val = value.partition("=")
        out[key] = val if eq else environ.get(key)
    return out


def labels(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        key, _, val = value.partition("=")
        out[key] = val
    return out


def query(parsed: Parsed, dockerfile: str, environ: dict[str, str]) -> list[tuple[str, str]]:
    """Docker's ``POST /build`` query for these options (what Docker's CLI leaves out, left out)."""
    params: list[tuple[str, str]] = [("t", tag) for tag in parsed["tag"]]
    if dockerfile:
        params.append(("dockerfile", dockerfile))
    if quiet(parsed):
        params.append(("q", "1"))
    if parsed["no-cache"]:
        params.append(("nocache", "1"))
    if not parsed["rm"]:
        params.append(("rm", "0"))  # the daemon's default is to remove them
    if parsed["force-rm"]:
        params.append(("forcerm", "1"))
    if parsed["pull"]:
        params.append(("pull", "1"))
    if parsed["network"] and parsed["network"] != "default":
        params.append(("networkmode", parsed["network"]))
    if parsed["target"]:
        params.append(("target", parsed["target"]))
    if parsed["platform"]:
        params.append(("platform", parsed["platform"]))
    if parsed["add-host"]:
        params.append(("extrahosts", ",".join(parsed["add-host"])))
    args = build_args(parsed["build-arg"], environ)
    if args:
        params.append(("buildargs", jsoncodec.dumps(dict(sorted(args.items())))))
    if parsed["label"]:
        params.append(("labels", jsoncodec.dumps(dict(sorted(labels(parsed["label"]).items())))))
    if parsed["cache-from"]:
        params.append(("cachefrom", jsoncodec.dumps(list(parsed["cache-from"]))))
    params.append(("version", "1"))
    return params


def quiet(parsed: Parsed) -> bool:
    return bool(parsed["quiet"]) or parsed["progress"] == "quiet"


def prepare(parsed: Parsed, stdin: Any) -> BuildContext:
    """The context the arguments name (see :mod:`dockyard.cli.build_context`)."""
    source = parsed.args[0]
    dockerfile = parsed["file"] or ""
    if source == "-":
        if dockerfile == "-":
            raise CliFailure("invalid argument: can't use stdin for both build context and dockerfile", 1)
        return from_stdin(stdin, dockerfile)
    if dockerfile == "-":
        return from_directory(source, dockerfile_text=stdin.read())
    if "://" in source or source.startswith("git@"):
        raise CliFailure(f'unable to prepare context: path "{source}" not found (remote contexts are not '
                         "supported by dockyard build)", 1)
    return from_directory(source, dockerfile)


class BuildFailed(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def messages(response: Response) -> Iterator[dict[str, Any]]:
    """The JSON messages of the build's answer; an ``error`` one raises :class:`BuildFailed`."""
    for line in response.lines():
        try:
            message = jsoncodec.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        detail = message.get("errorDetail") or {}
        error = message.get("error") or detail.get("message")
        if error:
            code = detail.get("code")
            raise BuildFailed(str(error), code if isinstance(code, int) and code > 0 else 1)
        yield message


def _aux_id(message: dict[str, Any]) -> str:
    aux = message.get("aux")
    return aux["ID"] if isinstance(aux, dict) and isinstance(aux.get("ID"), str) else ""


def render(response: Response, out: TextIO, show: bool) -> str:
    """Show the build's messages on ``out`` (only when ``show``) as Docker's classic CLI; returns
    the image ID (from ``aux``, else the last ``stream`` line that is one). Raises
    :class:`BuildFailed` on an error line."""
    image_id = ""
    for message in messages(response):
        image_id = _aux_id(message) or image_id
        text = message.get("stream")
        if isinstance(text, str):
            if text.strip().startswith("sha256:") and not image_id:
                image_id = text.strip()
            if show:
                out.write(text)
        elif show and message.get("status") and not message.get("progressDetail"):
            prefix = f"{message['id']}: " if message.get("id") else ""
            out.write(f"{prefix}{message['status']}\n")
        if show:
            out.flush()
    return image_id


def render_steps(response: Response, view: BuildView) -> str:
    """Show the build as BuildKit does (``--progress=plain|tty``, see
    :mod:`dockyard.cli.build_progress`); returns the image ID. A failure ends its step first."""
    try:
        for message in messages(response):
            view.image_id = _aux_id(message) or view.image_id
            text = message.get("stream")
            if isinstance(text, str):
                view.stream(text)
            elif message.get("status") and not message.get("progressDetail"):
                prefix = f"{message['id']}: " if message.get("id") else ""
                view.status(f"{prefix}{message['status']}")
    except BuildFailed as failure:
        view.fail(failure.message)
        view.close()
        raise
    view.finish()
    view.close()
    return view.image_id


def step_view(mode: str, err: TextIO) -> BuildView | None:
    """The view ``--progress`` asks for: ``plain``; ``tty`` on a terminal (else plain, as BuildKit);
    ``auto`` is the tty view on a terminal and the classic output otherwise (None)."""
    from dockyard.cli.build_progress import PlainProgress, TtyProgress

    terminal = err.isatty()
    if mode == "plain" or (mode == "tty" and not terminal):
        return PlainProgress(err)
    if mode in ("tty", "auto") and terminal:
        return TtyProgress(err, width=os.get_terminal_size(err.fileno()).columns or 80)  # a pty may say 0
    return None


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    if parsed["progress"] not in PROGRESS_MODES:
        raise FlagError(f'invalid argument "{parsed["progress"]}" for "--progress" flag: must be one of '
                        + ", ".join(PROGRESS_MODES[:-1]))
    iidfile = parsed["iidfile"]
    if iidfile:
        try:
            os.remove(iidfile)
        except FileNotFoundError:
            pass
        except OSError as error:
            raise CliFailure(f"Removing image ID file: {error}", 1) from None
    context = prepare(parsed, sys.stdin.buffer)
    hush = quiet(parsed)
    response = invocation.api.request(
        "POST", "/build", query(parsed, context.dockerfile, dict(os.environ)), raw_body=context.chunks(),
        headers={"Content-Type": "application/x-tar"})
    view = None if hush else step_view(parsed["progress"], sys.stderr)
    try:
        if view is not None:
            image_id = render_steps(response, view)
        else:
            if not hush:  # as Docker's CLI ends its upload progress line
                sys.stdout.write(f"Sending build context to Docker daemon  {units.human_size(context.size, 4)}\r\r\n")
                sys.stdout.flush()
            image_id = render(response, sys.stdout, not hush)
    except BuildFailed as failure:
        raise CliFailure(failure.message, failure.code) from None
    finally:
        response.close()
    if hush and image_id:
        sys.stdout.write(image_id + "\n")
    if iidfile:
        if not image_id:
            raise CliFailure(f"Server did not provide an image ID. Cannot write {iidfile}", 1)
        with open(iidfile, "w", encoding="utf-8") as f:
            f.write(image_id)
    return 0
