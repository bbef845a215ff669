"""A sweep's report, written: sweep.json, sweep.md, sweep.svg and sweep.html from what
each job left on disk, and the table and verdict logged.

The parts live in modules named for them: :mod:`~runner.show.sweep_jobs` reads the job
folders, :mod:`~runner.show.sweep_analysis` compares them, :mod:`~runner.show.sweep_files`
writes the Markdown and JSON, :mod:`~runner.show.sweep_figure` draws the figure and
:mod:`~runner.show.sweep_page` lays out the page.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from loguru import logger
from markupsafe import Markup

from runner.errors import EXIT_OK, EXIT_USAGE
from runner.record.files import atomic_write_text
from runner.show.figures import render_svg
from runner.show.sweep_analysis import Report, build_report, verdict
from runner.show.sweep_figure import sweep_figure
from runner.show.sweep_files import (
    REPORT_HTML,
    REPORT_JSON,
    REPORT_MD,
    REPORT_SVG,
    settings_lines,
    table_lines,
    to_json,
    to_markdown,
)
from runner.show.sweep_jobs import find_jobs
from runner.show.sweep_page import to_html


def draw(report: Report) -> Markup:
    """The figure as SVG: sweep.svg's content, and the page's inline figure."""
    return render_svg(sweep_figure(report))


def write_report(
    sweep_dir: str | os.PathLike[str],
    stopped: str | None = None,
    stopped_code: int = EXIT_USAGE,
    planned: list[list[str]] | None = None,
) -> int:
    """Write sweep.json, sweep.md, sweep.svg and sweep.html into ``sweep_dir`` and log the
    table.

    Returns the sweep's exit code: non-zero when any job's is, or when ``stopped`` says
    what ended the sweep early (then at least ``stopped_code``). ``planned``: every job's
    overrides, when known, so that jobs that never ran are named. Each file is written on
    its own: one that cannot be drawn or written costs neither the others nor the code.
    """
    folder = Path(sweep_dir).resolve()
    jobs = find_jobs(folder)
    if not jobs:  # the sweep stopped before its first job: its error says it all
        logger.warning(f"Sweep report: no job folders in {folder}; nothing to report.")
        return stopped_code if stopped else EXIT_OK
    report = build_report(jobs, stopped, stopped_code, planned)
    svg_path, svg = folder / REPORT_SVG, None
    if report.no_plot is None:
        try:
            svg = draw(report)
        except Exception as exc:  # a figure must not cost the table
            logger.opt(exception=exc).warning(f"Could not draw {svg_path}: {exc}")
            report.no_plot = f"drawing it failed: {type(exc).__name__}: {exc}"
    try:
        if svg is None:
            svg_path.unlink(missing_ok=True)  # a figure of an earlier report is not this one's
        else:
            atomic_write_text(svg_path, str(svg))
    except OSError as exc:
        logger.error(f"Could not write {svg_path}: {exc}")
        report.no_plot = report.no_plot or f"writing {REPORT_SVG} failed: {exc}"
    written = []
    renders: list[tuple[str, Callable[[], str]]] = [
        (REPORT_JSON, lambda: json.dumps(to_json(report, folder), indent=2, ensure_ascii=False)),
        (REPORT_MD, lambda: to_markdown(report, folder)),
        (REPORT_HTML, lambda: to_html(report, folder, svg)),
    ]
    for name, render in renders:
        try:
            atomic_write_text(folder / name, render() + ("\n" if name == REPORT_JSON else ""))
        except Exception as exc:  # one file's failure costs neither the others nor the code
            logger.opt(exception=exc).error(f"Could not write {folder / name}: {exc}")
        else:
            written.append(name)
    if written:
        logger.info(f"Sweep report in {folder}: {', '.join(written)}")
    for line in table_lines(report) + settings_lines(report):
        logger.info(line)
    logger.info(verdict(report))
    return report.exit_code
