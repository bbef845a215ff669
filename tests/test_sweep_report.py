"""runner.show.sweep_*: the sweep report built from what made-up jobs left on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from markupsafe import Markup
from omegaconf import OmegaConf

from runner.record.jobs import write_job_status
from runner.show import sweep_analysis, sweep_report
from runner.show.figures import RED, Mark, Panel
from runner.show.sweep_analysis import Report, build_report, is_repeat_key, verdict
from runner.show.sweep_figure import sweep_figure as plot_figure
from runner.show.sweep_files import settings_lines, table_lines, to_json, to_markdown
from runner.show.sweep_jobs import Job, find_jobs, read_job
from runner.show.sweep_page import to_html
from runner.show.sweep_report import write_report

SVG = Markup("<svg xmlns='http://www.w3.org/2000/svg'><circle class='drawn'/></svg>")
STARTED = "2025-03-04T10:00:00.5+00:00"


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
            "started_at": STARTED,
        }
    given = {"parallel": parallel} if overrides is None else overrides
    return Job(Path(f"/sweep/{num}"), num, given, code, error, summary, parallel)


def test_speedup_and_efficiency_compare_wall_times() -> None:
    """Speedup is the smallest-parallel wall time over the job's; efficiency divides by workers."""
    report = build_report([_job(0, 1, 4.0), _job(1, 2, 2.0), _job(2, 4, 1.6)])
    assert report.swept_keys == ["parallel"]
    assert [r.speedup for r in report.rows] == [1.0, 2.0, 2.5]
    assert [r.efficiency for r in report.rows] == [1.0, 1.0, 0.625]
    assert report.fastest is not None and report.fastest.rows == [report.rows[2]]
    assert report.within is report.fastest and report.exit_code == 0
    assert verdict(report) == (
        "Fastest: parallel=4 (15.0 items/s, speedup 2.50); no fewer workers come within 5% of it"
    )
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
    assert verdict(report) == (
        "Fastest: parallel=4, executor=thread (24.0 items/s, speedup 2.00); "
        "no fewer workers come within 5% of it; it is the most workers tried and still "
        "100% efficient: more workers may be faster (try parallel=8)"
    )
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
    assert (tmp_path / "sweep.svg").read_text().startswith("<svg")
    table = table_lines(build_report(find_jobs(tmp_path)))
    assert [line for line in log_lines if line.startswith("|")] == table
    assert log_lines[-1] == (
        "Fastest: parallel=2 (20.0 items/s, speedup 2.00); no fewer workers come within 5% of it"
    )
    assert "Every job" in (tmp_path / "sweep.html").read_text()


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


def _scaling(*walls: float, total: int = 1412) -> list[Job]:
    """Jobs at parallel=1, 2, 4, ... with these wall times, in that order."""
    return [_job(n, 2**n, wall, total=total) for n, wall in enumerate(walls)]


def test_the_verdict_names_the_fewest_workers_within_the_margin() -> None:
    """parallel=8 at 96% of parallel=16's items/s is within 5%: the verdict names it, with
    the share and the workers it saves; sweep.json gives it as within_margin."""
    report = build_report(_scaling(71.0, 36.0, 20.0, 10.4, 10.0))
    assert sweep_analysis.MARGIN == 0.05
    assert verdict(report) == (
        "Fastest: parallel=16 (141.2 items/s, speedup 7.10); parallel=8 gives 96% of that "
        "with half the workers (the fewest workers within 5%)"
    )
    data = to_json(report, Path("/sweep"))
    assert data["margin"] == 0.05
    assert data["fastest"]["job"] == 4 and data["fastest"]["parallel"] == 16
    assert data["within_margin"]["job"] == 3 and data["within_margin"]["parallel"] == 8
    assert data["within_margin"]["share_of_fastest"] == pytest.approx(0.9615, abs=1e-4)
    assert "Within 5%: the fewest workers" in to_markdown(report, Path("/sweep"))


def test_a_fastest_count_still_scaling_at_the_top_of_the_sweep_says_to_try_more() -> None:
    """parallel=8, the most workers tried, is fastest at 81% efficiency: the verdict says
    that more workers may be faster and which count to try next; not when a count above
    it was tried, nor at low efficiency."""
    report = build_report(_scaling(8.0, 4.2, 2.2, 1.23))
    assert report.fastest is not None and report.fastest.parallel == 8
    assert verdict(report) == (
        "Fastest: parallel=8 (1148.0 items/s, speedup 6.50); no fewer workers come within "
        "5% of it; it is the most workers tried and still 81% efficient: more workers may "
        "be faster (try parallel=16)"
    )
    assert verdict(report) in to_markdown(report, Path("/sweep"))
    # A slower count tried above it, or a top count at low efficiency: the sweep found the
    # turn, and the verdict ends as before.
    past_the_turn = build_report(_scaling(8.0, 4.2, 2.2, 1.23, 1.3))
    assert past_the_turn.fastest is not None and past_the_turn.fastest.parallel == 8
    assert verdict(past_the_turn).endswith("; no fewer workers come within 5% of it")
    flat = build_report(_scaling(8.0, 4.4, 2.5, 2.0))
    assert flat.fastest is not None and flat.fastest.efficiency == pytest.approx(0.5)
    assert "may be faster" not in verdict(flat)


def test_the_margin_is_a_module_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wider margin reaches fewer workers; a narrower one may leave only the fastest."""
    jobs = _scaling(71.0, 36.0, 20.0, 10.4, 10.0)
    monkeypatch.setattr(sweep_analysis, "MARGIN", 0.5)
    assert verdict(build_report(jobs)).endswith(
        "; parallel=4 gives 50% of that with a quarter of the workers "
        "(the fewest workers within 50%)"
    )
    monkeypatch.setattr(sweep_analysis, "MARGIN", 0.01)
    assert verdict(build_report(jobs)).endswith("; no fewer workers come within 1% of it")


def test_a_setting_with_failed_items_is_not_offered_within_the_margin() -> None:
    """The fewest workers within the margin come from the jobs that ran clean, as the
    fastest does; a fewest-workers job with failed items is passed over."""
    jobs = [*_scaling(40.0, 20.0, 10.4, 10.0)]
    jobs[2] = _job(2, 4, 10.2, total=1412, failed=1, code=1)
    report = build_report(jobs)
    assert report.fastest is not None and report.fastest.parallel == 8
    assert verdict(report).endswith("; no fewer workers come within 5% of it")


@pytest.mark.parametrize(
    ("key", "repeat"),
    [("repeat", True), ("+repeat", False), ("task.seed", True), ("source.seed", True),
     ("trial", True), ("executor", False), ("task.seconds", False), ("parallel", False)],
)  # fmt: skip
def test_repeat_keys_are_known_by_name(key: str, repeat: bool) -> None:
    """A swept key named repeat, rep, trial or seed (its last dotted part) marks repeats;
    the report sees keys without Hydra's + (read_job drops it)."""
    assert is_repeat_key(key) is (repeat and key != "parallel")


def _repeats() -> list[Job]:
    """parallel=1,2,4 x +repeat=1,2,3, with one repeat at 4 workers much slower."""
    walls = {1: (8.0, 8.4, 7.6), 2: (4.2, 4.0, 4.4), 4: (2.0, 2.2, 6.0)}
    return [
        _job(num, parallel, wall, overrides={"parallel": parallel, "repeat": rep + 1})
        for num, (parallel, wall, rep) in enumerate(
            (p, w, r) for p, ws in walls.items() for r, w in enumerate(ws)
        )
    ]


def test_repeats_are_compared_by_their_median() -> None:
    """Jobs that differ only in a repeat key are one setting: its wall time and items/s
    are their medians, its speedup is against the fewest workers' median, and the
    verdict, the settings table and sweep.json use the medians."""
    report = build_report(_repeats())
    assert report.swept_keys == ["parallel", "repeat"] and report.repeat_keys == ["repeat"]
    assert [(p.parallel, len(p.rows), p.wall) for p in report.points] == [
        (1, 3, 8.0),
        (2, 3, 4.2),
        (4, 3, 2.2),
    ]
    assert [p.speedup for p in report.points] == pytest.approx([1.0, 8.0 / 4.2, 8.0 / 2.2])
    assert [r.speedup for r in report.rows[6:]] == pytest.approx([4.0, 8.0 / 2.2, 8.0 / 6.0])
    assert report.fastest is report.points[2] and report.fastest.typical is report.rows[7]
    assert verdict(report) == (
        "Fastest: parallel=4 (median of 3 run(s): 10.9 items/s, speedup 3.64); "
        "no fewer workers come within 5% of it; it is the most workers tried and still "
        "91% efficient: more workers may be faster (try parallel=8)"
    )
    assert settings_lines(report) == [
        "| parallel | jobs | wall (s) | items/s | items/s range | speedup | efficiency |",
        "|---:|---:|---:|---:|---:|---:|:---|",
        "| 1 | 3 of 3 | 8.00 | 3.0 | 2.9-3.2 | 1.00 | 100% |",
        "| 2 | 3 of 3 | 4.20 | 5.7 | 5.5-6.0 | 1.90 | 95% |",
        "| 4 | 3 of 3 | 2.20 | 10.9 | 4.0-12.0 | 3.64 | 91% |",
    ]
    markdown = to_markdown(report, Path("/sweep"))
    assert markdown.index("Median of each setting") < markdown.index("Every job")
    assert "Repeats: `repeat` only repeats a setting" in markdown
    data = to_json(report, Path("/sweep"))
    assert data["repeat_keys"] == ["repeat"] and data["fastest"]["jobs"] == [6, 7, 8]
    assert data["settings"][2]["items_per_second_min"] == 4.0
    assert [j["swept"] for j in data["jobs"][:2]] == [
        {"parallel": 1, "repeat": 1},
        {"parallel": 1, "repeat": 2},
    ]


def test_a_sweep_without_repeats_has_no_settings_table() -> None:
    """With one job per setting the job table is the comparison: no second table."""
    report = build_report(_scaling(4.0, 2.0))
    assert report.repeat_keys == [] and settings_lines(report) == []
    assert "Median of each setting" not in to_markdown(report, Path("/sweep"))


def _lines(panel: Panel, gid: str) -> list[Mark]:
    return panel.lines(gid)


def _xs(mark: Mark) -> list[float]:
    return mark.xs


def _ys(mark: Mark) -> list[float]:
    return mark.ys


def _legend(panel: Panel) -> list[str]:
    return [entry.label for entry in panel.legend]


def test_the_plot_scales_axes_honestly_and_draws_the_ideal() -> None:
    """Throughput: log2 workers, items/s from 0, the ideal line the baseline's items/s
    times the growth in workers. Efficiency: from 0, with the 100% line. A single series
    has no legend entry of its own; the title gives the items and the date."""
    report = build_report(_scaling(8.0, 4.4, 2.5))
    figure = plot_figure(report)
    rate_ax, efficiency_ax = figure.panels
    for ax in (rate_ax, efficiency_ax):
        assert ax.xscale == "log2" and ax.ylim[0] == 0
        assert ax.xlabel == "workers (parallel, log2 scale)"  # doublings spaced alike
        assert [value for value, _ in ax.xticks or []] == [1, 2, 4]
    [ideal] = _lines(rate_ax, "ideal")
    base_rate = 1412 / 8.0
    assert _xs(ideal) == [1, 2, 4]
    assert _ys(ideal) == pytest.approx([base_rate, 2 * base_rate, 4 * base_rate])
    assert rate_ax.ylim[1] >= 4 * base_rate
    [hundred] = _lines(efficiency_ax, "ideal")
    assert _ys(hundred) == [1, 1]
    [measured] = _lines(efficiency_ax, "median")
    assert _ys(measured) == pytest.approx([1.0, 8.0 / 4.4 / 2, 8.0 / 2.5 / 4])
    assert _legend(rate_ax) == ["ideal: linear from parallel=1 (176.5 items/s)"]
    assert _legend(efficiency_ax) == ["ideal (100%)"]
    assert figure.title.startswith("Sweep of 1412 items per job, 2025-03-04 10:00 UTC")


def test_each_series_gets_a_legend_entry_and_its_own_ideal() -> None:
    """With executor swept too, each executor is a labelled line with its own ideal."""
    jobs = [
        _job(n, p, wall, overrides={"parallel": p, "executor": ex})
        for n, (p, ex, wall) in enumerate(
            [(1, "thread", 4.0), (1, "process", 6.0), (4, "thread", 1.2), (4, "process", 2.0)]
        )
    ]
    rate_ax, _ = plot_figure(build_report(jobs)).panels
    labels = _legend(rate_ax)
    assert labels[:2] == ["executor=thread", "executor=process"] and "all jobs" not in labels
    assert [_ys(line) for line in _lines(rate_ax, "ideal")] == [
        [6.0, 24.0],
        [4.0, 16.0],
    ]


def test_repeats_are_drawn_as_a_spread_around_their_median() -> None:
    """Each setting's repeats are a min-max bar, the line goes through their median."""
    rate_ax, efficiency_ax = plot_figure(build_report(_repeats())).panels
    [spread] = _lines(rate_ax, "spread")
    assert spread.kind == "spread"
    segments = [
        [[x, low], [x, high]]
        for x, low, high in zip(spread.xs, spread.lows, spread.ys, strict=True)
    ]
    assert segments == [
        [[1, pytest.approx(24 / 8.4, abs=1e-3)], [1, pytest.approx(24 / 7.6, abs=1e-3)]],
        [[2, pytest.approx(24 / 4.4, abs=1e-3)], [2, 6.0]],
        [[4, 4.0], [4, 12.0]],
    ]
    [median] = _lines(rate_ax, "median")
    assert _ys(median) == pytest.approx([24 / 8.0, 24 / 4.2, 24 / 2.2], abs=1e-3)
    assert [m.kind for m in efficiency_ax.marks if m.kind == "spread"] == ["spread"]
    assert "median of the runs over repeat; bar: min to max" in _legend(rate_ax)


def test_failed_jobs_are_marked_hollow_and_red() -> None:
    """Jobs with an error, failed items or an interruption are hollow red circles, at
    their items/s when they have one and at 0 when they have none, with a legend entry."""
    jobs = [
        _job(0, 1, 4.0),
        _job(1, 2, 2.0, failed=2, code=1),
        _job(2, 4, None, code=2, error="could not start"),
        _job(3, 8, 0.5, code=130),
        _job(4, 8, 0.6, overrides={"parallel": 8}),
    ]
    rate_ax, efficiency_ax = plot_figure(build_report(jobs)).panels
    [failed] = _lines(rate_ax, "failed")
    assert failed.kind == "dots" and failed.color == RED  # drawn as hollow circles
    assert _xs(failed) == [2, 4, 8]
    assert _ys(failed) == [12.0, 0, 48.0]
    assert len(_lines(efficiency_ax, "failed")) == 1
    assert any(label.startswith("failed job") for label in _legend(rate_ax))
    clean_ax, _ = plot_figure(build_report(_scaling(4.0, 2.0))).panels
    assert _lines(clean_ax, "failed") == []
    assert not any(label.startswith("failed job") for label in _legend(clean_ax))


def test_the_page_links_each_job_to_its_own_page_relatively(tmp_path: Path) -> None:
    """A job with a report.html gets a relative link (quoted, so odd folder names work);
    one without gets its number only. Values are escaped; nothing is fetched or run."""
    odd = tmp_path / "parallel=2,executor=<b>"
    jobs = [
        Job(tmp_path / "0", 0, {"parallel": 1}, 0, None, _job(0, 1, 4.0).summary, 1),
        Job(odd, 1, {"parallel": 2}, 0, None, _job(1, 2, 2.0).summary, 2),
        Job(tmp_path / "2", 2, {"parallel": 4}, 2, "<script>x</script>", None, 4),
    ]
    for folder in (tmp_path / "0", odd):
        folder.mkdir()
        (folder / "report.html").write_text("<html></html>")
    text = to_html(build_report(jobs), tmp_path, SVG)
    assert '<a href="0/report.html">0</a>' in text
    assert '<a href="parallel%3D2%2Cexecutor%3D%3Cb%3E/report.html">1</a>' in text
    assert '<td class="n">2</td>' in text and "2/report.html" not in text
    assert "<script" not in text and "&lt;script&gt;x&lt;/script&gt;" in text
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text
    assert f"<figure>{SVG}</figure>" in text  # the figure inline, as drawn


def test_the_page_shows_the_stop_the_jobs_that_never_ran_and_the_fixed_overrides(
    tmp_path: Path,
) -> None:
    """A stopped sweep's page says why, lists what never ran, and names the fixed keys;
    with no plot it says why instead of showing an image."""
    planned = [["parallel=1"], ["parallel=2"]]
    jobs = [_job(0, 1, 2.0, overrides={"parallel": 1, "source.count": 24})]
    report = build_report(jobs, stopped="interrupted (SIGTERM)", stopped_code=143, planned=planned)
    text = to_html(report, tmp_path, None)
    assert "The sweep stopped early: interrupted (SIGTERM)" in text
    assert "<h2>Never ran (1)</h2><ul>\n<li><code>parallel=2</code></li>" in text
    assert "Fixed overrides: <code>parallel=1</code>, <code>source.count=24</code>." in text
    assert "Exit code 143" in text and "<svg" not in text and "No plot:" in text


def test_the_page_escapes_every_value_from_the_jobs(tmp_path: Path) -> None:
    """Swept values, errors, the stop and the jobs that never ran are text on the page:
    the template escapes them (markup in a folder's files cannot become the page's)."""
    evil = "<script>alert(1)</script>"
    odd = 'a&b"c'
    jobs = [
        _job(0, 1, 2.0, overrides={"parallel": 1, "task.name": evil}),
        _job(1, 2, 1.0, overrides={"parallel": 2, "task.name": odd}),
        _job(2, 4, None, overrides={"parallel": 4, "task.name": "x"}, code=2, error=evil),
    ]
    planned = [["parallel=1"], ["parallel=2"], ["parallel=4"], [f"task.name={evil}"]]
    report = build_report(jobs, stopped=f"stopped by {evil}", stopped_code=143, planned=planned)
    text = to_html(report, tmp_path, SVG)
    assert "<script" not in text and "alert(1)</" not in text
    assert text.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4
    assert "a&amp;b&#34;c" in text and odd not in text


def test_a_page_or_plot_that_fails_costs_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page that cannot be built leaves sweep.json, sweep.md and sweep.svg and the exit
    code; a figure that cannot be drawn leaves the page, which says why it has none."""
    for num, wall in enumerate((2.0, 1.0)):
        folder = _job_folder(tmp_path / str(num), num, [f"parallel={num + 1}"])
        summary = {"parallel": num + 1, "total": 10, "failed": 0, "wall_seconds": wall,
                   "items_per_second": 10 / wall}  # fmt: skip
        (folder / "summary.json").write_text(json.dumps(summary))
        write_job_status(folder, 0, None)

    def broken(*args: object) -> str:
        raise RuntimeError("no page today")

    monkeypatch.setattr(sweep_report, "to_html", broken)
    assert write_report(tmp_path) == 0
    assert not (tmp_path / "sweep.html").exists()
    assert (tmp_path / "sweep.svg").read_text().startswith("<svg")
    assert json.loads((tmp_path / "sweep.json").read_text())["plot"] == "sweep.svg"
    assert (
        "![items/s and efficiency against workers](sweep.svg)"
        in (tmp_path / "sweep.md").read_text()
    )
    monkeypatch.undo()

    def no_plot(report: Report) -> Markup:
        raise RuntimeError("no plot today")

    monkeypatch.setattr(sweep_report, "draw", no_plot)
    assert write_report(tmp_path) == 0
    assert not (tmp_path / "sweep.svg").exists()
    page = (tmp_path / "sweep.html").read_text()
    assert "No plot: drawing it failed: RuntimeError: no plot today" in page
    assert "<svg" not in page


def test_a_parallel_auto_job_is_a_setting_of_its_own() -> None:
    """A parallel=auto job shows the level it settled at, is named as auto, and is never
    the baseline of the fixed counts' speedup nor merged with the fixed count it matched."""
    auto = _job(0, 64, 1.5, overrides={"parallel": "auto"})
    assert auto.summary is not None
    auto.summary["concurrency"] = {"mode": "auto", "settled": 4, "changes": []}
    jobs = [auto, _job(1, 1, 4.0), _job(2, 4, 1.0)]
    report = build_report(jobs)
    assert auto.parallel == 4 and auto.auto
    assert [r.speedup for r in report.rows] == [None, 1.0, 4.0]
    assert "| 0 | auto (4) |" in "\n".join(table_lines(report))
    names = [p.settings for p in report.points]
    assert "parallel=auto (settled at 4)" in names and "parallel=4" in names
    assert report.fastest is not None and report.fastest.settings == "parallel=4"
