"""Once the failure that halts a run is recorded nothing new starts, and the counts are
exact: ``halt.mode=soon`` lets the running items finish, ``halt.mode=now`` kills them
and says how many (docs/FAULTS.md, rows F7 and F8)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunCli
from tests.fault_matrix import executors

COUNT = 12

# Each item marks that it started (a file named for it). Item 0 fails once the other
# running items have started (``others`` marks besides its own), so that the run is
# halted while exactly ``parallel`` items have started; the others sleep ``seconds``.
ITEM = """
import pathlib, sys, time
marks, index = pathlib.Path(sys.argv[1]), sys.argv[2]
others, seconds = int(sys.argv[3]), float(sys.argv[4])
(marks / index).touch()
if index == "0":
    deadline = time.monotonic() + 60
    while len(list(marks.iterdir())) < others + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    sys.exit(3)
time.sleep(seconds)
"""


def _halted_run(
    run_app: RunCli, tmp_path: Path, executor: str, mode: str
) -> tuple[int, Path, str, dict[str, Any], list[dict[str, Any]]]:
    parallel = 1 if executor == "sequential" else 3
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "item.py"
    script.write_text(ITEM)
    seconds = 1 if mode == "soon" else 60
    result = run_app(
        f"executor={executor}",
        f"parallel={parallel}",
        "task=shell",
        f"source.count={COUNT}",
        f"task.command=[{sys.executable},{script},{marks},'{{index}}',"
        f"'{parallel - 1}','{seconds}']",
        "halt.on_failures=1",
        f"halt.mode={mode}",
        "timeout_grace=1",
    )
    assert result.returncode == 1, result.output
    summary = result.summary()
    assert summary["halted"] == "1 failure(s) reached halt.on_failures", summary
    started = sorted(int(mark.name) for mark in marks.iterdir())
    # Nothing started after the halting failure: only the items running with item 0.
    assert len(started) == parallel, started
    return len(started), result.run_dir, result.output, summary, result.results()


@pytest.mark.parametrize("executor", executors("F7"))
def test_halt_soon_starts_nothing_after_the_failure(
    run_app: RunCli, tmp_path: Path, executor: str
) -> None:
    """halt.mode=soon: the items running with the failing one finish and are recorded;
    no other item starts (it was 3 of 3 tries with the thread executor: one more)."""
    parallel, _, output, summary, records = _halted_run(run_app, tmp_path, executor, "soon")
    assert sorted((r["id"], r["status"]) for r in records) == [("0", "failed")] + [
        (str(i), "ok") for i in range(1, parallel)
    ], records
    assert summary["skipped"] == COUNT - parallel
    assert "Halting (soon)" in output and "killed" not in output


@pytest.mark.parametrize("executor", executors("F8"))
def test_halt_now_kills_exactly_the_running_commands(
    run_app: RunCli, tmp_path: Path, executor: str
) -> None:
    """halt.mode=now: the commands running with the failing item are killed, the line
    says how many (it said 4 for 3 with the thread executor), none is recorded as a
    success and nothing else starts."""
    parallel, _, output, summary, records = _halted_run(run_app, tmp_path, executor, "now")
    assert [(r["id"], r["status"]) for r in records] == [("0", "failed")], records
    assert summary["skipped"] == COUNT - 1
    killed = re.search(r"(\d+) running command\(s\) killed", output)
    if parallel == 1:
        assert killed is None, output
    else:
        assert killed is not None and int(killed.group(1)) == parallel - 1, output
