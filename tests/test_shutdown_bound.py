"""A signal ends a run within ``timeout_grace`` + 1 s on every executor, and every item
still running then is recorded (docs/FAULTS.md, rows F1 and F2).

The items are ``http`` requests to a loopback service that answers after a minute: a
Python task blocked on a socket, which no thread can be made to leave, so that the bound
is the run's and not the task's. The service counts the requests in progress, so the
signal comes once every worker is inside one.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import start_runner
from tests.fault_matrix import executors
from tests.http_service import serve

GRACE = 1.0
#: The promised bound (docs/FAULTS.md): from the signal to the exit.
BOUND = GRACE + 1.0
#: On top of the bound: a busy machine's scheduling and the interpreter's exit.
SLACK = 2.0


def _records(run_dir: Path) -> list[dict[str, Any]]:
    journal = run_dir / "results.jsonl"
    return [json.loads(line) for line in journal.read_text().splitlines()]


def _signal_once_running(executor: str, tmp_path: Path, count: int) -> tuple[int, float, str]:
    """Start a run of ``count`` minute-long requests, SIGTERM it once ``parallel`` of them
    are in progress; its exit code, the seconds from the signal to its exit, its output."""
    parallel = 1 if executor == "sequential" else 2
    with serve(latency=60) as service:
        proc = start_runner(
            f"executor={executor}",
            f"parallel={parallel}",
            f"source.count={count}",
            "task=http",
            f"task.url='{service.url}/{{id}}'",
            f"timeout_grace={GRACE:g}",
            cwd=tmp_path,
            run_dir=tmp_path / "run",
        )
        try:
            deadline = time.monotonic() + 90  # a Dask cluster's start on a busy machine
            while service.in_progress < parallel:
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "the requests never started"
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            out, _ = proc.communicate(timeout=120)  # a safety net: the bound is checked below
            took = time.monotonic() - signalled
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return proc.returncode, took, out


@pytest.mark.parametrize("executor", executors("F1"))
def test_a_signal_ends_the_run_within_the_grace_and_records_the_running_items(
    tmp_path: Path, executor: str
) -> None:
    """SIGTERM while Python tasks are stuck: exit 143 within timeout_grace + 1 s, each
    item still running recorded as failed (Interrupted), the rest counted as not run."""
    code, took, out = _signal_once_running(executor, tmp_path, count=6)
    assert code == 143, out
    assert took < BOUND + SLACK, f"{took:.1f} s from SIGTERM to exit (bound {BOUND:g} s)\n{out}"
    parallel = 1 if executor == "sequential" else 2
    records = _records(tmp_path / "run")
    assert len(records) == parallel, records
    for record in records:
        assert record["status"] == "failed" and record["error"]["type"] == "Interrupted", record
        assert f"timeout_grace={GRACE:g}" in record["error"]["message"], record
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["signal"] == "SIGTERM"
    assert summary["failed"] == parallel and summary["skipped"] == 6 - parallel
