"""Reading a Dockerfile into *nodes*: one per instruction, with Docker's line rules.

A *node* is one instruction as written: its keyword, its ``--flags``, its arguments (a list; ``json``
says whether they came from an exec-form JSON array), the heredocs that followed it and the lines it
spans. :mod:`dockyard.build.instructions` turns nodes into typed instructions.

The rules are BuildKit's (``frontend/dockerfile/parser``), which the classic builder shares:

- *Parser directives* are ``# name=value`` comments at the very top (``syntax``, ``escape``, ``check``);
  the first other line ends them. ``# escape=``\\` makes the backtick the escape token (Windows style).
  ``syntax`` is accepted and ignored (dockyard has one frontend).
- A line ending in the escape token (plus optional blanks) continues on the next; comment lines and
  empty lines inside a continuation are skipped (the latter with a warning, as Docker gives).
- ``# ...`` at the start of a line (after blanks) is a comment; ``#`` elsewhere is an argument.
- ``RUN``, ``COPY`` and ``ADD`` (also as ``ONBUILD`` triggers) may name heredocs: ``<<EOF``, ``<<-EOF``
  (leading tabs stripped), ``<<"EOF"``/``<<'EOF'`` (no expansion); the body runs to a line equal to
  the terminator.
- Exec form is a JSON array of strings; anything that does not parse as JSON is shell form, except
  an array holding a non-string, which is an error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from dockyard.build.shell_words import ShellLexer, ShellWordError, go_quote, is_space, trim, trim_left
from dockyard.errors import InvalidParameter

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$", re.DOTALL)
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")
_HEREDOC_KEYWORDS = ("add", "copy", "run")
_NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"


class DockerfileError(InvalidParameter):
    """A Dockerfile Docker would refuse, located: ``filename``, ``line`` (1-based, 0 when the file
    as a whole is wrong), ``end_line``, ``instruction`` (its keyword as written, when there is one).

    ``message`` is Docker's text in BuildKit's wording: instruction errors read ``dockerfile parse
    error on line N: <detail>``; errors found while reading lines (bad JSON array, ``ENV`` syntax,
    directives, heredocs) are the bare detail, as BuildKit has them. ``detail`` is the text after the
    prefix. (The classic builder of Docker 20.10 says ``dockerfile parse error line N: ...`` and
    ``failed to parse Dockerfile: ...`` instead, and has older flag texts; we follow BuildKit.)"""

    def __init__(self, detail: str, *, line: int = 0, end_line: int | None = None,
                 instruction: str | None = None, filename: str = "Dockerfile", prefixed: bool = False) -> None:
        message = f"dockerfile parse error on line {line}: {detail}" if prefixed else detail
        super().__init__(message)
        self.detail = detail
        self.line = line
        self.end_line = end_line if end_line is not None else line
        self.instruction = instruction
        self.filename = filename

    def location(self) -> str:
        """``Dockerfile:3``, the header Docker's CLI prints above a failed build's source lines."""
        return f"{self.filename}:{self.line}" if self.line else self.filename


@dataclass(frozen=True)
class Heredoc:
    """One heredoc: its terminator ``name``, its body, whether variables in it expand (an unquoted
    terminator) and whether leading tabs are stripped (``<<-``); ``fd`` is the ``3<<EOF`` number."""

    name: str
    content: str = ""
    expand: bool = True
    chomp: bool = False
    fd: int = 0

    def body(self) -> str:
        """The content as the instruction sees it (tabs stripped for ``<<-``)."""
        return re.sub(r"(?m)^\t+", "", self.content) if self.chomp else self.content


@dataclass
class Node:
    """One instruction as written (see the module docstring)."""

    keyword: str
    args: list[str]
    flags: list[str]
    original: str
    line: int = 0
    end_line: int = 0
    json: bool = False
    heredocs: list[Heredoc] = field(default_factory=list)
    trigger: Node | None = None  # ONBUILD's instruction
    # ENV/LABEL pairs: (key, value, had "=")
    pairs: list[tuple[str, str, bool]] = field(default_factory=list)

    @property
    def command(self) -> str:
        """The keyword in lower case: the key Docker dispatches on."""
        return self.keyword.lower()


@dataclass
class ParsedDockerfile:
    """A whole Dockerfile read into nodes, with its directives and warnings."""

    nodes: list[Node]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class _Directives:
    """The parser directives at the top of the file, and the current escape token."""

    def __init__(self) -> None:
        self.done = False
        self.seen: dict[str, str] = {}
        self.escape = "\\"
        self.continuation = self._continuation_regex("\\")

    @staticmethod
    def _continuation_regex(token: str) -> re.Pattern[str]:
        t = re.escape(token)
        return re.compile(r"([^" + t + r"])" + t + r"[ \t]*$|^" + t + r"[ \t]*$")

    def feed(self, line: str) -> bool:
        """Whether ``line`` (left-trimmed) is a directive; sets the escape token if it is one."""
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        match = _DIRECTIVE.match(trim_left(line[1:]))
        if not match or match.group(1).lower() not in _KNOWN_DIRECTIVES:
            self.done = True
            return False
        name, value = match.group(1).lower(), match.group(2)
        if name in self.seen:
            raise DockerfileError(f"only one {name} parser directive can be used")
        self.seen[name] = value
        if name == "escape":
            if value not in ("`", "\\"):
                raise DockerfileError(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
            self.continuation = self._continuation_regex(value)
        return True


def _is_comment(line: str) -> bool:
    return trim_left(line).startswith("#")


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def parse(text: str, filename: str = "Dockerfile") -> ParsedDockerfile:
    """Read a Dockerfile into nodes; raise :class:`DockerfileError` with Docker's text and line."""
    text = text.removeprefix("\ufeff")
    # Lines end at "\n" only (Go's scanner); str.splitlines would also cut at \u2028, \x1c and others.
    lines = re.findall(r"[^\n]*\n|[^\n]+$", text)
    directives = _Directives()
    nodes: list[Node] = []
    warnings: list[str] = []
    current = 0
    index = 0

    def fail(detail: str, start: int, end: int | None = None, keyword: str | None = None) -> DockerfileError:
        return DockerfileError(detail, line=start, end_line=end, instruction=keyword, filename=filename)

    while index < len(lines):
        raw = trim_left(_trim_newline(lines[index]))
        index += 1
        try:
            directives.feed(raw)
        except DockerfileError as err:
            raise fail(err.detail, current + 1) from None
        if _is_comment(raw):
            raw = ""
        current += 1
        start = current
        line, ended = _trim_continuation(raw, directives)
        if ended and not line:
            continue
        parts = [line]
        empty_continuation = False
        while not ended and index < len(lines):
            nxt = _trim_newline(lines[index])
            index += 1
            directives.feed(nxt)
            current += 1
            if _is_comment(nxt):
                continue
            if not trim_left(nxt):
                empty_continuation = True
                continue
            nxt, ended = _trim_continuation(nxt, directives)
            parts.append(nxt)
        joined = "".join(parts)
        if empty_continuation:
            warnings.append(f"Empty continuation line found in: {joined}")
        try:
            node = _node_from_line(joined, directives.escape)
        except DockerfileError as err:
            raise fail(err.detail, start, current, joined.split(None, 1)[0]) from None
        if _can_contain_heredoc(node) and "<<" in joined:
            try:
                docs = _heredocs_in(joined)
            except ShellWordError as err:
                raise fail(err.message, start, current, node.keyword) from None
            target = node.trigger if node.trigger is not None else node
            for doc in docs:
                body: list[str] = []
                terminated = False
                while index < len(lines):
                    candidate = lines[index]
                    index += 1
                    current += 1
                    bare = _trim_newline(candidate)
                    if doc.chomp:
                        bare = bare.lstrip("\t")
                    if bare == doc.name:
                        terminated = True
                        break
                    body.append(candidate)
                if not terminated:
                    raise fail("unterminated heredoc", start, current, node.keyword)
                target.heredocs.append(Heredoc(doc.name, "".join(body), doc.expand, doc.chomp, doc.fd))
        node.line, node.end_line = start, current
        if node.trigger is not None:
            node.trigger.line, node.trigger.end_line = start, current
        nodes.append(node)

    if not nodes:
        raise fail("file with no instructions", current)
    return ParsedDockerfile(nodes, directives.escape, dict(directives.seen), warnings)


def _trim_continuation(line: str, directives: _Directives) -> tuple[str, bool]:
    """``line`` without its continuation token, and whether the instruction ends on it."""
    if directives.continuation.search(line):
        return directives.continuation.sub(r"\1", line, count=1), False
    return line, True


def _can_contain_heredoc(node: Node) -> bool:
    target = node.trigger if node.trigger is not None else node
    return target.command in _HEREDOC_KEYWORDS and not target.json


def _heredocs_in(line: str) -> list[Heredoc]:
    words = ShellLexer(raw_quotes=True, raw_escapes=True, skip_unset=True).split(line, {})
    docs = []
    for word in words:
        doc = parse_heredoc_marker(word)
        if doc is not None:
            docs.append(doc)
    return docs


def parse_heredoc_marker(word: str) -> Heredoc | None:
    """The heredoc a word such as ``<<EOF``, ``<<-"EOF"`` or ``3<<EOF`` names, else None."""
    match = _HEREDOC.match(word)
    if not match or not match.group(3):
        return None
    rest = match.group(3)
    try:
        words = ShellLexer(skip_unset=True).split(rest, {})
        raw = ShellLexer(skip_unset=True, raw_quotes=True).split(rest, {})
    except ShellWordError:
        return None
    if len(words) != 1 or len(raw) != 1:
        return None
    quotes = words[0].count("'") + words[0].count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(words[0], expand=quotes == raw_quotes, chomp=match.group(2) == "-",
                   fd=int(match.group(1) or 0))


def _split_command(line: str, escape: str) -> tuple[str, list[str], str]:
    """The keyword, the leading ``--flags`` and the rest of an instruction line."""
    pieces = _WHITESPACE.split(trim(line), maxsplit=1)
    if len(pieces) < 2:
        return pieces[0], [], ""
    rest, flags = _extract_flags(pieces[1], escape)
    return pieces[0], flags, trim(rest)


def _extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Leading words that start with ``--`` (quotes and escapes as Docker reads them)."""
    words: list[str] = []
    pos = 0
    n = len(line)
    while True:
        while pos < n and is_space(line[pos]):
            pos += 1
        if pos >= n:
            return "", words
        if not line.startswith("--", pos):
            return line[pos:], words
        word: list[str] = []
        blank_ok = False
        quote = ""
        while pos < n:
            ch = line[pos]
            if quote:
                if ch == quote:
                    quote = ""
                elif ch == escape:
                    if pos + 1 == n:
                        quote = ""
                        pos += 1
                        continue
                    pos += 1
                    word.append(line[pos])
                else:
                    word.append(ch)
                pos += 1
                continue
            if is_space(ch):
                break
            if ch in "'\"":
                quote, blank_ok = ch, True
            elif ch == escape:
                if pos + 1 < n:
                    pos += 1
                    word.append(line[pos])
            else:
                word.append(ch)
            pos += 1
        text = "".join(word)
        if text == "--":
            return line[pos:], words
        if blank_ok or text:
            words.append(text)


def _parse_words(rest: str, escape: str) -> list[str]:
    """Whitespace-separated words, quotes and escapes kept (ARG, ENV and LABEL arguments)."""
    words: list[str] = []
    buf: list[str] = []
    blank_ok = False
    quote = ""
    in_word = False
    i = 0
    n = len(rest)
    while i < n:
        ch = rest[i]
        if not in_word:
            if is_space(ch):
                i += 1
                continue
            in_word = True
        if not quote:
            if is_space(ch):
                if blank_ok or buf:
                    words.append("".join(buf))
                buf, blank_ok, in_word = [], False, False
                i += 1
                continue
            if ch in "'\"":
                quote, blank_ok = ch, True
            if ch == escape:
                if i + 1 == n:
                    i += 1
                    continue
                buf.append(ch)
                i += 1
                ch = rest[i]
            buf.append(ch)
        else:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == n:
                    quote = ""
                    i += 1
                    continue
                buf.append(ch)
                i += 1
                ch = rest[i]
            buf.append(ch)
        i += 1
    if in_word and (blank_ok or buf):
        words.append("".join(buf))
    return words


def _no_float(_text: str) -> float:
    raise ValueError("not JSON as Go reads it")


def _parse_json(rest: str) -> list[str] | None:
    """The strings of an exec-form array, or None when ``rest`` is not a JSON array (shell form)."""
    rest = trim_left(rest)
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_no_float)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise DockerfileError(_NOT_STRING_ARRAY)
    return value


def _name_values(rest: str, key: str, escape: str) -> list[tuple[str, str, bool]]:
    words = _parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        pieces = _WHITESPACE.split(rest, maxsplit=1)
        if len(pieces) < 2:
            raise DockerfileError(f"{key} must have two arguments")
        return [(pieces[0], pieces[1], False)]
    pairs = []
    for word in words:
        if "=" not in word:
            raise DockerfileError(f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value")
        name, value = word.split("=", 1)
        pairs.append((name, value, True))
    return pairs


def _node_from_line(line: str, escape: str) -> Node:
    keyword, flags, rest = _split_command(line, escape)
    node = Node(keyword, [], flags, line)
    command = keyword.lower()
    if command in ("add", "copy", "volume"):
        parsed = _parse_json(rest)
        if parsed is not None:
            node.args, node.json = parsed, True
        else:
            node.args = _WHITESPACE.split(rest) if rest else []
    elif command in ("cmd", "entrypoint", "run", "shell"):
        if rest:
            parsed = _parse_json(rest)
            node.args, node.json = (parsed, True) if parsed is not None else ([rest], False)
    elif command in ("env", "label"):
        node.pairs = _name_values(rest, "ENV" if command == "env" else "LABEL", escape)
        node.args = [part for key, value, eq in node.pairs for part in (key, value, "=" if eq else "")]
    elif command == "arg":
        node.args = _parse_words(rest, escape)
    elif command in ("expose", "from"):
        node.args = _WHITESPACE.split(rest) if rest else []
    elif command in ("maintainer", "stopsignal", "user", "workdir"):
        node.args = [rest] if rest else []
    elif command == "healthcheck":
        _healthcheck_args(node, rest)
    elif command == "onbuild":
        if rest:
            node.trigger = _node_from_line(rest, escape)
            node.args = [node.trigger.keyword, *node.trigger.args]
    return node


def _healthcheck_args(node: Node, rest: str) -> None:
    sep = 0
    while sep < len(rest) and not is_space(rest[sep]):
        sep += 1
    if sep == 0:
        return
    after = trim_left(rest[sep:])
    node.args = [rest[:sep]]
    if after:
        parsed = _parse_json(after)
        if parsed is not None:
            node.args += parsed
            node.json = True
        else:
            node.args.append(after)
