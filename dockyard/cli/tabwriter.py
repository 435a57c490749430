"""Column alignment like Go's ``text/tabwriter`` as Docker configures it (minwidth 10, padding 3).

Input lines are tab-separated *cells*; every cell followed by a tab is padded with spaces to its
column's width, ``max(10, widest cell + 3)``; the text after a line's last tab is not padded.
Widths count characters, as tabwriter counts runes. (Go aligns per block of consecutive lines
having the column; Docker's tables are rectangular, so one width per column suffices.)
"""

from __future__ import annotations

MIN_WIDTH = 10
PADDING = 3


def align(lines: list[str], min_width: int = MIN_WIDTH, padding: int = PADDING) -> list[str]:
    """Align tab-separated ``lines`` into columns."""
    rows = [line.split("\t") for line in lines]
    widths: list[int] = []
    for cells in rows:
        for index, cell in enumerate(cells[:-1]):
            width = max(min_width, len(cell) + padding)
            if index == len(widths):
                widths.append(width)
            elif width > widths[index]:
                widths[index] = width
    return ["".join(cell.ljust(widths[i]) for i, cell in enumerate(cells[:-1])) + cells[-1]
            for cells in rows]
