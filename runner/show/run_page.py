"""report.html: one self-contained page per run, opened from disk (no network, no script,
figures as inline SVG), from the ``run.html`` template.

It shows the run's figures (``summary.json``), a histogram of item durations (read back
from the journal, sampled when it is long), the slowest items, the failures by error
type, and the sections a post-processor added (``RunContext.report_sections``: the
judge summary of a judge run). The figures are drawn in :mod:`runner.show.run_figures`.
"""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from loguru import logger
from markupsafe import Markup

from runner.errors import WriteError
from runner.record.files import atomic_write_text
from runner.record.streams import STREAMS_FILE
from runner.show.figures import render_svg
from runner.show.labels import parallel_text
from runner.show.pages import markdown_blocks, render
from runner.show.run_figures import (
    activity_figure,
    clock_text,
    concurrency,
    histogram,
    seconds_text,
    timeline_figure,
)
from runner.show.timeline import Reading, read_journal

REPORT_FILE = "report.html"
#: Journal lines read for the histogram at most (evenly spread over a longer journal).
HISTOGRAM_SAMPLE = 20_000


def durations(journal: Path, sample: int = HISTOGRAM_SAMPLE) -> list[float]:
    """Item durations from the journal (every line, or an even sample of a long one).

    Only a regular file is read, and no further than its size when opened: a journal
    that is a device (``/dev/full``) or keeps growing is not read for ever.
    """
    return list(read_journal(journal, durations=sample).durations)


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
    return seconds_text(value) if value < 60 else clock_text(value)


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
        slowest=[[e["id"], seconds_text(e["seconds"])] for e in s.get("slowest") or []],
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
