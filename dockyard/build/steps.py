"""What each Dockerfile instruction does to the *run config*, as Docker's classic builder has it.

Terms (moby ``builder/dockerfile/dispatchers.go``, ``internals.go``):

- *run config*: the container config a stage carries from step to step (``Env``, ``Cmd``,
  ``Entrypoint``, ``WorkingDir``, ``User``, ``Labels``, ``ExposedPorts``, ``Volumes``, ``Healthcheck``,
  ``StopSignal``, ``OnBuild``, ``Shell``, ``Image`` = the image of the previous step). It starts as
  the base image's config (``PATH`` added when missing) and becomes each step's image's ``config``.
- *comment*: what a config-only step writes in history: the step's ``Cmd`` is the shell plus
  ``"#(nop) "`` and the comment, so ``created_by`` reads ``/bin/sh -c #(nop)  ENV a=b``. Lists are
  written as Go's ``%q`` prints a ``[]string`` (``CMD ["sh" "-c" "x"]``).
- *build-arg env*: the ``KEY=value`` of the ARGs declared so far that have a value and are not
  shadowed by an ENV; a RUN's history gets them as a ``|N k=v ...`` prefix.
"""

from __future__ import annotations

import copy
import posixpath
from typing import Any

from dockyard.build.dockerfile import DockerfileError
from dockyard.build.instructions import (
    Arg,
    Cmd,
    CommandLine,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Shell,
    StopSignal,
    User,
    Volume,
)
from dockyard.build.shell_words import go_quote
from dockyard.errors import InvalidParameter
from dockyard.formats.signals import parse_signal

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def go_list(items: list[str]) -> str:
    """Go's ``fmt.Sprintf("%q", []string{...})``: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(item) for item in items) + "]"


def go_value_list(items: list[str]) -> str:
    """Go's ``fmt.Sprintf("%v", []string{...})``: ``[a b]``."""
    return "[" + " ".join(items) + "]"


def stage_config(image_config: dict[str, Any] | None) -> dict[str, Any]:
    """The run config a stage starts with: the base image's, ``PATH`` added when missing."""
    config: dict[str, Any] = copy.deepcopy(image_config or {})
    for key, empty in (("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
                       ("AttachStdout", False), ("AttachStderr", False), ("Tty", False), ("OpenStdin", False),
                       ("StdinOnce", False), ("Env", None), ("Cmd", None), ("Image", ""), ("Volumes", None),
                       ("WorkingDir", ""), ("Entrypoint", None), ("OnBuild", None), ("Labels", None)):
        config.setdefault(key, empty)
    env = list(config.get("Env") or [])
    if not any(e.partition("=")[0] == "PATH" for e in env):
        env.append("PATH=" + DEFAULT_PATH)
    config["Env"] = env
    return config


def shell_of(config: dict[str, Any]) -> list[str]:
    return list(config.get("Shell") or DEFAULT_SHELL)


def command_argv(command: CommandLine, config: dict[str, Any]) -> list[str] | None:
    """A RUN/CMD/ENTRYPOINT command as argv: exec form as written, shell form through SHELL."""
    if command.args is None:
        return None
    if command.shell:
        return [*shell_of(config), *command.args]
    return list(command.args)


def set_env(env: list[str], key: str, value: str) -> list[str]:
    """``env`` with ``key`` set: replaced in place when present (as Docker does), else appended."""
    for i, e in enumerate(env):
        if e.partition("=")[0] == key:
            return [*env[:i], f"{key}={value}", *env[i + 1:]]
    return [*env, f"{key}={value}"]


def expand_ports(spec: str) -> list[str]:
    """``80``, ``80/udp``, ``8000-8002/tcp`` as Docker's ``nat.ParsePortSpecs`` keys."""
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if ":" in port:
        port = port.rsplit(":", 1)[1]
    start, _, end = port.partition("-")
    try:
        first, last = int(start), int(end or start)
    except ValueError:
        raise InvalidParameter(f"invalid containerPort: {port}") from None
    if last < first or not 0 <= first <= 65535 or last > 65535:
        raise InvalidParameter(f"invalid range specified for container port: {port}")
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidParameter(f"invalid proto: {proto}")
    return [f"{n}/{proto}" for n in range(first, last + 1)]


def _health(instruction: Healthcheck) -> dict[str, Any]:
    out: dict[str, Any] = {"Test": list(instruction.test)}
    for key, value in (("Interval", instruction.interval), ("Timeout", instruction.timeout),
                       ("StartPeriod", instruction.start_period), ("StartInterval", instruction.start_interval),
                       ("Retries", instruction.retries)):
        if value:
            out[key] = value
    return out


def _go_duration(ns: int) -> str:
    """Go's ``time.Duration.String`` for whole seconds/milliseconds (what HEALTHCHECK takes)."""
    if ns == 0:
        return "0s"
    seconds, rest = divmod(ns, 1_000_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    frac = f"{rest / 1e9:.9f}"[1:].rstrip("0").rstrip(".") if rest else ""
    text = f"{seconds}{frac}s"
    if minutes or hours:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return text


def _health_comment(h: dict[str, Any]) -> str:
    durations = " ".join(go_quote(_go_duration(int(h.get(k) or 0)))
                         for k in ("Interval", "Timeout", "StartPeriod", "StartInterval"))
    retries = int(h.get("Retries") or 0)
    char = f"'\\x{retries:02x}'" if retries < 0x20 else f"'{chr(retries)}'"
    return f"HEALTHCHECK &{{{go_list(h['Test'])} {durations} {char}}}"


class ConfigStep:
    """Applies one config-only instruction (already expanded) to a run config."""

    def __init__(self, config: dict[str, Any], cmd_set: bool = False) -> None:
        self.config = config
        self.cmd_set = cmd_set  # a CMD was given in this stage (ENTRYPOINT then keeps it)
        self.author: str | None = None
        self.note = ""  # a line the builder prints (HEALTHCHECK replacing another)

    def apply(self, instruction: Instruction) -> str:
        """Change the config; returns the history comment (``ENV a=b``)."""
        c = self.config
        if isinstance(instruction, Env):
            env = list(c.get("Env") or [])
            for key, value in instruction.pairs:
                env = set_env(env, key, value)
            c["Env"] = env
            return "ENV " + " ".join(f"{k}={v}" for k, v in instruction.pairs)
        if isinstance(instruction, Label):
            labels = dict(c.get("Labels") or {})
            labels.update(instruction.pairs)
            c["Labels"] = labels
            return "LABEL " + " ".join(f"{k}={v}" for k, v in instruction.pairs)
        if isinstance(instruction, Maintainer):
            self.author = instruction.name
            return "MAINTAINER " + instruction.name
        if isinstance(instruction, Arg):
            return "ARG " + " ".join(k if v is None else f"{k}={v}" for k, v in instruction.pairs)
        if isinstance(instruction, User):
            c["User"] = instruction.user
            return "USER " + instruction.user
        if isinstance(instruction, Expose):
            ports = dict(c.get("ExposedPorts") or {})
            for spec in instruction.ports:
                try:
                    for key in expand_ports(spec):
                        ports[key] = {}
                except InvalidParameter as e:
                    raise DockerfileError(e.message, line=instruction.line, instruction="EXPOSE") from None
            c["ExposedPorts"] = ports
            return "EXPOSE " + " ".join(instruction.ports)
        if isinstance(instruction, Volume):
            volumes = dict(c.get("Volumes") or {})
            for path in instruction.paths:
                volumes[path] = {}
            c["Volumes"] = volumes
            return "VOLUME " + go_value_list(instruction.paths)
        if isinstance(instruction, StopSignal):
            try:
                parse_signal(instruction.signal)
            except InvalidParameter as e:
                raise DockerfileError(e.message, line=instruction.line, instruction="STOPSIGNAL") from None
            c["StopSignal"] = instruction.signal
            return "STOPSIGNAL " + instruction.signal
        if isinstance(instruction, Shell):
            c["Shell"] = list(instruction.shell)
            return "SHELL " + go_value_list(instruction.shell)
        if isinstance(instruction, Cmd):
            c["Cmd"] = command_argv(instruction.command, c)
            self.cmd_set = True
            return "CMD " + go_list(c["Cmd"] or [])
        if isinstance(instruction, Entrypoint):
            c["Entrypoint"] = command_argv(instruction.command, c)
            if not self.cmd_set:
                c["Cmd"] = None
            return "ENTRYPOINT " + go_list(c["Entrypoint"] or [])
        if isinstance(instruction, Healthcheck):
            h = _health(instruction)
            old = (c.get("Healthcheck") or {}).get("Test") or []
            if h["Test"] != ["NONE"] and old and old[0] != "NONE":
                self.note = f"Note: overriding previous HEALTHCHECK: {go_value_list(old)}\n"
            c["Healthcheck"] = h
            return _health_comment(h)
        if isinstance(instruction, Onbuild):
            c["OnBuild"] = [*(c.get("OnBuild") or []), instruction.expression]
            return "ONBUILD " + instruction.expression
        raise InvalidParameter(f"not a config instruction: {instruction.keyword}")


def workdir_path(current: str, path: str) -> str:
    """WORKDIR: relative to the current one, cleaned, absolute."""
    joined = path if path.startswith("/") else posixpath.join(current or "/", path)
    return posixpath.normpath(joined).replace("//", "/")


def nop_cmd(config: dict[str, Any], comment: str) -> list[str]:
    """The ``Cmd`` a config-only step is recorded with (its history's ``created_by``: two spaces)."""
    return [*shell_of(config), "#(nop) ", comment]


def nop_cmd_string(config: dict[str, Any], comment: str) -> list[str]:
    """The ``Cmd`` of WORKDIR, COPY and ADD (``withCmdCommentString``: one space)."""
    return [*shell_of(config), "#(nop) " + comment]


def build_arg_env(args: dict[str, str], env: list[str]) -> list[str]:
    """The declared ARGs with a value and no ENV of the same name, as sorted ``KEY=value``."""
    env_keys = {e.partition("=")[0] for e in env}
    return sorted(f"{k}={v}" for k, v in args.items() if k not in env_keys)


def run_created_by(argv: list[str], arg_env: list[str]) -> list[str]:
    """The ``Cmd`` a RUN is recorded with: ``|N k=v ...`` then the command."""
    return [f"|{len(arg_env)}", *arg_env, *argv] if arg_env else list(argv)
