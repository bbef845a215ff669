"""Progress with a rate and the time left (GNU parallel's --eta), on lines and above the
bar, and a sweep's job prefix on the lines written above its bar."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runner.api import Outcome
from runner.show import progress as progress_module
from runner.show.progress import Progress
from tests.conftest import RunCli
from tests.test_terminal import run_in_terminal


@pytest.fixture
def ticking(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A clock that reads what the test sets."""
    now = [1000.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: now[0])
    return now


def test_lines_carry_the_rate_and_the_time_left(log_lines: list[str], ticking: list[float]) -> None:
    """[k/N] lines say how fast items finish and when the rest will have, at that rate."""
    progress = Progress(total=40, mode="lines")
    for k in range(1, 13):
        ticking[0] = 1000.0 + 0.5 * k  # two items a second
        progress.update(Outcome(str(k), "ok", 0.1, label=f"item {k}"))
    assert log_lines[11] == "[12/40] item 12 -> OK (28 remaining, 2 items/s, ETA 14s, 6s elapsed)"
    ticking[0] += 3600.0  # one more item after an hour: 13 items in 3606 s
    progress.update(Outcome("x", "failed", 0.1, error={"type": "E", "message": "m"}, label="x"))
    assert log_lines[-1] == (
        "[13/40] x -> FAIL (27 remaining, 0.00361 items/s, ETA 2h04m, 3606s elapsed): E: m"
    )


def test_the_last_line_and_an_unknown_count_have_no_eta(
    log_lines: list[str], ticking: list[float]
) -> None:
    """Nothing is left after the last item; with no count, only the rate can be known."""
    progress = Progress(total=2, mode="lines")
    for k in range(2):
        ticking[0] += 0.004
        progress.update(Outcome(str(k), "ok", 0.0, label=str(k)))
    assert log_lines[-1] == "[2/2] 1 -> OK (0 remaining, 250 items/s, 0s elapsed)"
    unknown = Progress(total=None, mode="lines")
    ticking[0] += 0.001
    unknown.update(Outcome("a", "ok", 0.0, label="a"))
    assert log_lines[-1] == "[1/?] a -> OK (1,000 items/s, 0s elapsed)"


def test_a_run_without_a_terminal_says_its_rate_and_eta(run_app: RunCli) -> None:
    """The lines a run prints where stderr is no terminal (a log, CI) carry both."""
    result = run_app("source.count=30", "task.seconds=0.01", "parallel=2")
    assert result.returncode == 0, result.output[-3000:]
    lines = re.findall(
        r"\[(\d+)/30\] \d+ -> OK \(\d+ remaining, ([\d.,]+) items/s, (.*)\)", result.stderr
    )
    assert len(lines) == 30
    assert all(float(rate.replace(",", "")) > 0 for _, rate, _ in lines)
    assert all(rest.startswith("ETA ") for k, _, rest in lines if k != "30")


def test_a_sweeps_lines_above_the_bar_carry_their_job(tmp_path: Path) -> None:
    """On a terminal, each job of a sweep draws its bar; the failures written above it
    start with [job N], as the console's own lines do."""
    code, out = run_in_terminal(
        [
            "-m", "task.fail_rate=0.3,0.5", "source.count=40", "task.seconds=0.005",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        tmp_path,
        140,
    )  # fmt: skip
    assert code == 1, out
    failures = [line for line in out.splitlines() if "-> FAIL" in line]
    assert len(failures) >= 10, out
    assert all(re.match(r"\[job [01]\] \[\d+/40\] \d+ -> FAIL", line) for line in failures), out
    assert {line[:7] for line in failures} == {"[job 0]", "[job 1]"}
