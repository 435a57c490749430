"""BuildKit's "(did you mean X?)" hints on unknown instructions, flags and mount options.

The hint names the closest option within an edit distance of 2 (Levenshtein; BuildKit's ``suggest``
package). BuildKit walks a Go map, so between equally close options its choice varies; here the
first in sorted order wins.
"""

from __future__ import annotations

from collections.abc import Iterable


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions each cost 1."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def closest(value: str, options: Iterable[str], case_sensitive: bool) -> str | None:
    """The option to suggest for ``value``, or None (none close, or ``value`` is an option)."""
    wanted = value if case_sensitive else value.lower()
    best: str | None = None
    best_distance = 3
    for option in sorted(options):
        candidate = option if case_sensitive else option.lower()
        if candidate == wanted:
            return None
        distance = edit_distance(wanted, candidate)
        if distance < best_distance:
            best, best_distance = candidate, distance
    if best is None or case_sensitive:
        return best
    if value == value.lower():
        return best.lower()
    if value == value.upper():
        return best.upper()
    return best


def with_suggestion(message: str, value: str, options: Iterable[str], case_sensitive: bool) -> str:
    """``message`` plus `` (did you mean X?)`` when an option is close to ``value``."""
    match = closest(value, options, case_sensitive)
    return f"{message} (did you mean {match}?)" if match else message
