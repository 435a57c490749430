"""A small command-line flag parser that behaves like Docker's (cobra + pflag).

Terms:

- *flag*: an option with a long name (``--name``) and maybe a one-letter *shorthand* (``-n``).
- *kind*: ``bool`` (no value; ``--rm=false`` allowed), ``string`` (last one wins), ``list``
  (repeatable, values collected in order), ``strings`` (pflag's ``StringSlice``: repeatable, and
  each value is itself a comma-separated CSV record, ``--alias a,b``) or ``int``.
- *validator*: a flag's optional check run as each value is set (Docker's ``ListOpts`` validators):
  it returns the value to keep or raises ``ValueError``, reported as pflag reports a bad value.
- *interspersed*: whether flags may follow positional arguments. ``run`` turns it off so that
  everything after the image name belongs to the container's command.

Accepted spellings, as pflag accepts them: ``--name x``, ``--name=x``, ``-e X``, ``-eX``, ``-e=X``,
combined bools ``-dit``, bools followed by a valued flag ``-de X``, and ``--`` to end flags.
Errors carry pflag's exact wording (``unknown flag: --foo``, ``flag needs an argument: 'e' in -e``).
"""

from __future__ import annotations

from dockyard.cli.failure import FlagError, HelpRequested

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_TYPE_NAMES = {"string": "string", "list": "list", "int": "int", "strings": "strings"}


class Flag:
    """One flag: ``long`` name without dashes, optional ``short`` letter, ``kind`` and help line."""

    __slots__ = ("long", "short", "kind", "help", "default", "type_name", "validator")

    def __init__(self, long: str, short: str = "", kind: str = "bool", help: str = "",
                 default: Any = None, type_name: str = "",
                 validator: Callable[[str], str] | None = None) -> None:
        self.long = long
        self.short = short
        self.kind = kind
        self.help = help
        self.default = default
        self.type_name = type_name or _TYPE_NAMES.get(kind, "")
        self.validator = validator

    @property
    def label(self) -> str:
        """How pflag names the flag in messages: ``-n, --last`` or ``--tail``."""
        return f"-{self.short}, --{self.long}" if self.short else f"--{self.long}"


class Parsed:
    """The outcome of parsing: flag ``values`` by long name, positional ``args``, and which flags were ``changed``."""

    __slots__ = ("values", "args", "changed")

    def __init__(self, values: dict[str, Any], args: list[str], changed: set[str]) -> None:
        self.values = values
        self.args = args
        self.changed = changed

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


class FlagSet:
    """The flags one verb accepts."""

    def __init__(self, flags: list[Flag], interspersed: bool = True) -> None:
        self.flags = flags
        self.interspersed = interspersed
        self.by_long = {f.long: f for f in flags}
        self.by_short = {f.short: f for f in flags if f.short}
        # Extra long names (``--net`` for ``--network``) map to the canonical flag.
        self.aliases: dict[str, str] = {}

    def alias(self, name: str, canonical: str) -> FlagSet:
        self.aliases[name] = canonical
        return self

    def parse(self, argv: list[str]) -> Parsed:
        values: dict[str, Any] = {}
        for flag in self.flags:
            if flag.kind in ("list", "strings"):
                values[flag.long] = list(flag.default or [])
            elif flag.kind == "bool":
                values[flag.long] = bool(flag.default)
            else:
                values[flag.long] = flag.default
        changed: set[str] = set()
        args: list[str] = []
        i = 0
        while i < len(argv):
            arg = argv[i]
            i += 1
            if arg == "--":
                args.extend(argv[i:])
                break
            if not arg.startswith("-") or arg == "-":
                args.append(arg)
                if not self.interspersed:
                    args.extend(argv[i:])
                    break
                continue
            if arg.startswith("--"):
                name, has_value, value = arg[2:].partition("=")
                if name == "help" and "help" not in self.by_long:
                    raise HelpRequested()
                found = self.by_long.get(self.aliases.get(name, name))
                if found is None:
                    raise FlagError(f"unknown flag: --{name}")
                flag = found
                typed = f"--{name}" if name != flag.long else ""
                if flag.kind == "bool":
                    self._set(flag, value if has_value else "true", values, changed, typed)
                    continue
                if not has_value:
                    if i >= len(argv):
                        raise FlagError(f"flag needs an argument: --{name}")
                    value = argv[i]
                    i += 1
                self._set(flag, value, values, changed, typed)
                continue
            shorts = arg[1:]
            j = 0
            while j < len(shorts):
                letter = shorts[j]
                short_flag = self.by_short.get(letter)
                if short_flag is None:
                    if letter == "h":
                        raise HelpRequested()
                    raise FlagError(f"unknown shorthand flag: {letter!r} in {arg}".replace('"', "'"))
                flag = short_flag
                rest = shorts[j + 1:]
                if flag.kind == "bool":
                    if rest.startswith("="):
                        self._set(flag, rest[1:], values, changed)
                        break
                    self._set(flag, "true", values, changed)
                    j += 1
                    continue
                if rest:
                    value = rest[1:] if rest.startswith("=") else rest
                elif i < len(argv):
                    value = argv[i]
                    i += 1
                else:
                    raise FlagError(f"flag needs an argument: {letter!r} in -{letter}".replace('"', "'"))
                self._set(flag, value, values, changed)
                break
        return Parsed(values, args, changed)

    @staticmethod
    def _set(flag: Flag, value: str, values: dict[str, Any], changed: set[str], typed: str = "") -> None:
        """Record ``value`` for ``flag``; ``typed`` is the alias the user typed (``--net``), if any."""
        changed.add(flag.long)
        if flag.validator is not None and flag.kind != "strings":
            try:
                value = flag.validator(value)
            except ValueError as error:
                raise FlagError(f'invalid argument {go_quote(value)} for "{typed or flag.label}" flag: {error}') from None
        if flag.kind == "bool":
            if value in _TRUE:
                values[flag.long] = True
            elif value in _FALSE:
                values[flag.long] = False
            else:
                raise FlagError(f'invalid argument "{value}" for "{flag.label}" flag: '
                                f'strconv.ParseBool: parsing "{value}": invalid syntax')
        elif flag.kind == "int":
            try:
                values[flag.long] = int(value, 10)
            except ValueError:
                raise FlagError(f'invalid argument "{value}" for "{flag.label}" flag: '
                                f'strconv.ParseInt: parsing "{value}": invalid syntax') from None
        elif flag.kind == "list":
            values[flag.long].append(value)
        elif flag.kind == "strings":
            try:
                items = read_csv_record(value)
                if flag.validator is not None:
                    items = [flag.validator(item) for item in items]
            except ValueError as error:
                raise FlagError(f'invalid argument {go_quote(value)} for "{typed or flag.label}" flag: {error}') from None
            values[flag.long].extend(items)
        else:
            values[flag.long] = value

    def options_help(self) -> str:
        """Docker's ``Options:`` block: one line per flag, help texts aligned."""
        rows = []
        for flag in self.flags:
            if not flag.help:
                continue
            name = f"-{flag.short}, --{flag.long}" if flag.short else f"    --{flag.long}"
            if flag.type_name:
                name += f" {flag.type_name}"
            help_text = flag.help
            if flag.default not in (None, False, "", []) and flag.kind not in ("list", "strings"):
                if flag.kind == "string":
                    help_text += f' (default "{flag.default}")'
                elif flag.kind == "bool":
                    help_text += " (default true)"  # Go prints booleans in lower case
                else:
                    help_text += f" (default {flag.default})"
            elif flag.type_name == "map":
                help_text += " (default map[])"
            rows.append((name, help_text))
        width = max((len(name) for name, _ in rows), default=0)
        return "\n".join(f"  {name.ljust(width)}   {text}" for name, text in rows)


def read_csv_record(text: str) -> list[str]:
    """One CSV record as Go's ``encoding/csv`` reads it (pflag's ``StringSlice``): fields split at
    commas, a field in double quotes may hold commas and ``""`` for a quote; ``""`` is no fields.
    A malformed record raises ``ValueError`` with Go's ``parse error on line 1, column N: …``."""
    if text == "":
        return []
    if '"' not in text:
        return text.split(",")

    def error(column: int, what: str) -> ValueError:
        return ValueError(f"parse error on line 1, column {column}: {what}")

    fields: list[str] = []
    i, n = 0, len(text)
    while True:
        if i < n and text[i] == '"':
            i += 1
            field = []
            while True:
                if i >= n:
                    raise error(len(text.encode()) + 1, 'extraneous or missing " in quoted-field')
                if text[i] == '"':
                    if i + 1 < n and text[i + 1] == '"':
                        field.append('"')
                        i += 2
                        continue
                    if i + 1 < n and text[i + 1] != ",":
                        raise error(len(text[:i].encode()) + 1, 'extraneous or missing " in quoted-field')
                    i += 1
                    break
                field.append(text[i])
                i += 1
            fields.append("".join(field))
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            field_text = text[i:end]
            if '"' in field_text:
                raise error(len(text[:i + field_text.index('"')].encode()) + 1, 'bare " in non-quoted-field')
            fields.append(field_text)
            i = end
        if i >= n:
            return fields
        i += 1  # the comma
        if i == n:
            fields.append("")
            return fields


def go_quote(text: str) -> str:
    """Go's ``%q`` of a string: double quotes, with quotes, backslashes and control characters escaped."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
