"""``--change`` lines: Dockerfile instructions applied to an image's container config.

``docker import --change`` (and ``docker commit --change``) take Dockerfile lines and apply them
to the new image's ``Config``, the way moby's ``BuildFromConfig`` does: the lines are joined with
newlines and parsed as a Dockerfile; only CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL,
ONBUILD, STOPSIGNAL, USER, VOLUME and WORKDIR are allowed. Errors carry Docker's wording, e.g.
``FOO is not a valid change command`` or ``ENV must have two arguments``.

Terms: *shell form* is an instruction's argument written as a command line
(``CMD echo hi`` → ``["/bin/sh", "-c", "echo hi"]``); *JSON form* is a JSON array of strings
(``CMD ["echo", "hi"]``). *Expansion* replaces ``$VAR``/``${VAR}`` (and ``${VAR:-default}``,
``${VAR:+alt}``…) with values from the config's ``Env`` and removes quotes, for ENV, LABEL,
EXPOSE, USER, VOLUME, WORKDIR and STOPSIGNAL.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import InvalidParameter
from dockyard.formats.durations import parse_go_duration
from dockyard.formats.signals import parse_signal

VALID_CHANGE_COMMANDS = frozenset({
    "cmd", "entrypoint", "healthcheck", "env", "expose", "label", "onbuild", "stopsignal", "user",
    "volume", "workdir",
})
ESCAPE = "\\"
MINIMUM_DURATION_NS = 1_000_000  # 1ms, moby's container.MinimumDuration


def empty_container_config() -> dict[str, Any]:
    """A ``container.Config`` with nothing set, as Docker serialises one (omitempty fields left out)."""
    return {
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
        "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
        "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
        "OnBuild": None, "Labels": None,
    }


@dataclass
class Instruction:
    """One parsed line: the command word as written, its flags, the rest, and the whole line."""

    command: str
    flags: list[str]
    rest: str
    original: str
    line: int

    @property
    def key(self) -> str:
        return self.command.lower()


# -- splitting the text into instructions --------------------------------------------------------

def split_instructions(text: str) -> list[Instruction]:
    """Dockerfile lines → instructions: comments and blank lines dropped, ``\\`` continuations joined."""
    out: list[Instruction] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        start = i + 1
        raw = lines[i].lstrip()
        i += 1
        if raw.startswith("#") or raw.strip() == "":
            continue
        line = raw
        while line.endswith(ESCAPE) and i <= len(lines):
            line = line[:-1]
            if i == len(lines):
                break
            nxt = lines[i]
            i += 1
            if nxt.lstrip().startswith("#"):
                line += ESCAPE
                continue
            line += nxt
        words = line.strip().split(None, 1)
        command, rest = words[0], (words[1] if len(words) > 1 else "")
        flags, rest = _extract_flags(rest)
        out.append(Instruction(command, flags, rest, line, start))
    if not out:
        raise InvalidParameter("file with no instructions")
    return out


def _extract_flags(rest: str) -> tuple[list[str], str]:
    """Leading ``--name[=value]`` words (BuildKit's extractBuilderFlags)."""
    flags: list[str] = []
    while True:
        stripped = rest.lstrip()
        if not stripped.startswith("--"):
            return flags, stripped
        word, _, remainder = stripped.partition(" ")
        if word == "--":
            return flags, remainder.lstrip()
        flags.append(word)
        rest = remainder


def parse_flags(inst: Instruction, allowed: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in inst.flags:
        name, has_value, value = raw[2:].partition("=")
        if name not in allowed:
            raise InvalidParameter(f"unknown flag: {name}")
        if name in out:
            raise InvalidParameter(f"duplicate flag specified: {name}")
        if not has_value:
            raise InvalidParameter(f"missing a value on flag: {name}")
        out[name] = value
    return out


# -- word splitting and expansion -----------------------------------------------------------------

def parse_words(rest: str) -> list[str]:
    """Split on whitespace outside quotes; quotes and escapes are kept (BuildKit's parseWords)."""
    words: list[str] = []
    word = ""
    quote = ""
    i = 0
    while i < len(rest):
        ch = rest[i]
        if ch == ESCAPE and i + 1 < len(rest) and quote != "'":
            word += ch + rest[i + 1]
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch.isspace():
            if word:
                words.append(word)
                word = ""
            i += 1
            continue
        word += ch
        i += 1
    if word:
        words.append(word)
    return words


class _Lexer:
    """The shell-word processing BuildKit applies to ENV, LABEL, WORKDIR…: quotes and ``$VAR``."""

    def __init__(self, text: str, env: dict[str, str]) -> None:
        self.text, self.env, self.pos = text, env, 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1
        return ch

    def word(self, stop: str = "") -> str:
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.peek()
            if stop and ch in stop:
                break
            self.pos += 1
            if ch == ESCAPE:
                out.append(self.next())
            elif ch == "'":
                end = self.text.find("'", self.pos)
                if end < 0:
                    raise InvalidParameter("unexpected end of statement while looking for matching single-quote")
                out.append(self.text[self.pos:end])
                self.pos = end + 1
            elif ch == '"':
                out.append(self._double_quoted())
            elif ch == "$":
                out.append(self._dollar())
            else:
                out.append(ch)
        return "".join(out)

    def _double_quoted(self) -> str:
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise InvalidParameter("unexpected end of statement while looking for matching double-quote")
            ch = self.next()
            if ch == '"':
                return "".join(out)
            if ch == ESCAPE and self.peek() in ('"', "$", ESCAPE):
                out.append(self.next())
            elif ch == "$":
                out.append(self._dollar())
            else:
                out.append(ch)

    def _dollar(self) -> str:
        ch = self.peek()
        if ch == "{":
            self.pos += 1
            name = self._name()
            op = ""
            if self.peek() == ":":
                self.pos += 1
                op = ":"
            if self.peek() in ("-", "+", "?") and self.peek():
                op += self.next()
            elif op:
                raise InvalidParameter(f"unsupported modifier ({op}{self.peek()}) in substitution")
            word = self.word(stop="}") if op else ""
            if self.next() != "}":
                raise InvalidParameter("syntax error: missing '}'")
            value = self.env.get(name)
            if op in ("", ):
                return value or ""
            unset_or_empty = value is None or (op.startswith(":") and value == "")
            kind = op[-1]
            if kind == "-":
                return word if unset_or_empty else (value or "")
            if kind == "+":
                return "" if unset_or_empty else word
            if unset_or_empty:
                raise InvalidParameter(f"{name}: {word or 'is not allowed to be unset'}")
            return value or ""
        name = self._name()
        if not name:
            return "$"
        return self.env.get(name, "")

    def _name(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isalnum() or self.text[self.pos] == "_"):
            self.pos += 1
        return self.text[start:self.pos]


def expand(word: str, env: dict[str, str]) -> str:
    """Expand variables and remove quotes in one word."""
    return _Lexer(word, env).word()


def env_map(config: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in config.get("Env") or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


# -- argument shapes ----------------------------------------------------------------------------

def parse_json_array(rest: str) -> list[str] | None:
    """``rest`` as a JSON array of strings, or None when it is not one (shell form)."""
    text = rest.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value


def command_line(rest: str, os_name: str) -> tuple[list[str] | None, bool]:
    """CMD/ENTRYPOINT argument → (argv, was JSON form). Shell form goes through ``/bin/sh -c``."""
    as_json = parse_json_array(rest)
    if as_json is not None:
        return as_json, True
    shell = ["cmd", "/S", "/C"] if os_name == "windows" else ["/bin/sh", "-c"]
    return [*shell, rest.strip()], False


def parse_name_values(inst: Instruction, label: str) -> list[tuple[str, str]]:
    """ENV/LABEL arguments: ``KEY value`` or ``KEY=value ...`` (values still unexpanded)."""
    words = parse_words(inst.rest)
    if not words:
        raise InvalidParameter(f"{label} requires at least one argument")
    if "=" not in words[0]:
        parts = inst.rest.strip().split(None, 1)
        if len(parts) < 2:
            raise InvalidParameter(f"{label} must have two arguments")
        return [(parts[0], parts[1])]
    pairs = []
    for w in words:
        if "=" not in w:
            raise InvalidParameter(f"Syntax error - can't find = in {json.dumps(w)}. Must be of the form: name=value")
        k, _, v = w.partition("=")
        if k == "":
            raise InvalidParameter(f"{label} names can not be blank")
        pairs.append((k, v))
    return pairs


# -- values that need checking -----------------------------------------------------------------

def parse_port_spec(spec: str) -> list[str]:
    """An EXPOSE word → ``port/proto`` keys (ranges expanded), as go-connections' nat does."""
    container = spec.split(":")[-1]
    port, _, proto = container.partition("/")
    proto = proto or "tcp"
    if port == "":
        raise InvalidParameter(f"no port specified: {spec}<empty>")
    if proto.lower() not in ("tcp", "udp", "sctp"):
        raise InvalidParameter(f"invalid proto: {proto}")
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", port)
    if m is None:
        raise InvalidParameter(f"invalid containerPort: {port}")
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else start
    if start > 65535 or end > 65535 or end < start:
        raise InvalidParameter(f"invalid containerPort: {port}")
    return [f"{p}/{proto}" for p in range(start, end + 1)]


# -- applying --------------------------------------------------------------------------------

@dataclass
class _State:
    config: dict[str, Any]
    os_name: str
    cmd_set: bool = False
    env: dict[str, str] = field(default_factory=dict)


def apply_changes(config: dict[str, Any] | None, changes: list[str], os_name: str = "linux") -> dict[str, Any]:
    """A copy of ``config`` (default: an empty container config) with ``changes`` applied."""
    result = copy.deepcopy(config) if config is not None else empty_container_config()
    if not changes:
        return result
    instructions = split_instructions("\n".join(changes))
    for inst in instructions:
        if inst.key not in VALID_CHANGE_COMMANDS:
            raise InvalidParameter(f"{inst.command} is not a valid change command")
    checked = [(inst, _parse(inst)) for inst in instructions]  # every line parses before any applies
    state = _State(result, os_name)
    for inst, parsed in checked:
        state.env = env_map(state.config)
        _DISPATCH[inst.key](state, inst, parsed)
    return state.config


def _parse(inst: Instruction) -> Any:
    """Check an instruction's shape (BuildKit's instructions.Parse* step); returns its arguments."""
    key, name = inst.key, inst.command.upper()
    if key != "healthcheck":
        parse_flags(inst, set())
    if key in ("env", "label"):
        return parse_name_values(inst, name)
    if key in ("user", "workdir", "stopsignal"):
        if not inst.rest.strip():
            raise InvalidParameter(f"{name} requires exactly one argument")
        return inst.rest.strip()
    if key == "expose":
        words = inst.rest.split()
        if not words:
            raise InvalidParameter("EXPOSE requires at least one argument")
        return sorted(words)
    if key == "volume":
        as_json = parse_json_array(inst.rest)
        words = as_json if as_json is not None else inst.rest.split()
        if not words:
            raise InvalidParameter("VOLUME requires at least one argument")
        return words
    if key == "onbuild":
        words = inst.rest.split(None, 1)
        if not words:
            raise InvalidParameter("ONBUILD requires at least one argument")
        trigger = words[0].upper()
        if trigger == "ONBUILD":
            raise InvalidParameter("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise InvalidParameter(f"{trigger} isn't allowed as an ONBUILD trigger")
        return re.sub(r"(?i)^\s*ONBUILD\s*", "", inst.original, count=1)
    if key == "healthcheck":
        return _parse_healthcheck(inst)
    return inst.rest  # cmd, entrypoint


def _parse_healthcheck(inst: Instruction) -> dict[str, Any]:
    words = inst.rest.split(None, 1)
    if not words:
        raise InvalidParameter("HEALTHCHECK requires at least one argument")
    kind, args = words[0].upper(), (words[1] if len(words) > 1 else "")
    if kind == "NONE":
        if args.strip() or inst.flags:
            raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    flags = parse_flags(inst, {"interval", "timeout", "start-period", "start-interval", "retries"})
    if kind != "CMD":
        raise InvalidParameter(f"Unknown type {json.dumps(kind)} in HEALTHCHECK (try CMD)")
    as_json = parse_json_array(args)
    if as_json is not None:
        if not as_json:
            raise InvalidParameter("Missing command after HEALTHCHECK CMD")
        test = ["CMD", *as_json]
    else:
        if not args.strip():
            raise InvalidParameter("Missing command after HEALTHCHECK CMD")
        test = ["CMD-SHELL", args.strip()]
    health: dict[str, Any] = {"Test": test}
    for flag, field_name in (("interval", "Interval"), ("timeout", "Timeout"),
                             ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
        if flags.get(flag):
            ns = parse_go_duration(flags[flag])
            if ns < MINIMUM_DURATION_NS:
                raise InvalidParameter(f'Interval "{flag}" cannot be less than 1ms')
            health[field_name] = ns
    if flags.get("retries"):
        if not re.fullmatch(r"[+-]?\d+", flags["retries"]):
            raise InvalidParameter(f'strconv.ParseInt: parsing "{flags["retries"]}": invalid syntax')
        retries = int(flags["retries"])
        if retries < 1:
            raise InvalidParameter(f"--retries must be at least 1 (not {retries})")
        health["Retries"] = retries
    return health


def _do_env(state: _State, inst: Instruction, pairs: list[tuple[str, str]]) -> None:
    env = list(state.config.get("Env") or [])
    for raw_key, raw_value in pairs:
        key, value = expand(raw_key, state.env), expand(raw_value, state.env)
        new = f"{key}={value}"
        for i, item in enumerate(env):
            if item.split("=", 1)[0] == key:
                env[i] = new
                break
        else:
            env.append(new)
    state.config["Env"] = env


def _do_label(state: _State, inst: Instruction, pairs: list[tuple[str, str]]) -> None:
    labels = dict(state.config.get("Labels") or {})
    for raw_key, raw_value in pairs:
        labels[expand(raw_key, state.env)] = expand(raw_value, state.env)
    state.config["Labels"] = labels


def _do_cmd(state: _State, inst: Instruction, rest: str) -> None:
    argv, _ = command_line(rest, state.os_name)
    state.config["Cmd"] = argv
    if argv:
        state.cmd_set = True


def _do_entrypoint(state: _State, inst: Instruction, rest: str) -> None:
    argv, is_json = command_line(rest, state.os_name)
    state.config["Entrypoint"] = argv if (argv or not is_json) else None
    if not state.cmd_set:
        state.config["Cmd"] = None


def _do_expose(state: _State, inst: Instruction, words: list[str]) -> None:
    ports = dict(state.config.get("ExposedPorts") or {})
    for word in words:
        for expanded in expand(word, state.env).split():
            for key in parse_port_spec(expanded):
                ports[key] = {}
    state.config["ExposedPorts"] = ports


def _do_user(state: _State, inst: Instruction, value: str) -> None:
    state.config["User"] = expand(value, state.env)


def _do_workdir(state: _State, inst: Instruction, value: str) -> None:
    requested = expand(value, state.env)
    if requested == "":
        raise InvalidParameter("cannot normalize nothing")
    if not requested.startswith("/"):
        requested = posixpath.normpath(posixpath.join("/", state.config.get("WorkingDir") or "", requested))
    state.config["WorkingDir"] = requested


def _do_volume(state: _State, inst: Instruction, words: list[str]) -> None:
    volumes = dict(state.config.get("Volumes") or {})
    for word in words:
        v = expand(word, state.env).strip()
        if v == "":
            raise InvalidParameter("VOLUME specified can not be an empty string")
        volumes[v] = {}
    state.config["Volumes"] = volumes


def _do_stopsignal(state: _State, inst: Instruction, value: str) -> None:
    sig = expand(value, state.env)
    parse_signal(sig)
    state.config["StopSignal"] = sig


def _do_onbuild(state: _State, inst: Instruction, expression: str) -> None:
    state.config["OnBuild"] = [*(state.config.get("OnBuild") or []), expression]


def _do_healthcheck(state: _State, inst: Instruction, health: dict[str, Any]) -> None:
    state.config["Healthcheck"] = health


_DISPATCH: dict[str, Callable[[_State, Instruction, Any], None]] = {
    "env": _do_env, "label": _do_label, "cmd": _do_cmd, "entrypoint": _do_entrypoint,
    "expose": _do_expose, "user": _do_user, "workdir": _do_workdir, "volume": _do_volume,
    "stopsignal": _do_stopsignal, "onbuild": _do_onbuild, "healthcheck": _do_healthcheck,
}
