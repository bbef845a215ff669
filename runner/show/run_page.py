"""report.html: one self-contained page per run, opened from disk (no network, no script,
figures as inline SVG), from the ``run.html`` template.

It shows the run's figures (``summary.json``), a histogram of item durations (read back
from the journal, sampled when it is long), the slowest items, the failures by error
type, and the sections a post-processor added (``RunContext.report_sections``: the
judge summary of a judge run).
"""

from __future__ import annotations

import collections
import datetime as dt
import math
import re
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from loguru import logger
from markupsafe import Markup

from runner.errors import WriteError
from runner.record.files import atomic_write_text
from runner.record.streams import STREAMS_FILE
from runner.show.figures import (
    COLORS,
    GREY,
    RED,
    Entry,
    Figure,
    Mark,
    Panel,
    render_svg,
    step_points,
)
from runner.show.labels import parallel_text
from runner.show.pages import markdown_blocks, render
from runner.show.timeline import Reading, Timeline, read_journal

REPORT_FILE = "report.html"
#: Journal lines read for the histogram at most (evenly spread over a longer journal).
HISTOGRAM_SAMPLE = 20_000
#: Histogram bins per doubling of the duration (each bin 2 ** (1 / 4) = 1.19 times wider).
BINS_PER_DOUBLING = 4
#: Worker rows' labels: characters at most.
ROW_LABEL_CHARS = 22
#: Rate-limited waits drawn at most (the first ones, merged where they overlap).
WAITS_DRAWN = 200


def durations(journal: Path, sample: int = HISTOGRAM_SAMPLE) -> list[float]:
    """Item durations from the journal (every line, or an even sample of a long one).

    Only a regular file is read, and no further than its size when opened: a journal
    that is a device (``/dev/full``) or keeps growing is not read for ever.
    """
    return list(read_journal(journal, durations=sample).durations)


def _seconds(value: float) -> str:
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
        return _seconds(2.0 ** ((low + i + 1) / BINS_PER_DOUBLING))

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
    return f"{_clock(start)} to {_clock(stop)}"


def _clock(seconds: float) -> str:
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


def _human_time(stamp: Any) -> str | None:
    """An ISO stamp as a reader says it: 6 Dec 2026, 08:34:39 UTC."""
    if not isinstance(stamp, str):
        return None
    try:
        when = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    zone = when.tzname() or ""
    return f"{when.day} {when:%b %Y, %H:%M:%S} {'UTC' if zone in ('UTC', 'UTC+00:00') else zone}"


def _rate(value: Any) -> str | None:
    if not isinstance(value, (int, float)):
        return None
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _wall(value: Any) -> str | None:
    if not isinstance(value, (int, float)):
        return None
    return _seconds(value) if value < 60 else _clock(value)


def _verdict(s: dict[str, Any]) -> tuple[str, str]:
    """The run's outcome in words, and its class on the page (ok or bad)."""
    if s.get("interrupted"):
        return "interrupted", "bad"
    if s.get("halted"):
        return f"halted: {s['halted']}", "bad"
    if s.get("failed"):
        return "some items failed", "bad"
    return "every item succeeded", "ok"


def _failed_rows(reading: Reading, run_dir: str, streams: bool) -> list[list[Any]]:
    """The failed items' table: id, error, attempts, and the command that shows more."""
    quoted = shlex.quote(run_dir)
    rows: list[list[Any]] = []
    for item_id, error, attempts, line in reading.failed:
        if streams:
            how = f"python -m runner.streams {quoted} -- {shlex.quote(item_id)}"
        else:
            how = f"sed -n {line}p {shlex.quote(run_dir + '/results.jsonl')}"
        rows.append([item_id, error, attempts, {"spans": [("code", how)]}])
    return rows


def run_page(
    summary: dict[str, Any],
    times: Sequence[float],
    sections: Iterable[tuple[str, str]],
    reading: Reading | None = None,
    run_dir: str = "RUN",
    streams: bool = False,
) -> str:
    """The report of one run, from its summary, item durations and extra sections;
    ``reading``: what its journal says over time (the timeline, the failed items);
    ``run_dir`` and ``streams``: its folder as commands name it, and whether it kept
    items' output (``python -m runner.streams``)."""
    s = summary
    figures = [
        ("items finished", s.get("total")),
        ("succeeded", s.get("succeeded")),
        ("failed", s.get("failed")),
        ("did not run", s.get("skipped")),
        ("wall time (first start to last finish)", _wall(s.get("wall_seconds"))),
        ("items per second", _rate(s.get("items_per_second"))),
        ("parallel", s.get("parallel")),
        ("rate-limit pauses", s.get("rate_limit_pauses")),
        ("started", _human_time(s.get("started_at"))),
        ("finished", _human_time(s.get("finished_at"))),
        ("resumed from", s.get("resumed_from")),
        # With ``items finished``, every line of the journal: the resumed run's successes
        # head it.
        (
            "succeeded in the run resumed",
            s.get("already_succeeded") if s.get("resumed_from") else None,
        ),
    ]
    drawn = histogram(times)
    auto = s.get("concurrency") or {}
    changes = auto.get("changes") if auto.get("mode") == "auto" else None
    limit: Markup | None = None
    if changes:
        limit = render_svg(concurrency(changes, float(s.get("wall_seconds") or 0.0)))
    timeline = None if reading is None else reading.timeline
    verdict, outcome = _verdict(s)
    failed_rows = [] if reading is None else _failed_rows(reading, run_dir, streams)
    return render(
        "run.html",
        title=f"runner: {s.get('task')} on {s.get('source')}",
        subtitle=(
            f"executor {s.get('executor')}, "
            f"parallel={parallel_text(s.get('parallel'), s.get('concurrency'))}, "
            f"post-processor {s.get('postprocessor')}; "
            f"{_human_time(s.get('started_at')) or 'nothing ran'}"
        ),
        verdict=verdict,
        outcome=outcome,
        figures=[[k, v] for k, v in figures],
        histogram=None if drawn is None else render_svg(drawn),
        timeline=None if timeline is None else render_svg(timeline_figure(timeline)),
        activity=None
        if timeline is None
        else render_svg(activity_figure(timeline, changes, s.get("parallel"))),
        untimed=0 if timeline is None else timeline.untimed,
        failed=failed_rows,
        failed_more=max((reading.failed_count if reading else 0) - len(failed_rows), 0),
        slowest=[[e["id"], _seconds(e["seconds"])] for e in s.get("slowest") or []],
        failures=[
            [k, e["count"], e["example"]] for k, e in (s.get("failures_by_type") or {}).items()
        ],
        concurrency=auto if changes else None,
        limit=limit,
        changes=[[c["seconds"], c["parallel"], c["reason"]] for c in (changes or [])[:40]],
        sections=[(title, markdown_blocks(text)) for title, text in sections],
    )


def write_run_report(output_dir: Path, context: Any) -> WriteError | None:
    """Write ``report.html`` into the run folder; never raises.

    A page that cannot be made (a bug, a journal that cannot be read) costs a warning, not
    the run its exit code; a page the disk refuses is returned, for the run to end with
    (exit 74) unless it already ends with another error.
    """
    path = output_dir / REPORT_FILE
    try:
        summary = context.summary
        # A resumed run's journal starts with the earlier run's successes, timed from
        # that run's start: they are not drawn on this run's timeline.
        skip = summary.get("already_succeeded") or 0 if summary.get("resumed_from") else 0
        reading = read_journal(output_dir / "results.jsonl", skip, HISTOGRAM_SAMPLE)
        text = run_page(
            summary,
            reading.durations,
            getattr(context, "report_sections", ()),
            reading,
            str(output_dir),
            (output_dir / STREAMS_FILE).is_file(),
        )
    except Exception as exc:
        message = f"Could not make {path}: {type(exc).__name__}: {exc}".splitlines()[0]
        logger.warning(message)
        logger.bind(file_only=True).opt(exception=exc).info(f"Traceback of: {message}")
        return None
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        return WriteError(path, exc)
    return None
