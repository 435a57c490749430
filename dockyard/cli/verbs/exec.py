"""``dockyard exec``: run a command in a running container, as Docker's CLI does it.

1. ``POST /containers/{id}/exec`` (the exec instance: command, env, user, workdir, tty, streams);
2. ``-d``: ``POST /exec/{id}/start`` with ``Detach: true`` and exit 0;
3. otherwise hijack ``POST /exec/{id}/start``, relay I/O, resize the TTY, and exit with
   ``GET /exec/{id}/json``'s ``ExitCode``. With ``-it``, Ctrl-P Ctrl-Q (or ``--detach-keys``)
   detaches: the exec runs on, and (as Docker's CLI) we print "read escape sequence" and exit 1.
"""

from __future__ import annotations

import sys

from dockyard.cli import terminal
from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import Flag, FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("detach", "d", "bool", "Detached mode: run command in the background"),
    Flag("detach-keys", "", "string", "Override the key sequence for detaching a container"),
    Flag("env", "e", "list", "Set environment variables"),
    Flag("env-file", "", "list", "Read in a file of environment variables"),
    Flag("interactive", "i", "bool", "Keep STDIN open even if not attached"),
    Flag("privileged", "", "bool", "Give extended privileges to the command"),
    Flag("tty", "t", "bool", "Allocate a pseudo-TTY"),
    Flag("user", "u", "string", "Username or UID (format: \"<name|uid>[:<group|gid>]\")"),
    Flag("workdir", "w", "string", "Working directory inside the container"),
], interspersed=False)


def exec_body(parsed: Parsed, command: list[str], console: tuple[int, int] | None) -> dict[str, Any]:
    from dockyard.cli.verbs.run import read_env_file, resolve_env

    env: list[str] = []
    for path in parsed["env-file"]:
        env += read_env_file(path)
    env += [resolve_env(entry) for entry in parsed["env"]]
    detach = parsed["detach"]
    body: dict[str, Any] = {
        "User": parsed["user"] or "",
        "Privileged": parsed["privileged"],
        "Tty": parsed["tty"],
        "AttachStdin": parsed["interactive"] and not detach,
        "AttachStdout": not detach,
        "AttachStderr": not detach,
        "DetachKeys": parsed["detach-keys"] or "",
        "Env": env or None,
        "WorkingDir": parsed["workdir"] or "",
        "Cmd": command,
    }
    if console is not None:
        body["ConsoleSize"] = list(console)
    return body


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    from dockyard.cli.verbs.run import Relay

    container, command = parsed.args[0], parsed.args[1:]
    api = invocation.api
    detach_keys = None
    if parsed["detach-keys"]:
        from dockyard.cli.detach_keys import parse_detach_keys

        detach_keys = parse_detach_keys(parsed["detach-keys"])
    tty = parsed["tty"]
    interactive = parsed["interactive"] and not parsed["detach"]
    if tty and interactive and not terminal.is_terminal(0):
        raise CliFailure("the input device is not a TTY", 1)
    console = terminal.window_size(1) if tty else None
    api.json("GET", f"/containers/{container}/json")  # Docker's "No such container" first
    created = api.json("POST", f"/containers/{container}/exec", body=exec_body(parsed, command, console))
    exec_id = str(created["Id"])
    if parsed["detach"]:
        api.request("POST", f"/exec/{exec_id}/start", body={"Detach": True, "Tty": tty}).read()
        return 0
    start: dict[str, Any] = {"Detach": False, "Tty": tty}
    if console is not None:
        start["ConsoleSize"] = list(console)
    pipe = api.hijack("POST", f"/exec/{exec_id}/start", body=start)
    relay = Relay(pipe, tty, interactive, detach_keys)
    relay.run_in_terminal(api, f"/exec/{exec_id}/resize")
    if relay.detached:  # the exec runs on; Docker's CLI ends its exec this way, with status 1
        raise CliFailure("read escape sequence", 1)
    state = api.json("GET", f"/exec/{exec_id}/json")
    sys.stdout.flush()
    return int((state or {}).get("ExitCode") or 0)
