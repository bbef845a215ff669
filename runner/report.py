"""report.html: one self-contained page per run, opened from disk (no network, inline SVG).

It shows the run's figures (``summary.json``), a histogram of item durations (read back
from the journal, sampled when it is long), the slowest items, the failures by error
type, and the sections a post-processor added (``RunContext.report_sections``: the
judge summary of a judge run).
"""

from __future__ import annotations

import html
import math
import os
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from runner.files import atomic_write_text

REPORT_FILE = "report.html"
RIGHT = frozenset({1})  # the second column holds numbers
#: Journal lines read for the histogram at most (evenly spread over a longer journal).
HISTOGRAM_SAMPLE = 50_000
_SECONDS = b'"seconds": '

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 60em;
       color: #1d2430; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 1.8em; }
.sub { color: #5b6577; margin-top: 0; }
table { border-collapse: collapse; margin: .5em 0; }
td, th { border: 1px solid #d5dae3; padding: .25em .6em; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #b3261e; font-weight: 600; } .ok { color: #1b7f3b; font-weight: 600; }
code, pre { font: 12.5px ui-monospace, monospace; }
pre { background: #f5f6f8; padding: .6em; overflow-x: auto; }
svg text { font: 11px system-ui, sans-serif; fill: #1d2430; }
"""


def esc(value: Any) -> str:
    """``value`` as HTML text; a lone surrogate (a name that is not UTF-8) is shown as its
    backslash escape (``\\udcff``), as the console and ``runner.log`` show it."""
    text = str(value)
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return html.escape(text, quote=True)


def page(title: str, subtitle: str, body: Iterable[str]) -> str:
    """A whole HTML document: inline style, no script, nothing fetched."""
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{esc(title)}</h1><p class='sub'>{esc(subtitle)}</p>\n" + "\n".join(body)
    ) + "\n</body></html>\n"


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    numeric: frozenset[int] = frozenset(),
    render: Callable[[str], str] = esc,
) -> str:
    """An HTML table; columns whose index is in ``numeric`` are right-aligned."""

    def cells(tag: str, values: Sequence[Any]) -> str:
        return "".join(
            f"<{tag}{' class=n' if i in numeric else ''}>{render(str(v))}</{tag}>"
            for i, v in enumerate(values)
        )

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f"<table><tr>{cells('th', header)}</tr>{body}</table>"


_STRONG = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def inline(text: str) -> str:
    """Escaped text with Markdown's **strong** and `code` spans."""
    return _CODE.sub(r"<code>\1</code>", _STRONG.sub(r"<strong>\1</strong>", esc(text)))


def markdown(text: str) -> str:
    """The Markdown the summaries write (headings, tables, lists, paragraphs) as HTML."""
    out: list[str] = []
    rows: list[list[str]] = []

    def flush_table() -> None:
        if rows:
            header, *body = rows
            rest = [r for r in body if not set("".join(r)) <= set("-: ")]  # not the |---|
            out.append(table(header, rest, render=inline))
            rows.clear()

    for raw in text.splitlines():
        line = raw.rstrip()
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
            continue
        flush_table()
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 1, 4)
            out.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith(("- ", "* ")):
            out.append(f"<ul><li>{inline(line[2:])}</li></ul>")
        elif line:
            out.append(f"<p>{inline(line)}</p>")
    flush_table()
    return "\n".join(out)


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
            found = []
            read = 0
            for number, line in enumerate(fh):
                read += len(line)
                if number >= lines or read > size:
                    break  # a torn last line, or lines written after the count
                if number % step:
                    continue
                at = line.find(_SECONDS)
                if at >= 0:
                    end = line.find(b",", at)
                    try:
                        found.append(float(line[at + len(_SECONDS) : end]))
                    except ValueError:
                        continue
            return found
    except OSError:
        return []


#: Histogram bins per doubling of the duration (each bin 2 ** (1 / 4) = 1.19 times wider).
BINS_PER_DOUBLING = 4


def histogram_svg(values: Sequence[float], width: int = 640, height: int = 220) -> str:
    """Bars of item counts over duration bins on a log scale (4 bins per doubling)."""
    if not values:
        return "<p>No item finished: nothing to draw.</p>"
    floor = -30 * BINS_PER_DOUBLING  # about a nanosecond: shorter ones go in the first bin
    keys = [
        max(math.floor(math.log2(v) * BINS_PER_DOUBLING), floor) if v > 0 else floor for v in values
    ]
    low, high = min(keys), max(keys)
    counts = [0] * (high - low + 1)
    for key in keys:
        counts[key - low] += 1
    top = max(counts)
    left, bottom = 48, 40
    bar = (width - left - 10) / len(counts)

    def upper(i: int) -> str:
        return _seconds(2.0 ** ((low + i + 1) / BINS_PER_DOUBLING))

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"role='img' aria-label='histogram of item durations'>",
        f"<line x1='{left}' y1='{height - bottom}' x2='{width - 10}' y2='{height - bottom}' "
        "stroke='#5b6577'/>",
        f"<text x='4' y='14'>items</text><text x='{left}' y='{height - 6}'>"
        "item duration (log scale; a bar is 19% wider than the one before)</text>",
        f"<text x='4' y='{height - bottom}'>0</text><text x='4' y='28'>{top}</text>",
    ]
    every = max(1, math.ceil(len(counts) / 8))
    for i, count in enumerate(counts):
        h = (height - bottom - 30) * count / top
        x = left + i * bar
        parts.append(
            f"<rect class='bin' x='{x + 1:.1f}' y='{height - bottom - h:.1f}' "
            f"width='{max(bar - 2, 1):.1f}' height='{h:.1f}' fill='#3b6fd8'>"
            f"<title>{count} item(s) up to {upper(i)}</title></rect>"
        )
        if i % every == 0:
            parts.append(f"<text x='{x + 2:.1f}' y='{height - bottom + 14}'>&lt;{upper(i)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def concurrency_svg(changes: Sequence[dict[str, Any]], end: float, width: int = 640) -> str:
    """The limit of ``parallel=auto`` over the run's time: a step line."""
    height, left, bottom = 200, 48, 40
    top = float(max(c["parallel"] for c in changes))
    end = float(max(end, changes[-1]["seconds"], 1e-9))

    def x(t: float) -> float:
        return left + (width - left - 10) * t / end

    def y(level: float) -> float:
        return height - bottom - (height - bottom - 20) * level / top

    points = []
    for change, after in zip(changes, [*changes[1:], {"seconds": end}], strict=True):
        points += [
            (x(change["seconds"]), y(change["parallel"])),
            (x(after["seconds"]), y(change["parallel"])),
        ]
    path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        "role='img' aria-label='items at once over time'>"
        f"<line x1='{left}' y1='{height - bottom}' x2='{width - 10}' y2='{height - bottom}' "
        "stroke='#5b6577'/>"
        f"<polyline class='limit' points='{path}' fill='none' stroke='#3b6fd8' stroke-width='2'/>"
        f"<text x='4' y='{y(top) + 4:.1f}'>{top:g}</text><text x='4' y='{height - bottom}'>0</text>"
        f"<text x='{left}' y='{height - 6}'>seconds since the first item; items allowed at "
        f"once (0 to {end:.1f} s)</text></svg>"
    )


def _seconds(value: float) -> str:
    if value >= 1:
        return f"{value:g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def run_page(
    summary: dict[str, Any], times: Sequence[float], sections: Iterable[tuple[str, str]]
) -> str:
    """The report of one run, from its summary, item durations and extra sections."""
    s = summary
    verdict = (
        "<span class='bad'>interrupted</span>"
        if s.get("interrupted")
        else f"<span class='bad'>halted: {esc(s['halted'])}</span>"
        if s.get("halted")
        else "<span class='bad'>some items failed</span>"
        if s.get("failed")
        else "<span class='ok'>every item succeeded</span>"
    )
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
    body = [
        f"<p>{verdict}</p>",
        "<h2>Figures</h2>",
        table(["figure", "value"], [(k, "-" if v is None else v) for k, v in figures], RIGHT),
        "<h2>Item durations</h2>",
        histogram_svg(times),
    ]
    slowest = s.get("slowest") or []
    if slowest:
        body += [
            f"<h2>Slowest {len(slowest)} items</h2>",
            table(["item", "seconds"], [(e["id"], e["seconds"]) for e in slowest], RIGHT),
        ]
    failures = s.get("failures_by_type") or {}
    if failures:
        body += [
            "<h2>Failures by error type</h2>",
            table(
                ["error type", "items", "example"],
                [(kind, e["count"], e["example"]) for kind, e in failures.items()],
                RIGHT,
            ),
        ]
    concurrency = s.get("concurrency") or {}
    if concurrency.get("mode") == "auto" and concurrency.get("changes"):
        changes = concurrency["changes"]
        body += [
            "<h2>Concurrency (parallel=auto)</h2>",
            f"<p>Settled at <strong>{esc(concurrency['settled'])}</strong> items at once "
            f"(between {esc(concurrency['min'])} and {esc(concurrency['max'])}); "
            f"{esc(concurrency['rate_limit_signals'])} rate-limit signal(s).</p>",
            concurrency_svg(changes, float(s.get("wall_seconds") or 0.0)),
            table(
                ["at (s)", "items at once", "why"],
                [(c["seconds"], c["parallel"], c["reason"]) for c in changes[:40]],
                frozenset({0, 1}),
            ),
        ]
    for title, text in sections:
        body += [f"<h2>{esc(title)}</h2>", markdown(text)]
    title = f"runner: {s.get('task')} on {s.get('source')}"
    subtitle = (
        f"executor {s.get('executor')}, parallel={s.get('parallel')}, "
        f"post-processor {s.get('postprocessor')}; {s.get('started_at') or 'nothing ran'}"
    )
    return page(title, subtitle, body)


def write_run_report(output_dir: Path, context: Any) -> Path | None:
    """Write ``report.html`` into the run folder; never raises (a page must not cost the
    run its exit code)."""
    path = output_dir / REPORT_FILE
    try:
        text = run_page(
            context.summary,
            durations(output_dir / "results.jsonl"),
            getattr(context, "report_sections", ()),
        )
        atomic_write_text(path, text)
    except Exception as exc:
        logger.opt(exception=exc).warning(f"Could not write {path}: {exc}")
        return None
    return path
