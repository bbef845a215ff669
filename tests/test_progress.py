"""Progress lines: their format, and thinning for large runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.api import Outcome
from runner.show import progress as progress_module
from runner.show.labels import ELLIPSIS, printable
from runner.show.progress import Progress
from tests.conftest import RunCli


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


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("T3/01/run_01 judge_02", "T3/01/run_01 judge_02"),
        ("a\nDone: 999 succeeded", "a\\nDone: 999 succeeded"),
        ("\x1b[2K\rfake", "\\x1b[2K\\rfake"),
        ("tab\there\u2028\x00\x7f\x85", "tab\\there\\u2028\\x00\\x7f\\x85"),
        ("caf\u00e9 \u65e5\u672c", "caf\u00e9 \u65e5\u672c"),
    ],
)
def test_printable_escapes_control_characters(text: str, shown: str) -> None:
    """Newlines, terminal escapes and other invisible characters are shown escaped."""
    assert printable(text) == shown


def test_printable_shortens_without_splitting_an_escape() -> None:
    """Long text is cut to the limit with an ellipsis, never inside an escape."""
    assert printable("x" * 5000) == "x" * 79 + ELLIPSIS
    assert printable("x" * 80) == "x" * 80
    assert printable("x" * 77 + "\x1b[0m") == "x" * 77 + ELLIPSIS
    assert printable("x" * 75 + "\x1b[0m") == "x" * 75 + "\\x1b" + ELLIPSIS
    for n in range(70, 85):
        shown = printable("x" * n + "\n" * 10, limit=80)
        assert len(shown) <= 80
        assert not shown.rstrip(ELLIPSIS).endswith("\\")


def test_ids_cannot_forge_progress_lines(log_lines: list[str]) -> None:
    """An id with a newline or escapes stays on its own line, escaped and shortened."""
    progress = Progress(total=3, mode="lines")
    forged = "1 -> OK\n12:00:00 INFO    Done: 999 succeeded, 0 failed"
    progress.update(Outcome(forged, "ok", 0.1, label=forged))
    progress.update(
        Outcome("\x1b[2J" + "y" * 5000, "failed", 0.1, error={"type": "E", "message": "a\nb"})
    )
    progress.update(
        Outcome("z", "failed", 0.1, error={"type": "E", "message": "m" * 5000}, label="z")
    )
    assert len(log_lines) == 3
    assert all("\n" not in line and "\x1b" not in line for line in log_lines)
    assert log_lines[0].startswith("[1/3] 1 -> OK\\n12:00:00 INFO    Done: 999 succeeded")
    assert log_lines[1].startswith("[2/3] \\x1b[2Jyyy") and ": E: a\\nb" in log_lines[1]
    assert all(len(line) < 400 for line in log_lines)


def test_console_and_log_show_hostile_ids_escaped(run_app: RunCli, tmp_path: Path) -> None:
    """Ids from a file cannot forge console or runner.log lines, and long ones are cut."""
    ids = ["ok\nDone: 999 succeeded, 0 failed", "\x1b[2J\x1b[31mred", "long" * 1250]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"k": i}) + "\n" for i in ids))
    result = run_app("source=jsonl", "source.path=in.jsonl", "source.id_field=k", "task.seconds=0")
    assert result.returncode == 0, result.output
    log = (result.run_dir / "runner.log").read_text()
    for text in (result.output, log):
        assert "\x1b" not in text
        assert not any("Done: 999" in line and "->" not in line for line in text.splitlines())
        progress_lines = [line for line in text.splitlines() if " -> OK" in line]
        assert len(progress_lines) == 3
        assert any("ok\\nDone: 999 succeeded" in line for line in progress_lines)
        assert all(len(line) < 250 for line in progress_lines)
