"""Sweep reports: after a multirun, one table, plot and verdict across all its jobs.

``SweepReport`` (a Hydra callback) and ``finish_sweep`` (called by the CLI, since Hydra
skips ``on_multirun_end`` when a job raises) write ``sweep.json``, ``sweep.md`` and
``sweep.png`` into the sweep folder; ``runner/sweep_report.py`` builds their content.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from loguru import logger
from omegaconf import DictConfig

from runner.errors import EXIT_OK, EXIT_USAGE
from runner.files import atomic_write_json, atomic_write_text

#: What every job leaves in its folder for the report: its exit code and one-line error.
STATUS_FILE = "job.json"

# The running sweep's folder, set by SweepReport and read by finish_sweep().
_sweep_dir: Path | None = None
# The overrides of every job the sweep will launch, in job-number order (None: unknown).
_planned: list[list[str]] | None = None
#: Exit code of the sweep whose report was written last (None until then).
last_exit_code: int | None = None


def write_job_status(output_dir: str | os.PathLike[str], code: int, error: str | None) -> None:
    """Record a job's exit code and one-line error in ``<output_dir>/job.json``; never raises."""
    try:
        atomic_write_json(Path(output_dir) / STATUS_FILE, {"code": code, "error": error or None})
    except OSError as exc:
        logger.warning(f"Could not write {STATUS_FILE} in {output_dir}: {exc}")


def write_report(
    sweep_dir: str | os.PathLike[str], stopped: str | None = None, stopped_code: int = EXIT_USAGE
) -> int:
    """Write sweep.json, sweep.md and sweep.png into ``sweep_dir`` and log the table.

    Returns the sweep's exit code: non-zero when any job's is, or when ``stopped`` says
    what ended the sweep early (then at least ``stopped_code``).
    """
    # Only the end of a multirun needs the report builder: single runs never import it.
    from runner.sweep_report import (
        REPORT_JSON,
        REPORT_MD,
        REPORT_PNG,
        build_report,
        draw_plot,
        find_jobs,
        table_lines,
        to_json,
        to_markdown,
        verdict,
    )

    folder = Path(sweep_dir).resolve()
    jobs = find_jobs(folder)
    if not jobs:  # the sweep stopped before its first job: its error says it all
        logger.warning(f"Sweep report: no job folders in {folder}; nothing to report.")
        return stopped_code if stopped else EXIT_OK
    report = build_report(jobs, stopped, stopped_code, _planned)
    png = folder / REPORT_PNG
    if report.no_plot is None:
        try:
            draw_plot(report, png)
        except Exception as exc:  # a plot must not cost the table
            logger.opt(exception=exc).warning(f"Could not draw {png}: {exc}")
            report.no_plot = f"drawing it failed: {type(exc).__name__}: {exc}"
    if report.no_plot is not None:
        png.unlink(missing_ok=True)
    try:
        atomic_write_json(folder / REPORT_JSON, to_json(report, folder))
        atomic_write_text(folder / REPORT_MD, to_markdown(report, folder))
    except OSError as exc:
        logger.error(f"Could not write the sweep report in {folder}: {exc}")
    else:
        logger.info(f"Sweep report: {folder / REPORT_MD}")
    for line in table_lines(report):
        logger.info(line)
    logger.info(verdict(report))
    return report.exit_code


def finish_sweep(stopped: str | None = None, stopped_code: int = EXIT_USAGE) -> int | None:
    """The exit code of the sweep that just ended, or None if no sweep ran.

    Called by the CLI after Hydra returns or raises. Writes the report first if
    SweepReport.on_multirun_end did not (Hydra skips it when a job raises or the sweep
    stops early). Never raises: a broken report costs the report, not the exit code.
    """
    global _sweep_dir, last_exit_code
    sweep_dir, code = _sweep_dir, last_exit_code
    _sweep_dir, last_exit_code = None, None
    if sweep_dir is None or (code is not None and not stopped):
        return code
    try:
        return write_report(sweep_dir, stopped, stopped_code)
    except Exception as exc:
        logger.opt(exception=exc).error(f"Could not write the sweep report: {exc}")
        return None


def planned_jobs(config: DictConfig) -> list[list[str]] | None:
    """Every job's overrides as Hydra's basic sweeper will launch them, or None.

    Known for the basic sweeper (the default), whose jobs are the product of the swept
    values in order; for another sweeper, or an override it cannot expand here (a glob
    over config options), the report simply cannot name the jobs that never ran.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        hydra = config.hydra
        if "BasicSweeper" not in str(hydra.sweeper.get("_target_", "")):
            return None
        params = hydra.sweeper.get("params") or {}
        arguments = [f"{k}={v}" for k, v in params.items()] + list(hydra.overrides.task)
        overrides = OverridesParser.create().parse_overrides(arguments)
        # As the basic sweeper orders its jobs: the product of each key's values, keys
        # in order of first appearance, a later override of a key replacing the earlier.
        values: dict[str, list[str]] = {}
        for override in overrides:
            key = override.get_key_element()
            if override.is_sweep_override():
                if not override.is_discrete_sweep():
                    return None
                values[key] = [f"{key}={v}" for v in override.sweep_string_iterator()]
            else:
                values[key] = [f"{key}={override.get_value_element_as_str()}"]
        return [list(job) for job in itertools.product(*values.values())]
    except Exception:
        return None


class SweepReport(Callback):
    """Hydra callback: writes the sweep report into the sweep folder when a multirun ends."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _sweep_dir, last_exit_code, _planned
        # Resolved now: a relative sweep folder means the directory the sweep starts in.
        _sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        last_exit_code = None
        _planned = planned_jobs(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global last_exit_code
        try:
            last_exit_code = write_report(_sweep_dir or str(config.hydra.sweep.dir))
        except Exception as exc:  # finish_sweep tries again, and shows the traceback
            logger.error(f"Could not write the sweep report, trying again at exit: {exc}")
