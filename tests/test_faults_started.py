"""summary.json says when a run started and ended, an interrupted run with no finished
item too (it said ``started_at: null``)."""

from __future__ import annotations

import datetime as dt
import json
import signal
import sys
import time
from pathlib import Path

from tests.conftest import start_runner


def test_an_interrupted_run_with_no_finished_item_says_when_it_started(tmp_path: Path) -> None:
    """SIGINT while the only item sleeps: no item finished, and summary.json's
    started_at and finished_at are the run's own, between the test's clock readings."""
    run_dir, started_item = tmp_path / "run", tmp_path / "started"
    sleeper = f"import time; open({str(started_item)!r}, 'w').close(); time.sleep(30)"
    command = json.dumps([sys.executable, "-S", "-c", sleeper])
    before = dt.datetime.now(dt.timezone.utc)
    proc = start_runner(
        "task=shell", f"task.command={command}", "source.count=2", "timeout_grace=0.5",
        run_dir=run_dir,
    )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while not started_item.exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # the first item's command runs: the run is in its loop
    proc.send_signal(signal.SIGINT)
    output = proc.stdout.read()
    assert proc.wait(60) == 130, output
    after = dt.datetime.now(dt.timezone.utc)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["total"] == 0 and summary["interrupted"], summary
    started = dt.datetime.fromisoformat(summary["started_at"])
    finished = dt.datetime.fromisoformat(summary["finished_at"])
    assert before <= started <= finished <= after


def test_a_signal_as_the_run_starts_still_leaves_its_summary(tmp_path: Path) -> None:
    """SIGINT the moment the run says it is running (before or while it hands out its
    items): exit 130, and the journal and summary.json are written all the same (the
    signal raised out of the start, which left neither). Three times, as where the signal
    lands varies."""
    for attempt in range(3):
        run_dir = tmp_path / f"run{attempt}"
        proc = start_runner(
            "task=shell", "task.command=[sleep,'30']", "source.count=2", "timeout_grace=0.5",
            run_dir=run_dir,
        )  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            if "Running task" in line:
                break
        proc.send_signal(signal.SIGINT)
        output = proc.stdout.read()
        assert proc.wait(60) == 130, output
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["interrupted"] and summary["started_at"] is not None, summary
        assert (run_dir / "results.jsonl").is_file()
