"""docs/FAULTS.md and the tests agree: every row names tests that exist, every marked
cell is its row's, and a test that takes its executors from a row reads that row."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from tests import fault_matrix
from tests.fault_matrix import EXECUTORS, Row, rows

REPO = Path(__file__).resolve().parent.parent
IDS = [row.id for row in rows()]


@functools.cache
def _functions(path: str) -> dict[str, ast.FunctionDef]:
    """The test functions defined at the top of ``path``, by name."""
    tree = ast.parse((REPO / path).read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def _reads_row(function: ast.FunctionDef) -> str | None:
    """The row a test's ``parametrize`` takes its executors from (``executors("F1")``)."""
    for decorator in function.decorator_list:
        for node in ast.walk(decorator):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "executors"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                return str(node.args[0].value)
    return None


def _covers(path: str, function: ast.FunctionDef) -> set[str]:
    """The executors a named test runs, as far as its source says: the row it reads; all
    of them for a suite over the registry's executors; those its module names as a
    string (``"process"``, ``"executor=dask"``) or in its file name; ``thread``, the
    default, always."""
    read = _reads_row(function)
    if read is not None:
        return set(fault_matrix.executors(read))
    text = (REPO / path).read_text()
    if 'names("executor")' in text:
        return set(EXECUTORS)
    covered = {"thread"} | {name for name in EXECUTORS if f"_{name}" in Path(path).stem}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            covered |= {name for name in EXECUTORS if node.value in (name, f"executor={name}")}
    return covered


def test_the_table_has_its_rows_each_once() -> None:
    """Ids F1, F2, ... in order, each row naming its fault and at least one test."""
    assert IDS == [f"F{n}" for n in range(1, len(IDS) + 1)], IDS
    assert len(IDS) >= 13
    for row in rows():
        assert row.fault and row.tests, row


@pytest.mark.parametrize("row", rows(), ids=IDS)
def test_each_marked_cell_is_its_rows_and_has_its_tests(row: Row) -> None:
    """A cell that states a tested bound carries its own row's id (a cell copied from
    another row would not), and the tests the row names exist."""
    for executor, cell in row.cells.items():
        marks = [other for other in IDS if f"[{other}]" in cell]
        assert marks in ([], [row.id]), (executor, cell)
    assert row.marked(), f"{row.id}: no executor's cell is tested"
    for path, name in row.tests:
        assert (REPO / path).is_file(), path
        assert name in _functions(path), f"{path} defines no test {name}"


@pytest.mark.parametrize("row", rows(), ids=IDS)
def test_a_test_that_reads_the_table_reads_its_own_row(row: Row) -> None:
    """A named test parametrised from the table takes the executors of this row, so the
    cells marked here are exactly the executors it runs."""
    for path, name in row.tests:
        read = _reads_row(_functions(path)[name])
        if read is not None:
            assert read == row.id, f"{path}::{name} reads row {read}, is named in {row.id}"
            assert fault_matrix.executors(read) == row.marked()


@pytest.mark.parametrize("row", rows(), ids=IDS)
def test_the_named_tests_run_every_marked_executor(row: Row) -> None:
    """An executor whose cell states a tested bound is one a named test runs."""
    covered: set[str] = set()
    for path, name in row.tests:
        covered |= _covers(path, _functions(path)[name])
    assert set(row.marked()) <= covered, (
        f"{row.id}: no named test runs {set(row.marked()) - covered}"
    )


def test_the_rows_the_tests_read_are_in_the_table() -> None:
    """Every ``executors("F..")`` in the tests names a row that exists, and that row
    names the test: a test cannot read a row that does not list it."""
    for path in sorted((REPO / "tests").glob("test_*.py")):
        relative = str(path.relative_to(REPO))
        for name, function in _functions(relative).items():
            read = _reads_row(function)
            if read is None:
                continue
            assert read in IDS, f"{relative}::{name} reads {read}, not a row"
            assert (relative, name) in fault_matrix.row(read).tests, (relative, name, read)


def test_every_executor_is_a_column() -> None:
    """The columns are the built-in executors, each once."""
    from runner.config import registry

    assert sorted(EXECUTORS) == sorted(registry.names("executor"))
