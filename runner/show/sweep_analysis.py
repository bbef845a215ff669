"""A sweep's jobs compared: settings, medians over repeats, speedup, efficiency, and the
verdict naming the fastest setting and the fewest workers within :data:`MARGIN` of it."""

from __future__ import annotations

import dataclasses
import statistics
from fractions import Fraction
from typing import Any

from runner.errors import EXIT_USAGE, sweep_exit_code
from runner.show.sweep_jobs import Job

#: A worker count whose items/s is within this share of the fastest's is as good as it:
#: the verdict names the fewest workers that get there.
MARGIN = 0.05
#: Swept keys named so (their last dotted part) mark repeats: jobs that differ only in
#: them are runs of one setting, compared by their median. A name, not the values, decides:
#: from the job folders alone a key that changes nothing (``+repeat=1,2,3``) cannot be told
#: from one that does (``executor=thread,sequential`` also gives rows differing in one key).
REPEAT_NAMES = ("repeat", "rep", "trial", "seed")
#: A fastest setting that is also the most workers its series tried, at this efficiency
#: or more, was still scaling: the verdict says that more workers may be faster.
STILL_SCALING = 0.75
#: Marks the setting of a ``parallel=auto`` job among a point's other values.
AUTO = "parallel=auto"
#: The job statuses the plot marks as failed.
FAILED = ("error", "failed_items", "interrupted")


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
        return [row for row in self.rows if ran_to_end(row.job)]

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
        return ", ".join(f"{k}={as_text(v)}" for k, v in values.items())

    @property
    def typical(self) -> Row:
        """The job with the (lower) median items/s: the one to name for the setting."""
        ranked = sorted(self.ran, key=lambda r: r.job.stat("items_per_second") or 0)
        return ranked[(len(ranked) - 1) // 2] if ranked else self.rows[0]


@dataclasses.dataclass
class Report:
    """Everything sweep.json, sweep.md, sweep.svg and sweep.html show."""

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


def as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def ran_to_end(job: Job) -> bool:
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
    swept = [k for k in keys if len({as_text(j.overrides.get(k, absent)) for j in jobs}) > 1]
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
        key = (as_text(row.job.parallel), *(as_text(v) for v in others.values()))
        points.setdefault(key, Point(row.job.parallel, others, [])).rows.append(row)
    for point in points.values():
        if ran := point.ran:
            point.wall = statistics.median(r.job.stat("wall_seconds") or 0 for r in ran)
            point.rate = statistics.median(r.job.stat("items_per_second") or 0 for r in ran)

    workers = {row.job.parallel for row in rows if row.job.parallel is not None}
    if len(workers) > 1:
        for members in series(list(points.values())).values():
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


def series(points: list[Point]) -> dict[str, list[Point]]:
    """The points with a worker count, by their other swept values, fewest workers first.

    A ``parallel=auto`` job is a series of its own, labelled by the level it settled at.
    """
    series: dict[str, list[Point]] = {}
    for point in sorted(points, key=lambda p: p.parallel or 0):
        if point.parallel is not None:
            if point.others.get(AUTO):
                label = point.settings
            else:
                label = ", ".join(f"{k}={as_text(v)}" for k, v in point.others.items())
            series.setdefault(label, []).append(point)
    if "" in series and len(series) > 1:
        series["fixed worker counts"] = series.pop("")
    return series


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
    return f"Fastest: {best.settings} ({text}){clause}{_still_scaling(report, best)}"


def _still_scaling(report: Report, best: Point) -> str:
    """What to try next when the fastest is the most workers tried and still efficient:
    the sweep stopped before the count where adding workers stops paying."""
    if best.parallel is None or best.efficiency is None or best.efficiency < STILL_SCALING:
        return ""
    if any((p.parallel or 0) > best.parallel for p in report.points if p.others == best.others):
        return ""
    return (
        f"; it is the most workers tried and still {best.efficiency:.0%} efficient: more "
        f"workers may be faster (try parallel={2 * best.parallel})"
    )
