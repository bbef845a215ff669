"""JudgeConsensus, the post-processor: every stale consensus regenerated, then the summary."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from loguru import logger

from runner.api import Outcome, PostProcessor, RunContext, shown_path
from runner_plugins.judge.consensus import (
    SUMMARY_DIR,
    regenerate_run,
    summary_outdated,
    write_summary,
)
from runner_plugins.judge.experiment import ExperimentConfig
from runner_plugins.judge.source import stale_runs
from runner_plugins.judge.task import experiment_of


class JudgeConsensus(PostProcessor):
    """After every item has finished: make every run's consensus match its slots.

    The consensus is a pure function of a run's slots, so this regenerates exactly the
    runs whose stored ``judge/result.json`` or ``run_result.json`` judge fields differ
    from what their slots now give: those whose slots this run judged, and any left
    stale by an interrupted repair or a hand edit. Then, if anything in the experiment
    changed or its summary is out of date (a repair killed before writing it), the
    summary is written to ``<experiment>/summary/judge_summary.{json,md}`` and copied
    into the run's output folder.
    """

    def __init__(self) -> None:
        self._config: ExperimentConfig | None = None

    def setup(self, context: RunContext) -> None:
        """Take the experiment from the judge source (set up first); refuse any other."""
        # Checked before any slot runs: after the batch would be too late to be useful.
        self._config = experiment_of(context, "judge_consensus")

    def __call__(self, outcomes: Iterable[Outcome], context: RunContext) -> None:
        config = self._config
        if config is None:
            raise RuntimeError("JudgeConsensus.setup(context) must be called first")
        ok = failed = 0
        for outcome in outcomes:
            if outcome.ok:
                ok += 1
            else:
                failed += 1
        stale = stale_runs(config)
        for run in stale:
            _, recorded = regenerate_run(config, run)
            if not recorded:
                logger.warning(
                    f"judge_consensus: {run.id}: run_result.json missing or "
                    "unreadable, only judge/result.json was written"
                )
        what = f"{ok} item(s) succeeded, {failed} failed"
        prepared = getattr(context.source, "prepared", ())
        if not (ok or failed or stale or prepared or summary_outdated(config)):
            logger.info(f"judge_consensus: nothing to do; {shown_path(config.root)} unchanged")
            return
        paths = write_summary(config, [config.root / SUMMARY_DIR, Path(context.output_dir)])
        markdown = next((p for p in paths if p.suffix == ".md"), None)
        if markdown is not None:  # the run's report.html shows it below the run's figures
            context.report_sections.append(("Judge summary", markdown.read_text("utf-8")))
        logger.info(f"judge_consensus: {what}; consensus regenerated for {len(stale)} run(s)")
        logger.info(
            f"judge_consensus: summary in {shown_path(paths[0].parent)}{os.sep} "
            f"({paths[0].name}, {paths[1].name}), copied into the run folder"
        )
