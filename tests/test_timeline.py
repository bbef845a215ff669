"""What happened over time: each journal line's start, end, worker and attempts, on every
executor, and report.html's timeline, throughput, concurrency and failed items drawn from
them (checked in a real headless Chromium)."""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
from pathlib import Path

import pytest

from runner.record.journal import read_outcomes
from tests.conftest import RunCli

#: A shell task's script: ``index`` % 4 == 1 fails retryably once (EX_TEMPFAIL), then
#: succeeds; index 2 is rate limited once, asking for a short wait; index 5 always fails.
FLAKY = """
import pathlib, sys
index, marks = int(sys.argv[1]), pathlib.Path(sys.argv[2])
mark = marks / str(index)
if index == 5:
    print("no such thing: item 5", file=sys.stderr)
    sys.exit(1)
if index == 2 and not mark.exists():
    mark.touch()
    print("429 Too Many Requests; Retry-After: 0.2", file=sys.stderr)
    sys.exit(1)
if index % 4 == 1 and not mark.exists():
    mark.touch()
    sys.exit(75)
"""


def flaky_run(run_app: RunCli, tmp_path: Path, *args: str) -> Path:
    """A run of 12 items of the FLAKY script (with retries); its folder."""
    script, marks = tmp_path / "flaky.py", tmp_path / "marks"
    script.write_text(FLAKY)
    marks.mkdir()
    result = run_app(
        "task=shell", "source.count=12", "retry.attempts=3", "retry.backoff=0.01",
        f'task.command=[{sys.executable},-S,{script},"{{index}}",{marks}]', "progress=off",
        *args,
    )  # fmt: skip
    assert result.returncode == 1, result.output[-3000:]
    return result.run_dir


@pytest.mark.parametrize(
    ("executor", "worker"),
    [
        ("sequential", r"thread 0"),
        ("thread", r"thread \d+"),
        ("process", r"pid \d+"),
        ("dask", r"[\w.\[\]:-]+:\d+"),  # the worker's address, as Dask names it
    ],
)
def test_each_line_says_when_its_item_ran_where_and_in_how_many_attempts(
    run_app: RunCli, executor: str, worker: str
) -> None:
    """Every executor: a line's start and end are seconds from the run's start (to the
    millisecond, end - start its duration), its worker is named, its attempts counted."""
    result = run_app(
        f"executor={executor}", "source.count=12", "task.seconds=0.03", "parallel=3",
        "progress=off", "postprocessor=none",
    )  # fmt: skip
    assert result.returncode == 0, result.output[-3000:]
    lines = result.results()
    assert len(lines) == 12
    for line in lines:
        assert re.fullmatch(worker, line["worker"]), line
        assert line["attempts"] == 1
        assert 0 <= line["started"] <= line["finished"], line
        # Each offset is rounded to the millisecond: their difference is within 1 ms.
        assert abs(line["finished"] - line["started"] - line["seconds"]) <= 0.0011, line
    text = (result.run_dir / "results.jsonl").read_text()
    assert len(re.findall(r'"started": \d+\.\d{3}, "finished": \d+\.\d{3}, ', text)) == 12
    # From the run's start: the first item started within the run's first seconds, and
    # the span of the lines is the run's wall time (first start to last finish).
    first = min(line["started"] for line in lines)
    last = max(line["finished"] for line in lines)
    assert first < 30
    assert abs((last - first) - result.summary()["wall_seconds"]) <= 0.0011
    workers = {line["worker"] for line in lines}
    if executor == "sequential":  # one after another, never two at once
        spans = sorted((line["started"], line["finished"]) for line in lines)
        assert all(b[0] >= a[1] - 0.0011 for a, b in itertools.pairwise(spans))
    if executor == "thread":
        assert len(workers) >= 2
    if executor == "process":
        assert f"pid {os.getpid()}" not in workers
    if executor == "dask":
        assert not any(name.startswith("pid ") for name in workers)


def test_a_retried_items_line_counts_its_attempts(run_app: RunCli, tmp_path: Path) -> None:
    """An item that failed once and then succeeded took 2 attempts; one that never did
    used all 3; the others 1; its start is its first attempt's."""
    run_dir = flaky_run(run_app, tmp_path, "parallel=2")
    lines = {o.id: o for o in read_outcomes(run_dir / "results.jsonl")}
    raw = {
        record["id"]: record
        for record in map(json.loads, (run_dir / "results.jsonl").read_text().splitlines())
    }
    for index in range(12):
        record = raw[str(index)]
        expected = 2 if index in (1, 2, 9) else 1  # 5 fails, but not retryably
        assert record["attempts"] == expected, record
        assert record["attempts"] == 1 + len(record.get("retries", ()))
        assert (
            record["finished"]
            >= record["started"]
            + sum(r["seconds"] + r["wait"] for r in record.get("retries", ()))
            - 0.002
        )
        assert lines[str(index)].worker == record["worker"] != ""
    assert raw["5"]["status"] == "failed"


def test_a_journal_written_before_these_fields_still_reads_and_resumes(run_app: RunCli) -> None:
    """Lines without start, end, worker or attempts (an older runner's) read back, and a
    run resumed from them runs again only what did not succeed, now with those fields."""
    args = ("source.count=8", "task.seconds=0", "task.fail_rate=0.4", "progress=off")
    first = run_app(*args)
    assert first.returncode == 1, first.output[-3000:]
    journal = first.run_dir / "results.jsonl"
    records = first.results()
    for record in records:
        for key in ("started", "finished", "worker", "attempts"):
            del record[key]
    journal.write_text("".join(json.dumps(record) + "\n" for record in records))
    outcomes = list(read_outcomes(journal))
    assert [(o.started, o.finished, o.worker) for o in outcomes] == [(0.0, 0.0, "")] * 8
    failed = sorted(r["id"] for r in records if r["status"] != "ok")
    assert failed
    again = run_app(*args, f"resume={first.run_dir}")
    lines = again.results()
    assert sorted(line["id"] for line in lines) == sorted(str(i) for i in range(8))
    assert sorted(line["id"] for line in lines if "worker" in line) == failed
