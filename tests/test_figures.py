"""runner/show/figures.py: figures drawn as SVG from marks in data units."""

from __future__ import annotations

import itertools
import re

from runner.show.figures import Entry, Figure, Mark, Panel, nice_ticks, render_svg


def test_ticks_are_round_steps_from_zero() -> None:
    """Steps of 1, 2 or 5 times a power of ten, from 0 up to the top."""
    assert nice_ticks(1.1) == [0.0, 0.5, 1.0]
    assert nice_ticks(230) == [0, 50, 100, 150, 200]
    assert nice_ticks(0) == [0.0]


def test_a_log2_axis_spaces_each_doubling_alike_and_heights_start_at_zero() -> None:
    """Points at 1, 2, 4, 8 workers are evenly spaced; a value of 0 sits on the x axis."""
    line = Mark("line", [1, 2, 4, 8], [0, 10, 20, 40], "#1f77b4", "median", markers=True)
    panel = Panel("t", "x", "y", marks=[line], xscale="log2", xticks=[(1, "1"), (8, "8")])
    svg = render_svg(Figure("", [panel], "a line"))
    [points] = re.findall(r'<polyline class="median" points="([^"]+)"', svg)
    xs = [float(p.split(",")[0]) for p in points.split()]
    ys = [float(p.split(",")[1]) for p in points.split()]
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(xs)]
    assert len(set(gaps)) == 1 and gaps[0] > 0
    [axis] = [p for p in re.findall(r'class="axis" points="([^"]+)"', svg) if p.count(" ") == 2]
    assert ys[0] == float(axis.split()[1].split(",")[1])  # 0 is the x axis's height
    assert svg.count('<circle class="median"') == 4


def test_labels_and_tooltips_are_text_never_markup() -> None:
    """A label holding markup is escaped by the template."""
    evil = "<script>alert(1)</script>"
    bars = Mark("columns", [0, 1], [3, 4], "#1f77b4", "bin", titles=[evil, 'a&b"c'])
    panel = Panel(evil, evil, evil, marks=[bars], legend=[Entry(evil, "#000")])
    svg = render_svg(Figure(evil, [panel], evil))
    assert "<script" not in svg and svg.count("&lt;script&gt;") == 7
    assert "<title>a&amp;b&#34;c</title>" in svg
