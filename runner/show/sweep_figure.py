"""A sweep's figure: throughput and efficiency against workers, as two SVG panels."""

from __future__ import annotations

from runner.show.figures import COLORS, GREY, RED, Entry, Figure, Mark, Panel
from runner.show.sweep_analysis import FAILED, Point, Report, as_text, series
from runner.show.sweep_files import items_text, when


def _spread(panel: Panel, points: list[Point], values: list[list[float]], color: str) -> None:
    """Min-max bars of the repeats' values at their worker counts."""
    bars = [(p.parallel or 0, v) for p, v in zip(points, values, strict=True) if v]
    if bars:
        xs = [float(x) for x, _ in bars]
        panel.marks.append(
            Mark("spread", xs, [max(v) for _, v in bars], color, "spread",
                 lows=[min(v) for _, v in bars])
        )  # fmt: skip


def sweep_figure(report: Report) -> Figure:
    """The figure of sweep.svg and sweep.html: throughput and efficiency against workers.

    One line per combination of the other swept values (no legend entry when there is
    one), through each setting's median; repeats as a min-max bar; failed jobs as hollow
    red circles (at 0 when they have no timing); ideal scaling dashed.
    """
    lines = series(report.points)
    single = len(lines) == 1
    workers = sorted({p.parallel for points in lines.values() for p in points if p.parallel})
    ticks = [(float(w), str(w)) for w in workers]
    # Throughput on a linear y axis from 0, with the ideal line, shows the real gain; the
    # second panel is efficiency, not speedup: on linear axes a speedup line is throughput
    # again, and on log-log axes the gap to the diagonal shrinks to a sliver at the
    # counts where it matters. Efficiency (100% = linear scaling) reads the loss at every
    # count on the same scale.
    rate = Panel("Throughput", "workers (parallel, log2 scale)", "items per second", xscale="log2",
                 xticks=ticks)  # fmt: skip
    eff = Panel("Efficiency (100% = linear scaling)", "workers (parallel, log2 scale)",
                "efficiency (speedup / growth in workers)", xscale="log2", xticks=ticks,
                percent=True)  # fmt: skip
    ideal = "ideal (dashed): linear from each line's fewest workers"
    for index, (label, points) in enumerate(lines.items()):
        color = COLORS[0] if single else COLORS[index % len(COLORS)]
        timed = [p for p in points if p.rate]
        scaled = [p for p in timed if p.efficiency is not None]
        rate.marks.append(
            Mark("line", [p.parallel or 0 for p in timed], [p.rate or 0 for p in timed],
                 color, "median", markers=True)
        )  # fmt: skip
        eff.marks.append(
            Mark("line", [p.parallel or 0 for p in scaled], [p.efficiency or 0 for p in scaled],
                 color, "median", markers=True)
        )  # fmt: skip
        if not single:
            rate.legend.append(Entry(label, color, markers=True))
        repeated = [p for p in timed if len(p.ran) > 1]
        rates = [[r.job.stat("items_per_second") or 0 for r in p.ran] for p in repeated]
        _spread(rate, repeated, rates, color)
        effs = [[r.efficiency for r in p.ran if r.efficiency is not None] for p in repeated]
        _spread(eff, repeated, effs, color)
        base = points[0]
        if base.rate and base.parallel:
            if single:
                ideal = f"ideal: linear from parallel={base.parallel} ({base.rate:.1f} items/s)"
            # At the measured counts, joined by straight segments as the measured line is.
            xs = [p.parallel for p in points if p.parallel]
            rate.marks.append(
                Mark("line", [float(x) for x in xs], [base.rate * x / base.parallel for x in xs],
                     GREY if single else color, "ideal", dashed=True)
            )  # fmt: skip
    rate.legend.append(Entry(ideal, GREY, dashed=True))
    if any(len(p.ran) > 1 for p in report.points):
        keys = ", ".join(report.repeat_keys)
        rate.legend.append(
            Entry(f"median of the runs over {keys}; bar: min to max", GREY, markers=True,
                  thick=True)
        )  # fmt: skip
    eff.marks.append(Mark("line", [float(workers[0]), float(workers[-1])], [1.0, 1.0], GREY,
                          "ideal", dashed=True))  # fmt: skip
    eff.legend.append(Entry("ideal (100%)", GREY, dashed=True))
    failed = [r for r in report.rows if r.job.status in FAILED and r.job.parallel]
    if failed:
        where = [float(r.job.parallel or 0) for r in failed]
        rate.marks.append(
            Mark("dots", where, [r.job.stat("items_per_second") or 0 for r in failed], RED,
                 "failed")
        )  # fmt: skip
        eff.marks.append(Mark("dots", where, [r.efficiency or 0 for r in failed], RED, "failed"))
        rate.legend.append(
            Entry("failed job (error, failed items or interrupted; at 0: no timing)", RED,
                  hollow=True)
        )  # fmt: skip
    top = max([p.efficiency or 0 for p in report.points] + [r.efficiency or 0 for r in report.rows])
    eff.ytop = max(1.1, top * 1.08)
    # Room above the highest line for the legend, drawn in the panel's top left.
    rate.ytop = rate.ylim[1] * (1 + 0.09 * len(rate.legend))
    fixed = " ".join(f"{k}={as_text(v)}" for k, v in report.fixed.items())
    title = f"Sweep of {items_text(report)} per job, {when(report)}"
    return Figure(
        title + (f"\n{fixed[:140]}" if fixed else ""),
        [rate, eff],
        "items per second and efficiency against workers",
    )
