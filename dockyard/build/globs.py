"""Go's ``filepath.Match``, the glob rules of COPY and ADD sources.

- ``*`` matches any run of characters except ``/``; ``?`` one character except ``/``;
- ``[...]`` a class: ``[^...]`` negates, ``lo-hi`` ranges, ``\\c`` escapes; a class may match ``/``;
- ``\\c`` matches ``c`` itself.

A malformed pattern (an unclosed class, ``[]``, a trailing ``\\``, a bare ``-`` in a class) matches
nothing, as the builder ignores ``filepath.ErrBadPattern``.
"""

from __future__ import annotations

import functools
import re


def contains_wildcards(name: str) -> bool:
    """Whether ``name`` has an unescaped ``*``, ``?`` or ``[`` (moby's ``containsWildcards``)."""
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "*?[":
            return True
        i += 1
    return False


def go_match(pattern: str, name: str) -> bool:
    """``filepath.Match(pattern, name)``, a bad pattern being no match."""
    regex = _compile(pattern)
    return regex is not None and regex.fullmatch(name) is not None


class _BadPattern(Exception):
    pass


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(_translate(pattern), re.DOTALL)
    except (_BadPattern, re.error):
        return None


def _translate(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i >= n:
                raise _BadPattern
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            text, i = _translate_class(pattern, i)
            out.append(text)
        else:
            out.append(re.escape(ch))
    return "".join(out)


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    """One (possibly escaped) character of a class, as Go's ``getEsc``."""
    if i >= len(pattern) or pattern[i] in "-]":
        raise _BadPattern
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise _BadPattern
    return pattern[i], i + 1


def _translate_class(pattern: str, i: int) -> tuple[str, int]:
    """The class starting after ``[`` at ``i``: its regex and the index after its ``]``."""
    negate = i < len(pattern) and pattern[i] == "^"
    if negate:
        i += 1
    ranges: list[str] = []
    while True:
        if i < len(pattern) and pattern[i] == "]" and ranges:
            i += 1
            break
        lo, i = _class_char(pattern, i)
        hi = lo
        if i < len(pattern) and pattern[i] == "-":
            hi, i = _class_char(pattern, i + 1)
        if lo <= hi:
            ranges.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")
        else:
            ranges.append("")  # an empty range: Go accepts it and it matches nothing
    body = "".join(ranges)
    if not body:
        return ("(?!)" if not negate else "."), i
    return f"[{'^' if negate else ''}{body}]", i
