"""The one Markdown table writer, for every table runner and its plugins write."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

_RULES = {"l": ":---", "r": "---:", "": "---"}


def markdown_table(
    header: Sequence[str], rows: Iterable[Sequence[Any]], align: Sequence[str] = ()
) -> list[str]:
    """A Markdown table, one string per line.

    ``align`` gives each column ``"l"``, ``"r"`` or ``""`` (the viewer's default), the
    last one repeated for the columns it does not name. A ``|`` inside a cell is
    escaped, so a value cannot add a column.
    """
    rules = [_RULES[align[min(i, len(align) - 1)]] if align else "---" for i in range(len(header))]

    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    return [line(header), "|" + "|".join(rules) + "|", *(line(row) for row in rows)]
