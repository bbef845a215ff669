"""docs/FAULTS.md read as data: the fault matrix's rows, and the executors whose cell of a
row states a bound the tests check (the cell starts with the row's id, ``[F1]``).

Tests of a row take their executors from here (``executors("F1")``), so that the table
decides what runs; ``tests/test_fault_matrix.py`` checks the table against the tests.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "FAULTS.md"
COLUMNS = ("id", "fault", "sequential", "thread", "process", "dask", "tested by")
EXECUTORS = COLUMNS[2:6]
MARK = re.compile(r"^\[(F\d+)\]")
NODE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


@dataclasses.dataclass(frozen=True)
class Row:
    """One fault: its id, its cells by executor, and the tests named for it."""

    id: str
    fault: str
    cells: dict[str, str]
    tests: list[tuple[str, str]]  # (file, function)

    def marked(self) -> list[str]:
        """The executors whose cell states a bound the tests check."""
        return [name for name, cell in self.cells.items() if _mark(cell) == self.id]


def _mark(cell: str) -> str | None:
    found = MARK.match(cell.strip())
    return found.group(1) if found else None


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


@functools.cache
def rows() -> list[Row]:
    """The table's rows, in order; a table whose header is not :data:`COLUMNS` raises."""
    lines = [line for line in DOC.read_text().splitlines() if line.startswith("|")]
    header, rule, *body = lines
    if tuple(_cells(header)) != COLUMNS:
        raise ValueError(f"{DOC.name}: the table's columns are {_cells(header)}, not {COLUMNS}")
    assert set(rule.replace("|", "").strip()) <= {"-", " "}, rule
    table = []
    for line in body:
        cells = _cells(line)
        if len(cells) != len(COLUMNS):
            raise ValueError(f"{DOC.name}: {len(cells)} cells in {line[:60]!r}")
        fault_id, fault, *by_executor, tested_by = cells
        table.append(
            Row(
                fault_id,
                fault,
                dict(zip(EXECUTORS, by_executor, strict=True)),
                NODE.findall(tested_by),
            )
        )
    return table


def row(fault_id: str) -> Row:
    """The row ``fault_id``."""
    for found in rows():
        if found.id == fault_id:
            return found
    raise KeyError(f"{fault_id!r} is not a row of {DOC.name}")


def executors(fault_id: str) -> list[str]:
    """The executors whose cell of ``fault_id`` states a bound the tests check."""
    return row(fault_id).marked()
