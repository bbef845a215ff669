"""A sweep's report as files: the Markdown tables (sweep.md, and the lines logged) and
sweep.json."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from runner.show.markdown import markdown_table
from runner.show.sweep_analysis import (
    MARGIN,
    REPEAT_NAMES,
    Point,
    Report,
    Row,
    as_text,
    ran_to_end,
    verdict,
)
from runner.show.sweep_jobs import Job

REPORT_JSON, REPORT_MD, REPORT_SVG = "sweep.json", "sweep.md", "sweep.svg"
REPORT_HTML = "sweep.html"


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


def columns(report: Report, with_repeats: bool) -> list[str]:
    """The swept keys as table columns, parallel first; the repeat keys only if asked."""
    keys = ["parallel", *(k for k in report.swept_keys if k != "parallel")]
    return keys if with_repeats else [k for k in keys if k not in report.repeat_keys]


JOB_HEADER = ["wall (s)", "items/s", "speedup", "efficiency", "failures"]
SETTING_HEADER = ["jobs", "wall (s)", "items/s", "items/s range", "speedup", "efficiency"]


def job_cells(report: Report, row: Row) -> list[str]:
    job = row.job
    shown: Any = f"auto ({job.parallel})" if job.auto else job.parallel
    values = {**row.swept, "parallel": shown}
    return [
        str(job.num if job.num is not None else job.folder.name),
        *(as_text(values.get(k)) for k in columns(report, with_repeats=True)),
        _num(job.stat("wall_seconds"), ".2f"),
        _num(job.stat("items_per_second"), ".1f"),
        _num(row.speedup, ".2f"),
        _num(row.efficiency, ".0%"),
        _failures(job),
    ]


def setting_cells(report: Report, point: Point) -> list[str]:
    values = {"parallel": point.parallel, **point.others}
    rates = [r.job.stat("items_per_second") or 0 for r in point.ran]
    failed = [r for r in point.rows if r.job.status != "ok"]
    return [
        *(as_text(values.get(k)) for k in columns(report, with_repeats=False)),
        f"{len(point.ran)} of {len(point.rows)}" + (f" ({len(failed)} failed)" if failed else ""),
        _num(point.wall, ".2f"),
        _num(point.rate, ".1f"),
        f"{min(rates):.1f}-{max(rates):.1f}" if rates else "-",
        _num(point.speedup, ".2f"),
        _num(point.efficiency, ".0%"),
    ]


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Numbers right-aligned; the last column (the failures, in words) left."""
    return markdown_table(header, rows, "r" * (len(header) - 1) + "l")


def table_lines(report: Report) -> list[str]:
    """The report's Markdown table of every job, one string per line."""
    header = ["job", *columns(report, with_repeats=True), *JOB_HEADER]
    return _markdown_table(header, [job_cells(report, row) for row in report.rows])


def settings_lines(report: Report) -> list[str]:
    """The Markdown table of each setting's medians over its repeats, one string per line;
    none when the sweep has no repeat key."""
    if not report.repeat_keys:
        return []
    header = [*columns(report, with_repeats=False), *SETTING_HEADER]
    return _markdown_table(header, [setting_cells(report, point) for point in report.points])


def explanation(report: Report) -> list[str]:
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


def preamble(report: Report, sweep_dir: Path) -> str:
    swept = ", ".join(f"`{k}`" for k in report.swept_keys) or "nothing (all jobs alike)"
    fixed = ", ".join(f"`{k}={as_text(v)}`" for k, v in report.fixed.items()) or "none"
    return (
        f"Sweep folder `{sweep_dir}`: {len(report.rows)} job(s). Swept: {swept}. "
        f"Fixed overrides: {fixed}."
    )


def to_markdown(report: Report, sweep_dir: Path) -> str:
    """sweep.md: the tables, the verdict, how the numbers were computed, and the plot."""
    lines = ["# Sweep report", "", preamble(report, sweep_dir), ""]
    if report.stopped:
        lines += [f"The sweep stopped early: {report.stopped}", ""]
    if report.not_run:
        never = "; ".join(f"`{j}`" for j in report.not_run)
        lines += [f"Never ran ({len(report.not_run)}): {never}", ""]
    if report.repeat_keys:
        lines += ["Median of each setting:", "", *settings_lines(report), "", "Every job:", ""]
    lines += [*table_lines(report), "", verdict(report), ""]
    for paragraph in explanation(report):
        lines += [paragraph, ""]
    lines.append(
        f"No plot: {report.no_plot}"
        if report.no_plot
        else f"![items/s and efficiency against workers]({REPORT_SVG})"
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
        "plot": None if report.no_plot else REPORT_SVG,
        "no_plot": report.no_plot,
        "page": REPORT_HTML,
        "jobs": jobs,
        "settings": [_point_json(point) for point in report.points],
    }


def when(report: Report) -> str:
    """When the sweep's first item started (UTC), or, if none did, now."""
    starts = [(r.job.summary or {}).get("started_at") for r in report.rows]
    try:
        when = min(dt.datetime.fromisoformat(s) for s in starts if isinstance(s, str))
    except (ValueError, TypeError):  # no item started, or dates this cannot read
        when = dt.datetime.now(dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def items_text(report: Report) -> str:
    """How many items each job ran: ``24 items`` or ``24-200 items``."""
    totals = sorted({int(r.job.stat("total") or 0) for r in report.rows if ran_to_end(r.job)})
    if not totals:
        return "no items"
    return f"{totals[0]} items" if len(totals) == 1 else f"{totals[0]}-{totals[-1]} items"
