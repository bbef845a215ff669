"""The figures of a run's page (``report.html``), as :mod:`runner.show.figures` draws
them: the histogram of item durations, each worker's row over time, throughput and
concurrency over time, and ``parallel=auto``'s limit."""

from __future__ import annotations

import collections
import math
import re
from collections.abc import Sequence
from typing import Any

from runner.show.figures import (
    COLORS,
    GREY,
    RED,
    Entry,
    Figure,
    Mark,
    Panel,
    step_points,
)
from runner.show.timeline import Timeline

#: Histogram bins per doubling of the duration (each bin 2 ** (1 / 4) = 1.19 times wider).
BINS_PER_DOUBLING = 4
#: Worker rows' labels: characters at most.
ROW_LABEL_CHARS = 22
#: Rate-limited waits drawn at most (the first ones, merged where they overlap).
WAITS_DRAWN = 200


def seconds_text(value: float) -> str:
    """A duration as a reader says it: 120 s, 1.5 s, 2.5 ms, 40 µs."""
    if value >= 100:
        return f"{value:.0f} s"
    if value >= 1:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def histogram(values: Sequence[float]) -> Figure | None:
    """Item counts over duration bins on a log scale (4 bins per doubling); None when
    no item finished."""
    if not values:
        return None
    floor = -30 * BINS_PER_DOUBLING  # about a nanosecond: shorter ones go in the first bin
    # Durations are journaled to the microsecond, so fast items share a few values: each
    # distinct one is placed once (50k no-op items cost 15 ms a value at a time).
    per_key: dict[int, int] = {}
    for v, count in collections.Counter(values).items():
        key = max(math.floor(math.log2(v) * BINS_PER_DOUBLING), floor) if v > 0 else floor
        per_key[key] = per_key.get(key, 0) + count
    low, high = min(per_key), max(per_key)
    counts = [0] * (high - low + 1)
    for key, count in per_key.items():
        counts[key - low] += count

    def upper(i: int) -> str:
        return seconds_text(2.0 ** ((low + i + 1) / BINS_PER_DOUBLING))

    every = max(1, math.ceil(len(counts) / 8))
    bins = list(range(len(counts)))
    titles = [f"{count} item(s) up to {upper(i)}" for i, count in enumerate(counts)]
    panel = Panel(
        "",
        "item duration (log scale; a bar is 19% wider than the one before)",
        "items",
        marks=[Mark("columns", [float(i) for i in bins], [float(c) for c in counts], COLORS[0],
                    "bin", titles=titles)],
        xticks=[(i + 1.0, f"<{upper(i)}") for i in bins if i % every == 0],
        xlim=(0.0, float(len(counts))),
        ytop=max(counts) * 1.05,
    )  # fmt: skip
    return Figure("", [panel], "histogram of item durations", panel_width=680, panel_height=240)


def concurrency(changes: Sequence[dict[str, Any]], end: float) -> Figure:
    """The limit of ``parallel=auto`` over the run's time: a step line."""
    end = float(max(end, changes[-1]["seconds"], 1e-9))
    top = float(max(c["parallel"] for c in changes))
    line = step_points([c["seconds"] for c in changes], [c["parallel"] for c in changes], end)
    panel = Panel(
        "",
        f"seconds since the first item (0 to {end:.1f} s)",
        "items allowed at once",
        marks=[line],
        xlim=(0.0, end),
        ytop=top * 1.1,
    )
    return Figure("", [panel], "items at once over time", panel_width=680, panel_height=220)


def _natural(name: str) -> list[Any]:
    """Sort key: ``thread 10`` after ``thread 9``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _span(start: float, stop: float) -> str:
    return f"{clock_text(start)} to {clock_text(stop)}"


def clock_text(seconds: float) -> str:
    """Seconds from the run's start as a reader says them: 0.25 s, 12.3 s, 4 min 05 s."""
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def timeline_figure(timeline: Timeline) -> Figure:
    """Each worker's row across the run's time: a cell per time bin it was busy in, the
    darker the busier, red where an item failed (Dask's task stream, aggregated: never a
    shape per item)."""
    names = sorted(timeline.busy, key=lambda n: (n == "other workers", _natural(n)))
    count, width = len(names), timeline.width
    busy = Mark("cells", [], [], COLORS[0], "busy")
    failed = Mark("cells", [], [], RED, "failed")
    for row, name in enumerate(names):
        y = count - row  # the first worker on top
        for index, (seconds, failures, items) in enumerate(
            zip(timeline.busy[name], timeline.failures[name], timeline.items[name], strict=True)
        ):
            if seconds <= 0 and items <= 0:
                continue
            start = index * width
            share = seconds / width
            mark = failed if failures else busy
            mark.xs.append(start)
            mark.ends.append(start + width)
            mark.lows.append(y - 0.42)
            mark.ys.append(y + 0.42)
            mark.shades.append(1.0 if failures else 0.2 + 0.8 * min(share, 1.0))
            done = f"{items:,.0f} item(s) ended"
            # A worker of several threads (Dask's) or the shared row runs several at once.
            how = f"busy {share:.0%}" if share <= 1 else f"{share:.1f} running on average"
            title = f"{name}, {_span(start, start + width)}: {done}, {how}"
            if failures:
                title += f", {failures} failed"
            mark.titles.append(title)
    estimate = "" if timeline.step == 1 else f"; estimated from 1 line in {timeline.step}"
    panel = Panel(
        "",
        f"seconds since the run started (bins of {timeline.width:g} s{estimate})",
        "",
        marks=[busy, failed],
        legend=[],
        xlim=(0.0, timeline.end),
        ytop=count + 0.6,
        yticks=[(count - row, _shorten(name)) for row, name in enumerate(names)],
    )
    return Figure(
        "", [panel], "items per worker over time", panel_width=880,
        panel_height=max(150, 80 + 20 * count), margin_left=150,
    )  # fmt: skip


def _shorten(text: str) -> str:
    return text if len(text) <= ROW_LABEL_CHARS else text[: ROW_LABEL_CHARS - 1] + "…"


def _merged(waits: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping waits as one span; the first WAITS_DRAWN spans."""
    spans: list[tuple[float, float]] = []
    for start, stop in waits:
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], stop))
        elif len(spans) < WAITS_DRAWN:
            spans.append((start, stop))
    return spans


def activity_figure(
    timeline: Timeline, changes: Sequence[dict[str, Any]] | None, parallel: Any
) -> Figure:
    """Items finished per second and items running, over the run's time, with the limit
    of items at once (``parallel``, or ``parallel=auto``'s as it moved) and the
    rate-limited waits shaded."""
    width, end = timeline.width, timeline.end
    starts = [index * width for index in range(len(timeline.finished))]
    rate = step_points(starts, [n / width for n in timeline.finished], end)
    rate.gid, rate.color = "throughput", COLORS[0]
    running = [sum(column) / width for column in zip(*timeline.busy.values(), strict=True)]
    level = step_points(starts, running, end)
    level.gid, level.color = "running", COLORS[2]
    marks = [level]
    legend = [Entry("items running (average)", COLORS[2])]
    if changes:
        times = [min(c["seconds"], end) for c in changes]  # a change after the last item
        limit = step_points(times, [c["parallel"] for c in changes], end)
        limit.dashed, limit.color = True, GREY
        marks.append(limit)
        legend.append(Entry("parallel=auto's limit", GREY, dashed=True))
    elif isinstance(parallel, int) and parallel > 0:
        marks.append(Mark("line", [0.0, end], [parallel, parallel], GREY, "limit", dashed=True))
        legend.append(Entry(f"parallel={parallel}", GREY, dashed=True))
    top_rate = max(max(timeline.finished) / width, 1e-9) * 1.15
    # Room above the highest line for the legend.
    top_running = max([*running, *(y for m in marks for y in m.ys), 1.0]) * 1.45
    waits = _merged(timeline.waits)
    waited = [Entry("a rate-limited item waiting", "#ff7f0e", thick=True)] if waits else []
    panels = []
    for title, ylabel, drawn, top, keys in (
        ("items finished per second", "items/s", [rate], top_rate, waited),
        ("items running at once", "items", marks, top_running, legend),
    ):
        shaded = Mark(
            "cells", [a for a, _ in waits], [top] * len(waits), "#ff7f0e", "wait",
            ends=[b for _, b in waits], lows=[0.0] * len(waits), shades=[0.25] * len(waits),
            titles=[f"a rate-limited item waited, {_span(a, b)}" for a, b in waits],
        )  # fmt: skip
        panel = Panel(title, "seconds since the run started", ylabel, [shaded, *drawn], keys)
        panel.xlim, panel.ytop = (0.0, end), top
        panels.append(panel)
    return Figure("", panels, "throughput and concurrency over time", 440, 240)
