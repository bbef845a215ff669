"""runner.show.ending: the failed items by name at the end of a run, and the command that
runs what is left."""

from __future__ import annotations

import json
import shlex
import signal
import time
from pathlib import Path

from runner.show.ending import failed_lines, next_step
from tests.conftest import RunCli, start_runner

FAILING = ("source.count=40", "task.seconds=0", "task.fail_rate=0.3", "task.seed=3")


def _failed_ids(run_dir: Path) -> list[str]:
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    return [r["id"] for r in map(json.loads, lines) if r["status"] == "failed"]


def test_the_end_names_the_failed_items_and_the_command_that_resumes_the_run(
    run_app: RunCli, tmp_path: Path
) -> None:
    """Without a terminal the first 10 failed ids are listed with their errors, the rest
    counted; the command shown resumes the run: run as printed, it runs exactly the
    failed items again. A run with nothing left shows neither."""
    first = run_app(*FAILING, "progress=off")
    assert first.returncode == 1, first.output
    failed = _failed_ids(first.run_dir)
    assert len(failed) == 15
    lines = first.stderr.splitlines()
    header = next(i for i, line in enumerate(lines) if "Failed items (15" in line)
    assert lines[header].endswith("Failed items (15, the first 10 shown):")
    for line, item_id in zip(lines[header + 1 : header + 11], failed[:10], strict=True):
        assert line.endswith(
            f"  {item_id}: TaskFailure: item {item_id} fails by design (fail_rate=0.3)"
        )
    assert lines[header + 11].endswith("  ... and 5 more (results.jsonl has every one)")
    [command] = [line.split(" again: ", 1)[1] for line in lines if "To run the 15 failed" in line]
    program, *args = shlex.split(command)
    assert program == "runner"  # run_app's argv[0]; `python -m runner` from a shell
    assert args == [*FAILING, "progress=off", f"resume={first.run_dir.name}"]
    again = run_app(*args)
    assert sorted(r["id"] for r in again.results()[25:]) == sorted(failed)
    assert again.summary()["already_succeeded"] == 25 and again.summary()["total"] == 15
    clean = run_app("source.count=3", "task.seconds=0", "progress=off")
    assert clean.returncode == 0, clean.output
    assert "Failed items" not in clean.output and "resume=" not in clean.output


def test_the_list_fits_the_terminal_and_counts_the_rest() -> None:
    """On a terminal, as many items as its height leaves room for (at least 3), each cut
    to its width; the rest are counted."""
    first = [(str(n), f"TaskFailure: {'x' * 200}") for n in range(50)]
    tall = failed_lines(first, 80, (120, 40))
    assert tall[0] == "Failed items (80, the first 32 shown):" and len(tall) == 34
    assert all(len(line) <= 120 - 17 for line in tall)
    assert tall[1].startswith("  0: TaskFailure: xxx") and tall[1].endswith("…")
    assert tall[-1] == "  ... and 48 more (results.jsonl has every one)"
    short = failed_lines(first, 4, (80, 6))
    assert short[0] == "Failed items (4, the first 3 shown):" and len(short) == 5
    assert failed_lines(first[:2], 2, (80, 40))[0] == "Failed items (2):"
    assert failed_lines([], 0, (80, 40)) == []


def test_the_next_step_names_what_is_left_and_quotes_the_overrides(tmp_path: Path) -> None:
    """Failed and unrun items are named; each override is quoted for the shell, and an
    earlier resume= gives way to this run's folder; a run with nothing left has none."""
    run_dir = tmp_path / "run"
    overrides = ["task=shell", "task.command=[echo,'{id} x']", "resume=old", "parallel=2"]
    summary = {"failed": 2, "skipped": 5, "interrupted": True, "halted": None}
    step = next_step(summary, run_dir, overrides)
    assert step.startswith("To run the 2 failed and 5 unrun item(s) again: ")
    *args, resume = shlex.split(step.split(" again: ", 1)[1])
    assert args == [
        "python", "-m", "runner", "task=shell", "task.command=[echo,'{id} x']", "parallel=2",
    ]  # fmt: skip
    # The folder as the shortest path from here (relative where that is shorter).
    assert resume.startswith("resume=")
    assert Path(resume.removeprefix("resume=")).resolve() == run_dir.resolve()
    unknown = {"failed": 0, "skipped": None, "interrupted": True, "halted": None}
    assert next_step(unknown, run_dir, []).startswith("To run the unrun item(s) again: ")
    done = {"failed": 0, "skipped": 0, "interrupted": False, "halted": None}
    assert next_step(done, run_dir, overrides) == ""


def test_ctrl_c_ends_with_the_command_that_resumes_the_run(tmp_path: Path) -> None:
    """After SIGINT the run's last lines give the resume command for the unrun items."""
    run_dir = tmp_path / "run"
    proc = start_runner(
        "source.count=200", "task.seconds=0.05", "progress=off", cwd=tmp_path, run_dir=run_dir
    )
    journal = run_dir / "results.jsonl"
    deadline = time.monotonic() + 60
    while not (journal.exists() and journal.read_text().count("\n") >= 3):
        assert time.monotonic() < deadline and proc.poll() is None, "no item finished"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    skipped = json.loads((run_dir / "summary.json").read_text())["skipped"]
    assert skipped > 0
    [command] = [
        line.split(" again: ", 1)[1] for line in out.splitlines() if "unrun item(s) again" in line
    ]
    assert f"To run the {skipped} unrun item(s) again" in out
    assert shlex.split(command) == [
        "python", "-m", "runner", "source.count=200", "task.seconds=0.05", "progress=off",
        "resume=run",  # relative to the working directory, where it is shorter
    ]  # fmt: skip
    assert out.rstrip().endswith("interrupted (SIGINT)")
