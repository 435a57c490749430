"""``dockyard run``: create a container (pulling its image if missing), attach, start, relay I/O, exit.

The order follows Docker's CLI so no output is lost and the exit code is the container's:

1. ``POST /containers/create`` (on "No such image": announce, ``POST /images/create``, retry);
2. unless detached: hijack ``POST /containers/{id}/attach`` and send ``POST /containers/{id}/wait``
   (``condition=next-exit``, or ``removed`` with ``--rm``), whose headers arrive at once and whose
   body arrives when the container exits;
3. ``POST /containers/{id}/start``;
4. relay: container output to our stdout/stderr (demultiplexed unless it has a TTY), our stdin to
   the container (``-i``), window size changes (``-t``), Ctrl-P Ctrl-Q to detach;
5. exit with the wait body's ``StatusCode``.

Exit statuses when dockyard itself fails: 125, or 126/127 when the command cannot be run / is missing.
"""

from __future__ import annotations

import os
import sys

from dockyard.cli import options, references, stdcopy, terminal
from dockyard.cli.detach import EscapeProxy
from dockyard.cli.failure import CliFailure, DaemonError
from dockyard.cli.flags import Flag, FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.client import Hijacked, Response
    from dockyard.cli.engine_api import EngineAPI
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("attach", "a", "list", "Attach to STDIN, STDOUT or STDERR"),
    Flag("detach", "d", "bool", "Run container in background and print container ID"),
    Flag("entrypoint", "", "string", "Overwrite the default ENTRYPOINT of the image"),
    Flag("env", "e", "list", "Set environment variables"),
    Flag("env-file", "", "list", "Read in a file of environment variables"),
    Flag("init", "", "bool", "Run an init inside the container that forwards signals and reaps processes"),
    Flag("interactive", "i", "bool", "Keep STDIN open even if not attached"),
    Flag("label", "l", "list", "Set meta data on a container"),
    Flag("name", "", "string", "Assign a name to the container"),
    Flag("platform", "", "string", "Set platform if server is multi-platform capable"),
    Flag("pull", "", "string", 'Pull image before running ("always", "missing", "never")', default="missing"),
    Flag("rm", "", "bool", "Automatically remove the container and its associated anonymous volumes "
         "when it exits"),
    Flag("tty", "t", "bool", "Allocate a pseudo-TTY"),
    Flag("user", "u", "string", "Username or UID (format: <name|uid>[:<group|gid>])"),
    Flag("workdir", "w", "string", "Working directory inside the container"),
    *options.flags(),
], interspersed=False)
for _alias, _canonical in options.aliases().items():
    FLAGS.alias(_alias, _canonical)

STATUS_DOCKYARD_FAILED = 125
STATUS_CANNOT_INVOKE = 126
STATUS_NOT_FOUND = 127


def run_failure(message: str, status: int = STATUS_DOCKYARD_FAILED, verb: str = "run") -> CliFailure:
    """A failure printed the way ``docker run`` (or ``docker create``: ``verb``) prints its own errors."""
    return CliFailure(f"dockyard: {message}\n\nRun 'dockyard {verb} --help' for more information", status)


def start_error_status(message: str) -> int:
    """Docker's mapping of a start error to an exit status: 127 not found, 126 cannot invoke, else 125."""
    if ("executable file not found" in message or "no such file or directory" in message
            or "system cannot find the file specified" in message):
        return STATUS_NOT_FOUND
    if "permission denied" in message or "is a directory" in message:
        return STATUS_CANNOT_INVOKE
    return STATUS_DOCKYARD_FAILED


# -- building the create request --------------------------------------------------------------

def resolve_env(entry: str, environ: dict[str, str] | os._Environ[str] | None = None) -> str:
    """Docker's ``ValidateEnv``: ``KEY=V`` as is; a bare ``KEY`` takes its value from our environment."""
    env = os.environ if environ is None else environ
    key, has_value, _ = entry.partition("=")
    if not key:
        raise run_failure(f"invalid environment variable: {entry}")
    if has_value:
        return entry
    if key in env:
        return f"{key}={env[key]}"
    return entry


def read_env_file(path: str, environ: dict[str, str] | None = None) -> list[str]:
    """Docker's env-file format: ``KEY=VALUE`` or ``KEY`` lines; blank lines and ``#`` comments skipped."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise run_failure(f"open {path}: {(error.strerror or str(error)).lower()}") from None
    entries = []
    for line_number, raw in enumerate(text.splitlines(), 1):
        line = raw.lstrip(" \t")
        if not line or line.startswith("#"):
            continue
        key, has_value, _ = line.partition("=")
        if any(ch in key for ch in " \t"):
            raise run_failure(f"variable '{key}' contains whitespaces (line {line_number})")
        entries.append(line if has_value else resolve_env(line, environ))
    return entries


def parse_labels(values: list[str]) -> dict[str, str]:
    labels = {}
    for value in values:
        key, _, val = value.partition("=")
        labels[key] = val
    return labels


def create_body(parsed: Parsed, image: str, command: list[str], attach: set[str],
                console_size: tuple[int, int] | None, verb: str = "run") -> dict[str, Any]:
    """The JSON body of ``POST /containers/create`` for this command line (``verb``: ``run``,
    ``create``, ``container run``…, named as Docker names it when the command line makes no valid request:
    the hint names the short verb, the usage line the one typed)."""
    short = verb.rpartition(" ")[2]
    env = []
    for path in parsed["env-file"]:
        env += read_env_file(path)
    env += [resolve_env(entry) for entry in parsed["env"]]
    entrypoint: list[str] | None = None
    if "entrypoint" in parsed.changed:
        entrypoint = [parsed["entrypoint"]] if parsed["entrypoint"] else [""]
    host_config: dict[str, Any] = {"AutoRemove": parsed["rm"]}
    if parsed["init"]:
        host_config["Init"] = True
    if console_size is not None:
        host_config["ConsoleSize"] = list(console_size)
    body = {
        "User": parsed["user"] or "",
        "AttachStdin": "stdin" in attach,
        "AttachStdout": "stdout" in attach,
        "AttachStderr": "stderr" in attach,
        "Tty": parsed["tty"],
        "OpenStdin": parsed["interactive"],
        "StdinOnce": parsed["interactive"] and "stdin" in attach,
        "Env": env,
        "Cmd": command or None,
        "Image": image,
        "WorkingDir": parsed["workdir"] or "",
        "Entrypoint": entrypoint,
        "Labels": parse_labels(parsed["label"]),
        "HostConfig": host_config,
    }
    from dockyard.cli.failure import FlagError
    from dockyard.cli.options.networking import OptionError

    try:
        options.apply(parsed, body)
    except OptionError as error:
        raise run_failure(str(error), verb=short) from None
    except FlagError as error:
        if error.message.startswith("invalid argument "):  # a bad flag value: pflag's words and the usage
            raise CliFailure(f"{error.message}\n\nUsage:  dockyard {verb} [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n"
                             f"Run 'dockyard {verb} --help' for more information", 125) from None
        raise run_failure(error.message, verb=short) from None  # a command line Docker's parse refuses
    return body


def attached_streams(parsed: Parsed) -> set[str]:
    """Which of stdin/stdout/stderr to attach: ``-a`` values, else stdout+stderr (+stdin with ``-i``)."""
    if parsed["detach"]:
        return set()
    if parsed["attach"]:
        chosen = set()
        for value in parsed["attach"]:
            stream = value.lower()
            if stream not in ("stdin", "stdout", "stderr"):
                raise run_failure(f"valid streams are STDIN, STDOUT and STDERR, not {value}")
            chosen.add(stream)
        return chosen
    streams = {"stdout", "stderr"}
    if parsed["interactive"]:
        streams.add("stdin")
    return streams


# -- create, pulling if needed -----------------------------------------------------------------

def pull(api: EngineAPI, image: str, platform: str = "") -> None:
    """``POST /images/create?fromImage=&tag=``; Docker's progress on stderr; the stream's error is a failure."""
    from dockyard.cli.verbs.pull import pull_image

    try:
        pull_image(api, image, sys.stderr, platform=platform)
    except DaemonError as error:
        raise run_failure(error.message) from None
    except CliFailure as failure:
        raise run_failure(failure.message) from None
    sys.stderr.flush()


def api_version_problem(api: EngineAPI, body: dict[str, Any]) -> str | None:
    """Docker's client refusal of a per-network MAC address for a daemon older than API 1.44."""
    endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    if not any(endpoint.get("MacAddress") for endpoint in endpoints.values()):
        return None
    version = api.negotiate()
    if tuple(int(part) for part in version.split(".") if part.isdigit()) >= (1, 44):
        return None
    return (f'"specify mac-address per network" requires API version 1.44, but the Docker daemon API '
            f"version is {version}")


def create(api: EngineAPI, body: dict[str, Any], name: str | None, pull_policy: str = "missing",
           platform: str = "") -> str:
    """``POST /containers/create``, pulling the image first as ``--pull`` says (``missing``: only
    when the daemon answers "No such image"; ``always``; ``never``)."""
    if pull_policy not in ("missing", "always", "never"):
        raise run_failure(f'invalid pull option: \'{pull_policy}\': must be one of "always", "missing" or "never"')
    if pull_policy == "always":
        pull(api, body["Image"], platform)
    params = [("name", name)] if name else []
    if platform:
        params.append(("platform", platform))
    from dockyard.cli.options.networking import localhost_dns_warning

    dns_warning = localhost_dns_warning(body.get("HostConfig", {}).get("Dns") or [])
    for attempt in (0, 1):
        try:
            created = api.json("POST", "/containers/create", params, body)
            warnings = list((created or {}).get("Warnings") or [])
            if dns_warning:
                warnings.append(dns_warning)
            for warning in warnings:
                sys.stderr.write(f"WARNING: {warning}\n")
            return str(created["Id"])
        except DaemonError as error:
            missing = error.status_code == 404 and error.daemon_message.startswith("No such image")
            if attempt == 0 and missing and pull_policy == "missing":
                sys.stderr.write(f"Unable to find image '{references.with_default_tag(body['Image'])}' locally\n")
                sys.stderr.flush()
                pull(api, body["Image"], platform)
                continue
            raise run_failure(error.message) from None
    raise AssertionError("unreachable")


# -- relaying I/O ------------------------------------------------------------------------------

class Relay:
    """Moves bytes between our stdio and the hijacked attach stream."""

    def __init__(self, pipe: Hijacked, tty: bool, forward_stdin: bool, detach_keys: bytes | None = None) -> None:
        self.pipe = pipe
        self.tty = tty
        self.forward_stdin = forward_stdin
        self.detach_keys = detach_keys  # None: Docker's default, Ctrl-P Ctrl-Q
        self.detached = False

    def _stdin_loop(self) -> None:
        proxy = (EscapeProxy(self.detach_keys) if self.detach_keys else EscapeProxy()) if self.tty else None
        try:
            while True:
                data = os.read(0, 4096)
                if not data:
                    self.pipe.close_write()
                    return
                if proxy is not None:
                    data, detach = proxy.filter(data)
                    if data:
                        self.pipe.sendall(data)
                    if detach:
                        self.detached = True
                        self.pipe.close_write()
                        self.pipe.shutdown_read()
                        return
                else:
                    self.pipe.sendall(data)
        except OSError:
            return

    def run_in_terminal(self, api: EngineAPI, resize_path: str) -> None:
        """Relay until the stream ends, then close it. With a TTY: follow our window's size
        (``resize_path``: the container's or the exec's resize endpoint) and, when we forward a
        stdin that is our terminal, put it in raw mode meanwhile (keys go to the container)."""
        if self.tty and terminal.is_terminal(1):
            watch_window(api, resize_path)
        if self.tty and self.forward_stdin and terminal.is_terminal(0):
            with terminal.RawMode(0):
                self.run()
        else:
            self.run()
        self.pipe.close()

    def run(self) -> None:
        if self.forward_stdin:
            import threading

            threading.Thread(target=self._stdin_loop, name="stdin", daemon=True).start()
        demuxer = None if self.tty else stdcopy.Demuxer()
        while True:
            try:
                data = self.pipe.recv()
            except OSError:
                break
            if not data:
                break
            if demuxer is None:
                terminal.write_all(1, data)
                continue
            for stream, payload in demuxer.feed(data):
                terminal.write_all(2 if stream in (stdcopy.STDERR, stdcopy.SYSTEMERR) else 1, payload)


def resize(api: EngineAPI, resize_path: str) -> None:
    """Send our window's size to ``resize_path`` (a container's or an exec's resize endpoint)."""
    size = terminal.window_size(1) or terminal.window_size(0)
    if size is None:
        return
    try:
        api.request("POST", resize_path, [("h", str(size[0])), ("w", str(size[1]))]).read()
    except (CliFailure, OSError):
        pass


def watch_window(api: EngineAPI, resize_path: str) -> None:
    """Resize the TTY now and whenever our window changes (SIGWINCH)."""
    import signal
    import threading

    def on_winch(signum: int, frame: object) -> None:
        threading.Thread(target=resize, args=(api, resize_path), daemon=True).start()

    signal.signal(signal.SIGWINCH, on_winch)
    resize(api, resize_path)


def exit_status(api: EngineAPI, waiter: Response, container_id: str) -> int:
    from dockyard.cli.client import ProtocolError

    try:
        result = waiter.json()
    except (OSError, ProtocolError, ValueError):
        result = None
    if isinstance(result, dict) and "StatusCode" in result:
        error = result.get("Error") or {}
        if error.get("Message"):
            sys.stderr.write(f"dockyard: {error['Message']}\n")
        return int(result["StatusCode"])
    try:  # the wait stream broke: ask the container itself
        state = api.json("GET", f"/containers/{container_id}/json").get("State", {})
        return int(state.get("ExitCode", STATUS_DOCKYARD_FAILED))
    except CliFailure:
        return STATUS_DOCKYARD_FAILED


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    image, command = parsed.args[0], parsed.args[1:]
    if parsed["detach"] and parsed["attach"]:
        raise run_failure("Conflicting options: -a and -d")
    attach = attached_streams(parsed)
    tty = parsed["tty"]
    if tty and "stdin" in attach and not terminal.is_terminal(0):
        raise CliFailure("the input device is not a TTY", 1)
    console = terminal.window_size(1) if tty else None
    api = invocation.api
    body = create_body(parsed, image, command, attach, console, verb)
    problem = api_version_problem(api, body)
    if problem:
        raise run_failure(problem)
    container_id = create(api, body, parsed["name"], parsed["pull"], parsed["platform"])

    if parsed["detach"]:
        try:
            api.request("POST", f"/containers/{container_id}/start").read()
        except DaemonError as error:
            raise run_failure(error.message, start_error_status(error.daemon_message)) from None
        sys.stdout.write(container_id + "\n")
        return 0

    pipe = None
    if attach:
        params = [("stream", "1")] + [(name, "1") for name in ("stdin", "stdout", "stderr") if name in attach]
        try:
            pipe = api.hijack("POST", f"/containers/{container_id}/attach", params)
        except DaemonError as error:
            raise run_failure(error.message) from None
    condition = "removed" if parsed["rm"] else "next-exit"
    waiter = api.request("POST", f"/containers/{container_id}/wait", [("condition", condition)])
    try:
        api.request("POST", f"/containers/{container_id}/start").read()
    except DaemonError as error:
        if pipe is not None:
            pipe.close()
        waiter.close()
        raise run_failure(error.message, start_error_status(error.daemon_message)) from None

    if pipe is not None:
        relay = Relay(pipe, tty, "stdin" in attach)
        relay.run_in_terminal(api, f"/containers/{container_id}/resize")
        if relay.detached:
            waiter.close()
            return 0
    return exit_status(api, waiter, container_id)
