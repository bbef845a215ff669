"""A sweep's report: what each job left on disk, compared, as table, JSON, Markdown and plot.

The report is built from what each job left in its folder (``summary.json``, the
``job.json`` status the CLI writes, ``.hydra/overrides.yaml``), never from Hydra's
in-memory job returns: jobs run by any launcher, in any process, are reported, and a job
that could not run at all still gets its row.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

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
from runner.files import atomic_write_json, atomic_write_text
from runner.jobs import STATUS_FILE

REPORT_JSON, REPORT_MD, REPORT_PNG = "sweep.json", "sweep.md", "sweep.png"


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
        value = (self.summary or {}).get("parallel", self.overrides.get("parallel"))
        value = self.configured if value is None else value
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def stat(self, key: str) -> float | None:
        """A number from summary.json, or None."""
        value = (self.summary or {}).get(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclasses.dataclass
class Row:
    """A job's line in the report: its swept values and how it compares."""

    job: Job
    swept: dict[str, Any]
    speedup: float | None = None
    efficiency: float | None = None


@dataclasses.dataclass
class Report:
    """Everything sweep.json, sweep.md and sweep.png show."""

    swept_keys: list[str]
    fixed: dict[str, Any]
    rows: list[Row]
    exit_code: int
    fastest: Row | None
    no_plot: str | None  # why there is no plot; None when there is one
    stopped: str | None = None  # what ended the sweep early, if anything
    not_run: list[str] = dataclasses.field(default_factory=list)  # jobs never started


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


def _wall(job: Job) -> float | None:
    """The job's wall time, when it is worth comparing (it ran items, to the end)."""
    wall = job.stat("wall_seconds")
    return wall if wall and job.status != "interrupted" and job.parallel else None


def build_report(
    jobs: list[Job],
    stopped: str | None = None,
    stopped_code: int = EXIT_USAGE,
    planned: list[list[str]] | None = None,
) -> Report:
    """Find the swept keys, compute speedup and efficiency, and pick the fastest job.

    A job's speedup is the wall time of the job with the smallest ``parallel`` among
    those with the same values of the other swept keys, divided by its own wall time.
    Its efficiency is that speedup over the growth in workers (``parallel`` / that job's
    ``parallel``): speedup / parallel when the baseline ran one worker.
    """
    keys: list[str] = []
    for job in jobs:
        keys += [k for k in job.overrides if k not in keys]
    absent = object()
    swept = [k for k in keys if len({_show(j.overrides.get(k, absent)) for j in jobs}) > 1]
    if "parallel" in swept:  # the column every sweep report is about comes first
        swept.insert(0, swept.pop(swept.index("parallel")))
    fixed = {k: jobs[0].overrides[k] for k in keys if k not in swept}
    rows = [Row(job, {k: job.overrides.get(k) for k in swept}) for job in jobs]

    workers = {row.job.parallel for row in rows if row.job.parallel is not None}
    groups: dict[tuple[str, ...], list[tuple[int, Row]]] = {}
    if len(workers) > 1:
        for row in rows:
            if (parallel := row.job.parallel) is not None:
                others = tuple(_show(v) for k, v in row.swept.items() if k != "parallel")
                groups.setdefault(others, []).append((parallel, row))
    for members in groups.values():
        base_workers, base = min(members, key=lambda member: member[0])
        base_wall = _wall(base.job)
        if base_wall is None:
            continue  # the baseline did not run to the end: no speedup to speak of
        for parallel, row in members:
            wall = _wall(row.job)
            if wall is None or row.job.stat("total") != base.job.stat("total"):
                continue  # wall times of different amounts of work do not compare
            row.speedup = base_wall / wall
            row.efficiency = row.speedup * base_workers / parallel

    # Jobs with failed items compete only when no job ran clean.
    ran = [r for r in rows if r.job.status in ("ok", "failed_items")]
    ran = [r for r in ran if r.job.stat("items_per_second")]
    clean = [r for r in ran if r.job.status == "ok"]
    fastest = max(clean or ran, key=lambda r: r.job.stat("items_per_second") or 0, default=None)
    if len(workers) < 2:
        no_plot = "`parallel` has the same value in every job; sweep it (e.g. parallel=1,2,4,8)."
    elif len({r.job.parallel for r in rows if _wall(r.job)}) < 2:
        no_plot = "fewer than two worker counts have timings (the other jobs failed)."
    else:
        no_plot = None
    codes = [job.code for job in jobs] + ([stopped_code] if stopped else [])
    seen = {job.num for job in jobs}
    not_run = [
        " ".join(overrides) for num, overrides in enumerate(planned or []) if num not in seen
    ]
    exit_code = sweep_exit_code(codes)
    return Report(swept, fixed, rows, exit_code, fastest, no_plot, stopped, not_run)


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


def table_lines(report: Report) -> list[str]:
    """The report's Markdown table, one string per line."""
    keys = ["parallel", *(k for k in report.swept_keys if k != "parallel")]
    header = ["job", *keys, "wall (s)", "items/s", "speedup", "efficiency", "failures"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * (len(header) - 1) + ":---|"]
    for row in report.rows:
        job = row.job
        values = {**row.swept, "parallel": job.parallel}
        cells = [
            str(job.num if job.num is not None else job.folder.name),
            *(_show(values.get(k)) for k in keys),
            _num(job.stat("wall_seconds"), ".2f"),
            _num(job.stat("items_per_second"), ".1f"),
            _num(row.speedup, ".2f"),
            _num(row.efficiency, ".0%"),
            _failures(job),
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def verdict(report: Report) -> str:
    """The one-line answer: which settings ran fastest."""
    best = report.fastest
    if best is None:
        return "Fastest: none (no job ran to the end)."
    others = [f"{k}={_show(v)}" for k, v in best.swept.items() if k != "parallel"]
    settings = ", ".join([f"parallel={best.job.parallel}", *others])
    text = f"{best.job.stat('items_per_second') or 0:.1f} items/s"
    if best.speedup is not None:
        text += f", speedup {best.speedup:.2f}"
    if best.job.stat("failed"):
        text += f"; {best.job.stat('failed'):.0f} failed item(s): no job ran without failures"
    return f"Fastest: {settings} ({text})"


def to_markdown(report: Report, sweep_dir: Path) -> str:
    """sweep.md: the table, the verdict, how the numbers were computed, and the plot."""
    swept = ", ".join(f"`{k}`" for k in report.swept_keys) or "nothing (all jobs alike)"
    fixed = ", ".join(f"`{k}={_show(v)}`" for k, v in report.fixed.items()) or "none"
    lines = [
        "# Sweep report",
        "",
        f"Sweep folder `{sweep_dir}`: {len(report.rows)} job(s). Swept: {swept}. "
        f"Fixed overrides: {fixed}.",
        "",
    ]
    if report.stopped:
        lines += [f"The sweep stopped early: {report.stopped}", ""]
    if report.not_run:
        lines += [
            f"Never ran ({len(report.not_run)}): " + "; ".join(f"`{j}`" for j in report.not_run),
            "",
        ]
    lines += [
        *table_lines(report),
        "",
        verdict(report),
        "",
        "Speedup: wall time of the job with the fewest workers (and the same other swept "
        "values) divided by this job's wall time. Efficiency: speedup / (parallel / that "
        'job\'s parallel), i.e. speedup / parallel when it ran one worker. "-": no timing '
        "to compare (the job, or that baseline job, did not run to the end).",
        "",
        f"No plot: {report.no_plot}"
        if report.no_plot
        else f"![items/s and speedup against workers]({REPORT_PNG})",
    ]
    return "\n".join(lines) + "\n"


def to_json(report: Report, sweep_dir: Path) -> dict[str, Any]:
    """sweep.json: the swept keys and one entry per job."""
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
    return {
        "sweep_dir": str(sweep_dir),
        "swept_keys": report.swept_keys,
        "fixed": report.fixed,
        "exit_code": report.exit_code,
        "stopped": report.stopped,
        "not_run": report.not_run,
        "fastest": report.fastest and {"job": report.fastest.job.num, "verdict": verdict(report)},
        "plot": None if report.no_plot else REPORT_PNG,
        "no_plot": report.no_plot,
        "jobs": jobs,
    }


def draw_plot(report: Report, path: Path) -> None:
    """sweep.png: items/s and speedup against workers, one line per other-keys combination."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    series: dict[str, list[Row]] = {}
    for row in sorted(report.rows, key=lambda r: r.job.parallel or 0):
        if _wall(row.job):
            others = [f"{k}={_show(v)}" for k, v in row.swept.items() if k != "parallel"]
            series.setdefault(", ".join(others) or "all jobs", []).append(row)
    workers = sorted({r.job.parallel or 1 for rows in series.values() for r in rows})
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas: no display needed, no pyplot global state
    rate_ax, speed_ax = fig.subplots(1, 2)
    for label, rows in series.items():
        rates = [r.job.stat("items_per_second") for r in rows]
        rate_ax.plot([r.job.parallel for r in rows], rates, marker="o", label=label)
        timed = [r for r in rows if r.speedup is not None]
        speeds = [r.speedup for r in timed]
        speed_ax.plot([r.job.parallel for r in timed], speeds, marker="o", label=label)
    ideal = [w / workers[0] for w in workers]
    speed_ax.plot(workers, ideal, linestyle="--", color="grey", label="ideal (linear)")
    for ax, ylabel, title in (
        (rate_ax, "items per second", "Throughput"),
        (speed_ax, "speedup (vs fewest workers)", "Speedup"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_xticks(workers, [str(w) for w in workers])
        ax.minorticks_off()
        ax.set(xlabel="workers (parallel)", ylabel=ylabel, title=title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fixed = " ".join(f"{k}={_show(v)}" for k, v in report.fixed.items())
    fig.suptitle(("Sweep" + (f": {fixed}" if fixed else ""))[:140])
    fig.savefig(path, dpi=110)


def write_report(
    sweep_dir: str | os.PathLike[str],
    stopped: str | None = None,
    stopped_code: int = EXIT_USAGE,
    planned: list[list[str]] | None = None,
) -> int:
    """Write sweep.json, sweep.md and sweep.png into ``sweep_dir`` and log the table.

    Returns the sweep's exit code: non-zero when any job's is, or when ``stopped`` says
    what ended the sweep early (then at least ``stopped_code``). ``planned``: every job's
    overrides, when known, so that jobs that never ran are named.
    """
    folder = Path(sweep_dir).resolve()
    jobs = find_jobs(folder)
    if not jobs:  # the sweep stopped before its first job: its error says it all
        logger.warning(f"Sweep report: no job folders in {folder}; nothing to report.")
        return stopped_code if stopped else EXIT_OK
    report = build_report(jobs, stopped, stopped_code, planned)
    png = folder / REPORT_PNG
    if report.no_plot is None:
        try:
            draw_plot(report, png)
        except Exception as exc:  # a plot must not cost the table
            logger.opt(exception=exc).warning(f"Could not draw {png}: {exc}")
            report.no_plot = f"drawing it failed: {type(exc).__name__}: {exc}"
    if report.no_plot is not None:
        png.unlink(missing_ok=True)
    try:
        atomic_write_json(folder / REPORT_JSON, to_json(report, folder))
        atomic_write_text(folder / REPORT_MD, to_markdown(report, folder))
    except OSError as exc:
        logger.error(f"Could not write the sweep report in {folder}: {exc}")
    else:
        logger.info(f"Sweep report: {folder / REPORT_MD}")
    for line in table_lines(report):
        logger.info(line)
    logger.info(verdict(report))
    return report.exit_code
