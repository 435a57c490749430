"""``.dockerignore``: which build-context paths the client leaves out, with Docker's pattern rules.

Rules (moby/patternmatcher and its ``ignorefile`` reader):

- One pattern a line; a line starting with ``#`` is a comment; blank lines are skipped; surrounding
  whitespace is trimmed. A UTF-8 byte-order mark on the first line is dropped.
- A pattern is cleaned like Go's ``filepath.Clean`` (``./a/../b`` is ``b``) and a leading ``/`` is
  dropped: patterns are always relative to the context root.
- ``*`` matches any run of characters except ``/``, ``?`` one such character, ``[...]`` a class,
  ``\\`` escapes; ``**`` matches any number of directories (including none).
- ``!pattern`` is an *exception*: it re-includes what earlier patterns excluded. The last pattern
  that matches a path decides.
- A pattern that matches a directory excludes everything below it: a path is matched against the
  pattern itself and against its parent directory cut to the pattern's depth.

``<Dockerfile>.dockerignore`` (e.g. ``app.Dockerfile.dockerignore`` next to ``app.Dockerfile``) takes
precedence over the context's ``.dockerignore`` (:func:`ignore_file_for`).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import InvalidParameter

_ESCAPED = frozenset(".+()|{}$")


def go_clean(path: str) -> str:
    """``path`` cleaned as Go's ``filepath.Clean`` does on Unix (``posixpath.normpath`` keeps ``//``)."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def read_ignore_file(text: str) -> list[str]:
    """The patterns of a ``.dockerignore`` file, cleaned, in order (``!`` kept as a prefix)."""
    patterns: list[str] = []
    for number, line in enumerate(text.split("\n")):
        line = line.removesuffix("\r")  # Go's line scanner: "\n" ends a line, a "\r" before it is dropped
        if number == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def ignore_file_for(context: Path, dockerfile: Path | None) -> Path | None:
    """The ignore file that applies: ``<Dockerfile>.dockerignore`` beside the Dockerfile if it
    exists, else ``<context>/.dockerignore`` if it exists, else None."""
    if dockerfile is not None:
        specific = dockerfile.with_name(dockerfile.name + ".dockerignore")
        if specific.is_file():
            return specific
    general = context / ".dockerignore"
    return general if general.is_file() else None


@dataclass(frozen=True)
class Pattern:
    """One cleaned pattern: its text, whether it is an exception, and its compiled matcher."""

    text: str
    exclusion: bool
    depth: int
    regex: re.Pattern[str]
    suffix: str | None = None

    @classmethod
    def compile(cls, text: str, exclusion: bool) -> Pattern:
        rest = text[2:]
        # ``**name`` with no other wildcard is a plain suffix test, as moby's matcher has it:
        # ``**.log`` matches ``a/b.log`` and also ``x.log``; ``**/x`` matches ``x`` and ``a/x``.
        suffix = rest if text.startswith("**") and rest and not any(c in rest for c in "*?[]\\") else None
        return cls(text, exclusion, len(text.split("/")), _compile(text), suffix)

    def matches(self, path: str) -> bool:
        if self.suffix is not None:
            return path.endswith(self.suffix) or (self.suffix.startswith("/") and path == self.suffix[1:])
        return self.regex.fullmatch(path) is not None


def _compile(pattern: str) -> re.Pattern[str]:
    """``pattern`` as a regular expression for ``fullmatch`` (the rules of moby/patternmatcher)."""
    out = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                # a leading or trailing ``**`` means any depth, a middle one zero or more directories
                out.append(".*" if i == n else "(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch in _ESCAPED:
            out.append("\\" + ch)
        elif ch == "\\":
            # the escape and its character go to the expression as they are, as moby's matcher does
            out.append("\\" + pattern[i] if i < n else "\\")  # a trailing escape is a bad pattern
            i += 1
        else:
            out.append(ch)  # other characters, ``[...]`` classes included, mean the same in both syntaxes
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "[[" is a literal in Go, a future set in Python
            return re.compile("".join(out), re.DOTALL)
    except re.error:
        raise InvalidParameter("syntax error in pattern") from None


class PatternMatcher:
    """A compiled ``.dockerignore``: :meth:`matches` says whether a context path is excluded."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[Pattern] = []
        for raw in patterns:
            text = raw.strip()
            if not text:
                continue
            text = go_clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise InvalidParameter('illegal exclusion pattern: "!"')
                text = text[1:]
            self.patterns.append(Pattern.compile(text, exclusion))

    @property
    def has_exclusions(self) -> bool:
        """Whether some pattern is an exception, so an excluded directory must still be walked."""
        return any(p.exclusion for p in self.patterns)

    def matches(self, path: str) -> bool:
        """Whether ``path`` (slash-separated, relative to the context root) is excluded."""
        path = go_clean(path)
        parent = go_clean(path.rsplit("/", 1)[0]) if "/" in path else "."
        parent_dirs = parent.split("/")
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue  # an exception only matters once excluded, an exclusion only before
            hit = pattern.matches(path)
            if not hit and parent != "." and pattern.depth <= len(parent_dirs):
                hit = pattern.matches("/".join(parent_dirs[:pattern.depth]))
            if hit:
                matched = not pattern.exclusion
        return matched
