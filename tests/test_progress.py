"""Progress lines: their format, and thinning for large runs."""

from __future__ import annotations

from runner.api import Outcome
from runner.progress import Progress


def test_line_format_names_the_item(log_lines: list[str]) -> None:
    """Each line shows k/N, the label, the verdict, what remains and elapsed time."""
    progress = Progress(total=40, mode="lines")
    for k in range(12):
        progress.update(Outcome(str(k), "ok", 0.1, label=f"T3/01/run_01 judge_{k:02d}"))
    assert log_lines[11].startswith("[12/40] T3/01/run_01 judge_11 -> OK (28 remaining, ")
    assert log_lines[11].endswith("s elapsed)")


def test_unknown_total_shows_question_mark(log_lines: list[str]) -> None:
    """A source of unknown length shows ? for N."""
    progress = Progress(total=None, mode="lines")
    progress.update(Outcome("a", "failed", 0.1, error={"type": "E", "message": "m"}, label="a"))
    assert log_lines[0].startswith("[1/?] a -> FAIL")
    assert progress.failed == 1


def test_large_runs_are_thinned(log_lines: list[str]) -> None:
    """100k items produce a handful of lines, including the last one."""
    progress = Progress(total=100_000, mode="lines")
    for k in range(100_000):
        progress.update(Outcome(str(k), "ok", 0.0, label=str(k)))
    assert len(log_lines) < 100
    assert log_lines[-1].startswith("[100000/100000]")
    assert progress.done == 100_000
