"""runner.record.resume: a resume continues only a run of the same work; a run folder holds
one run."""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from runner.config.settings import settings_from
from runner.errors import UsageError
from runner.execute.run import execute
from runner.record import resume
from tests.conftest import Compose, run_runner, start_runner
from tests.inprocess import run_in_process

SLEEP = ("task=sleep", "task.seconds=0", "source.count=10", "progress=off")


def _run(compose: Compose, out: Path, *overrides: str) -> int:
    """One run in this process, as ``python -m runner`` would do it into ``out``."""
    out.mkdir(parents=True, exist_ok=True)  # as Hydra does
    return execute(settings_from(compose(*overrides)), out)


def _records(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _messages() -> list[str]:
    seen: list[str] = []
    logger.add(lambda message: seen.append(str(message)), level="INFO")
    return seen


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        (("task.seconds=0.5",), "its task.seconds was 0.0, this run has 0.5"),
        (("task=shell", "task.command=[true]"), "its task.name was 'sleep', this run has 'shell'"),
        (("source.count=11",), "its source.count was 10, this run has 11"),
        (("task.seed=1",), "its task.seed was 0, this run has 1"),
    ],
)
def test_a_resume_of_other_work_is_refused_naming_the_first_key(
    compose_config: Compose, tmp_path: Path, changed: tuple[str, ...], named: str
) -> None:
    """resume=PATH of a run whose task or source (or an option) differs: one line naming
    the key and both values; nothing runs, nothing is written into the new folder."""
    first, second = tmp_path / "first", tmp_path / "second"
    assert _run(compose_config, first, *SLEEP) == 0
    keep = [o for o in SLEEP if not (changed[0] == "task=shell" and o.startswith("task"))]
    with pytest.raises(UsageError) as refused:
        _run(compose_config, second, *keep, *changed, f"resume={first}")
    assert named in str(refused.value) and "\n" not in str(refused.value)
    assert str(refused.value).startswith(f"resume={str(first)!r}: ")
    assert list(second.iterdir()) == []


def test_how_items_run_may_differ_in_a_resume(compose_config: Compose, tmp_path: Path) -> None:
    """The executor, parallel, retries, timeout, halting and rate may all change."""
    first, second = tmp_path / "first", tmp_path / "second"
    assert _run(compose_config, first, *SLEEP, "task.fail_rate=0.5") == 1
    failed = {r["id"] for r in _records(first) if r["status"] != "ok"}
    assert 0 < len(failed) < 10
    how = ("executor=sequential", "parallel=3", "retry.attempts=2", "timeout=30")
    how += ("halt.on_failures=50", "rate_limit.per_second=1000")
    _run(compose_config, second, *SLEEP, "task.fail_rate=0.5", *how, f"resume={first}")
    summary = json.loads((second / "summary.json").read_text())
    assert summary["resumed_from"] == str(first)
    assert summary["already_succeeded"] == 10 - len(failed)


def test_a_judge_runs_copy_and_seed_are_part_of_its_identity(
    compose_config: Compose, tmp_path: Path
) -> None:
    """A judge source's options (copy, seed, the experiment) decide what its items are:
    a resume that changes one is refused before any plugin touches an experiment."""
    judge = ("task=judge_rerun", "source=judge_runs", "source.experiment=/nowhere")
    first = tmp_path / "first"
    first.mkdir()
    resume.claim(settings_from(compose_config(*judge, "source.copy=true")), first.resolve())
    (first / "results.jsonl").write_text("")
    for changed, named in (
        ("source.copy=false", "its source.copy was True, this run has False"),
        ("source.seed=3", "its source.seed was 0, this run has 3"),
        ("source.experiment=/elsewhere", "its source.experiment was '/nowhere'"),
    ):
        settings = settings_from(
            compose_config(*judge, "source.copy=true", changed, f"resume={first}")
        )
        with pytest.raises(UsageError, match=named):
            resume.claim(settings, tmp_path / "second")
    assert not (tmp_path / "second").exists()


def test_resume_last_passes_over_newer_runs_of_other_work(
    compose_config: Compose, tmp_path: Path
) -> None:
    """resume=last takes the newest run of this task and source, not the newest run, and
    says which folder it took."""
    outputs = tmp_path / "outputs" / "2026-01-01"
    mine, other, new = outputs / "10-00-00", outputs / "11-00-00", outputs / "12-00-00"
    assert _run(compose_config, mine, *SLEEP, "task.fail_rate=0.5") == 1
    assert _run(compose_config, other, "task=sleep", "task.seconds=0", "progress=off") == 0
    seen = _messages()
    _run(compose_config, new, *SLEEP, "task.fail_rate=0.5", "resume=last")
    assert any(f"resume=last took {str(mine)!r}" in m and "1 newer run" in m for m in seen)
    assert json.loads((new / "summary.json").read_text())["resumed_from"] == str(mine)
    with pytest.raises(UsageError, match="resume=last found no earlier run of task 'sleep'"):
        _run(compose_config, outputs / "13-00-00", *SLEEP, "task.seconds=0.25", "resume=last")


def test_a_folder_of_an_older_runner_is_not_resumed(
    compose_config: Compose, tmp_path: Path
) -> None:
    """A journal with no recorded identity cannot be checked: refused, not guessed."""
    old = tmp_path / "old"
    old.mkdir()
    (old / "results.jsonl").write_text('{"id": "0", "status": "ok", "seconds": 0, "result": 1}\n')
    with pytest.raises(UsageError, match="records no task and source"):
        _run(compose_config, tmp_path / "new", *SLEEP, f"resume={old}")


def test_resume_in_place_cuts_a_torn_line_and_counts_every_item_once(
    compose_config: Compose, tmp_path: Path
) -> None:
    """resume=X into X: the torn last line and the failed item's line go before anything
    is appended; journal, summary.json, summary.md and report count the same ten items."""
    folder = tmp_path / "run"
    assert _run(compose_config, folder, *SLEEP) == 0
    lines = (folder / "results.jsonl").read_text().splitlines(keepends=True)
    failed = '{"id": "6", "status": "failed", "seconds": 0.1, "error": {"type": "E"}}\n'
    (folder / "results.jsonl").write_text("".join(lines[:6]) + failed + '{"id": "7", "sta')
    assert _run(compose_config, folder, *SLEEP, f"resume={folder}") == 0
    records = _records(folder)  # every line whole
    assert sorted(int(r["id"]) for r in records) == list(range(10))
    assert all(r["status"] == "ok" for r in records)
    summary = json.loads((folder / "summary.json").read_text())
    assert (summary["total"], summary["already_succeeded"]) == (4, 6)
    assert summary["total"] + summary["already_succeeded"] == len(records)
    report = (folder / "report.html").read_text()
    assert re.search(r"<td>items finished</td><td[^>]*>4</td>", report)
    assert re.search(r"<td>succeeded in the run resumed</td><td[^>]*>6</td>", report)
    table = (folder / "summary.md").read_text().splitlines()
    header = table.index(
        "| total | succeeded | failed | wall seconds | items/s | parallel "
        "| succeeded in the run resumed |"
    )
    cells = [cell.strip() for cell in table[header + 2].strip("|").split("|")]
    assert (cells[0], cells[1], cells[-1]) == ("4", "4", "6")
    assert f"Resumed from {folder}." in table


def test_a_run_into_a_folder_holding_a_run_is_refused_and_leaves_it_as_it_was(
    tmp_path: Path,
) -> None:
    """The same hydra.run.dir twice: exit 2, one line with the resume= hint; the first
    run's journal, summary and job.json are untouched."""
    folder = tmp_path / "run"
    first = run_in_process(*SLEEP, cwd=tmp_path, run_dir=folder)
    assert first.returncode == 0, first.stderr
    kept = {name: (folder / name).read_bytes() for name in ("results.jsonl", "summary.json")}
    kept["job.json"] = (folder / "job.json").read_bytes()
    again = run_in_process(*SLEEP, cwd=tmp_path, run_dir=folder)
    assert again.returncode == 2, again.stderr
    errors = [line for line in again.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and f"resume={str(folder)!r}" in errors[0], again.stderr
    assert {name: (folder / name).read_bytes() for name in kept} == kept


def test_resume_last_after_sigterm_finishes_that_run_not_a_later_one(tmp_path: Path) -> None:
    """The issue's case: run A stopped by SIGTERM, run B (another task) finished after it;
    A's config with resume=last resumes A, runs the items A never finished, exit 0."""
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "item.py"
    script.write_text(
        "import sys, time, pathlib\n"
        "with open(pathlib.Path(sys.argv[1], sys.argv[2]), 'a') as fh: fh.write('run\\n')\n"
        "time.sleep(0.2)\n"
    )
    command = f"task.command=[{sys.executable},{script},{marks},'{{index}}']"
    a = ("task=shell", "source.count=10", "progress=off", command)
    proc = start_runner(*a, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while len(list(marks.iterdir())) < 6:
        assert time.monotonic() < deadline and proc.poll() is None, "run A did not start 6"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    [first] = [p.parent for p in tmp_path.glob("outputs/*/*/results.jsonl")]
    done = {r["id"] for r in _records(first) if r["status"] == "ok"}
    assert 0 < len(done) < 10
    later = run_runner("task=sleep", "task.seconds=0", "source.count=10", cwd=tmp_path)
    assert later.returncode == 0, later.stderr
    resumed = run_runner(*a, "resume=last", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resume=last took {str(first)!r}" in resumed.stderr
    [third] = [
        p.parent
        for p in tmp_path.glob("outputs/*/*/summary.json")
        if json.loads(p.read_text())["resumed_from"]
    ]
    assert json.loads((third / "summary.json").read_text())["resumed_from"] == str(first)
    assert sorted(int(r["id"]) for r in _records(third)) == list(range(10))
    for index in range(10):  # what A finished ran once; the rest ran in the resume
        runs = (marks / str(index)).read_text().count("run")
        assert runs == 1 if str(index) in done else runs >= 1


def test_a_resume_counts_the_items_it_will_run_when_the_source_leaves_out_finished_ones(
    compose_config: Compose, tmp_path: Path
) -> None:
    """A source that no longer lists what the earlier run finished (as the judge source
    lists no complete slot): the run is headed with the items it runs, and none is
    reported as skipped, instead of the source's length less the earlier successes."""
    records = tmp_path / "records.jsonl"
    records.write_text("".join(f'{{"id": "r{i}", "ok": {int(i < 6)}}}\n' for i in range(10)))
    shell = (
        "task=shell",
        "task.command=[test,'{ok}','=','1']",
        "source=jsonl",
        f"source.path={records}",
        "source.id_field=id",
        "progress=off",
    )
    first, second = tmp_path / "first", tmp_path / "second"
    assert _run(compose_config, first, *shell) == 1  # r6..r9 fail
    records.write_text("".join(f'{{"id": "r{i}", "ok": 1}}\n' for i in range(6, 10)))
    seen = _messages()
    assert _run(compose_config, second, *shell, f"resume={first}") == 0
    summary = json.loads((second / "summary.json").read_text())
    assert (summary["total"], summary["skipped"], summary["already_succeeded"]) == (4, 0, 6)
    assert any("(4 items)" in line for line in seen if "Running task" in line), seen
