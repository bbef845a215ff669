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
from runner.show import timeline as timeline_module
from runner.show.run_page import run_page
from runner.show.timeline import BINS, read_journal
from tests.browser import rendered_dom, screenshot
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


def test_the_report_draws_the_timeline_throughput_and_the_failed_items(
    run_app: RunCli, tmp_path: Path
) -> None:
    """report.html in Chromium: a row per worker with cells where it was busy and a red
    one where an item failed, items finished and running over time with the rate-limited
    wait shaded and the limit drawn, the failed item named with its error, attempts and
    the command that prints its output; numbers rounded, times as people write them."""
    run_dir = flaky_run(run_app, tmp_path, "parallel=3")
    dom = rendered_dom(run_dir / "report.html", tmp_path)
    workers = {line["worker"] for line in map(json.loads, (run_dir / "results.jsonl").open())}
    assert "Over time" in dom
    for worker in workers:
        assert f">{worker}</text>" in dom  # its row's label
    busy = re.findall(r'<rect class="busy"[^>]*><title>([^<]*)</title>', dom)
    assert busy and all(title.split(",")[0] in workers for title in busy)
    [failed_cell] = re.findall(r'<rect class="failed"[^>]*><title>([^<]*)</title>', dom)
    assert failed_cell.endswith("1 failed")
    assert re.search(r'<rect class="wait"[^>]*><title>a rate-limited item waited', dom)
    assert re.search(r'<polyline class="throughput" points="[^"]+"', dom)
    assert re.search(r'<polyline class="running" points="[^"]+"', dom)
    assert re.search(r'<polyline class="limit" points="[^"]+"', dom)  # parallel=3
    table = dom[dom.index("Failed items") :]
    row = re.search(r"<tr><td>5</td><td>([^<]*)</td><td class=\"n\">1</td><td><code>([^<]*)", table)
    assert row is not None, table[:2000]
    assert row[1].startswith("TaskFailure: exit code 1: no such thing: item 5")
    assert row[2] == f"python -m runner.streams {run_dir} -- 5"
    assert "T0" not in dom and not re.search(r"\d{4}-\d\d-\d\dT\d\d:", dom)  # no ISO stamp
    figures = dom[dom.index("Figures") : dom.index("Over time")]
    assert not re.search(r"\d\.\d{4,}", figures), figures  # no 4.726596
    png = screenshot(run_dir / "report.html", tmp_path / "report.png")
    assert png.stat().st_size > 10_000


def _journal(path: Path, count: int, workers: int, seconds: float) -> float:
    """A journal of ``count`` items run back to back on each of ``workers`` workers, each
    taking ``seconds``; items 7, 70_000 and the last failed. Their total busy time."""
    lines = []
    for index in range(count):
        worker, slot = index % workers, index // workers
        start = slot * seconds
        status = "failed" if index in (7, 70_000, count - 1) else "ok"
        tail = (
            '"error": {"type": "E", "message": "broke\\nsecond line", "traceback": ""}'
            if status == "failed"
            else '"result": {"status": "failed", "started": 1}'  # a result quoting the fields
        )
        lines.append(
            f'{{"id": "i{index}", "status": "{status}", "seconds": {seconds}, '
            f'"started": {start:.3f}, "finished": {start + seconds:.3f}, '
            f'"worker": "w{worker}", "attempts": 1, {tail}}}\n'
        )
    path.write_text("".join(lines))
    return count * seconds


def test_a_long_journal_is_drawn_in_bins_estimated_from_a_sample(tmp_path: Path) -> None:
    """200k lines: the picture has a bounded number of shapes whatever the count, the busy
    time estimated from the sample is close to the true one, and every failed line is
    counted exactly (none is lost to the sample), its error shown on one line."""
    journal = tmp_path / "results.jsonl"
    total = _journal(journal, 200_000, 6, 0.001)
    reading = read_journal(journal)
    timeline = reading.timeline
    assert timeline is not None and timeline.step > 1  # an estimate, and it says so
    assert len(timeline.finished) <= BINS and sorted(timeline.busy) == [f"w{i}" for i in range(6)]
    busy = sum(map(sum, timeline.busy.values()))
    assert abs(busy - total) / total < 0.05
    assert abs(sum(timeline.finished) - 200_000) / 200_000 < 0.05
    assert reading.failed_count == 3
    assert [row[0] for row in reading.failed] == ["i7", "i70000", "i199999"]
    assert reading.failed[0][1] == "E: broke…" and reading.failed[0][3] == 8  # its line
    assert sum(map(sum, timeline.failures.values())) == 3
    page = run_page(
        {"task": "t", "source": "s", "parallel": 6}, reading.durations, [], reading, "R"
    )
    assert page.count("<rect") <= 6 * BINS + 2 * BINS + 200  # cells, histogram, waits
    assert "estimated from 1 line in" in page
    assert "sed -n 8p R/results.jsonl" in page  # no streams kept: the line itself


def test_a_resumed_runs_timeline_leaves_out_the_earlier_runs_lines(tmp_path: Path) -> None:
    """The lines an earlier run wrote (timed from its start) head a resumed run's journal:
    only the lines after them are drawn."""
    journal = tmp_path / "results.jsonl"
    _journal(journal, 1000, 2, 0.01)
    earlier = journal.read_text()
    journal.write_text(
        earlier.replace('"worker": "w', '"worker": "old w')
        + earlier.replace('"id": "i', '"id": "j')
    )
    timeline = read_journal(journal, skip=1000).timeline
    assert timeline is not None and sorted(timeline.busy) == ["w0", "w1"]
    assert sum(timeline.finished) == 1000


def test_a_journal_of_long_lines_sampled_sparsely_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fewer lines in a block than lines between two samples (long results, a long run):
    the sample still spans the journal, a line per stretch, and stands for all of them."""
    monkeypatch.setattr(timeline_module, "SAMPLE", 5)  # a line in 800 of these 4000
    big = "x" * 5000  # about 200 lines per block read
    journal = tmp_path / "results.jsonl"
    journal.write_text(
        "".join(
            f'{{"id": "{i}", "status": "ok", "seconds": 0.5, "started": {i * 0.5:.3f}, '
            f'"finished": {i * 0.5 + 0.5:.3f}, "worker": "w", "attempts": 1, "result": "{big}"}}\n'
            for i in range(4000)
        )
    )
    timeline = read_journal(journal).timeline
    assert timeline is not None and timeline.step == 800
    assert sum(timeline.finished) == 4000  # five stretches of 800, a line drawn in each
    assert timeline.end >= 2000
