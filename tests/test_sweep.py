"""Sweep reports: real multiruns in a subprocess, and the report builder on made-up jobs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from runner import sweep
from runner.jobs import write_job_status
from runner.sweep_report import (
    Job,
    build_report,
    find_jobs,
    table_lines,
    to_markdown,
    verdict,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _multirun(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run ``python -m runner -m <args>`` with its sweep folder in tmp_path."""
    sweep_dir = tmp_path / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            "-m",
            *args,
            "progress=off",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, sweep_dir


def _jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = json.loads((sweep_dir / "sweep.json").read_text())["jobs"]
    return jobs


def _job(
    num: int,
    parallel: int | None,
    wall: float | None,
    *,
    overrides: dict[str, Any] | None = None,
    total: int = 24,
    failed: int = 0,
    code: int = 0,
    error: str | None = None,
) -> Job:
    """A made-up job; ``wall=None`` means it never got to write summary.json."""
    summary = None
    if wall is not None:
        summary = {
            "parallel": parallel,
            "total": total,
            "succeeded": total - failed,
            "failed": failed,
            "interrupted": code == 130,
            "wall_seconds": wall,
            "items_per_second": round(total / wall, 3),
        }
    given = {"parallel": parallel} if overrides is None else overrides
    return Job(Path(f"/sweep/{num}"), num, given, code, error, summary, parallel)


@pytest.fixture(autouse=True)
def _no_sweep_in_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no sweep recorded by the callback."""
    monkeypatch.setattr(sweep, "_sweep_dir", None)
    monkeypatch.setattr(sweep, "_planned", None)


# --- real multiruns ---------------------------------------------------------------------


def test_parallel_sweep_writes_json_markdown_and_plot(tmp_path: Path) -> None:
    """A parallel sweep writes sweep.json, sweep.md and sweep.png and logs the table."""
    proc, sweep_dir = _multirun(tmp_path, "parallel=1,2,4", "source.count=24", "task.seconds=0.05")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((sweep_dir / "sweep.json").read_text())
    assert report["swept_keys"] == ["parallel"]
    assert report["fixed"] == {"source.count": 24, "task.seconds": 0.05, "progress": "off"}
    jobs = report["jobs"]
    assert [j["parallel"] for j in jobs] == [1, 2, 4]
    assert [j["swept"] for j in jobs] == [{"parallel": 1}, {"parallel": 2}, {"parallel": 4}]
    assert {j["status"] for j in jobs} == {"ok"}
    assert all(j["succeeded"] == 24 and j["failed"] == 0 for j in jobs)
    assert all(Path(j["folder"]) == sweep_dir / str(j["job"]) for j in jobs)
    assert jobs[0]["speedup"] == 1.0 and jobs[0]["efficiency"] == 1.0
    assert jobs[2]["speedup"] > 1.5
    assert jobs[2]["efficiency"] == pytest.approx(jobs[2]["speedup"] / 4, abs=1e-3)
    markdown = (sweep_dir / "sweep.md").read_text()
    assert "| job | parallel | wall (s) | items/s | speedup | efficiency | failures |" in markdown
    assert "Fastest: parallel=" in markdown and report["fastest"]["verdict"] in markdown
    assert "![" in markdown and "No plot" not in markdown
    assert (sweep_dir / "sweep.png").read_bytes().startswith(PNG_MAGIC)
    assert "| 2 | 4 |" in proc.stderr and "Fastest: parallel=" in proc.stderr
    assert json.loads((sweep_dir / "0" / "job.json").read_text()) == {"code": 0, "error": None}


def test_a_job_that_cannot_run_gets_an_error_row_and_a_nonzero_exit(tmp_path: Path) -> None:
    """A missing input fails its job only: the other row is complete, the sweep exits 2."""
    exists = tmp_path / "exists.txt"
    exists.write_text("a\nb\nc\n")
    missing = tmp_path / "missing.txt"
    proc, sweep_dir = _multirun(
        tmp_path, "source=lines", f"source.path={exists},{missing}", "task.seconds=0"
    )
    assert proc.returncode == 2, proc.stderr
    ok, error = _jobs(sweep_dir)
    assert ok["status"] == "ok" and ok["succeeded"] == 3 and ok["error"] is None
    assert ok["items_per_second"] > 0 and ok["swept"] == {"source.path": str(exists)}
    assert error["status"] == "error" and error["code"] == 2
    assert "missing.txt" in error["error"] and "does not exist" in error["error"]
    assert error["parallel"] == 1 and error["wall_seconds"] is None
    markdown = (sweep_dir / "sweep.md").read_text()
    assert f"error: {error['error']}" in markdown
    assert "No plot: `parallel` has the same value in every job" in markdown
    assert not (sweep_dir / "sweep.png").exists()


def test_joblib_jobs_are_reported_and_set_the_exit_code(tmp_path: Path) -> None:
    """Jobs run by the joblib launcher, in other processes, still fail the sweep."""
    proc, sweep_dir = _multirun(
        tmp_path,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "parallel=1,2",
        "source.count=4",
        "task.seconds=0",
        "task.fail_rate=1.0",
    )
    assert proc.returncode == 1, proc.stderr
    jobs = _jobs(sweep_dir)
    assert [(j["parallel"], j["status"], j["failed"]) for j in jobs] == [
        (1, "failed_items", 4),
        (2, "failed_items", 4),
    ]


def test_a_config_file_holds_the_sweep(tmp_path: Path) -> None:
    """--config-name sweep_parallel sweeps parallel=1,2,4,8 from conf/sweep_parallel.yaml."""
    proc, sweep_dir = _multirun(
        tmp_path, "--config-name", "sweep_parallel", "source.count=8", "task.seconds=0.01"
    )
    assert proc.returncode == 0, proc.stderr
    assert [j["parallel"] for j in _jobs(sweep_dir)] == [1, 2, 4, 8]
    assert (sweep_dir / "sweep.png").is_file()


# --- the report builder on made-up jobs ------------------------------------------------


def test_speedup_and_efficiency_compare_wall_times() -> None:
    """Speedup is the smallest-parallel wall time over the job's; efficiency divides by workers."""
    report = build_report([_job(0, 1, 4.0), _job(1, 2, 2.0), _job(2, 4, 1.6)])
    assert report.swept_keys == ["parallel"]
    assert [r.speedup for r in report.rows] == [1.0, 2.0, 2.5]
    assert [r.efficiency for r in report.rows] == [1.0, 1.0, 0.625]
    assert report.fastest is report.rows[2] and report.exit_code == 0
    assert verdict(report) == "Fastest: parallel=4 (15.0 items/s, speedup 2.50)"
    assert table_lines(report)[4] == "| 2 | 4 | 1.60 | 15.0 | 2.50 | 62% | 0 |"


def test_speedup_is_relative_within_each_combination_of_other_keys() -> None:
    """With executor swept too, each executor's speedup is against its own fewest workers."""
    jobs = [
        _job(0, 2, 2.0, overrides={"parallel": 2, "executor": "thread"}),
        _job(1, 2, 3.0, overrides={"parallel": 2, "executor": "sequential"}),
        _job(2, 4, 1.0, overrides={"parallel": 4, "executor": "thread"}),
        _job(3, 4, 3.0, overrides={"parallel": 4, "executor": "sequential"}),
    ]
    report = build_report(jobs)
    assert report.swept_keys == ["parallel", "executor"]
    assert [r.speedup for r in report.rows] == [1.0, 1.0, 2.0, 1.0]
    # The baseline ran 2 workers: 4 workers doubling the speed is full efficiency.
    assert [r.efficiency for r in report.rows] == [1.0, 1.0, 1.0, 0.5]
    assert verdict(report) == "Fastest: parallel=4, executor=thread (24.0 items/s, speedup 2.00)"
    assert report.no_plot is None


def test_a_sweep_without_parallel_has_columns_but_no_speedup_or_plot() -> None:
    """Sweeping another key makes it a column; with one worker count there is no plot."""
    jobs = [
        _job(0, 1, 2.0, overrides={"executor": "thread", "source.count": 24}),
        _job(1, 1, 3.0, overrides={"executor": "sequential", "source.count": 24}),
    ]
    report = build_report(jobs)
    assert report.swept_keys == ["executor"] and report.fixed == {"source.count": 24}
    assert [r.speedup for r in report.rows] == [None, None]
    assert report.no_plot is not None and "parallel" in report.no_plot
    assert verdict(report) == "Fastest: parallel=1, executor=thread (12.0 items/s)"
    assert table_lines(report)[2] == "| 0 | 1 | thread | 2.00 | 12.0 | - | - | 0 |"
    assert f"No plot: {report.no_plot}" in to_markdown(report, Path("/sweep"))


def test_all_jobs_failed_gives_no_winner_and_the_worst_code() -> None:
    """When no job could run, every row shows its error and the sweep exits non-zero."""
    jobs = [
        _job(0, 1, None, code=2, error="source file 'a' does not exist"),
        _job(1, 2, None, code=2, error="task 'x' could not start"),
    ]
    assert [job.status for job in jobs] == ["error", "error"]
    report = build_report(jobs)
    assert report.fastest is None and report.exit_code == 2
    assert verdict(report) == "Fastest: none (no job ran to the end)."
    assert report.no_plot == "fewer than two worker counts have timings (the other jobs failed)."
    assert table_lines(report)[3].endswith("| - | - | - | - | error: task 'x' could not start |")


def test_an_unfinished_baseline_gives_no_speedup() -> None:
    """An interrupted smallest-parallel job is no baseline; an interruption exits 130."""
    jobs = [
        _job(0, 1, 2.0, code=130),
        _job(1, 2, 1.0, code=1, failed=3),
    ]
    assert [job.status for job in jobs] == ["interrupted", "failed_items"]
    report = build_report(jobs)
    assert [r.speedup for r in report.rows] == [None, None]
    assert report.exit_code == 130
    assert verdict(report).endswith("; 3 failed item(s): no job ran without failures)")


def test_write_report_reads_job_folders_and_logs_the_table(
    tmp_path: Path, log_lines: list[str]
) -> None:
    """Job folders on disk, with or without job.json or summary.json, all become rows."""
    for num, (parallel, wall) in enumerate([(1, 1.0), (2, 0.5), (4, None)]):
        folder = tmp_path / str(num)
        (folder / ".hydra").mkdir(parents=True)
        OmegaConf.save(OmegaConf.create([f"parallel={parallel}"]), folder / ".hydra/overrides.yaml")
        OmegaConf.save({"hydra": {"job": {"num": num}}}, folder / ".hydra/hydra.yaml")
        if wall is not None:
            summary = {
                "parallel": parallel,
                "total": 10,
                "succeeded": 10,
                "failed": 0,
                "wall_seconds": wall,
                "items_per_second": 10 / wall,
            }
            (folder / "summary.json").write_text(json.dumps(summary))
    # job 1 left no job.json: it still counts
    write_job_status(tmp_path / "0", 0, None)
    assert write_report(tmp_path) == 1
    jobs = _jobs(tmp_path)
    assert [(j["status"], j["speedup"]) for j in jobs] == [
        ("ok", 1.0),
        ("ok", 2.0),
        ("error", None),
    ]
    assert "did not finish" in jobs[2]["error"]
    assert (tmp_path / "sweep.png").read_bytes().startswith(PNG_MAGIC)
    table = table_lines(build_report(find_jobs(tmp_path)))
    assert [line for line in log_lines if line.startswith("|")] == table
    assert log_lines[-1] == "Fastest: parallel=2 (20.0 items/s, speedup 2.00)"


def test_the_cli_writes_the_report_once_the_sweep_ends(tmp_path: Path) -> None:
    """finish_sweep writes the report of the sweep the callback saw start, once."""
    assert sweep.finish_sweep() is None  # no sweep: nothing to report, no exit code
    folder = tmp_path / "0"
    folder.mkdir()
    write_job_status(folder, 2, "task 'x' could not start")
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    sweep.SweepReport().on_multirun_start(config)
    assert sweep.finish_sweep() == 2
    assert _jobs(tmp_path)[0]["error"] == "task 'x' could not start"
    assert sweep.finish_sweep() is None


def test_each_job_of_a_judge_sweep_repairs_its_own_copy(tmp_path: Path) -> None:
    """With source.copy=true every job repairs a private copy; the experiment is untouched."""
    from tests.judge_support import copy_fixture, judge_command, remove_slot, tree

    experiment = copy_fixture(tmp_path / "experiment")
    remove_slot(experiment)
    before = tree(experiment)
    judge = judge_command(tmp_path, "good", 0.7)
    proc, sweep_dir = _multirun(
        tmp_path,
        "parallel=1,2",
        "task=judge_rerun",
        f"source.experiment={experiment}",
        "source.copy=true",
        f"task.command=[{','.join(repr(p) for p in judge)}]",
    )
    assert proc.returncode == 0, proc.stderr
    assert tree(experiment) == before
    jobs = _jobs(sweep_dir)
    assert [job["succeeded"] for job in jobs] == [1, 1]
    for job in jobs:
        slot = Path(job["folder"]) / "experiment" / "T3/01/run_01/judge/judge_02"
        assert json.loads((slot / "judgment.json").read_text())["score"] == 0.7


def test_ctrl_c_ends_the_whole_sweep_and_still_reports(tmp_path: Path) -> None:
    """SIGINT during a job stops the sweep (no later job starts), exits 130, writes the report."""
    import signal
    import time

    sweep_dir = tmp_path / "sweep"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runner",
            "-m",
            "parallel=1,2,3",
            "source.count=20",
            "task.seconds=0.2",
            "progress=off",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    journal = sweep_dir / "0" / "results.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (journal.exists() and journal.read_text()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert not (sweep_dir / "1").exists()
    [job] = _jobs(sweep_dir)
    assert job["status"] == "interrupted"
