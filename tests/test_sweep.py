"""runner.sweep: real multiruns in a subprocess, and the callback that notes a sweep.

The report builder itself (runner/sweep_report.py) is tried on made-up jobs in
tests/test_sweep_report.py.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from runner import sweep
from runner.record.jobs import write_job_status
from tests.conftest import CliResult, run_runner, start_runner
from tests.inprocess import run_in_process
from tests.plugin_support import write_distribution


def _multirun(tmp_path: Path, *args: str) -> tuple[CliResult, Path]:
    """Run ``python -m runner -m <args>`` in this process, its sweep folder in tmp_path."""
    sweep_dir = tmp_path / "sweep"
    args = ("-m", *args, "progress=off", f"hydra.sweep.dir={sweep_dir}")
    return run_in_process(*args, cwd=tmp_path, run_dir=tmp_path / "unused"), sweep_dir


def _jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = json.loads((sweep_dir / "sweep.json").read_text())["jobs"]
    return jobs


def _wall(job_dir: Path) -> float:
    """A job's wall time (its first item's start to its last item's end), from summary.json."""
    wall: float = json.loads((job_dir / "summary.json").read_text())["wall_seconds"]
    return wall


def _side_by_side(job_dir: Path) -> bool:
    """Whether some of a job's items ran at the same moment, from the files it wrote.

    Each item's ``seconds`` (results.jsonl) is its start to its end, and ``wall_seconds``
    (summary.json) the first start to the last end, so items run one after another add up
    to at most the wall time; more than it means that some ran at once. Structural, not a
    timing bound: a slow machine widens the gaps between items, never merges them.
    """
    lines = (job_dir / "results.jsonl").read_text().splitlines()
    busy = sum(json.loads(line)["seconds"] for line in lines)
    rounding = (len(lines) + 1) * 1e-6  # each figure is rounded to the microsecond
    return busy > _wall(job_dir) + rounding


def test_parallel_sweep_writes_json_markdown_plot_and_page(tmp_path: Path) -> None:
    """A parallel sweep writes sweep.json, sweep.md, sweep.svg and sweep.html and logs the
    table (the page itself is tried in a browser in tests/test_sweep_html.py)."""
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
    walls = [_wall(sweep_dir / str(j["job"])) for j in jobs]
    assert [j["speedup"] for j in jobs] == pytest.approx([walls[0] / w for w in walls], abs=1e-4)
    assert not _side_by_side(sweep_dir / "0")  # parallel=1: one item at a time
    assert _side_by_side(sweep_dir / "2")  # parallel=4: items at once
    assert jobs[2]["efficiency"] == pytest.approx(jobs[2]["speedup"] / 4, abs=1e-3)
    markdown = (sweep_dir / "sweep.md").read_text()
    assert "| job | parallel | wall (s) | items/s | speedup | efficiency | failures |" in markdown
    assert "Fastest: parallel=" in markdown and report["fastest"]["verdict"] in markdown
    assert "![" in markdown and "No plot" not in markdown
    assert (sweep_dir / "sweep.svg").read_text().startswith("<svg")
    assert "| 2 | 4 |" in proc.stderr and "Fastest: parallel=" in proc.stderr
    assert report["margin"] == 0.05 and report["within_margin"]["parallel"] in (1, 2, 4)
    assert report["repeat_keys"] == [] and report["page"] == "sweep.html"
    assert report["fastest"]["verdict"] in (sweep_dir / "sweep.html").read_text()
    status = json.loads((sweep_dir / "0" / "job.json").read_text())
    assert (status["code"], status["error"]) == (0, None)
    assert status["identity"]["source"] == {"name": "range", "count": 24}  # what resume checks


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
    assert not (sweep_dir / "sweep.svg").exists()
    assert "<img" not in (sweep_dir / "sweep.html").read_text()


def test_a_plugin_that_fails_to_import_costs_only_its_own_job(tmp_path: Path) -> None:
    """-m task=sleep,shout where shout raises on import: the sleep job runs, shout's job
    gets an error row naming the plugin and why, and the sweep exits 2. A process: the
    plugin is installed as a distribution on PYTHONPATH, as a user's would be."""
    site = tmp_path / "site"
    write_distribution(
        site,
        "shout-plugin",
        {"runner.tasks": {"shout": "shout_mod:Shout"}},
        {"shout_mod.py": "raise RuntimeError('shout is broken on import')\n"},
    )
    sweep_dir = tmp_path / "sweep"
    proc = run_runner(
        "-m", "task=sleep,shout", "source.count=3", "task.seconds=0", "progress=off",
        f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, env={"PYTHONPATH": str(site)},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    ok, error = _jobs(sweep_dir)
    assert ok["status"] == "ok" and ok["succeeded"] == 3 and ok["swept"] == {"task": "sleep"}
    assert error["status"] == "error" and error["code"] == 2 and error["swept"] == {"task": "shout"}
    assert error["error"].startswith("Cannot load task 'shout': entry point 'shout' in group")
    assert error["error"].endswith("failed to import: RuntimeError: shout is broken on import")
    assert "Traceback" not in proc.stderr
    [line] = [line for line in proc.stderr.splitlines() if "runner: error:" in line]
    assert line.startswith("[job 1] ")  # refused at its start, still a line of its job


def test_a_repeated_sweep_compares_the_median_of_its_repeats(tmp_path: Path) -> None:
    """task.seed=1,2 repeats each worker count (the sleep task draws nothing without a
    fail_rate): each setting is the median of its two jobs."""
    proc, sweep_dir = _multirun(
        tmp_path, "parallel=1,2", "task.seed=1,2", "source.count=8", "task.seconds=0.02"
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((sweep_dir / "sweep.json").read_text())
    assert report["swept_keys"] == ["parallel", "task.seed"]
    assert report["repeat_keys"] == ["task.seed"]
    settings = report["settings"]
    assert [(s["parallel"], s["jobs"], s["ran"]) for s in settings] == [
        (1, [0, 1], 2),
        (2, [2, 3], 2),
    ]
    assert settings[0]["speedup"] == 1.0
    walls = [_wall(sweep_dir / str(job)) for job in range(4)]
    baseline, paired = statistics.median(walls[:2]), statistics.median(walls[2:])
    assert settings[1]["speedup"] == pytest.approx(baseline / paired, abs=1e-4)
    assert not any(_side_by_side(sweep_dir / str(job)) for job in (0, 1))  # parallel=1
    assert all(_side_by_side(sweep_dir / str(job)) for job in (2, 3))  # parallel=2
    assert "median of 2 run(s)" in report["fastest"]["verdict"]
    assert "| parallel | jobs | wall (s) | items/s | items/s range |" in proc.stderr
    assert (sweep_dir / "sweep.svg").read_text().startswith("<svg")


def test_joblib_jobs_are_reported_and_set_the_exit_code(tmp_path: Path) -> None:
    """Jobs run by the joblib launcher, in other processes, still fail the sweep."""
    from joblib.externals.loky import get_reusable_executor

    try:
        proc, sweep_dir = _multirun(
            tmp_path,
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "parallel=1,2",
            "source.count=4",
            "task.seconds=0",
            "task.fail_rate=1.0",
        )
    finally:
        # The launcher's worker pool outlives the sweep, for the next one: it would end
        # with a process of its own; in this one, a later test would find its workers.
        get_reusable_executor().shutdown(wait=True)
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
    assert (sweep_dir / "sweep.svg").is_file()


def test_the_cli_writes_the_report_once_the_sweep_ends(tmp_path: Path) -> None:
    """Sweep.finish writes the report of the sweep the callback saw start, once; the
    sweep lent to the callback is the caller's only (nothing left for the next)."""
    folder = tmp_path / "0"
    folder.mkdir()
    write_job_status(folder, 2, "task 'x' could not start")
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    with sweep.watching() as current:
        assert current.finish() is None  # no sweep: nothing to report, no exit code
        callback = sweep.SweepReport()
        callback.on_multirun_start(config)
        callback.on_multirun_end(config)  # the lender writes the report, not the callback
        assert not (tmp_path / "sweep.json").exists()
        assert current.finish() == 2
        assert _jobs(tmp_path)[0]["error"] == "task 'x' could not start"
        assert current.finish() is None
    with sweep.watching() as later:
        assert later is not current and later.finish() is None


def test_a_callback_with_no_sweep_lent_writes_the_report_itself(tmp_path: Path) -> None:
    """Hydra run by another program (no CLI lending a sweep): the report is written when
    the multirun ends."""
    (tmp_path / "0").mkdir()
    write_job_status(tmp_path / "0", 0, None)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    callback = sweep.SweepReport()
    callback.on_multirun_start(config)
    assert not (tmp_path / "sweep.json").exists()
    callback.on_multirun_end(config)
    assert [job["code"] for job in _jobs(tmp_path)] == [0]


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
    proc = start_runner(
        "-m",
        "parallel=1,2,3",
        "source.count=20",
        "task.seconds=0.2",
        "progress=off",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
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
