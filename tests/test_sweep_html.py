"""sweep.html: a real multirun's page, opened from disk in a real headless Chromium.

Its parts are tried on made-up jobs in tests/test_sweep_report.py; here a real sweep
writes it and a browser draws it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import numpy as np
from matplotlib.image import imread

from tests.browser import rendered_dom, screenshot
from tests.inprocess import run_in_process

#: The colour of the figure's first line (matplotlib's C0, kept), as RGB from 0 to 1.
FIRST_LINE = np.array([0x1F, 0x77, 0xB4]) / 255


def test_a_sweeps_page_shows_its_jobs_verdict_and_plot_and_links_each_job(
    tmp_path: Path,
) -> None:
    """A real sweep's sweep.html, opened from disk, shows one row per job linked to the
    job's own report.html (relative links that resolve), the verdict, and the figure as
    inline SVG the browser draws (sweep.svg holds the same); it has no script and
    fetches nothing."""
    sweep_dir = tmp_path / "sweep"
    proc = run_in_process(
        "-m", "parallel=1,2,4", "source.count=24", "task.seconds=0.02", "progress=off",
        f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, run_dir=tmp_path / "unused",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    page = sweep_dir / "sweep.html"
    text = page.read_text()
    assert "<script" not in text and "https://" not in text
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    report = json.loads((sweep_dir / "sweep.json").read_text())
    dom = rendered_dom(page, tmp_path)

    assert report["fastest"]["verdict"] in dom
    assert "Every job ran without failures." in dom
    for job in report["jobs"]:
        number, parallel = job["job"], job["parallel"]
        link = f'<a href="{number}/report.html">{number}</a>'
        assert f'<td class="n">{link}</td><td class="n">{parallel}</td>' in dom
    svg = (sweep_dir / "sweep.svg").read_text()
    assert svg.startswith("<svg") and svg in text  # the file and the page's figure agree
    [median] = re.findall(r'<polyline class="median" points="([^"]+)"', dom)[:1]
    assert len(median.split()) == len(report["jobs"])  # a point per worker count

    hrefs = re.findall(r'<a href="([^"]+)">', dom)
    job_links = [f"{job['job']}/report.html" for job in report["jobs"]]
    assert hrefs == [*job_links, "sweep.md", "sweep.json", "sweep.svg"]
    targets = [Path(unquote(urlparse(urljoin(page.as_uri(), h)).path)) for h in hrefs]
    assert all(target.is_file() for target in targets)  # resolved as the browser does
    job_dom = rendered_dom(targets[2], tmp_path)
    assert "runner: sleep on range" in job_dom and "parallel=4" in job_dom

    shot = imread(screenshot(page, tmp_path / "sweep-page.png", height=1600))
    drawn = np.all(np.abs(shot[..., :3] - FIRST_LINE) < 0.08, axis=-1)
    assert drawn.sum() > 100  # the figure's line and markers, drawn
