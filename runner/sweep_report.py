"""A sweep's report: what each job left on disk, compared, as table, JSON, Markdown, plot
and page.

The report is built from what each job left in its folder (``summary.json``, the
``job.json`` status the CLI writes, ``.hydra/overrides.yaml``), never from Hydra's
in-memory job returns: jobs run by any launcher, in any process, are reported, and a job
that could not run at all still gets its row.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
import json
import os
import statistics
from collections import Counter
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from loguru import logger
from omegaconf import ListConfig, OmegaConf

from runner.errors import (
    EXIT_FAILED_ITEMS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    INTERRUPT_CODES,
    sweep_exit_code,
)
from runner.files import atomic_write_text
from runner.jobs import STATUS_FILE
from runner.report import REPORT_FILE, esc, markdown, page, table

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

REPORT_JSON, REPORT_MD, REPORT_PNG = "sweep.json", "sweep.md", "sweep.png"
REPORT_HTML = "sweep.html"
#: A worker count whose items/s is within this share of the fastest's is as good as it:
#: the verdict names the fewest workers that get there.
MARGIN = 0.05
#: Swept keys named so (their last dotted part) mark repeats: jobs that differ only in
#: them are runs of one setting, compared by their median. A name, not the values, decides:
#: from the job folders alone a key that changes nothing (``+repeat=1,2,3``) cannot be told
#: from one that does (``executor=thread,sequential`` also gives rows differing in one key).
REPEAT_NAMES = ("repeat", "rep", "trial", "seed")
#: Marks the setting of a ``parallel=auto`` job among a point's other values.
AUTO = "parallel=auto"
#: The job statuses the plot marks as failed.
FAILED = ("error", "failed_items", "interrupted")


@dataclasses.dataclass
class Job:
    """What one job left on disk."""

    folder: Path
    num: int | None
    overrides: dict[str, Any]  # the job's task overrides: key -> parsed value
    code: int
    error: str | None  # one line, when the job could not run
    summary: dict[str, Any] | None  # summary.json, when the run got that far
    configured: Any = None  # parallel in .hydra/config.yaml, for a job with no summary

    @property
    def status(self) -> str:
        """ok, failed_items, error or interrupted."""
        summary = self.summary or {}
        if self.code in INTERRUPT_CODES or summary.get("interrupted"):
            return "interrupted"
        if self.summary is None and (self.code != EXIT_OK or self.error):
            return "error"
        if self.code != EXIT_OK or summary.get("failed"):
            return "failed_items"
        return "ok"

    @property
    def parallel(self) -> int | None:
        """Its worker count; for ``parallel=auto``, the level it settled at."""
        summary = self.summary or {}
        concurrency = summary.get("concurrency") or {}
        if concurrency.get("mode") == "auto":
            value = concurrency.get("settled")
        else:
            value = summary.get("parallel", self.overrides.get("parallel"))
        value = self.configured if value is None else value
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def auto(self) -> bool:
        """Whether the job ran with ``parallel=auto``."""
        return self.overrides.get("parallel") == "auto"

    def stat(self, key: str) -> float | None:
        """A number from summary.json, or None."""
        value = (self.summary or {}).get(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclasses.dataclass
class Row:
    """A job's line in the report: its swept values and how it compares."""

    job: Job
    swept: dict[str, Any]
    speedup: float | None = None  # against its series' baseline median wall time
    efficiency: float | None = None


@dataclasses.dataclass
class Point:
    """One setting: a worker count and the other swept values but the repeat keys, with its
    jobs (one per repeat, or just one) and their medians."""

    parallel: int | None
    others: dict[str, Any]  # the swept values besides parallel and the repeat keys
    rows: list[Row]
    wall: float | None = None  # median wall time of the jobs that ran to the end
    rate: float | None = None  # median items/s of those jobs
    speedup: float | None = None
    efficiency: float | None = None

    @property
    def ran(self) -> list[Row]:
        """The jobs with timings worth comparing."""
        return [row for row in self.rows if _ran(row.job)]

    @property
    def clean(self) -> bool:
        """Whether every job that ran to the end ran without failed items."""
        return all(row.job.status == "ok" for row in self.ran)

    @property
    def settings(self) -> str:
        """``parallel=8, executor=thread`` (``parallel=auto (settled at 8)``)."""
        shown: Any = (
            f"auto (settled at {self.parallel})" if self.others.get(AUTO) else self.parallel
        )
        values = {"parallel": shown, **{k: v for k, v in self.others.items() if k != AUTO}}
        return ", ".join(f"{k}={_show(v)}" for k, v in values.items())

    @property
    def typical(self) -> Row:
        """The job with the (lower) median items/s: the one to name for the setting."""
        ranked = sorted(self.ran, key=lambda r: r.job.stat("items_per_second") or 0)
        return ranked[(len(ranked) - 1) // 2] if ranked else self.rows[0]


@dataclasses.dataclass
class Report:
    """Everything sweep.json, sweep.md, sweep.png and sweep.html show."""

    swept_keys: list[str]
    fixed: dict[str, Any]
    rows: list[Row]
    exit_code: int
    fastest: Point | None
    no_plot: str | None  # why there is no plot; None when there is one
    stopped: str | None = None  # what ended the sweep early, if anything
    not_run: list[str] = dataclasses.field(default_factory=list)  # jobs never started
    repeat_keys: list[str] = dataclasses.field(default_factory=list)
    points: list[Point] = dataclasses.field(default_factory=list)  # in job order
    within: Point | None = None  # the fewest workers within MARGIN of the fastest


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_yaml(path: Path, key: str | None = None) -> Any:
    try:
        node = OmegaConf.load(path)
        return node if key is None else OmegaConf.select(node, key)
    except Exception:  # absent (output_subdir=null) or unreadable: the row shows less
        return None


def _parse_overrides(lines: list[str]) -> dict[str, Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    parsed: dict[str, Any] = {}
    for line in lines:
        try:
            override = parser.parse_override(line)
        except Exception:  # Hydra ran the job with it, so keep its text rather than fail
            key, _, text = line.partition("=")
            parsed[key.lstrip("+~")] = text
            continue
        value: Any = override.value()
        if not isinstance(value, str | int | float | bool | type(None)):
            value = override.get_value_element_as_str()
        parsed[override.get_key_element().lstrip("+~")] = value
    return parsed


def read_job(folder: Path) -> Job:
    """Read one job folder; missing or broken files make an error row, not an exception."""
    summary = _read_json(folder / "summary.json")
    status = _read_json(folder / STATUS_FILE) or {}
    error: str | None = status.get("error") or None
    if isinstance(status.get("code"), int):
        code: int = status["code"]
    elif summary is not None:  # run by a launcher or a version that writes no job.json
        code = EXIT_FAILED_ITEMS if summary.get("failed") else EXIT_OK
        code = EXIT_INTERRUPTED if summary.get("interrupted") else code
    else:
        code = EXIT_FAILED_ITEMS
        error = f"the job did not finish: no {STATUS_FILE} or summary.json in {folder}"
    hydra_dir = folder / ".hydra"
    lines = _read_yaml(hydra_dir / "overrides.yaml")
    overrides = _parse_overrides([str(x) for x in lines]) if isinstance(lines, ListConfig) else {}
    num = _read_yaml(hydra_dir / "hydra.yaml", "hydra.job.num")
    # A job that never ran still has a worker count: the one its config asked for.
    configured = _read_yaml(hydra_dir / "config.yaml", "parallel") if summary is None else None
    return Job(
        folder,
        num if isinstance(num, int) else None,
        overrides,
        code,
        error,
        summary,
        configured,
    )


def find_jobs(sweep_dir: Path) -> list[Job]:
    """Every job folder under ``sweep_dir``, in job-number order."""
    folders: list[Path] = []
    for root, dirs, files in os.walk(sweep_dir):
        here = Path(root)
        if here != sweep_dir and (
            STATUS_FILE in files or (here / ".hydra" / "overrides.yaml").is_file()
        ):
            folders.append(here)
            dirs.clear()  # a job's own outputs hold no further jobs
        else:
            dirs[:] = [d for d in dirs if d != ".hydra"]
    jobs = [read_job(folder) for folder in folders]
    jobs.sort(key=lambda j: (j.num is None, j.num or 0, str(j.folder)))
    return jobs


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _ran(job: Job) -> bool:
    """Whether the job's timing is worth comparing: it ran items, to the end."""
    return job.status in ("ok", "failed_items") and bool(
        job.stat("wall_seconds") and job.stat("items_per_second")
    )


def is_repeat_key(key: str) -> bool:
    """Whether a swept key marks repeats of one setting (see :data:`REPEAT_NAMES`)."""
    return key.rsplit(".", 1)[-1] in REPEAT_NAMES


def _compare(members: list[Point]) -> None:
    """Speedup and efficiency of one series' points and jobs, against its fewest workers."""
    base = min(members, key=lambda point: point.parallel or 0)
    base_wall, base_workers = base.wall, base.parallel
    totals = {row.job.stat("total") for row in base.ran}
    if base_wall is None or base_workers is None or len(totals) != 1:
        return  # the baseline did not run to the end (or its runs differ): no speedup
    for point in members:
        assert point.parallel is not None
        growth = point.parallel / base_workers
        for row in point.ran:
            if row.job.stat("total") not in totals:
                continue  # wall times of different amounts of work do not compare
            row.speedup = base_wall / (row.job.stat("wall_seconds") or 1)
            row.efficiency = row.speedup / growth
        if point.wall and {row.job.stat("total") for row in point.ran} == totals:
            point.speedup = base_wall / point.wall
            point.efficiency = point.speedup / growth


def build_report(
    jobs: list[Job],
    stopped: str | None = None,
    stopped_code: int = EXIT_USAGE,
    planned: list[list[str]] | None = None,
) -> Report:
    """Find the swept and repeat keys, take medians, compute speedup and efficiency, and
    pick the fastest setting and the fewest workers within :data:`MARGIN` of it.

    A setting is a worker count with the values of the other swept keys but the repeat
    keys; its wall time and items/s are the medians of its jobs that ran to the end. A
    speedup is the median wall time of the setting with the smallest ``parallel`` among
    those with the same other values, divided by the job's (or setting's median) wall
    time. Efficiency is that speedup over the growth in workers (``parallel`` / that
    setting's ``parallel``): speedup / parallel when the baseline ran one worker.
    """
    keys: list[str] = []
    for job in jobs:
        keys += [k for k in job.overrides if k not in keys]
    absent = object()
    swept = [k for k in keys if len({_show(j.overrides.get(k, absent)) for j in jobs}) > 1]
    if "parallel" in swept:  # the column every sweep report is about comes first
        swept.insert(0, swept.pop(swept.index("parallel")))
    repeats = [k for k in swept if k != "parallel" and is_repeat_key(k)]
    fixed = {k: jobs[0].overrides[k] for k in keys if k not in swept}
    rows = [Row(job, {k: job.overrides.get(k) for k in swept}) for job in jobs]

    points: dict[tuple[str, ...], Point] = {}
    for row in rows:
        others = {k: v for k, v in row.swept.items() if k != "parallel" and k not in repeats}
        if row.job.auto:  # a series of its own, drawn and named apart from fixed counts
            others[AUTO] = True
        key = (_show(row.job.parallel), *(_show(v) for v in others.values()))
        points.setdefault(key, Point(row.job.parallel, others, [])).rows.append(row)
    for point in points.values():
        if ran := point.ran:
            point.wall = statistics.median(r.job.stat("wall_seconds") or 0 for r in ran)
            point.rate = statistics.median(r.job.stat("items_per_second") or 0 for r in ran)

    workers = {row.job.parallel for row in rows if row.job.parallel is not None}
    if len(workers) > 1:
        for members in _series(list(points.values())).values():
            if not members[0].others.get(AUTO):  # its own count moved: no speedup to speak of
                _compare(members)

    # Settings with failed items compete only when none ran clean.
    measured = [p for p in points.values() if p.rate]
    pool = [p for p in measured if p.clean] or measured
    fastest = max(pool, key=lambda p: p.rate or 0, default=None)
    within = None
    if fastest is not None and fastest.parallel is not None and fastest.rate:
        floor = (1 - MARGIN) * fastest.rate
        close = [p for p in pool if p.parallel is not None and (p.rate or 0) >= floor]
        within = min(close, key=lambda p: (p.parallel or 0, -(p.rate or 0)))
    if len(workers) < 2:
        no_plot = "`parallel` has the same value in every job; sweep it (e.g. parallel=1,2,4,8)."
    elif len({p.parallel for p in points.values() if p.wall and p.parallel}) < 2:
        no_plot = "fewer than two worker counts have timings (the other jobs failed)."
    else:
        no_plot = None
    codes = [job.code for job in jobs] + ([stopped_code] if stopped else [])
    seen = {job.num for job in jobs}
    not_run = [
        " ".join(overrides) for num, overrides in enumerate(planned or []) if num not in seen
    ]
    return Report(
        swept,
        fixed,
        rows,
        sweep_exit_code(codes),
        fastest,
        no_plot,
        stopped,
        not_run,
        repeats,
        list(points.values()),
        within,
    )


def _series(points: list[Point]) -> dict[str, list[Point]]:
    """The points with a worker count, by their other swept values, fewest workers first.

    A ``parallel=auto`` job is a series of its own, labelled by the level it settled at.
    """
    series: dict[str, list[Point]] = {}
    for point in sorted(points, key=lambda p: p.parallel or 0):
        if point.parallel is not None:
            if point.others.get(AUTO):
                label = point.settings
            else:
                label = ", ".join(f"{k}={_show(v)}" for k, v in point.others.items())
            series.setdefault(label, []).append(point)
    if "" in series and len(series) > 1:
        series["fixed worker counts"] = series.pop("")
    return series


def _failures(job: Job) -> str:
    if job.status == "error":
        return f"error: {job.error or f'exit code {job.code}'}"
    if job.status == "interrupted":
        return "interrupted"
    failed = int(job.stat("failed") or 0)
    if job.status == "failed_items" and not failed:
        return f"exit code {job.code} (see runner.log)"
    return str(failed)


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _keys(report: Report, with_repeats: bool) -> list[str]:
    """The swept keys as table columns, parallel first; the repeat keys only if asked."""
    keys = ["parallel", *(k for k in report.swept_keys if k != "parallel")]
    return keys if with_repeats else [k for k in keys if k not in report.repeat_keys]


JOB_HEADER = ["wall (s)", "items/s", "speedup", "efficiency", "failures"]
SETTING_HEADER = ["jobs", "wall (s)", "items/s", "items/s range", "speedup", "efficiency"]


def _job_cells(report: Report, row: Row) -> list[str]:
    job = row.job
    shown: Any = f"auto ({job.parallel})" if job.auto else job.parallel
    values = {**row.swept, "parallel": shown}
    return [
        str(job.num if job.num is not None else job.folder.name),
        *(_show(values.get(k)) for k in _keys(report, with_repeats=True)),
        _num(job.stat("wall_seconds"), ".2f"),
        _num(job.stat("items_per_second"), ".1f"),
        _num(row.speedup, ".2f"),
        _num(row.efficiency, ".0%"),
        _failures(job),
    ]


def _setting_cells(report: Report, point: Point) -> list[str]:
    values = {"parallel": point.parallel, **point.others}
    rates = [r.job.stat("items_per_second") or 0 for r in point.ran]
    failed = [r for r in point.rows if r.job.status != "ok"]
    return [
        *(_show(values.get(k)) for k in _keys(report, with_repeats=False)),
        f"{len(point.ran)} of {len(point.rows)}" + (f" ({len(failed)} failed)" if failed else ""),
        _num(point.wall, ".2f"),
        _num(point.rate, ".1f"),
        f"{min(rates):.1f}-{max(rates):.1f}" if rates else "-",
        _num(point.speedup, ".2f"),
        _num(point.efficiency, ".0%"),
    ]


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * (len(header) - 1) + ":---|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def table_lines(report: Report) -> list[str]:
    """The report's Markdown table of every job, one string per line."""
    header = ["job", *_keys(report, with_repeats=True), *JOB_HEADER]
    return _markdown_table(header, [_job_cells(report, row) for row in report.rows])


def settings_lines(report: Report) -> list[str]:
    """The Markdown table of each setting's medians over its repeats, one string per line;
    none when the sweep has no repeat key."""
    if not report.repeat_keys:
        return []
    header = [*_keys(report, with_repeats=False), *SETTING_HEADER]
    return _markdown_table(header, [_setting_cells(report, point) for point in report.points])


def _fewer(workers: int, than: int) -> str:
    named = {
        Fraction(1, 2): "half the workers",
        Fraction(1, 3): "a third of the workers",
        Fraction(1, 4): "a quarter of the workers",
    }
    return named.get(Fraction(workers, than), f"{workers} workers instead of {than}")


def verdict(report: Report) -> str:
    """The answer: which setting ran fastest, and the fewest workers within MARGIN of it."""
    best = report.fastest
    if best is None or best.rate is None:
        return "Fastest: none (no job ran to the end)."
    text = f"{best.rate:.1f} items/s"
    if report.repeat_keys:
        text = f"median of {len(best.ran)} run(s): {text}"
    if best.speedup is not None:
        text += f", speedup {best.speedup:.2f}"
    failed = sum(int(r.job.stat("failed") or 0) for r in best.ran)
    if not best.clean and failed:
        who = "setting ran all its jobs" if report.repeat_keys else "job ran"
        text += f"; {failed} failed item(s): no {who} without failures"
    near, margin = report.within, f"{MARGIN:.0%}"
    clause = ""
    if near is not None and best.parallel is not None and near.parallel is not None:
        if near.parallel < best.parallel and near.rate:
            name = f"parallel={near.parallel}" if near.others == best.others else near.settings
            clause = (
                f"; {name} gives {near.rate / best.rate:.0%} of that with "
                f"{_fewer(near.parallel, best.parallel)} (the fewest workers within {margin})"
            )
        elif any(p.rate and (p.parallel or 0) < best.parallel for p in report.points):
            clause = f"; no fewer workers come within {margin} of it"
    return f"Fastest: {best.settings} ({text}){clause}"


def _explanation(report: Report) -> list[str]:
    """How the numbers were computed, as Markdown paragraphs."""
    lines = [
        "Speedup: wall time of the job with the fewest workers (and the same other swept "
        "values) divided by this job's wall time. Efficiency: speedup / (parallel / that "
        'job\'s parallel), i.e. speedup / parallel when it ran one worker. "-": no timing '
        "to compare (the job, or that baseline job, did not run to the end). "
        f"Within {MARGIN:.0%}: the fewest workers whose items/s is at least "
        f"{1 - MARGIN:.0%} of the fastest's.",
    ]
    if report.repeat_keys:
        keys = ", ".join(f"`{k}`" for k in report.repeat_keys)
        names = ", ".join(f"`{n}`" for n in REPEAT_NAMES)
        lines.append(
            f"Repeats: {keys} only repeats a setting (a swept key named {names}), so the jobs "
            "that differ only in it are compared by their median wall time and items/s; the "
            "baseline is the median of the setting with the fewest workers."
        )
    return lines


def _preamble(report: Report, sweep_dir: Path) -> str:
    swept = ", ".join(f"`{k}`" for k in report.swept_keys) or "nothing (all jobs alike)"
    fixed = ", ".join(f"`{k}={_show(v)}`" for k, v in report.fixed.items()) or "none"
    return (
        f"Sweep folder `{sweep_dir}`: {len(report.rows)} job(s). Swept: {swept}. "
        f"Fixed overrides: {fixed}."
    )


def to_markdown(report: Report, sweep_dir: Path) -> str:
    """sweep.md: the tables, the verdict, how the numbers were computed, and the plot."""
    lines = ["# Sweep report", "", _preamble(report, sweep_dir), ""]
    if report.stopped:
        lines += [f"The sweep stopped early: {report.stopped}", ""]
    if report.not_run:
        never = "; ".join(f"`{j}`" for j in report.not_run)
        lines += [f"Never ran ({len(report.not_run)}): {never}", ""]
    if report.repeat_keys:
        lines += ["Median of each setting:", "", *settings_lines(report), "", "Every job:", ""]
    lines += [*table_lines(report), "", verdict(report), ""]
    for paragraph in _explanation(report):
        lines += [paragraph, ""]
    lines.append(
        f"No plot: {report.no_plot}"
        if report.no_plot
        else f"![items/s and efficiency against workers]({REPORT_PNG})"
    )
    return "\n".join(lines) + "\n"


def _point_json(point: Point) -> dict[str, Any]:
    rates = [r.job.stat("items_per_second") or 0 for r in point.ran]
    return {
        "parallel": point.parallel,
        "swept": point.others,
        "jobs": [row.job.num for row in point.rows],
        "ran": len(point.ran),
        "clean": point.clean,
        "wall_seconds": point.wall,
        "items_per_second": point.rate,
        "items_per_second_min": min(rates, default=None),
        "items_per_second_max": max(rates, default=None),
        "speedup": None if point.speedup is None else round(point.speedup, 4),
        "efficiency": None if point.efficiency is None else round(point.efficiency, 4),
    }


def to_json(report: Report, sweep_dir: Path) -> dict[str, Any]:
    """sweep.json: the swept keys, one entry per job and one per setting."""
    stats = ("wall_seconds", "items_per_second", "succeeded", "failed")
    jobs = [
        {
            "job": row.job.num,
            "folder": str(row.job.folder),
            "status": row.job.status,
            "code": row.job.code,
            "error": row.job.error,
            "swept": row.swept,
            "parallel": row.job.parallel,
            **{key: row.job.stat(key) for key in stats},
            "speedup": None if row.speedup is None else round(row.speedup, 4),
            "efficiency": None if row.efficiency is None else round(row.efficiency, 4),
        }
        for row in report.rows
    ]
    best, near = report.fastest, report.within
    return {
        "sweep_dir": str(sweep_dir),
        "swept_keys": report.swept_keys,
        "repeat_keys": report.repeat_keys,
        "fixed": report.fixed,
        "exit_code": report.exit_code,
        "stopped": report.stopped,
        "not_run": report.not_run,
        "fastest": None
        if best is None
        else {"job": best.typical.job.num, "verdict": verdict(report), **_point_json(best)},
        "margin": MARGIN,
        "within_margin": None
        if near is None or best is None
        else {
            "job": near.typical.job.num,
            "share_of_fastest": round((near.rate or 0) / (best.rate or 1), 4),
            **_point_json(near),
        },
        "plot": None if report.no_plot else REPORT_PNG,
        "no_plot": report.no_plot,
        "page": REPORT_HTML,
        "jobs": jobs,
        "settings": [_point_json(point) for point in report.points],
    }


def _date(report: Report) -> str:
    """When the sweep's first item started (UTC), or, if none did, now."""
    starts = [(r.job.summary or {}).get("started_at") for r in report.rows]
    try:
        when = min(dt.datetime.fromisoformat(s) for s in starts if isinstance(s, str))
    except (ValueError, TypeError):  # no item started, or dates this cannot read
        when = dt.datetime.now(dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _items(report: Report) -> str:
    """How many items each job ran: ``24 items`` or ``24-200 items``."""
    totals = sorted({int(r.job.stat("total") or 0) for r in report.rows if _ran(r.job)})
    if not totals:
        return "no items"
    return f"{totals[0]} items" if len(totals) == 1 else f"{totals[0]}-{totals[-1]} items"


def _spread(ax: Axes, workers: list[int], values: list[list[float]], color: str) -> None:
    """Min-max bars of the repeats' values at their worker counts."""
    bars = [(x, v) for x, v in zip(workers, values, strict=True) if v]
    if bars:
        ax.vlines(
            [x for x, _ in bars],
            [min(v) for _, v in bars],
            [max(v) for _, v in bars],
            color=color,
            linewidth=3,
            alpha=0.45,
            gid="spread",
        )


def plot_figure(report: Report) -> Figure:
    """The figure of sweep.png: throughput and efficiency against workers.

    One line per combination of the other swept values (no legend entry when there is
    one), through each setting's median; repeats as a min-max bar; failed jobs as hollow
    red circles (at 0 when they have no timing); ideal scaling dashed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import PercentFormatter

    series = _series(report.points)
    single = len(series) == 1
    style: dict[str, Any]
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas: no display needed, no pyplot global state
    # Throughput on a linear y axis from 0, with the ideal line, shows the real gain; the
    # second panel is efficiency, not speedup: on linear axes a speedup line is throughput
    # again, and on log-log axes the gap to the diagonal shrinks to a sliver at the
    # counts where it matters. Efficiency (100% = linear scaling) reads the loss at every
    # count on the same scale.
    rate_ax, eff_ax = fig.subplots(1, 2)
    handles: list[Any] = []
    ideal = "ideal (dashed): linear from each line's fewest workers"
    for index, (label, points) in enumerate(series.items()):
        color = "C0" if single else f"C{index}"
        timed = [p for p in points if p.rate]
        scaled = [p for p in timed if p.efficiency is not None]
        style = {"marker": "o", "color": color, "gid": "median"}
        rate_ax.plot([p.parallel for p in timed], [p.rate for p in timed], **style)
        eff_ax.plot([p.parallel for p in scaled], [p.efficiency for p in scaled], **style)
        if not single:
            handles.append(Line2D([], [], color=color, marker="o", label=label))
        repeated = [p for p in timed if len(p.ran) > 1]
        rates = [[r.job.stat("items_per_second") or 0 for r in p.ran] for p in repeated]
        _spread(rate_ax, [p.parallel or 0 for p in repeated], rates, color)
        effs = [[r.efficiency for r in p.ran if r.efficiency is not None] for p in repeated]
        _spread(eff_ax, [p.parallel or 0 for p in repeated], effs, color)
        base = points[0]
        if base.rate and base.parallel:
            if single:
                ideal = f"ideal: linear from parallel={base.parallel} ({base.rate:.1f} items/s)"
            # At the measured counts, joined by straight segments as the measured line is:
            # a smooth curve on the log x axis would bend away from it between the points.
            xs = [p.parallel for p in points if p.parallel]
            rate_ax.plot(
                xs,
                [base.rate * x / base.parallel for x in xs],
                linestyle="--",
                color="grey" if single else color,
                linewidth=1,
                gid="ideal",
            )
    handles.append(Line2D([], [], color="grey", linestyle="--", label=ideal))
    if any(len(p.ran) > 1 for p in report.points):
        keys = ", ".join(report.repeat_keys)
        handles.append(
            Line2D(
                [], [], color="grey", marker="o", linewidth=3, alpha=0.6,
                label=f"median of the runs over {keys}; bar: min to max",
            )
        )  # fmt: skip
    eff_ax.axhline(1.0, linestyle="--", color="grey", linewidth=1, gid="ideal")
    failed = [r for r in report.rows if r.job.status in FAILED and r.job.parallel]
    if failed:
        style = {
            "linestyle": "none",
            "marker": "o",
            "markersize": 11,
            "markerfacecolor": "none",
            "markeredgecolor": "#d62728",
            "markeredgewidth": 1.8,
            "gid": "failed",
            "clip_on": False,  # a job with no timing sits on the x axis, drawn whole
        }
        where = [r.job.parallel for r in failed]
        rate_ax.plot(where, [r.job.stat("items_per_second") or 0 for r in failed], **style)
        eff_ax.plot(where, [r.efficiency or 0 for r in failed], **style)
        handles.append(
            Line2D(
                [], [], **{**style, "gid": None},
                label="failed job (error, failed items or interrupted; at 0: no timing)",
            )
        )  # fmt: skip
    workers = sorted({p.parallel for points in series.values() for p in points if p.parallel})
    for ax, ylabel, title in (
        (rate_ax, "items per second", "Throughput"),
        (eff_ax, "efficiency (speedup / growth in workers)", "Efficiency (100% = linear scaling)"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_xticks(workers, [str(w) for w in workers])
        ax.minorticks_off()
        ax.set(xlabel="workers (parallel)", ylabel=ylabel, title=title)
        ax.grid(True, alpha=0.3)
    rate_ax.set_ylim(bottom=0)
    top = max([p.efficiency or 0 for p in report.points] + [r.efficiency or 0 for r in report.rows])
    eff_ax.set_ylim(0, max(1.1, top * 1.08))
    eff_ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    eff_ax.legend(
        handles=[Line2D([], [], color="grey", linestyle="--", label="ideal (100%)")],
        fontsize="small",
        loc="lower left",
    )
    rate_ax.legend(handles=handles, fontsize="small", loc="upper left")
    fixed = " ".join(f"{k}={_show(v)}" for k, v in report.fixed.items())
    title = f"Sweep of {_items(report)} per job, {_date(report)}"
    fig.suptitle(title + (f"\n{fixed[:140]}" if fixed else ""))
    return fig


def plot_png(report: Report) -> bytes:
    """sweep.png's bytes."""
    buffer = io.BytesIO()
    plot_figure(report).savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _job_link(row: Row, sweep_dir: Path, text: str) -> str:
    """The job's number, linked to its report.html (relative: the page works when the
    sweep folder is moved or copied) when it has one."""
    target = row.job.folder / REPORT_FILE
    if not target.is_file():
        return esc(text)
    href = quote(Path(os.path.relpath(target, sweep_dir)).as_posix())
    return f"<a href='{esc(href)}'>{esc(text)}</a>"


NUMERIC = frozenset(["job", "parallel", *JOB_HEADER[:-1], *SETTING_HEADER[1:]])
TROUBLE = {"error": "could not run", "failed_items": "had failed items", "interrupted": "stopped"}


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    """A table of cells that are HTML already; the columns of numbers right-aligned."""
    numeric = frozenset(i for i, name in enumerate(header) if name in NUMERIC)
    return table([esc(name) for name in header], rows, numeric, render=str)


def to_html(report: Report, sweep_dir: Path, png: bytes | None) -> str:
    """sweep.html: one self-contained page (no script, nothing fetched, the plot inline)."""
    body = [f"<p><strong>{esc(verdict(report))}</strong></p>"]
    troubles = Counter(row.job.status for row in report.rows if row.job.status != "ok")
    if report.exit_code == EXIT_OK:
        body.append("<p class='ok'>Every job ran without failures.</p>")
    else:
        said = ", ".join(f"{n} job(s) {TROUBLE[status]}" for status, n in troubles.items())
        body.append(f"<p class='bad'>Exit code {report.exit_code}{': ' if said else ''}{said}.</p>")
    if report.stopped:
        body.append(f"<p class='bad'>The sweep stopped early: {esc(report.stopped)}</p>")
    body.append(markdown(_preamble(report, sweep_dir)))
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        body.append(
            f"<p><img src='data:image/png;base64,{data}' style='max-width:100%' "
            "alt='items per second and efficiency against workers'></p>"
        )
    else:
        body.append(markdown(f"No plot: {report.no_plot}"))
    if report.repeat_keys:
        medians = [[esc(c) for c in _setting_cells(report, p)] for p in report.points]
        header = [*_keys(report, with_repeats=False), *SETTING_HEADER]
        body += ["<h2>Median of each setting</h2>", _html_table(header, medians)]
    rows = []
    for row in report.rows:
        number, *cells, failures = _job_cells(report, row)
        bad = row.job.status != "ok"
        rows.append(
            [
                _job_link(row, sweep_dir, number),
                *(esc(c) for c in cells),
                f"<span class='bad'>{esc(failures)}</span>" if bad else esc(failures),
            ]
        )
    body += [
        "<h2>Every job</h2>",
        "<p class='sub'>A job's number links to its own report.html.</p>",
        _html_table(["job", *_keys(report, with_repeats=True), *JOB_HEADER], rows),
    ]
    if report.not_run:
        body += [
            f"<h2>Never ran ({len(report.not_run)})</h2><ul>",
            *(f"<li><code>{esc(j)}</code></li>" for j in report.not_run),
            "</ul>",
        ]
    body += ["<h2>How the numbers are computed</h2>", *(markdown(p) for p in _explanation(report))]
    files = [REPORT_MD, REPORT_JSON] + ([] if report.no_plot else [REPORT_PNG])
    links = ", ".join(f"<a href='{name}'>{name}</a>" for name in files)
    body.append(f"<p class='sub'>Also in this folder: {links}</p>")
    subtitle = f"{len(report.rows)} job(s) of {_items(report)}, {_date(report)}; {sweep_dir}"
    return page("Sweep report", subtitle, body)


def write_report(
    sweep_dir: str | os.PathLike[str],
    stopped: str | None = None,
    stopped_code: int = EXIT_USAGE,
    planned: list[list[str]] | None = None,
) -> int:
    """Write sweep.json, sweep.md, sweep.png and sweep.html into ``sweep_dir`` and log the
    table.

    Returns the sweep's exit code: non-zero when any job's is, or when ``stopped`` says
    what ended the sweep early (then at least ``stopped_code``). ``planned``: every job's
    overrides, when known, so that jobs that never ran are named. Each file is written on
    its own: one that cannot be drawn or written costs neither the others nor the code.
    """
    folder = Path(sweep_dir).resolve()
    jobs = find_jobs(folder)
    if not jobs:  # the sweep stopped before its first job: its error says it all
        logger.warning(f"Sweep report: no job folders in {folder}; nothing to report.")
        return stopped_code if stopped else EXIT_OK
    report = build_report(jobs, stopped, stopped_code, planned)
    png_path, png = folder / REPORT_PNG, None
    if report.no_plot is None:
        try:
            png = plot_png(report)
        except Exception as exc:  # a plot must not cost the table
            logger.opt(exception=exc).warning(f"Could not draw {png_path}: {exc}")
            report.no_plot = f"drawing it failed: {type(exc).__name__}: {exc}"
    try:
        if png is None:
            png_path.unlink(missing_ok=True)  # a plot of an earlier report is not this one's
        else:
            png_path.write_bytes(png)
    except OSError as exc:
        logger.error(f"Could not write {png_path}: {exc}")
        report.no_plot = report.no_plot or f"writing {REPORT_PNG} failed: {exc}"
    written = []
    renders: list[tuple[str, Callable[[], str]]] = [
        (REPORT_JSON, lambda: json.dumps(to_json(report, folder), indent=2, ensure_ascii=False)),
        (REPORT_MD, lambda: to_markdown(report, folder)),
        (REPORT_HTML, lambda: to_html(report, folder, png)),
    ]
    for name, render in renders:
        try:
            atomic_write_text(folder / name, render() + ("\n" if name == REPORT_JSON else ""))
        except Exception as exc:  # one file's failure costs neither the others nor the code
            logger.opt(exception=exc).error(f"Could not write {folder / name}: {exc}")
        else:
            written.append(name)
    if written:
        logger.info(f"Sweep report in {folder}: {', '.join(written)}")
    for line in table_lines(report) + settings_lines(report):
        logger.info(line)
    logger.info(verdict(report))
    return report.exit_code
