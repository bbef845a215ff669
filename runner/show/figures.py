"""Figures as inline SVG, drawn from a small model: a figure holds panels, a panel holds
marks in data units (lines, columns, min-max spreads, dots), and one template turns the
laid-out shapes into SVG, autoescaped.

Why not matplotlib, which drew sweep.png before: report.html is written at the end of
every run, and importing matplotlib and drawing one histogram with it cost 1.3 s + 0.8 s
here (``from matplotlib.figure import Figure`` and a 50,000-value ``hist`` saved as SVG,
on this 2-core VM, against 0.6 s for a whole ``import hydra, omegaconf``): more than a
short run itself takes. These figures need straight lines, bars, circles and text on a
linear or log-2 axis, so both pages draw them here, and the sweep's figure is also
written as sweep.svg, which sweep.md shows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Literal

from markupsafe import Markup

from runner.show.pages import environment

#: The colours of the series, in order (matplotlib's tab10, so the look is unchanged).
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
GREY, RED = "#7f7f7f", "#d62728"


@dataclasses.dataclass
class Mark:
    """One drawn thing, in data units: a line through points, columns from 0 up to ``ys``,
    a bar from ``lows`` to ``ys`` at each x (a spread), dots (hollow circles), or cells:
    rectangles from ``xs`` to ``ends`` across and from ``lows`` to ``ys`` up, each as
    opaque as its ``shades`` value (a timeline's busy spells, a shaded span of time)."""

    kind: Literal["line", "columns", "spread", "dots", "cells"]
    xs: list[float]
    ys: list[float]
    color: str
    gid: str  # the shapes' class on the page: how a reader (or a test) finds them
    dashed: bool = False
    markers: bool = False  # a line with a circle at each point
    lows: list[float] = dataclasses.field(default_factory=list)  # a spread's lower ends
    titles: list[str] = dataclasses.field(default_factory=list)  # a tooltip per column
    ends: list[float] = dataclasses.field(default_factory=list)  # cells' right edges
    shades: list[float] = dataclasses.field(default_factory=list)  # cells' opacity, 0 to 1


@dataclasses.dataclass
class Entry:
    """A legend line: a sample of the mark, and what it means."""

    label: str
    color: str
    dashed: bool = False
    markers: bool = False
    hollow: bool = False
    thick: bool = False


@dataclasses.dataclass
class Panel:
    """One chart: axes from 0 up, a linear or log-2 x axis, its marks and legend."""

    title: str
    xlabel: str
    ylabel: str
    marks: list[Mark] = dataclasses.field(default_factory=list)
    legend: list[Entry] = dataclasses.field(default_factory=list)
    xscale: Literal["linear", "log2"] = "linear"
    xticks: list[tuple[float, str]] | None = None  # None: about five, from the data
    xlim: tuple[float, float] | None = None  # None: the data's, padded on a log axis
    ytop: float | None = None  # None: the highest value, and a bit of room
    yticks: list[tuple[float, str]] | None = None  # None: round values from 0 (no grid else)
    percent: bool = False  # y tick labels as percentages of 1

    def lines(self, gid: str) -> list[Mark]:
        """The marks of that class."""
        return [mark for mark in self.marks if mark.gid == gid]

    @property
    def ylim(self) -> tuple[float, float]:
        """The y axis: always from 0, so heights compare honestly."""
        if self.ytop is not None:
            return 0.0, self.ytop
        values = [y for mark in self.marks for y in mark.ys if math.isfinite(y)]
        return 0.0, max(values, default=1.0) * 1.08 or 1.0


@dataclasses.dataclass
class Figure:
    """Panels side by side under a title."""

    title: str
    panels: list[Panel]
    label: str  # what the figure shows, for a reader who cannot see it
    panel_width: int = 520
    panel_height: int = 300
    margin_left: int = 64  # room for the y axis's labels (a timeline's worker names)


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to ``top``: steps of 1, 2 or 5 times a power of ten."""
    if top <= 0:
        return [0.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(top / step + 1e-9) + 1)]


def _label(value: float, percent: bool) -> str:
    return f"{value:.0%}" if percent else f"{value:g}"


@dataclasses.dataclass
class _Axes:
    """Maps a panel's data units to pixels inside its box."""

    panel: Panel
    left: float
    top: float
    width: float
    height: float

    def __post_init__(self) -> None:
        xs = [x for mark in self.panel.marks for x in mark.xs]
        low, high = self.panel.xlim or (min(xs, default=0.0), max(xs, default=1.0))
        if self.panel.xscale == "log2":
            low, high = math.log2(max(low, 1e-12)), math.log2(max(high, 1e-12))
            pad = max(high - low, 1.0) * 0.06  # markers at either end are drawn whole
            low, high = low - pad, high + pad
        self.xrange = (low, high if high > low else low + 1)

    def x(self, value: float) -> float:
        if self.panel.xscale == "log2":
            value = math.log2(max(value, 1e-12))
        low, high = self.xrange
        return self.left + self.width * (value - low) / (high - low)

    def y(self, value: float) -> float:
        top = self.panel.ylim[1] or 1.0
        return self.top + self.height * (1 - min(max(value, 0.0), top) / top)


def _head(figure: Figure) -> int:
    """The room above the panels: the figure's title lines, and each panel's title."""
    return 24 + (16 * (figure.title.count("\n") + 1) + 8 if figure.title else 0)


def _shapes(figure: Figure) -> dict[str, list[dict[str, object]]]:
    """Every shape of the figure in pixels, by kind, for the template."""
    shapes: dict[str, list[dict[str, object]]] = {
        k: [] for k in ("rects", "lines", "circles", "texts")
    }
    lines, texts = shapes["lines"], shapes["texts"]
    margin_left, margin_bottom, head = figure.margin_left, 46, _head(figure)
    for index, panel in enumerate(figure.panels):
        box_left = index * figure.panel_width
        ax = _Axes(
            panel,
            box_left + margin_left,
            head,
            figure.panel_width - margin_left - 30,
            figure.panel_height - margin_bottom - 24,
        )
        bottom, right = ax.top + ax.height, ax.left + ax.width
        if panel.yticks is None:
            for value in nice_ticks(panel.ylim[1] / 1.0001):
                y = ax.y(value)
                lines.append({"points": f"{ax.left},{y:.1f} {right},{y:.1f}", "cls": "grid"})
                texts.append(
                    {
                        "x": ax.left - 4,
                        "y": y + 4,
                        "anchor": "end",
                        "text": _label(value, panel.percent),
                    }
                )
        for value, text in panel.yticks or ():  # named rows: a label each, no grid
            texts.append({"x": ax.left - 4, "y": ax.y(value) + 4, "anchor": "end", "text": text})
        ticks = panel.xticks
        if ticks is None:
            low, high = panel.xlim or (0.0, 1.0)
            ticks = [(v, f"{v:g}") for v in nice_ticks(high) if v >= low]
        for value, text in ticks:
            x = ax.x(value)
            lines.append({"points": f"{x:.1f},{bottom} {x:.1f},{bottom + 4}", "cls": "axis"})
            texts.append({"x": x, "y": bottom + 16, "anchor": "middle", "text": text})
        lines.append(
            {"points": f"{ax.left},{ax.top} {ax.left},{bottom} {right},{bottom}", "cls": "axis"}
        )
        texts += [
            {
                "x": (ax.left + right) / 2,
                "y": ax.top - 8,
                "anchor": "middle",
                "text": panel.title,
                "cls": "title",
            },
            {
                "x": (ax.left + right) / 2,
                "y": bottom + 34,
                "anchor": "middle",
                "text": panel.xlabel,
            },
            {
                "x": box_left + 14,
                "y": (ax.top + bottom) / 2,
                "anchor": "middle",
                "text": panel.ylabel,
                "rotate": True,
            },
        ]
        for mark in panel.marks:
            _draw(mark, ax, shapes)
        for row, entry in enumerate(panel.legend):
            _entry(entry, ax.left + 10, ax.top + 12 + 16 * row, shapes)
    return shapes


def _draw(mark: Mark, ax: _Axes, shapes: dict[str, list[dict[str, object]]]) -> None:
    if mark.kind == "cells":
        _cells(mark, ax, shapes["rects"])
        return
    points = [(ax.x(x), ax.y(y)) for x, y in zip(mark.xs, mark.ys, strict=True)]
    if mark.kind == "columns":
        edge = ax.x(mark.xs[1]) - ax.x(mark.xs[0]) if len(mark.xs) > 1 else ax.width
        base = ax.y(0)
        for (px, py), title in zip(points, mark.titles or [""] * len(points), strict=True):
            shapes["rects"].append(
                {
                    "x": px + 1,
                    "y": py,
                    "w": max(edge - 2, 1),
                    "h": base - py,
                    "fill": mark.color,
                    "cls": mark.gid,
                    "title": title,
                }
            )
    elif mark.kind == "spread":
        for (px, py), low in zip(points, mark.lows, strict=True):
            shapes["lines"].append(
                {
                    "points": f"{px:.1f},{ax.y(low):.1f} {px:.1f},{py:.1f}",
                    "stroke": mark.color,
                    "width": 3,
                    "opacity": 0.45,
                    "cls": mark.gid,
                }
            )
    elif mark.kind == "dots":
        for px, py in points:
            shapes["circles"].append(
                {
                    "x": px,
                    "y": py,
                    "r": 5.5,
                    "fill": "none",
                    "stroke": mark.color,
                    "width": 1.8,
                    "cls": mark.gid,
                }
            )
    else:
        shapes["lines"].append(
            {
                "points": " ".join(f"{px:.1f},{py:.1f}" for px, py in points),
                "stroke": mark.color,
                "width": 1 if mark.dashed else 2,
                "dash": mark.dashed,
                "cls": mark.gid,
            }
        )
        if mark.markers:
            for px, py in points:
                shapes["circles"].append(
                    {"x": px, "y": py, "r": 3.5, "fill": mark.color, "cls": mark.gid}
                )


def _cells(mark: Mark, ax: _Axes, rects: list[dict[str, object]]) -> None:
    titles = mark.titles or [""] * len(mark.xs)
    shades = mark.shades or [1.0] * len(mark.xs)
    for x0, x1, low, high, title, shade in zip(
        mark.xs, mark.ends, mark.lows, mark.ys, titles, shades, strict=True
    ):
        left, top = ax.x(x0), ax.y(high)
        rects.append(
            {
                "x": left,
                "y": top,
                # At least a pixel wide: a short spell stays visible.
                "w": max(ax.x(x1) - left, 1.0),
                "h": max(ax.y(low) - top, 1.0),
                "fill": mark.color,
                "opacity": round(min(max(shade, 0.0), 1.0), 2),
                "cls": mark.gid,
                "title": title,
            }
        )


def _entry(entry: Entry, x: float, y: float, shapes: dict[str, list[dict[str, object]]]) -> None:
    sample: dict[str, object] = {
        "points": f"{x},{y} {x + 22},{y}",
        "stroke": entry.color,
        "width": 3 if entry.thick else 1.5,
        "dash": entry.dashed,
        "cls": "key",
    }
    if not entry.hollow:
        shapes["lines"].append(sample)
    if entry.markers or entry.hollow:
        fill = "none" if entry.hollow else entry.color
        shapes["circles"].append(
            {
                "x": x + 11,
                "y": y,
                "r": 5.5 if entry.hollow else 3.5,
                "fill": fill,
                "stroke": entry.color,
                "width": 1.8,
                "cls": "key",
            }
        )
    shapes["texts"].append(
        {"x": x + 28, "y": y + 4, "anchor": "start", "text": entry.label, "cls": "key"}
    )


def render_svg(figure: Figure) -> Markup:
    """The figure as an ``<svg>`` element (a whole SVG file's content, too)."""
    width = figure.panel_width * len(figure.panels)
    height = figure.panel_height + _head(figure) - 24
    text = (
        environment()
        .get_template("figure.svg")
        .render(figure=figure, width=width, height=height, **_shapes(figure))
    )
    return Markup(text)  # the template escaped every value it put in


def step_points(times: Sequence[float], levels: Sequence[float], end: float) -> Mark:
    """A step line: each level held from its time to the next one's (the last to ``end``)."""
    xs: list[float] = []
    ys: list[float] = []
    for start, stop, level in zip(times, [*times[1:], end], levels, strict=True):
        xs += [start, stop]
        ys += [level, level]
    return Mark("line", xs, ys, COLORS[0], "limit")
