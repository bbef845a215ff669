"""runner.sweep_report: the report built from what made-up jobs left on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from runner.jobs import write_job_status
from runner.sweep_report import (
    Job,
    build_report,
    find_jobs,
    read_job,
    table_lines,
    to_markdown,
    verdict,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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
    jobs = json.loads((tmp_path / "sweep.json").read_text())["jobs"]
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


def _job_folder(folder: Path, num: int, overrides: list[str]) -> Path:
    """A job folder as Hydra leaves it: .hydra/overrides.yaml and .hydra/hydra.yaml."""
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), folder / ".hydra/overrides.yaml")
    OmegaConf.save({"hydra": {"job": {"num": num}}}, folder / ".hydra/hydra.yaml")
    return folder


@pytest.mark.parametrize(
    ("summary", "code", "status"),
    [
        ({"failed": 0}, 0, "ok"),
        ({"failed": 2}, 1, "failed_items"),
        ({"failed": 0, "interrupted": True}, 130, "interrupted"),
    ],
)
def test_a_job_without_job_json_gets_its_code_from_its_summary(
    tmp_path: Path, summary: dict[str, Any], code: int, status: str
) -> None:
    """A job run by a launcher that writes no job.json: its code comes from summary.json."""
    folder = _job_folder(tmp_path / "0", 0, ["parallel=2"])
    (folder / "summary.json").write_text(json.dumps({"parallel": 2, **summary}))
    job = read_job(folder)
    assert (job.code, job.status, job.error) == (code, status, None)


def test_read_job_parses_overrides_and_keeps_text_it_cannot_parse(tmp_path: Path) -> None:
    """+ and ~ prefixes are dropped from keys; values are typed; an override Hydra's
    parser refuses is kept as its text; a job that never ran has its configured workers."""
    folder = _job_folder(
        tmp_path / "3", 3, ["source.count=7", "+task.extra=0.5", "~retry", "source.path=[a,b"]
    )
    OmegaConf.save({"parallel": 6}, folder / ".hydra/config.yaml")
    write_job_status(folder, 2, "source file 'a' does not exist")
    job = read_job(folder)
    assert job.num == 3 and job.summary is None and job.parallel == 6
    assert job.overrides["source.count"] == 7 and job.overrides["task.extra"] == 0.5
    assert "retry" in job.overrides
    assert job.overrides["source.path"] == "[a,b"
    assert (job.status, job.error) == ("error", "source file 'a' does not exist")


def test_find_jobs_orders_by_job_number_and_looks_no_deeper_than_a_job(tmp_path: Path) -> None:
    """Job 10 comes after job 2; a folder inside a job (its outputs) is no job of its own."""
    for num in (10, 2, 0):
        _job_folder(tmp_path / str(num), num, [f"parallel={num + 1}"])
    _job_folder(tmp_path / "2" / "experiment" / "copy", 7, ["parallel=8"])
    write_job_status(tmp_path / "2" / "nested", 0, None)
    assert [job.num for job in find_jobs(tmp_path)] == [0, 2, 10]
    assert [job.folder.name for job in find_jobs(tmp_path)] == ["0", "2", "10"]


def test_a_stopped_sweep_names_the_jobs_that_never_ran() -> None:
    """planned jobs missing from the folders are listed; the stop sets the exit code."""
    planned = [["parallel=1"], ["parallel=2"], ["parallel=4"]]
    report = build_report(
        [_job(0, 1, 2.0)], stopped="interrupted", stopped_code=143, planned=planned
    )
    assert report.not_run == ["parallel=2", "parallel=4"] and report.exit_code == 143
    markdown = to_markdown(report, Path("/sweep"))
    assert "The sweep stopped early: interrupted" in markdown
    assert "Never ran (2): `parallel=2`; `parallel=4`" in markdown
