"""Progress lines: their format, and thinning for large runs."""

from __future__ import annotations

import pytest

from runner import progress as progress_module
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


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """No time passes: only the count-based rules decide which lines appear."""
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: 1000.0)


def test_large_runs_are_thinned(log_lines: list[str], frozen_clock: None) -> None:
    """100k items: the first lines and the last one (more only as time passes)."""
    progress = Progress(total=100_000, mode="lines")
    for k in range(100_000):
        progress.update(Outcome(str(k), "ok", 0.0, label=str(k)))
    expected = [f"[{k}/100000]" for k in range(1, progress_module.FIRST_LINES + 1)]
    assert [line.split()[0] for line in log_lines] == [*expected, "[100000/100000]"]
    assert progress.done == 100_000


def test_failure_lines_are_capped(log_lines: list[str], frozen_clock: None) -> None:
    """Failures always show, up to a cap, then thin like the rest; the count stays exact."""
    progress = Progress(total=10_000, mode="lines")
    for k in range(10_000):
        status = "failed" if k % 10 == 0 else "ok"
        progress.update(
            Outcome(str(k), status, 0.0, error={"type": "E", "message": "m"}, label=str(k))
        )
    fails = [line for line in log_lines if "-> FAIL" in line]
    assert len(fails) == progress_module.FAILURE_LINES
    assert progress.failed == 1_000
