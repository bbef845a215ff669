"""report.html: one self-contained page per run, opened from disk (no network, no script,
figures as inline SVG), from the ``run.html`` template.

It shows the run's figures (``summary.json``), a histogram of item durations (read back
from the journal, sampled when it is long), the slowest items, the failures by error
type, and the sections a post-processor added (``RunContext.report_sections``: the
judge summary of a judge run).
"""

from __future__ import annotations

import collections
import math
import os
import re
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from loguru import logger
from markupsafe import Markup

from runner.errors import WriteError
from runner.record.files import atomic_write_text
from runner.show.figures import COLORS, Figure, Mark, Panel, render_svg, step_points
from runner.show.labels import parallel_text
from runner.show.pages import markdown_blocks, render

REPORT_FILE = "report.html"
#: Journal lines read for the histogram at most (evenly spread over a longer journal).
HISTOGRAM_SAMPLE = 50_000
#: Histogram bins per doubling of the duration (each bin 2 ** (1 / 4) = 1.19 times wider).
BINS_PER_DOUBLING = 4
#: A line's first ``"seconds": `` and its value (up to a comma); the rest of the line is
#: matched too, so that the next match is on a later line.
_SECONDS = re.compile(rb'"seconds": ([^,\n]*)[^\n]*')


def _number(text: bytes) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def durations(journal: Path, sample: int = HISTOGRAM_SAMPLE) -> list[float]:
    """Item durations from the journal (every line, or an even sample of a long one).

    Only a regular file is read, and no further than its size when opened: a journal
    that is a device (``/dev/full``) or keeps growing is not read for ever.
    """
    try:
        with open(journal, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                return []
            size, lines, left = info.st_size, 0, info.st_size
            while left > 0 and (chunk := fh.read(min(1 << 20, left))):
                lines += chunk.count(b"\n")
                left -= len(chunk)
            fh.seek(0)
            step = max(1, math.ceil(lines / sample))
            found: list[float] = []
            # A block at a time: its lines split and its sampled ones searched at once (a
            # line at a time cost about 40 ms per 100k lines at the end of every run).
            number, left = 0, size  # the next line's number
            torn: list[bytes] = []  # the start of a line a later block ends (or a torn one)
            while left > 0 and number < lines and (chunk := fh.read(min(1 << 20, left))):
                left -= len(chunk)
                cut = chunk.rfind(b"\n")
                if cut < 0:
                    torn.append(chunk)
                    continue
                whole = b"".join([*torn, chunk[:cut]]).split(b"\n")
                torn = [chunk[cut + 1 :]]
                del whole[lines - number :]  # lines written after the count
                first, number = -number % step, number + len(whole)
                texts = _SECONDS.findall(b"\n".join(whole[first::step]))
                try:
                    values = list(map(float, texts))
                except ValueError:  # not a number: that line is left out
                    values = [value for value in map(_number, texts) if value is not None]
                found += values
            return found
    except OSError:
        return []


def _seconds(value: float) -> str:
    if value >= 1:
        return f"{value:g} s"
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


def _verdict(s: dict[str, Any]) -> tuple[str, str]:
    """The run's outcome in words, and its class on the page (ok or bad)."""
    if s.get("interrupted"):
        return "interrupted", "bad"
    if s.get("halted"):
        return f"halted: {s['halted']}", "bad"
    if s.get("failed"):
        return "some items failed", "bad"
    return "every item succeeded", "ok"


def run_page(
    summary: dict[str, Any], times: Sequence[float], sections: Iterable[tuple[str, str]]
) -> str:
    """The report of one run, from its summary, item durations and extra sections."""
    s = summary
    figures = [
        ("items finished", s.get("total")),
        ("succeeded", s.get("succeeded")),
        ("failed", s.get("failed")),
        ("did not run", s.get("skipped")),
        ("wall seconds (first start to last finish)", s.get("wall_seconds")),
        ("items per second", s.get("items_per_second")),
        ("parallel", s.get("parallel")),
        ("rate-limit pauses", s.get("rate_limit_pauses")),
        ("started", s.get("started_at")),
        ("finished", s.get("finished_at")),
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
    verdict, outcome = _verdict(s)
    return render(
        "run.html",
        title=f"runner: {s.get('task')} on {s.get('source')}",
        subtitle=(
            f"executor {s.get('executor')}, "
            f"parallel={parallel_text(s.get('parallel'), s.get('concurrency'))}, "
            f"post-processor {s.get('postprocessor')}; {s.get('started_at') or 'nothing ran'}"
        ),
        verdict=verdict,
        outcome=outcome,
        figures=[[k, v] for k, v in figures],
        histogram=None if drawn is None else render_svg(drawn),
        slowest=[[e["id"], e["seconds"]] for e in s.get("slowest") or []],
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
        text = run_page(
            context.summary,
            durations(output_dir / "results.jsonl"),
            getattr(context, "report_sections", ()),
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
