"""sweep.html: a sweep's whole report as one page to open from disk (no script, nothing
fetched, the figure inline), from the ``sweep.html`` template."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from runner.errors import EXIT_OK
from runner.show.pages import markdown_blocks, render
from runner.show.sweep_analysis import Report, Row, verdict
from runner.show.sweep_files import (
    JOB_HEADER,
    REPORT_JSON,
    REPORT_MD,
    REPORT_SVG,
    SETTING_HEADER,
    columns,
    explanation,
    items_text,
    job_cells,
    preamble,
    setting_cells,
    when,
)

#: The page each job's number links to (runner.show.run_page writes it).
JOB_PAGE = "report.html"
NUMERIC = frozenset(["job", "parallel", *JOB_HEADER[:-1], *SETTING_HEADER[1:]])
TROUBLE = {"error": "could not run", "failed_items": "had failed items", "interrupted": "stopped"}


def _job_link(row: Row, sweep_dir: Path, text: str) -> Any:
    """The job's number, linked to its report.html (relative: the page works when the
    sweep folder is moved or copied) when it has one."""
    target = row.job.folder / JOB_PAGE
    if not target.is_file():
        return text
    return {"link": quote(Path(os.path.relpath(target, sweep_dir)).as_posix()), "text": text}


def _numeric(header: list[str]) -> frozenset[int]:
    """The columns of numbers, right-aligned."""
    return frozenset(i for i, name in enumerate(header) if name in NUMERIC)


def to_html(report: Report, sweep_dir: Path, svg: Markup | None) -> str:
    """sweep.html: one self-contained page (no script, nothing fetched, the figure inline)."""
    troubles = Counter(row.job.status for row in report.rows if row.job.status != "ok")
    said = ", ".join(f"{n} job(s) {TROUBLE[status]}" for status, n in troubles.items())
    settings_header = [*columns(report, with_repeats=False), *SETTING_HEADER]
    jobs_header = ["job", *columns(report, with_repeats=True), *JOB_HEADER]
    jobs = []
    for row in report.rows:
        number, *cells, failures = job_cells(report, row)
        bad = row.job.status != "ok"
        jobs.append(
            [_job_link(row, sweep_dir, number), *cells, {"bad": failures} if bad else failures]
        )
    return render(
        "sweep.html",
        title="Sweep report",
        subtitle=f"{len(report.rows)} job(s) of {items_text(report)}, {when(report)}; {sweep_dir}",
        report=report,
        ok=report.exit_code == EXIT_OK,
        troubles=said,
        verdict=verdict(report),
        preamble=markdown_blocks(preamble(report, sweep_dir)),
        svg=svg,
        no_plot=markdown_blocks(f"No plot: {report.no_plot}"),
        settings_header=settings_header,
        settings=[setting_cells(report, p) for p in report.points] if report.repeat_keys else [],
        settings_numeric=_numeric(settings_header),
        jobs_header=jobs_header,
        jobs=jobs,
        jobs_numeric=_numeric(jobs_header),
        explanation=markdown_blocks("\n".join(explanation(report))),
        files=[REPORT_MD, REPORT_JSON] + ([] if report.no_plot else [REPORT_SVG]),
    )
