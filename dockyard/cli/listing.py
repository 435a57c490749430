"""Rendering list verbs (``ps``, ``images``): rows through a ``--format`` template, tables aligned.

A *row* is a dict of display strings keyed by Docker's field names (``ID``, ``Names``, ...);
the *header* dict maps the same keys to column titles. In ``table`` formats the header row is
the template rendered against the header dict, and all lines go through the tab writer.
"""

from __future__ import annotations

from dockyard.cli.failure import CliFailure
from dockyard.cli.tabwriter import align
from dockyard.cli.template import Template, TemplateError, prepare

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def ellipsis(text: str, width: int) -> str:
    """Docker's ``Ellipsis``: at most ``width`` characters, the last one ``…`` when cut."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width == 1:
        return text[0]
    return text[:width - 1] + "…"


def template_failure(error: TemplateError) -> CliFailure:
    """How list verbs report a bad ``--format`` (exit 1)."""
    if error.parsing:
        return CliFailure(f"failed to parse template: {error}", 1)
    return CliFailure(f"failed to execute template: {error}", 1)


def render(format_text: str, rows: list[dict[str, Any]], headers: dict[str, str]) -> str:
    """The verb's whole output for ``format_text`` (Docker's ``table ...`` or a plain template)."""
    is_table, body = prepare(format_text)
    try:
        template = Template(body)
        rendered = [template.execute(row) for row in rows]
        if not is_table:
            return "".join(line + "\n" for line in rendered)
        header = template.execute(headers)
    except TemplateError as error:
        raise template_failure(error) from None
    lines: list[str] = []
    for text in [header, *rendered]:
        lines.extend(text.split("\n"))
    return "".join(line + "\n" for line in align(lines))


def filters_param(values: list[str]) -> str:
    """``-f key=value`` flags as the API's ``filters`` JSON: ``{"key": {"value": true}}``."""
    from dockyard.cli import jsoncodec

    filters: dict[str, dict[str, bool]] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep:
            raise CliFailure(f"Bad format of filter (expected name=value): {value}", 125)
        filters.setdefault(key.strip(), {})[val] = True
    # Go's encoder writes map keys sorted; so do we (the daemon does not care, a reader might)
    return jsoncodec.dumps({key: dict(sorted(filters[key].items())) for key in sorted(filters)})


def natural_less(a: str, b: str) -> bool:
    """Docker's ``sortorder.NaturalLess``: digit runs compare as numbers (digits before other bytes,
    fewer leading zeros first), everything else byte by byte."""
    x, y = a.encode(), b.encode()
    i = j = 0
    while i < len(x) and j < len(y):
        dx, dy = 48 <= x[i] <= 57, 48 <= y[j] <= 57
        if dx != dy:
            return dx
        if not dx:
            if x[i] != y[j]:
                return x[i] < y[j]
            i += 1
            j += 1
            continue
        while i < len(x) and x[i] == 48:
            i += 1
        while j < len(y) and y[j] == 48:
            j += 1
        start_x, start_y = i, j
        while i < len(x) and 48 <= x[i] <= 57:
            i += 1
        while j < len(y) and 48 <= y[j] <= 57:
            j += 1
        if i - start_x != j - start_y:
            return i - start_x < j - start_y
        if x[start_x:i] != y[start_y:j]:
            return x[start_x:i] < y[start_y:j]
        if start_x != start_y:
            return start_x < start_y
    return len(x) < len(y)


def natural_sorted(items: list[Any], key: Any = None) -> list[Any]:
    """``items`` in :func:`natural_less` order of ``key(item)`` (the item itself by default)."""
    from functools import cmp_to_key

    get = key or (lambda item: item)

    def compare(p: Any, q: Any) -> int:
        a, b = get(p), get(q)
        return -1 if natural_less(a, b) else (1 if natural_less(b, a) else 0)

    return sorted(items, key=cmp_to_key(compare))
