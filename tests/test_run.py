"""runner.execute.run: one lifecycle, signals, halting and resuming, tried on real processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from runner.api import Item
from runner.execute.safecall import SafeCall
from runner_plugins.executors.thread import ThreadExecutor
from tests.conftest import RunCli, process_running, run_runner, start_runner

# A command that records that it started (a pid file per item), then sleeps.
SLOW_CHILD = (
    "import os, sys, time, pathlib; "
    'pathlib.Path(sys.argv[1], sys.argv[2] + ".pid").write_text(str(os.getpid())); '
    "time.sleep(float(sys.argv[3]))"
)


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], Path]:
    run_dir = tmp_path / "run"
    return start_runner(*args, cwd=tmp_path, run_dir=run_dir), run_dir


def _wait_for_files(folder: Path, pattern: str, count: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while len(list(folder.glob(pattern))) < count:
        assert time.monotonic() < deadline, f"fewer than {count} {pattern} in {folder}"
        time.sleep(0.02)


def _results(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_stops_the_run_cleanly(tmp_path: Path, signum: int) -> None:
    """SIGTERM, SIGHUP and SIGINT: commands killed, journal and summary written, 128+signal."""
    pids = tmp_path / "pids"
    pids.mkdir()
    proc, run_dir = _start(
        tmp_path,
        "parallel=3",
        "task=shell",
        "source.count=12",
        f"task.command=[{sys.executable},-c,'{SLOW_CHILD}',{pids},'{{index}}','{{index}}']",
    )
    # Item i sleeps i seconds: item 0 is done once a fourth command has started.
    _wait_for_files(pids, "*.pid", 4)
    time.sleep(0.3)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signum, out
    name = signal.Signals(signum).name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["signal"] == name
    assert summary["total"] == len(_results(run_dir)) >= 1
    assert summary["skipped"] == 12 - summary["total"]
    assert json.loads((run_dir / "job.json").read_text())["code"] == 128 + signum
    for pid_file in pids.glob("*.pid"):
        assert not process_running(int(pid_file.read_text())), f"{pid_file.name} survived"
    assert f"interrupted ({name})" in out


def test_a_second_signal_exits_at_once(tmp_path: Path) -> None:
    """While a run waits for a Python task to end, a second SIGTERM exits immediately:
    the sleeping items are never recorded and the orderly ending (summary.json) is skipped."""
    proc, run_dir = _start(
        tmp_path, "parallel=2", "source.count=4", "task.seconds=30", "timeout_grace=60"
    )
    deadline = time.monotonic() + 30
    while (
        "Running task" not in (run_dir / "runner.log").read_text(errors="replace")
        if (run_dir / "runner.log").exists()
        else True
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert proc.poll() is None  # waiting up to timeout_grace for the sleeping items
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)  # a safety net only: the checks below decide
    assert proc.returncode == 143 and "again: exiting now" in out
    # Waiting would have recorded both 30 s items as they ended, then written the summary.
    assert _results(run_dir) == []
    assert not (run_dir / "summary.json").exists()


def test_halt_soon_starts_nothing_more_and_counts_the_rest_skipped(run_app: RunCli) -> None:
    """halt.on_failures=2: after the second failure no item starts; exit 1, halted, skipped."""
    result = run_app(
        "source.count=200",
        "task.seconds=0.01",
        "task.fail_rate=0.5",
        "parallel=2",
        "halt.on_failures=2",
    )
    assert result.returncode == 1, result.output
    summary = result.summary()
    assert summary["halted"] == "2 failure(s) reached halt.on_failures"
    assert 2 <= summary["failed"] <= 3  # the other worker's running item may fail too
    assert summary["skipped"] == 200 - summary["total"] > 150
    assert len(result.results()) == summary["total"]
    assert "Halting (soon)" in result.output


def test_halt_now_kills_the_running_commands(run_app: RunCli, tmp_path: Path) -> None:
    """halt.mode=now: the first failure stops the commands still running; they are
    recorded as skipped (not finished), not as the successes they would have become."""
    script = tmp_path / "item.py"
    script.write_text("import sys, time\nif sys.argv[1] == '0': sys.exit(3)\ntime.sleep(60)\n")
    result = run_app(
        "task=shell",
        "source.count=3",
        "parallel=3",
        f"task.command=[{sys.executable},{script},'{{index}}']",
        "halt.on_failures=1",
        "halt.mode=now",
    )
    assert result.returncode == 1, result.output
    records = {r["id"]: r for r in result.results()}
    assert list(records) == ["0"] and records["0"]["status"] == "failed"
    assert result.summary()["skipped"] == 2
    assert "killed" in result.output


def test_a_bad_halt_or_retry_value_is_a_usage_error(run_app: RunCli) -> None:
    """halt.on_failures=abc and retry.attempts=0 stop before any item with one line."""
    for override, text in (
        ("halt.on_failures=abc", "halt.on_failures='abc' is invalid"),
        ("retry.attempts=0", "retry.attempts=0 is invalid: it must be an integer >= 1"),
        ("timeout=-1", "timeout=-1.0 is invalid"),
        ("rate_limit.per_second=0", "rate_limit.per_second=0.0 is invalid"),
    ):
        result = run_app("source.count=2", override)
        assert result.returncode == 2 and text in result.output, result.output
        assert not (result.run_dir / "results.jsonl").exists()


def test_resume_after_kill_9_finishes_every_item_once(tmp_path: Path, run_app: RunCli) -> None:
    """kill -9 mid-run, then resume=<folder>: every item succeeds, none that had runs again."""
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "item.py"
    script.write_text(
        "import sys, time, pathlib\n"
        "with open(pathlib.Path(sys.argv[1], sys.argv[2]), 'a') as fh: fh.write('run\\n')\n"
        "time.sleep(0.05)\n"
    )
    command = f"task.command=[{sys.executable},{script},{marks},'{{index}}']"
    proc, first = _start(tmp_path, "task=shell", "source.count=60", "parallel=3", command)
    _wait_for_files(marks, "*", 20)
    proc.kill()
    proc.communicate(timeout=30)
    done = {r["id"] for r in _results(first) if r["status"] == "ok"}
    assert 0 < len(done) < 60
    second = run_app("task=shell", "source.count=60", "parallel=3", command, f"resume={first}")
    assert second.returncode == 0, second.output
    records = second.results()
    assert sorted(int(r["id"]) for r in records) == list(range(60))
    assert all(r["status"] == "ok" for r in records)
    for item_id in done:  # what the first run recorded as done ran exactly once
        assert (marks / item_id).read_text() == "run\n"
    assert second.summary()["already_succeeded"] == len(done)


def test_resume_tolerates_a_torn_last_line_and_finds_the_last_run(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """A journal cut mid-line is read up to the cut; resume=last finds the newest run."""
    outputs = tmp_path / "outputs" / "2026-01-01"
    old = outputs / "10-00-00"
    first = run_runner("source.count=4", "task.seconds=0", cwd=tmp_path, run_dir=old)
    assert first.returncode == 0, first.stderr
    (old / "results.jsonl").write_text(
        '{"id": "0", "status": "ok", "seconds": 0.1, "result": null}\n'
        '{"id": "1", "status": "failed", "seconds": 0.1, "error": {}}\n'
        '{"id": "2", "status": "ok", "se'
    )
    new = outputs / "11-00-00"
    result = run_runner(
        "source.count=4", "task.seconds=0", "resume=last", cwd=tmp_path, run_dir=new
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ids = [r["id"] for r in _results(new)]
    assert sorted(ids) == ["0", "1", "2", "3"] and ids[0] == "0"  # 0 copied, not rerun
    bad = run_cli("source.count=4", f"resume={tmp_path / 'nowhere'}")
    assert bad.returncode == 2 and "is not a run folder" in bad.output


def test_no_more_threads_than_items_whatever_parallel_says() -> None:
    """parallel=1e9 with three items starts at most three worker threads, at once."""
    seen: set[str] = set()
    barrier = threading.Barrier(3, timeout=10)

    def run(item: Item) -> None:
        seen.add(threading.current_thread().name)
        barrier.wait()

    executor = ThreadExecutor()
    outcomes = list(executor.map(SafeCall(run), (Item(str(i)) for i in range(3)), 1_000_000_000))
    # Three threads met at the barrier: an item left waiting would fail BrokenBarrierError.
    assert [o.status for o in outcomes] == ["ok"] * 3
    assert len(seen) == 3
    assert sum(t.name.startswith("runner-worker") for t in threading.enumerate()) <= 3
    executor.shutdown(wait=True, timeout=5)


def test_shutdown_waits_for_running_items_before_returning() -> None:
    """After shutdown(wait=True) no item of the executor is still running."""
    running = threading.Event()
    finished: list[str] = []

    def run(item: Item) -> None:
        running.set()
        time.sleep(0.3)
        finished.append(item.id)

    executor = ThreadExecutor()
    outcomes = executor.map(SafeCall(run), (Item(str(i)) for i in range(50)), 4)
    next(outcomes)
    executor.shutdown(wait=False)
    rest = list(outcomes)
    executor.shutdown(wait=True, timeout=10)
    assert len(finished) == 1 + len(rest) < 50


def test_a_full_disk_ends_the_run_with_one_line_and_a_whole_journal(
    tmp_path: Path, run_app: RunCli
) -> None:
    """Writes to /dev/full fail with ENOSPC: one line naming the file, exit 74, no traceback."""
    run_dir = tmp_path / "run0"  # the folder run_app gives its first run
    run_dir.mkdir()
    (run_dir / "results.jsonl").symlink_to("/dev/full")
    (run_dir / "runner.log").symlink_to("/dev/full")
    result = run_app("source.count=50", "task.seconds=0.01", "parallel=2")
    assert result.returncode == 74, result.output
    errors = [line for line in result.output.splitlines() if "runner: error:" in line]
    assert len(errors) == 1
    assert "cannot write" in errors[0] and "results.jsonl" in errors[0]
    assert "No space left on device" in errors[0]
    assert "Traceback" not in result.output and "Logging error" not in result.output
    assert "cannot write" in result.output and "runner.log" in result.output
    summary = result.summary()  # summary.json is a separate, writable file
    assert summary["total"] + summary["skipped"] == 50
    assert json.loads((run_dir / "job.json").read_text())["code"] == 74


def test_a_python_task_past_its_timeout_is_recorded_at_its_deadline(run_cli: RunCli) -> None:
    """A thread that cannot be killed: its item is timed out at the deadline, while the
    task still runs (not when it returns), and the run ends without waiting for it."""
    result = run_cli(
        "source.count=4",
        "task.seconds=60",
        "parallel=2",
        "timeout=1",
        "timeout_grace=1",
        timeout=50,  # the run must not wait for the 60 s its tasks sleep
    )
    assert result.returncode == 1, result.output
    records = result.results()
    assert sorted(r["id"] for r in records) == ["0", "1", "2", "3"]
    assert all(r["status"] == "failed" for r in records)
    # A task recorded as it returned would say "(the task ran 60.0 s)".
    messages = {r["error"]["message"] for r in records}
    assert messages == {"timed out after 1 s (the task is still running)"}
    assert all(r["seconds"] >= 1 for r in records)
