"""The sweep being run: where its jobs go and which jobs it plans, for its report.

``SweepReport`` (a Hydra callback) notes them when a multirun starts; ``finish_sweep``
(called by the CLI when Hydra returns or raises) has ``runner/show/sweep_report.py`` write
``sweep.html``, ``sweep.json``, ``sweep.md`` and ``sweep.svg`` into the sweep folder.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from loguru import logger
from omegaconf import DictConfig

from runner.errors import EXIT_USAGE

# The running sweep's folder, set by SweepReport and read by finish_sweep().
_sweep_dir: Path | None = None
# The overrides of every job the sweep will launch, in job-number order (None: unknown).
_planned: list[list[str]] | None = None


def finish_sweep(stopped: str | None = None, stopped_code: int = EXIT_USAGE) -> int | None:
    """Write the report of the sweep that just ended; its exit code, or None if no sweep ran.

    Called by the CLI once Hydra returns or raises, so the report is written whether or
    not Hydra ran ``on_multirun_end`` (it skips it when a job raises or the sweep stops
    early). Never raises: a broken report costs the report, not the exit code.
    """
    global _sweep_dir, _planned
    sweep_dir, planned = _sweep_dir, _planned
    _sweep_dir, _planned = None, None
    if sweep_dir is None:
        return None
    # Only the end of a multirun needs the report builder: single runs never import it.
    from runner.show.sweep_report import write_report

    try:
        return write_report(sweep_dir, stopped, stopped_code, planned)
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
        # The option chosen in Hydra's own config group, not the sweeper's class name.
        if hydra.runtime.choices.get("hydra/sweeper") != "basic":
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
    """Hydra callback: notes where a multirun writes its jobs and which jobs it plans.

    The report itself is written by :func:`finish_sweep`, once, when the CLI ends.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _sweep_dir, _planned
        # Resolved now: a relative sweep folder means the directory the sweep starts in.
        _sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        _planned = planned_jobs(config)
