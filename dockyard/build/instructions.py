"""Dockerfile instructions as typed values, checked as Docker checks them.

:func:`parse_dockerfile` reads a Dockerfile (:mod:`dockyard.build.dockerfile`) and turns each node
into one of the dataclasses below, grouped into *stages* (a ``FROM`` and what follows it) after the
*meta args* (``ARG`` lines before the first ``FROM``). Arguments are kept as written: variable
substitution happens per stage (:mod:`dockyard.build.stages`), because it needs the values of
``ARG`` and ``ENV`` at that point of the build.

Errors are Docker's (BuildKit's ``frontend/dockerfile/instructions``), as :class:`DockerfileError`
``dockerfile parse error on line N: <detail>``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from dockyard.build.dockerfile import (
    DockerfileError,
    Heredoc,
    Node,
    ParsedDockerfile,
    parse,
    parse_heredoc_marker,
)
from dockyard.build.shell_words import go_quote
from dockyard.build.suggest import with_suggestion
from dockyard.errors import InvalidParameter
from dockyard.formats.durations import parse_go_duration
from dockyard.formats.sizes import ram_in_bytes

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")
NETWORK_MODES = ("default", "none", "host")
MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
_MOUNT_KEYS = ("type", "from", "source", "target", "readonly", "id", "sharing", "required", "size", "mode", "uid",
               "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env")


@dataclass(frozen=True)
class Instruction:
    """What every instruction has: its keyword as written and the lines it spans."""

    keyword: str
    line: int
    end_line: int
    original: str


@dataclass(frozen=True)
class CommandLine:
    """RUN, CMD, ENTRYPOINT: ``args`` in exec form (``shell`` False) or one shell string (``shell``
    True: run it with the stage's ``SHELL``); ``files`` are the heredocs that follow."""

    args: list[str] | None
    shell: bool
    files: list[Heredoc] = field(default_factory=list)


@dataclass(frozen=True)
class Mount:
    """One ``RUN --mount`` as BuildKit reads it (values as written, expanded at build time)."""

    type: str = "bind"
    source: str = ""
    target: str = ""
    from_: str = ""
    readonly: bool = True
    id: str = ""
    sharing: str = ""
    required: bool = False
    size: int = 0  # tmpfs bytes; 0: no limit
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    env: str | None = None


@dataclass(frozen=True)
class Run(Instruction):
    command: CommandLine
    mounts: list[Mount] = field(default_factory=list)
    network: str = "default"
    security: str = "sandbox"


@dataclass(frozen=True)
class Cmd(Instruction):
    command: CommandLine


@dataclass(frozen=True)
class Entrypoint(Instruction):
    command: CommandLine


@dataclass(frozen=True)
class Shell(Instruction):
    shell: list[str]


@dataclass(frozen=True)
class Copy(Instruction):
    """COPY and ADD: ``sources`` (paths, globs, URLs for ADD), ``dest``; heredoc sources are in
    ``contents``; ``from_`` (COPY) names a stage or an image; ADD-only fields are None for COPY."""

    sources: list[str]
    dest: str
    contents: list[Heredoc] = field(default_factory=list)
    from_: str = ""
    chown: str = ""
    chmod: str = ""
    link: bool = False
    exclude: list[str] = field(default_factory=list)
    parents: bool = False
    checksum: str = ""
    keep_git_dir: bool | None = None
    unpack: bool | None = None


@dataclass(frozen=True)
class Add(Copy):
    """ADD: COPY's fields plus URLs, git sources, archives unpacked (``unpack``), ``checksum``."""


@dataclass(frozen=True)
class Env(Instruction):
    pairs: list[tuple[str, str]]


@dataclass(frozen=True)
class Label(Instruction):
    pairs: list[tuple[str, str]]


@dataclass(frozen=True)
class Arg(Instruction):
    """``ARG name[=default] ...``: ``default`` None when none was given."""

    pairs: list[tuple[str, str | None]]


@dataclass(frozen=True)
class Workdir(Instruction):
    path: str


@dataclass(frozen=True)
class User(Instruction):
    user: str


@dataclass(frozen=True)
class Expose(Instruction):
    ports: list[str]


@dataclass(frozen=True)
class Volume(Instruction):
    paths: list[str]


@dataclass(frozen=True)
class StopSignal(Instruction):
    signal: str


@dataclass(frozen=True)
class Healthcheck(Instruction):
    """``test`` is Docker's form: ``["NONE"]``, ``["CMD", ...]`` or ``["CMD-SHELL", "cmd"]``;
    durations are nanoseconds, as in the image config (0: the default)."""

    test: list[str]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True)
class Onbuild(Instruction):
    """``ONBUILD <trigger>``: ``expression`` is stored in the image and run by the child build."""

    expression: str
    trigger: Instruction


@dataclass(frozen=True)
class Maintainer(Instruction):
    """Deprecated; kept as the image's ``Author``."""

    name: str


@dataclass
class Stage:
    """One ``FROM base [AS name]`` and its instructions; ``index`` is its position."""

    index: int
    base: str
    name: str
    platform: str
    line: int
    original: str
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    """A parsed Dockerfile: the global ``ARG``s before the first FROM, then the stages; ``warnings``
    are what BuildKit reports without failing (empty continuation lines, its lint rules on stage names
    and MAINTAINER)."""

    meta_args: list[Arg]
    stages: list[Stage]
    escape: str = "\\"
    warnings: list[str] = field(default_factory=list)


class _Flags:
    """An instruction's ``--flags`` (BuildKit's BFlags): declared by kind, then parsed."""

    def __init__(self, raw: list[str]) -> None:
        self.raw = raw
        self.kinds: dict[str, str] = {}
        self.values: dict[str, str] = {}
        self.lists: dict[str, list[str]] = {}
        self.used: set[str] = set()

    def declare(self, **kinds: str) -> _Flags:
        self.kinds.update(kinds)
        return self

    def parse(self) -> _Flags:
        for arg in self.raw:
            if arg == "--":
                break
            if not arg.startswith("--"):
                raise DockerfileError(f"arg should start with -- : {arg}")
            name, eq, value = arg.partition("=")
            key = name[2:]
            kind = self.kinds.get(key)
            if kind is None:
                raise DockerfileError(with_suggestion(f"unknown flag: {name}", key, self.kinds, True))
            if key in self.used and kind != "strings":
                raise DockerfileError(f"duplicate flag specified: {name}")
            self.used.add(key)
            if kind == "bool":
                if eq and value == "":
                    raise DockerfileError(f"missing a value on flag: {name}")
                if value.lower() not in ("true", "false", ""):
                    raise DockerfileError(f"expecting boolean value for flag {name}, not: {value}")
                self.values[key] = "false" if value.lower() == "false" else "true"
            elif not eq:
                raise DockerfileError(f"missing a value on flag: {name}")
            elif kind == "strings":
                self.lists.setdefault(key, []).append(value)
            else:
                self.values[key] = value
        return self

    def string(self, key: str) -> str:
        return self.values.get(key, "")

    def flag(self, key: str) -> bool:
        return self.values.get(key) == "true"

    def optional_flag(self, key: str) -> bool | None:
        return self.flag(key) if key in self.used else None

    def strings(self, key: str) -> list[str]:
        return self.lists.get(key, [])


def parse_dockerfile(text: str, filename: str = "Dockerfile") -> Dockerfile:
    """Parse and check a whole Dockerfile: meta args, then stages of typed instructions."""
    parsed: ParsedDockerfile = parse(text, filename)
    meta_args: list[Arg] = []
    stages: list[Stage] = []
    warnings = list(parsed.warnings)
    for node in parsed.nodes:
        try:
            value = instruction_from_node(node)
        except DockerfileError as err:
            raise DockerfileError(err.detail, line=node.line, end_line=node.end_line, instruction=node.keyword,
                                  filename=filename, prefixed=True) from None
        if isinstance(value, Maintainer):
            warnings.append(f"MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label "
                            f"(line {value.line})")
        if isinstance(value, Stage):
            value.index = len(stages)
            warnings += _stage_name_warnings(value, stages)
            stages.append(value)
        elif not stages and isinstance(value, Arg):
            meta_args.append(value)
        elif not stages:
            raise DockerfileError("no build stage in current context", line=node.line, end_line=node.end_line,
                                  instruction=node.keyword, filename=filename)
        else:
            stages[-1].instructions.append(value)
    return Dockerfile(meta_args, stages, parsed.escape, warnings)


def _stage_name_warnings(stage: Stage, earlier: list[Stage]) -> list[str]:
    """BuildKit's lint warnings on a stage name (warnings, not errors, by default)."""
    if not stage.name:
        return []
    out = []
    if stage.name in ("context", "scratch"):
        out.append(f"ReservedStageName: Stage name should not use the same name as reserved stage "
                   f"{go_quote(stage.name)} (line {stage.line})")
    if any(s.name == stage.name for s in earlier):
        out.append(f"DuplicateStageName: Duplicate stage name {go_quote(stage.name)}, stage names should be unique "
                   f"(line {stage.line})")
    return out


def parse_trigger(expression: str, from_line: int) -> Instruction:
    """An ``ONBUILD`` trigger from a parent image's config, as the child build runs it: one
    instruction (heredocs included), located at the child's ``FROM`` line (``from_line``)."""
    try:
        nodes = parse(expression).nodes
    except DockerfileError as err:
        raise DockerfileError(err.detail, line=from_line, instruction="FROM") from None
    if len(nodes) != 1:
        raise DockerfileError("onbuild trigger should be a single expression", line=from_line, instruction="FROM")
    node = nodes[0]
    node.line = node.end_line = from_line
    try:
        value = instruction_from_node(node)
    except DockerfileError as err:
        raise DockerfileError(err.detail, line=from_line, instruction=node.keyword) from None
    if isinstance(value, Stage):
        raise DockerfileError("FROM isn't allowed as an ONBUILD trigger", line=from_line, instruction=node.keyword)
    return value


def instruction_from_node(node: Node) -> Instruction | Stage:
    """One node as its typed instruction (a :class:`Stage` for FROM); DockerfileError with the
    detail (no location) when Docker would refuse it."""
    handler = _HANDLERS.get(node.command)
    if handler is None:
        raise DockerfileError(with_suggestion(f"unknown instruction: {node.keyword}", node.keyword,
                                              [name.upper() for name in _HANDLERS], False))
    return handler(node)


def _base(node: Node) -> tuple[str, int, int, str]:
    return node.keyword, node.line, node.end_line, node.original


def _command_line(node: Node, empty_as_none: bool) -> CommandLine:
    args: list[str] | None = list(node.args) if node.json else ([" ".join(node.args)] if node.args else [])
    if empty_as_none and not args:
        args = None
    return CommandLine(args, not node.json, list(node.heredocs))


def _from(node: Node) -> Stage:
    args = node.args
    name = ""
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise DockerfileError(f"invalid name for build stage: {go_quote(args[2])}, "
                                  "name can't start with a number or contain symbols")
    elif len(args) != 1:
        raise DockerfileError("FROM requires either one or three arguments")
    flags = _Flags(node.flags).declare(platform="string").parse()
    return Stage(0, args[0], name, flags.string("platform"), node.line, node.original.strip())


def _run(node: Node) -> Run:
    flags = _Flags(node.flags).declare(mount="strings", network="string", security="string").parse()
    network = flags.string("network") or "default"
    if network not in NETWORK_MODES:
        raise DockerfileError(f"invalid network mode {go_quote(network)}")
    security = flags.string("security") or "sandbox"
    if security not in ("sandbox", "insecure"):
        raise DockerfileError(f"security {go_quote(security)} is not valid")
    mounts = [parse_mount(value) for value in flags.strings("mount")]
    return Run(*_base(node), _command_line(node, False), mounts, network, security)


def parse_mount(value: str) -> Mount:
    """One ``--mount=`` value (comma-separated ``key=value`` fields), checked as BuildKit does."""
    try:
        fields = next(csv.reader([value]), [])
    except csv.Error as err:
        raise DockerfileError(f"failed to parse csv mounts: {err}") from None
    kv: dict[str, object] = {"type": "bind"}
    ro_auto = True
    for item in fields:
        key, eq, val = item.partition("=")
        key = key.lower()
        if not eq:
            if key in ("readonly", "ro"):
                kv["readonly"], ro_auto = True, False
            elif key in ("readwrite", "rw"):
                kv["readonly"], ro_auto = False, False
            elif key == "required":
                if kv["type"] not in ("secret", "ssh"):
                    raise DockerfileError(f"unexpected key '{key}' for mount type '{kv['type']}'")
                kv["required"] = True
            else:
                raise DockerfileError(f"invalid field '{item}' must be a key=value pair")
            continue
        if key == "type":
            if val.lower() not in MOUNT_TYPES:
                raise DockerfileError(with_suggestion(f"unsupported mount type {go_quote(val)}", val, MOUNT_TYPES, True))
            kv["type"] = val.lower()
        elif key in ("from", "id", "env"):
            kv["from_" if key == "from" else key] = val
        elif key in ("source", "src"):
            kv["source"] = val
        elif key in ("target", "dst", "destination"):
            kv["target"] = val
        elif key in ("readonly", "ro", "readwrite", "rw"):
            flag = _go_bool(val)
            if flag is None:
                raise DockerfileError(f"invalid value for {key}: {val}")
            kv["readonly"], ro_auto = (flag if key in ("readonly", "ro") else not flag), False
        elif key == "required":
            if kv["type"] not in ("secret", "ssh"):
                raise DockerfileError(f"unexpected key '{key}' for mount type '{kv['type']}'")
            flag = _go_bool(val)
            if flag is None:
                raise DockerfileError(f"invalid value for {key}: {val}")
            kv["required"] = flag
        elif key == "size":
            if kv["type"] != "tmpfs":
                raise DockerfileError(f"unexpected key '{key}' for mount type '{kv['type']}'")
            try:
                kv["size"] = ram_in_bytes(val)
            except InvalidParameter:
                raise DockerfileError(f"invalid value for {key}: {val}") from None
        elif key == "sharing":
            if val.lower() not in SHARING_MODES:
                raise DockerfileError(with_suggestion(f"unsupported sharing value {go_quote(val)}", val, SHARING_MODES,
                                                      True))
            kv["sharing"] = val.lower()
        elif key in ("mode", "uid", "gid"):
            try:
                kv[key] = int(val, 8 if key == "mode" else 10)
            except ValueError:
                raise DockerfileError(f"invalid value {val} for {key}") from None
        else:
            raise DockerfileError(with_suggestion(f"unexpected key '{key}' in '{item}'", key, _MOUNT_KEYS, True))
    kind = str(kv["type"])
    if kind not in ("secret", "ssh", "cache"):
        for key in ("mode", "uid", "gid"):
            if key in kv:
                raise DockerfileError(f'{key} not allowed for "{kind}" type mounts')
    if ro_auto:
        kv["readonly"] = kind not in ("cache", "tmpfs")
    if kind == "secret":
        if kv.get("from_"):
            raise DockerfileError("secret mount should not have a from")
        if kv.get("sharing"):
            raise DockerfileError("secret mount should not define sharing")
        if not kv.get("source") and not kv.get("target") and not kv.get("id"):
            raise DockerfileError("invalid secret mount. one of source, target required")
        if kv.get("source") and kv.get("id"):
            raise DockerfileError("both source and id can't be set")
    if kv.get("sharing") and kind != "cache":
        raise DockerfileError(f"invalid cache sharing set for {kind} mount")
    return Mount(**kv)  # type: ignore[arg-type]


def _go_bool(text: str) -> bool | None:
    """Go's ``strconv.ParseBool``."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def _cmd(node: Node) -> Cmd:
    _Flags(node.flags).parse()
    return Cmd(*_base(node), _command_line(node, False))


def _entrypoint(node: Node) -> Entrypoint:
    _Flags(node.flags).parse()
    return Entrypoint(*_base(node), _command_line(node, True))


def _shell(node: Node) -> Shell:
    _Flags(node.flags).parse()
    if not node.args:
        raise DockerfileError("SHELL requires at least one argument")
    if not node.json:
        raise DockerfileError("SHELL requires the arguments to be in JSON form")
    return Shell(*_base(node), list(node.args))


def _copy(node: Node) -> Copy | Add:
    is_add = node.command == "add"
    keyword = "ADD" if is_add else "COPY"
    if len(node.args) < 2:
        raise DockerfileError(f"{keyword} requires at least two arguments, but only one was provided. "
                              "Destination could not be determined")
    flags = _Flags(node.flags).declare(chown="string", chmod="string", link="bool", exclude="strings")
    if is_add:
        flags.declare(**{"keep-git-dir": "bool", "checksum": "string", "unpack": "bool"})
    else:
        flags.declare(**{"from": "string", "parents": "bool"})
    flags.parse()
    *sources, dest = node.args
    if parse_heredoc_marker(dest) is not None:
        raise DockerfileError(f"{keyword} cannot accept a heredoc as a destination")
    bodies = {doc.name: doc for doc in node.heredocs}
    paths: list[str] = []
    contents: list[Heredoc] = []
    for source in sources:
        marker = parse_heredoc_marker(source)
        if marker is None:
            paths.append(source)
            continue
        found = bodies.get(marker.name, marker)
        contents.append(Heredoc(marker.name, found.body() if marker.chomp else found.content, marker.expand))
    kind = Add if is_add else Copy
    return kind(*_base(node), paths, dest, contents, flags.string("from"), flags.string("chown"),
                flags.string("chmod"), flags.flag("link"), flags.strings("exclude"), flags.flag("parents"),
                flags.string("checksum"), flags.optional_flag("keep-git-dir"), flags.optional_flag("unpack"))


def _pairs(node: Node, keyword: str) -> list[tuple[str, str]]:
    _Flags(node.flags).parse()
    if not node.pairs:
        raise DockerfileError(f"{keyword} requires at least one argument")
    if any(not key for key, _value, _eq in node.pairs):
        raise DockerfileError(f"{keyword} names can not be blank")
    return [(key, value) for key, value, _eq in node.pairs]


def _env(node: Node) -> Env:
    return Env(*_base(node), _pairs(node, "ENV"))


def _label(node: Node) -> Label:
    return Label(*_base(node), _pairs(node, "LABEL"))


def _arg(node: Node) -> Arg:
    if not node.args:
        raise DockerfileError("ARG requires at least one argument")
    pairs: list[tuple[str, str | None]] = []
    for word in node.args:
        if "=" in word:
            key, value = word.split("=", 1)
            if not key:
                raise DockerfileError("ARG names can not be blank")
            pairs.append((key, value))
        else:
            pairs.append((word, None))
    return Arg(*_base(node), pairs)


def _one_argument(node: Node, keyword: str) -> str:
    if len(node.args) != 1:
        raise DockerfileError(f"{keyword} requires exactly one argument")
    return node.args[0]


def _workdir(node: Node) -> Workdir:
    path = _one_argument(node, "WORKDIR")
    _Flags(node.flags).parse()
    return Workdir(*_base(node), path)


def _user(node: Node) -> User:
    user = _one_argument(node, "USER")
    _Flags(node.flags).parse()
    return User(*_base(node), user)


def _stopsignal(node: Node) -> StopSignal:
    return StopSignal(*_base(node), _one_argument(node, "STOPSIGNAL"))


def _maintainer(node: Node) -> Maintainer:
    name = _one_argument(node, "MAINTAINER")
    _Flags(node.flags).parse()
    return Maintainer(*_base(node), name)


def _expose(node: Node) -> Expose:
    if not node.args:
        raise DockerfileError("EXPOSE requires at least one argument")
    _Flags(node.flags).parse()
    return Expose(*_base(node), sorted(node.args))


def _volume(node: Node) -> Volume:
    if not node.args:
        raise DockerfileError("VOLUME requires at least one argument")
    _Flags(node.flags).parse()
    paths = [path.strip() for path in node.args]
    if any(not path for path in paths):
        raise DockerfileError("VOLUME specified can not be an empty string")
    return Volume(*_base(node), paths)


def _interval(flags: _Flags, key: str) -> int:
    text = flags.string(key)
    if not text:
        return 0
    try:
        ns = parse_go_duration(text)
    except InvalidParameter as err:
        raise DockerfileError(err.message) from None
    if ns == 0:
        return 0
    if ns < 1_000_000:
        raise DockerfileError(f'Interval "{key}" cannot be less than 1ms')
    return ns


def _healthcheck(node: Node) -> Healthcheck:
    if not node.args:
        raise DockerfileError("HEALTHCHECK requires at least one argument")
    kind = node.args[0].upper()
    rest = node.args[1:]
    if kind == "NONE":
        if rest:
            raise DockerfileError("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(*_base(node), ["NONE"])
    flags = _Flags(node.flags).declare(**{key: "string" for key in
                                          ("interval", "timeout", "start-period", "start-interval", "retries")})
    flags.parse()
    if kind != "CMD":
        raise DockerfileError(f"Unknown type {go_quote(kind)} in HEALTHCHECK (try CMD)")
    command = list(rest) if node.json else ([" ".join(rest)] if rest else [])
    if not command:
        raise DockerfileError("Missing command after HEALTHCHECK CMD")
    test = ["CMD", *command] if node.json else ["CMD-SHELL", *command]
    retries = 0
    if flags.string("retries"):
        try:
            retries = int(flags.string("retries"), 10)
        except ValueError:
            raise DockerfileError(f'strconv.ParseInt: parsing {go_quote(flags.string("retries"))}: invalid syntax') from None
        if retries < 0:
            raise DockerfileError(f"--retries cannot be negative ({retries})")
    return Healthcheck(*_base(node), test, _interval(flags, "interval"), _interval(flags, "timeout"),
                       _interval(flags, "start-period"), _interval(flags, "start-interval"), retries)


def _onbuild(node: Node) -> Onbuild:
    if not node.args or node.trigger is None:
        raise DockerfileError("ONBUILD requires at least one argument")
    _Flags(node.flags).parse()
    trigger_keyword = node.args[0].strip().upper()
    if trigger_keyword == "ONBUILD":
        raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger_keyword in ("MAINTAINER", "FROM"):
        raise DockerfileError(f"{trigger_keyword} isn't allowed as an ONBUILD trigger")
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original)
    for doc in node.trigger.heredocs:
        expression += "\n" + doc.content + doc.name
    trigger = instruction_from_node(node.trigger)
    if isinstance(trigger, Stage):
        raise DockerfileError("FROM isn't allowed as an ONBUILD trigger")
    return Onbuild(*_base(node), expression, trigger)


_HANDLERS: dict[str, Callable[[Node], Instruction | Stage]] = {
    "from": _from, "run": _run, "cmd": _cmd, "entrypoint": _entrypoint, "shell": _shell,
    "copy": _copy, "add": _copy, "env": _env, "label": _label, "arg": _arg, "workdir": _workdir,
    "user": _user, "expose": _expose, "volume": _volume, "stopsignal": _stopsignal,
    "healthcheck": _healthcheck, "onbuild": _onbuild, "maintainer": _maintainer,
}
