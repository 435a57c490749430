"""Docker's shell-word lexer: quotes, escapes and variable substitution in Dockerfile arguments.

This follows the rules of BuildKit's ``frontend/dockerfile/shell`` lexer (the one both the classic
builder and BuildKit use), not a full POSIX shell:

- ``'...'`` keeps everything literally; ``"..."`` expands ``$`` and lets the escape token escape
  ``"``, ``$`` and itself; outside quotes the escape token makes the next character literal.
- ``$NAME``, ``${NAME}`` and the modifiers ``${NAME:-word}``, ``${NAME-word}`` (default),
  ``${NAME:+word}``, ``${NAME+word}`` (alternative), ``${NAME:?msg}``, ``${NAME?msg}`` (required),
  ``${NAME#pat}``, ``${NAME##pat}``, ``${NAME%pat}``, ``${NAME%%pat}`` (trim a shell pattern from the
  start or end; ``*`` and ``?`` are the only wildcards) and ``${NAME/pat/repl}``, ``${NAME//pat/repl}``.
  An unset variable expands to the empty string.
- A *word list* (``split``) splits on unquoted whitespace; whitespace that came from a variable's
  value splits too, as Docker does for ``EXPOSE $PORTS``.

The *escape token* is ``\\`` unless the Dockerfile's ``# escape=`` directive chose a backtick.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from dockyard.errors import InvalidParameter

_SPECIAL_PARAMS = frozenset("@*#?-$!0")


def is_space(ch: str) -> bool:
    """Go's ``unicode.IsSpace``: Python's ``isspace`` less the separators U+001C..U+001F."""
    return ch.isspace() and ch not in "\x1c\x1d\x1e\x1f"


def trim_left(text: str) -> str:
    """``text`` without leading Go-whitespace (:func:`is_space`)."""
    i = 0
    while i < len(text) and is_space(text[i]):
        i += 1
    return text[i:]


def trim(text: str) -> str:
    """``text`` without leading or trailing Go-whitespace (Go's ``strings.TrimSpace``)."""
    end = len(text)
    while end and is_space(text[end - 1]):
        end -= 1
    return trim_left(text[:end])


class ShellWordError(InvalidParameter):
    """A word the lexer cannot read (an unclosed quote, a bad substitution)."""


@dataclass
class _Words:
    """Accumulates the whitespace-separated words of a word list."""

    words: list[str] = field(default_factory=list)
    buf: list[str] = field(default_factory=list)
    in_word: bool = False

    def add_char(self, ch: str) -> None:
        if is_space(ch):
            if self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf.clear()
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.buf.append(text)
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def done(self) -> list[str]:
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf.clear()
        return self.words


class ShellLexer:
    """One Dockerfile word lexer.

    ``raw_quotes`` keeps the quote characters in the result, ``raw_escapes`` keeps the escape token,
    ``skip_unset`` leaves references to unset variables as written (the parser uses these to find
    heredoc markers); ``skip_quotes`` treats quotes as ordinary characters.
    """

    def __init__(self, escape: str = "\\", *, raw_quotes: bool = False, raw_escapes: bool = False,
                 skip_unset: bool = False, skip_quotes: bool = False) -> None:
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset
        self.skip_quotes = skip_quotes

    def word(self, text: str, env: Mapping[str, str]) -> str:
        """``text`` as one word, quotes removed and variables expanded."""
        return self._run(text, env)[0]

    def split(self, text: str, env: Mapping[str, str]) -> list[str]:
        """``text`` as a list of words (split on unquoted whitespace)."""
        return self._run(text, env)[1]

    def _run(self, text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
        scan = _Scan(self, text, env)
        try:
            return scan.stop_on(None, self.raw_escapes)
        except ShellWordError as err:
            raise ShellWordError(f"failed to process {go_quote(text)}: {err.message}") from None


def go_quote(text: str) -> str:
    """``text`` quoted the way Go's ``%q`` does for printable text."""
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
        elif not ch.isprintable():
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x80 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


class _Scan:
    """The scanning state over one input string."""

    def __init__(self, lexer: ShellLexer, text: str, env: Mapping[str, str]) -> None:
        self.lx = lexer
        self.text = text
        self.pos = 0
        self.env = env
        self.raw_escapes = lexer.raw_escapes

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def next(self) -> str | None:
        ch = self.peek()
        if ch is not None:
            self.pos += 1
        return ch

    def stop_on(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str | None) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while (ch := self.peek()) is not None:
            if stop is not None and ch == stop:
                self.next()
                return "".join(result), words.done()
            if ch == "$":
                tmp = self.dollar()
                result.append(tmp)
                words.add_string(tmp)
            elif ch == "<":
                tmp = self.possible_heredoc()
                result.append(tmp)
                words.add_raw(tmp)
            elif ch in "'\"" and not self.lx.skip_quotes:
                tmp = self.single_quote() if ch == "'" else self.double_quote()
                result.append(tmp)
                words.add_raw(tmp)
            else:
                self.next()
                if ch == self.lx.escape:
                    if self.raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    nxt = self.next()
                    if nxt is None:
                        break
                    ch = nxt
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop is not None:
            raise ShellWordError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.done()

    def single_quote(self) -> str:
        opening = self.next() or ""
        out = [opening] if self.lx.raw_quotes else []
        while True:
            ch = self.next()
            if ch is None:
                raise ShellWordError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        opening = self.next() or ""
        out = [opening] if self.lx.raw_quotes else []
        while True:
            ch = self.peek()
            if ch is None:
                raise ShellWordError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == self.lx.escape:
                if self.raw_escapes:
                    out.append(ch)
                nxt = self.peek()
                if nxt is None:
                    continue
                if nxt in ('"', "$", self.lx.escape):
                    ch = self.next() or ""
            out.append(ch)

    def name(self) -> str:
        out: list[str] = []
        while (ch := self.peek()) is not None:
            if not out and ch.isdigit():
                while (d := self.peek()) is not None and d.isdigit():
                    out.append(d)
                    self.next()
                return "".join(out)
            if not out and ch in _SPECIAL_PARAMS:
                self.next()
                return ch
            if not (ch.isalpha() or ch.isdigit() or ch == "_"):
                break
            out.append(ch)
            self.next()
        return "".join(out)

    def lookup(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            return self.env[name], True
        return "", False

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.lookup(name)
            if not found and self.lx.skip_unset:
                return "$" + name
            return value
        self.next()
        ch = self.peek()
        if ch is None:
            raise ShellWordError("syntax error: missing '}'")
        if ch in "{}:":
            raise ShellWordError("syntax error: bad substitution")
        name = self.name()
        op = self.next()
        if op is None:
            raise ShellWordError("syntax error: missing '}'")
        if op == "}":
            value, found = self.lookup(name)
            if not found and self.lx.skip_unset:
                return "${" + name + "}"
            return value
        if op in ":+-?#%":
            return self._modifier(name, op)
        if op == "/":
            return self._replace(name)
        raise ShellWordError(f"unsupported modifier ({op}) in substitution")

    def _modifier(self, name: str, op: str) -> str:
        null_is_unset = op == ":"
        mod = op
        if null_is_unset:
            mod = self.next() or ""
            op += mod
        trims = mod in "#%" and mod != ""
        if null_is_unset and trims:
            raise ShellWordError(f"unsupported modifier ({op}) in substitution")
        try:
            word, _ = self.stop_on("}", trims)
        except ShellWordError:
            if self.peek() is None:
                raise ShellWordError("syntax error: missing '}'") from None
            raise
        value, found = self.lookup(name)
        if self.lx.skip_unset and not found:
            return "${" + name + op + word + "}"
        if mod not in ("-", "+", "?", "#", "%") or mod == "":
            raise ShellWordError(f"unsupported modifier ({op}) in substitution")
        empty = not found or (null_is_unset and value == "")
        if mod == "-":
            return word if empty else value
        if mod == "+":
            return "" if empty else word
        if mod == "?":
            if not found:
                raise ShellWordError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise ShellWordError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        greedy = word.startswith(mod)
        if greedy:
            word = word[1:]
        if mod == "%":
            return _trim_suffix(word, value, greedy)
        return _trim_prefix(word, value, greedy)

    def _replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern, _ = self.stop_on("/", True)
        except ShellWordError:
            if self.peek() is None:
                raise ShellWordError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self.stop_on("}", True)
        except ShellWordError:
            if self.peek() is None:
                raise ShellWordError("syntax error: missing '}'") from None
            raise
        value, found = self.lookup(name)
        if self.lx.skip_unset and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _pattern_regex(pattern, greedy=True, anchored=False)
        return regex.sub(lambda _m: replacement, value, count=0 if replace_all else 1)

    def possible_heredoc(self) -> str:
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        space: list[str] = []
        while (ch := self.peek()) is not None and ch in " \t\r":
            space.append(ch)
            self.next()
        return "<<" + "".join(space)


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell pattern (``*``, ``?``, ``\\`` escapes) as a regular expression."""
    out = ["^"] if anchored else []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(".*" if greedy else ".*?")
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            nxt = pattern[i] if i < len(pattern) else ""
            if nxt in ("}", "/"):
                continue
            i += 1
            if nxt not in ("*", "?", "\\"):
                raise ShellWordError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt}'")
            out.append(re.escape(nxt))
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _reverse_pattern(pattern: str) -> str:
    """``pattern`` reversed, keeping each ``\\x`` escape pair in order."""
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            tokens.append(pattern[i:i + 2])
            i += 2
        else:
            tokens.append(pattern[i])
            i += 1
    return "".join(reversed(tokens))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _pattern_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value[match.end():] if match else value


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]
