"""The sweep being run: where its jobs go and which jobs it plans, for its report.

A :class:`Sweep` is one multirun's report: ``SweepReport`` (a Hydra callback) notes on it
where the jobs go and which jobs are planned when the multirun starts, and
:meth:`Sweep.finish` has ``runner/show/sweep_report.py`` write ``sweep.html``,
``sweep.json``, ``sweep.md`` and ``sweep.svg`` into the sweep folder.

Hydra instantiates the callback from the config and hands its instance to nobody, and it
skips ``on_multirun_end`` when a job raises (an interruption ends the whole sweep), so the
CLI, which must write the report however the sweep ends, makes the ``Sweep`` and lends it
to the callback for the length of its call (:func:`watching`), through a context variable
as ``decimal`` lends its context: nothing of one sweep is left for the next. A callback
with no sweep lent (Hydra run by another program) writes the report itself when the
multirun ends.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from loguru import logger
from omegaconf import DictConfig

from runner.errors import EXIT_USAGE


class Sweep:
    """One multirun: its folder and planned jobs once it has started, its report once
    :meth:`finish` is called."""

    def __init__(self) -> None:
        #: The sweep's folder (None: no multirun started).
        self.folder: Path | None = None
        #: The overrides of every job the sweep will launch, in job-number order
        #: (None: unknown).
        self.planned: list[list[str]] | None = None

    def start(self, config: DictConfig) -> None:
        """Note the folder and the planned jobs of the multirun ``config`` describes."""
        # Resolved now: a relative sweep folder means the directory the sweep starts in.
        self.folder = Path(str(config.hydra.sweep.dir)).resolve()
        self.planned = planned_jobs(config)

    def finish(self, stopped: str | None = None, stopped_code: int = EXIT_USAGE) -> int | None:
        """Write the report of the sweep that just ended; its exit code, or None if no
        sweep started (or its report was written already).

        ``stopped`` says what ended the sweep early. Never raises: a broken report costs
        the report, not the exit code.
        """
        folder, planned = self.folder, self.planned
        self.folder, self.planned = None, None
        if folder is None:
            return None
        # Only the end of a multirun needs the report builder: single runs never import it.
        from runner.show.sweep_report import write_report

        try:
            return write_report(folder, stopped, stopped_code, planned)
        except Exception as exc:
            logger.opt(exception=exc).error(f"Could not write the sweep report: {exc}")
            return None


# The sweep the CLI lends the callback while Hydra runs (None: none lent).
_lent: contextvars.ContextVar[Sweep | None] = contextvars.ContextVar("runner_sweep", default=None)


@contextlib.contextmanager
def watching() -> Iterator[Sweep]:
    """A new :class:`Sweep`, which ``SweepReport`` fills in should a multirun start within
    this block (in this thread); the caller writes its report with :meth:`Sweep.finish`."""
    sweep = Sweep()
    token = _lent.set(sweep)
    try:
        yield sweep
    finally:
        _lent.reset(token)


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
    """Hydra callback: notes where a multirun writes its jobs and which jobs it plans, on
    the :class:`Sweep` lent by :func:`watching` (whose holder writes the report), or on
    its own, whose report it writes when the multirun ends."""

    def __init__(self) -> None:
        self.own: Sweep | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = _lent.get()
        if sweep is None:
            sweep = self.own = Sweep()
        sweep.start(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.own is not None:
            self.own.finish()
