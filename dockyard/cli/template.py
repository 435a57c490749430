"""A small subset of Go's ``text/template``, enough for Docker's ``--format`` flags.

Terms, as in Go:

- *action*: text between ``{{`` and ``}}``; ``{{-`` / ``-}}`` also trim the whitespace beside it.
- *dot*: the current value; ``.A.B`` looks up key ``A`` then ``B`` (maps: JSON objects, or the
  per-row dicts the list verbs build); ``$`` is the top-level value and ``$x`` a variable.
- *pipeline*: commands joined by ``|``; each command's result becomes the last argument of the next.
- *typed values*: a :class:`GoStruct` is a JSON object standing for a Go struct (printed
  ``{v1 v2 …}`` in field order, absent fields read as their zero value); a :class:`GoText` is a
  string that prints otherwise than it encodes to JSON (a ``time.Time``). Docker's inspect verbs run
  templates against typed values, so ``{{.IPAM.Config}}`` prints structs, not maps.
- *functions*: Docker's ``json``, ``index``, ``join``, ``split``, ``upper``, ``lower``, ``title``,
  ``truncate``, ``pad``, ``println``, plus Go's ``len``, ``eq``, ``ne``, ``not``, ``and``, ``or``,
  ``print``, ``printf`` (``%s``/``%d``/``%v``/``%q``).
- *blocks*: ``if``/``else if``/``else``, ``range`` (with ``$v :=`` or ``$k, $v :=``), ``with``, ``end``.

Values print like Go's ``%v``: ``true``, ``[a b]``, ``map[k:v]``, and ``<no value>`` for a missing one.
"""

from __future__ import annotations

from dockyard.cli import jsoncodec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

TABLE_PREFIX = "table"


class TemplateError(Exception):
    """A template that does not parse (``parsing``) or fails while running (``executing``)."""

    def __init__(self, message: str, parsing: bool) -> None:
        super().__init__(message)
        self.parsing = parsing


# -- typed values -------------------------------------------------------------------------------

class GoText(str):
    """A string whose ``%v`` is ``printed`` (its JSON is the string itself)."""

    printed: str

    def __new__(cls, text: str, printed: str) -> GoText:
        made = super().__new__(cls, text)
        made.printed = printed
        return made


class NilMap(dict):  # type: ignore[type-arg]
    """A Go map that is nil: prints ``map[]``, encodes to JSON as ``null``."""


class NilSlice(list):  # type: ignore[type-arg]
    """A Go slice that is nil: prints ``[]``, encodes to JSON as ``null``."""


class GoStruct(dict):  # type: ignore[type-arg]
    """A JSON object standing for a Go struct: ``fields`` are (Go name, JSON key, zero value), in
    the struct's order. Templates look fields up by their Go names only (as Go does); an absent or
    ``null`` field reads as its zero value."""

    def __init__(self, data: dict[str, Any], fields: tuple[tuple[str, str, Any], ...]) -> None:
        super().__init__(data)
        self.fields = fields
        self.by_name = {name: (key, zero) for name, key, zero in fields}

    def has_field(self, name: str) -> bool:
        return name in self.by_name

    def field(self, name: str) -> Any:
        key, zero = self.by_name[name]
        value = self.get(key)
        return zero if value is None else value


# -- printing values the way Go's fmt %v does ------------------------------------------------

def go_string(value: Any) -> str:
    """``fmt.Sprint(value)`` for JSON-like values."""
    if value is None:
        return "<no value>"
    if isinstance(value, GoText):
        return value.printed
    if isinstance(value, GoStruct):
        return "{" + " ".join(_inner(value.field(name)) for name, _, _ in value.fields) + "}"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(_inner(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_inner(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _inner(value: Any) -> str:
    return "<nil>" if value is None else go_string(value)


def truthy(value: Any) -> bool:
    """Go's notion of a true value in ``if``: not false, 0, nil, or empty."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float | str | list | tuple | dict):
        return bool(value)
    return True


# -- functions ---------------------------------------------------------------------------------

def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, dict):
            item = item.get(key)
        elif isinstance(item, list | tuple | str):
            if not isinstance(key, int) or not 0 <= key < len(item):
                raise ValueError(f"index out of range: {key}")
            item = item[key]
        elif item is None:
            return None
        else:
            raise ValueError(f"can't index item of type {type(item).__name__}")
    return item


def _printf(fmt: str, *args: Any) -> str:
    out: list[str] = []
    i = 0
    arg_iter = iter(args)
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%" or i + 1 >= len(fmt):
            out.append(ch)
            i += 1
            continue
        verb = fmt[i + 1]
        i += 2
        if verb == "%":
            out.append("%")
            continue
        value = next(arg_iter, None)
        if verb == "q":
            out.append(jsoncodec.dumps(go_string(value)))
        else:
            out.append(go_string(value))
    return "".join(out)


def _truncate(source: Any, length: int) -> str:
    text = go_string(source)
    return text[:length] if len(text) > length else text


def _pad(source: Any, prefix: int, suffix: int) -> str:
    text = go_string(source)
    return " " * prefix + text + " " * suffix if text else text


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": lambda v: "null" if isinstance(v, NilMap | NilSlice) else jsoncodec.dumps(v),
    "index": _index,
    "join": lambda items, sep: sep.join(go_string(i) for i in (items or [])),
    "split": lambda text, sep: go_string(text).split(sep),
    "upper": lambda text: go_string(text).upper(),
    "lower": lambda text: go_string(text).lower(),
    "title": lambda text: " ".join(w[:1].upper() + w[1:] for w in go_string(text).split(" ")),
    "truncate": _truncate,
    "pad": _pad,
    "println": lambda *args: " ".join(go_string(a) for a in args) + "\n",
    "print": lambda *args: "".join(go_string(a) for a in args),
    "printf": _printf,
    "len": lambda v: len(v) if v is not None else 0,
    "eq": lambda a, *bs: any(a == b for b in bs),
    "ne": lambda a, b: a != b,
    "not": lambda v: not truthy(v),
    "and": lambda *vs: next((v for v in vs if not truthy(v)), vs[-1]),
    "or": lambda *vs: next((v for v in vs if truthy(v)), vs[-1]),
}


# -- lexing ----------------------------------------------------------------------------------

_DELIMS = "|()"


class _Placed(str):
    """Template text that knows where it starts: ``line`` (1-based) and ``col`` (0-based byte
    column), as Go's parser places the nodes named in execution errors (``template: :1:15: …``)."""

    line: int
    col: int

    def __new__(cls, text: str, line: int, col: int) -> _Placed:
        made = super().__new__(cls, text)
        made.line, made.col = line, col
        return made

    def at(self, start: int, end: int | None = None) -> _Placed:
        """The piece ``[start:end]``, placed."""
        before = self[:start]
        newlines = before.count("\n")
        col = self.col + len(before.encode()) if not newlines else len(before[before.rfind("\n") + 1:].encode())
        return _Placed(str.__getitem__(self, slice(start, end)), self.line + newlines, col)


def _split_source(source: str) -> list[tuple[str, str, int]]:
    """Cut ``source`` into ``("text", s, line)`` and ``("action", s, line)`` items, applying trims."""
    items: list[tuple[str, str, int]] = []
    pos = 0
    while True:
        start = source.find("{{", pos)
        if start < 0:
            items.append(("text", source[pos:], source.count("\n", 0, pos) + 1))
            return items
        text = source[pos:start]
        inner_start = start + 2
        if source.startswith("- ", inner_start) or source.startswith("-\t", inner_start):
            text = text.rstrip(" \t\r\n")
            inner_start += 1
        items.append(("text", text, source.count("\n", 0, pos) + 1))
        end = source.find("}}", inner_start)
        line = source.count("\n", 0, start) + 1
        if end < 0:
            raise TemplateError(f"template: :{line}: unclosed action", True)
        inner = source[inner_start:end]
        pos = end + 2
        if inner.endswith(" -") or inner.endswith("\t-"):
            inner = inner[:-1]
            while pos < len(source) and source[pos] in " \t\r\n":
                pos += 1
        lead = len(inner) - len(inner.lstrip())
        first = inner_start + lead
        line_start = source.rfind("\n", 0, first) + 1
        placed = _Placed(inner.strip(), source.count("\n", 0, first) + 1, len(source[line_start:first].encode()))
        items.append(("action", placed, line))


def _tokens(action: str, line: int) -> list[str]:
    """Action text → tokens: strings keep their quotes, ``|``/``(``/``)``/``,``/``:=`` stand alone."""
    tokens: list[str] = []
    i = 0
    while i < len(action):
        ch = action[i]
        if ch in " \t\r\n":
            i += 1
        elif ch in _DELIMS or ch == ",":
            tokens.append(ch)
            i += 1
        elif action.startswith(":=", i):
            tokens.append(":=")
            i += 2
        elif ch == '"':
            j = i + 1
            while j < len(action) and action[j] != '"':
                j += 2 if action[j] == "\\" else 1
            if j >= len(action):
                raise TemplateError(f"template: :{line}: unterminated quoted string", True)
            tokens.append(action[i:j + 1])
            i = j + 1
        elif ch == "`":
            j = action.find("`", i + 1)
            if j < 0:
                raise TemplateError(f"template: :{line}: unterminated raw quoted string", True)
            tokens.append(action[i:j + 1])
            i = j + 1
        else:
            j = i
            while j < len(action) and action[j] not in " \t\r\n|(),\"`" and not action.startswith(":=", j):
                j += 1
            tokens.append(action.at(i, j) if isinstance(action, _Placed) else action[i:j])
            i = j
    return tokens


# -- parsing ---------------------------------------------------------------------------------
# Nodes are tuples: ("text", s) | ("action", pipe) | ("if", pipe, body, else_body)
# | ("range", pipe, body, else_body) | ("with", pipe, body, else_body).
# A pipe is (declared variable names, [command]); a command is a list of operands:
# ("field", base, names) with base "." or "$name", ("lit", value), ("ident", name), ("pipe", pipe).

class _Parser:
    def __init__(self, source: str) -> None:
        self.items = _split_source(source)
        self.pos = 0

    def parse(self) -> list[Any]:
        nodes, stop = self._list()
        if stop is not None:
            raise TemplateError(f"template: :{stop[2]}: unexpected {{{{{stop[1]}}}}}", True)
        return nodes

    def _list(self) -> tuple[list[Any], tuple[str, str, int] | None]:
        nodes: list[Any] = []
        while self.pos < len(self.items):
            kind, text, line = self.items[self.pos]
            self.pos += 1
            if kind == "text":
                if text:
                    nodes.append(("text", text))
                continue
            if text.startswith("/*"):
                continue
            word = text.split(None, 1)[0] if text else ""
            if word in ("end", "else"):
                return nodes, (kind, text, line)
            if word in ("if", "range", "with"):
                rest = text.at(len(word)) if isinstance(text, _Placed) else text[len(word):]
                nodes.append(self._block(word, rest, line))
                continue
            if not text:
                raise TemplateError(f"template: :{line}: missing value for command", True)
            nodes.append(("action", self._pipe(_tokens(text, line), line)))
        return nodes, None

    def _block(self, word: str, rest: str, line: int) -> Any:
        pipe = self._pipe(_tokens(rest, line), line)
        body, stop = self._list()
        else_body: list[Any] = []
        if stop is None:
            raise TemplateError(f"template: :{line}: unexpected EOF", True)
        stop_text = stop[1]
        if stop_text.startswith("else"):
            tail = stop_text[4:].strip()
            if tail.startswith("if ") and word == "if":
                # "else if X" is "else" followed by an "if" block sharing our "end".
                else_body = [self._block("if", tail[2:], stop[2])]
                return (word, pipe, body, else_body)
            else_body, stop = self._list()
            if stop is None or stop[1] != "end":
                raise TemplateError(f"template: :{line}: expected end; found {stop}", True)
        return (word, pipe, body, else_body)

    def _pipe(self, tokens: list[str], line: int) -> Any:
        declared: list[str] = []
        if ":=" in tokens:
            at = tokens.index(":=")
            declared = [t for t in tokens[:at] if t != ","]
            tokens = tokens[at + 1:]
        commands: list[list[Any]] = [[]]
        depth_stack: list[list[list[Any]]] = []
        for token in tokens:
            if token == "|":
                commands.append([])
            elif token == "(":
                depth_stack.append(commands)
                commands = [[]]
            elif token == ")":
                if not depth_stack:
                    raise TemplateError(f"template: :{line}: unexpected right paren", True)
                inner: tuple[list[str], list[list[Any]]] = ([], commands)
                commands = depth_stack.pop()
                commands[-1].append(("pipe", inner))
            else:
                commands[-1].append(self._operand(token, line))
        if depth_stack:
            raise TemplateError(f"template: :{line}: unclosed left paren", True)
        if any(not command for command in commands):
            raise TemplateError(f"template: :{line}: missing value for command", True)
        return (declared, commands)

    @staticmethod
    def _operand(token: str, line: int) -> Any:
        if token.startswith('"'):
            return ("lit", jsoncodec.loads(token))
        if token.startswith("`"):
            return ("lit", token[1:-1])
        place = f"{token.line}:{token.col}" if isinstance(token, _Placed) else f"{line}:2"
        if token.startswith("."):
            names = [n for n in token.split(".")[1:] if n]
            return ("field", ".", names, place)
        if token.startswith("$"):
            base, *names = token.split(".")
            if isinstance(token, _Placed):  # Go places ``$v.A`` at its field part, ``.A``
                place = f"{token.line}:{token.col + len(base.encode())}"
            return ("field", base, names, place)
        if token in ("true", "false"):
            return ("lit", token == "true")
        if token == "nil":
            return ("lit", None)
        if token[0].isdigit() or (token[0] == "-" and token[1:2].isdigit()):
            try:
                return ("lit", int(token, 0))
            except ValueError:
                try:
                    return ("lit", float(token))
                except ValueError:
                    raise TemplateError(f"template: :{line}: bad number syntax: {token!r}", True) from None
        if token in FUNCTIONS:
            return ("ident", token)
        raise TemplateError(f'template: :{line}: function "{token}" not defined', True)


# -- execution -------------------------------------------------------------------------------

class Template:
    """A parsed template; ``execute(data)`` renders it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.nodes = _Parser(source).parse()

    def execute(self, data: Any) -> str:
        out: list[str] = []
        self._run(self.nodes, data, {"$": data}, out)
        return "".join(out)

    def _run(self, nodes: list[Any], dot: Any, scope: dict[str, Any], out: list[str]) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "action":
                value = self._pipe(node[1], dot, scope)
                if not node[1][0]:
                    out.append(go_string(value))
            elif kind == "if":
                self._run(node[2] if truthy(self._pipe(node[1], dot, scope)) else node[3], dot, scope, out)
            elif kind == "with":
                value = self._pipe(node[1], dot, scope)
                if truthy(value):
                    self._run(node[2], value, scope, out)
                else:
                    self._run(node[3], dot, scope, out)
            elif kind == "range":
                self._range(node, dot, scope, out)

    def _range(self, node: Any, dot: Any, scope: dict[str, Any], out: list[str]) -> None:
        declared, commands = node[1]
        value = self._pipe(([], commands), dot, scope)
        if isinstance(value, dict):
            pairs = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, list | tuple):
            pairs = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs = [(i, i) for i in range(value)]
        elif value is None:
            pairs = []
        else:
            raise TemplateError(f"range can't iterate over {go_string(value)}", False)
        if not pairs:
            self._run(node[3], dot, scope, out)
            return
        for key, item in pairs:
            inner = dict(scope)
            if len(declared) == 1:
                inner[declared[0]] = item
            elif len(declared) >= 2:
                inner[declared[0]], inner[declared[1]] = key, item
            self._run(node[2], item, inner, out)

    def _pipe(self, pipe: Any, dot: Any, scope: dict[str, Any]) -> Any:
        declared, commands = pipe
        value: Any = None
        for position, command in enumerate(commands):
            value = self._command(command, dot, scope, value if position else _NOTHING)
        for name in declared:
            scope[name] = value
        return value

    def _command(self, command: list[Any], dot: Any, scope: dict[str, Any], piped: Any) -> Any:
        head = command[0]
        if head[0] == "ident":
            args = [self._operand(op, dot, scope) for op in command[1:]]
            if piped is not _NOTHING:
                args.append(piped)
            try:
                return FUNCTIONS[head[1]](*args)
            except TemplateError:
                raise
            except (TypeError, ValueError, AttributeError) as error:
                raise TemplateError(f'template: :1: executing "" at <{head[1]}>: error calling '
                                    f"{head[1]}: {error}", False) from None
        if head[0] == "field" and head[2] and (len(command) > 1 or piped is not _NOTHING):
            method = self._method(head, dot, scope)
            if method is not None:  # a row's method with arguments: ``{{.Label "com.example"}}``
                args = [self._operand(op, dot, scope) for op in command[1:]]
                if piped is not _NOTHING:
                    args.append(piped)
                return method(*args)
        if len(command) > 1 or piped is not _NOTHING:
            raise TemplateError("template: :1: can't give argument to non-function", False)
        return self._operand(head, dot, scope)

    def _method(self, head: Any, dot: Any, scope: dict[str, Any]) -> Callable[..., Any] | None:
        """The method ``head`` names on a value with ``methods`` (list rows), or ``None``."""
        owner = self._operand((head[0], head[1], head[2][:-1], head[3]), dot, scope)
        methods = getattr(owner, "methods", None)
        return methods.get(head[2][-1]) if isinstance(methods, dict) else None

    def _operand(self, operand: Any, dot: Any, scope: dict[str, Any]) -> Any:
        kind = operand[0]
        if kind == "lit":
            return operand[1]
        if kind == "pipe":
            return self._pipe(operand[1], dot, scope)
        if kind == "ident":
            return FUNCTIONS[operand[1]]()
        base, names, place = operand[1], operand[2], operand[3]
        if base == ".":
            value = dot
        elif base in scope:
            value = scope[base]
        else:
            raise TemplateError(f'template: :1: undefined variable "{base}"', True)
        path = ("" if base == "." else base) + "." + ".".join(names)
        for name in names:
            if isinstance(value, GoStruct):
                if not value.has_field(name):
                    raise TemplateError(f'template: :{place}: executing "" at <{path}>: '
                                        f"can't evaluate field {name} in type struct", False)
                value = value.field(name)
            elif isinstance(value, dict):
                if name not in value:
                    raise TemplateError(f'template: :{place}: executing "" at <{path}>: '
                                        f'map has no entry for key "{name}"', False)
                value = value[name]
            elif value is None:
                return None
            else:
                raise TemplateError(f'template: :{place}: executing "" at <{path}>: '
                                    f"can't evaluate field {name} in type {type(value).__name__}", False)
        return value


_NOTHING = object()


def prepare(format_text: str) -> tuple[bool, str]:
    """Docker's pre-processing of ``--format``: whether it is a ``table`` and the template proper.

    ``\\t`` and ``\\n`` typed literally on the command line become a tab and a newline.
    """
    is_table = format_text.startswith(TABLE_PREFIX)  # Docker's IsTable: before any trimming
    text = format_text[len(TABLE_PREFIX):] if is_table else format_text
    return is_table, text.strip(" ").replace("\\t", "\t").replace("\\n", "\n")


def render_text(format_text: str, data: Any) -> str:
    """Render ``format_text`` (already a template, no ``table`` handling) against ``data``."""
    return Template(prepare(format_text)[1]).execute(data)
