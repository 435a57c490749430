"""The client's ``.dockerignore`` matcher: which context paths ``dockyard build`` leaves out of the tar.

The CLI imports nothing outside ``dockyard.cli``, so this is the client's own copy of the rules
the daemon side applies (:mod:`dockyard.build.dockerignore`; a unit test holds both to the same
answers). The rules are moby/patternmatcher's:

- A file holds one pattern a line; ``#`` starts a comment line; blank lines are skipped; each line
  is trimmed; a UTF-8 byte-order mark on the first line is dropped. ``!`` makes the pattern an
  *exception* that re-includes what earlier patterns excluded; the last matching pattern decides.
- Patterns are cleaned like Go's ``filepath.Clean`` and taken relative to the context root (a
  leading ``/`` is dropped).
- ``*`` is any run of non-``/`` characters, ``?`` one of them, ``[...]`` a class, ``\\`` escapes
  the next character, ``**`` any number of directories (none included); ``**name`` with no other
  wildcard is a suffix test.
- A pattern also excludes everything under a directory it matches: a path is tried as it is and as
  its parent directory cut to the pattern's number of components.
"""

from __future__ import annotations

from dockyard.cli.failure import CliFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

_REGEX_SPECIAL = set(".+()|{}$")
_WILDCARDS = set("*?[]\\")


class IgnorePatternError(CliFailure):
    """A pattern the matcher refuses (Docker's words: ``syntax error in pattern``)."""


def clean(path: str) -> str:
    """Go's ``filepath.Clean`` for slash-separated paths."""
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part == "" or part == ".":
            continue
        if part != "..":
            out.append(part)
        elif out and out[-1] != "..":
            out.pop()
        elif not rooted:
            out.append("..")
    text = "/".join(out)
    return ("/" + text) if rooted else (text or ".")


def parse_ignore_file(text: str) -> list[str]:
    """The patterns of a ``.dockerignore`` text, cleaned, exceptions kept with their ``!``."""
    patterns = []
    for index, raw in enumerate(text.split("\n")):
        line = raw[:-1] if raw.endswith("\r") else raw
        if index == 0 and line.startswith("\ufeff"):
            line = line[1:]
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        bang = line[0] == "!"
        body = line[1:].strip() if bang else line
        if body:
            body = clean(body)
            if body != "/" and body.startswith("/"):
                body = body[1:]
        patterns.append(("!" if bang else "") + body)
    return patterns


def _regex(pattern: str) -> re.Pattern[str]:
    import re  # here: a context without patterns never pays for importing it (~4 ms with enum)
    import warnings

    pieces = []
    at, end = 0, len(pattern)
    while at < end:
        char = pattern[at]
        at += 1
        if char == "*" and pattern.startswith("*", at):
            at += 1
            if pattern.startswith("/", at):
                at += 1
            pieces.append(".*" if at == end else "(.*/)?")
        elif char == "*":
            pieces.append("[^/]*")
        elif char == "?":
            pieces.append("[^/]")
        elif char == "\\":
            pieces.append("\\" + pattern[at] if at < end else "\\")
            at += 1
        elif char in _REGEX_SPECIAL:
            pieces.append("\\" + char)
        else:
            pieces.append(char)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return re.compile("^" + "".join(pieces), re.DOTALL)
    except re.error:
        raise IgnorePatternError("syntax error in pattern") from None


class _Rule:
    __slots__ = ("exception", "depth", "regex", "suffix")

    def __init__(self, text: str, exception: bool) -> None:
        self.exception = exception
        self.depth = text.count("/") + 1
        tail = text[2:]
        plain_suffix = text.startswith("**") and tail and not (set(tail) & _WILDCARDS)
        self.suffix = tail if plain_suffix else None
        self.regex = _regex(text)

    def hit(self, path: str) -> bool:
        if self.suffix is not None:
            return path.endswith(self.suffix) or (self.suffix[0] == "/" and path == self.suffix[1:])
        return self.regex.fullmatch(path) is not None


class IgnoreMatcher:
    """Compiled patterns; :meth:`excluded` says whether a context path stays out."""

    def __init__(self, patterns: list[str]) -> None:
        self.rules: list[_Rule] = []
        for raw in patterns:
            text = raw.strip()
            if not text:
                continue
            text = clean(text)
            exception = text[0] == "!"
            if exception and text == "!":
                raise IgnorePatternError('illegal exclusion pattern: "!"')
            self.rules.append(_Rule(text[1:] if exception else text, exception))

    @property
    def has_exceptions(self) -> bool:
        return any(rule.exception for rule in self.rules)

    def excluded(self, path: str) -> bool:
        path = clean(path)
        parent = clean(path.rpartition("/")[0]) if "/" in path else "."
        parts = parent.split("/")
        out = False
        for rule in self.rules:
            if rule.exception is not out:
                continue
            hit = rule.hit(path)
            if not hit and parent != "." and rule.depth <= len(parts):
                hit = rule.hit("/".join(parts[:rule.depth]))
            if hit:
                out = not rule.exception
        return out
