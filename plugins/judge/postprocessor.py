"""JudgeConsensus, the post-processor: consensus of the rerun runs, then the summary."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from loguru import logger

from runner.api import Outcome, PostProcessor, RunContext
from runner_plugins.judge.consensus import SUMMARY_DIR, regenerate_run, write_summary
from runner_plugins.judge.experiment import ExperimentConfig, RunRef


class JudgeConsensus(PostProcessor):
    """After every slot has finished: regenerate consensus, then the experiment summary.

    Runs with at least one successfully rerun slot get ``judge/result.json`` and the judge
    fields of ``run_result.json`` regenerated; other runs are left untouched. If any slot
    was rerun successfully, the summary is written to
    ``<experiment>/summary/judge_summary.json`` and ``judge_summary.md`` and copied into the
    run's output folder.
    """

    def __init__(self) -> None:
        self._config: ExperimentConfig | None = None

    def setup(self, context: RunContext) -> None:
        """Take the experiment from the judge_slots source (set up first); refuse any other."""
        config = getattr(context.source, "config", None)
        if not isinstance(config, ExperimentConfig):
            # Checked before any slot runs: after the batch would be too late to be useful.
            raise ValueError(
                "judge_consensus needs the judge_slots source (after setup); "
                f"got source {type(context.source).__name__!r}"
            )
        self._config = config

    def __call__(self, outcomes: Iterable[Outcome], context: RunContext) -> None:
        config = self._config
        if config is None:
            raise RuntimeError("JudgeConsensus.setup(context) must be called first")
        valid = {(tier, subtest) for tier in config.tiers for subtest in config.subtests(tier)}
        runs: set[RunRef] = set()
        ok = failed = 0
        for outcome in outcomes:
            if not outcome.ok:
                failed += 1
                continue
            run = _run_of(config, valid, outcome)
            if run is None:
                logger.warning(f"judge_consensus: {outcome.id}: not a judge_rerun result, ignored")
                continue
            ok += 1
            runs.add(run)
        if not runs:
            logger.info(
                f"judge_consensus: no slot was rerun successfully ({failed} failed); "
                f"experiment {str(config.root)!r} left untouched"
            )
            return
        order = {tier: i for i, tier in enumerate(config.tiers)}
        for run in sorted(runs, key=lambda r: (order[r.tier], int(r.subtest), r.number)):
            _, recorded = regenerate_run(config, run)
            if not recorded:
                logger.warning(
                    f"judge_consensus: {run.id}: run_result.json missing or "
                    "unreadable, only judge/result.json was written"
                )
        paths = write_summary(config, [config.root / SUMMARY_DIR, Path(context.output_dir)])
        logger.info(
            f"judge_consensus: {ok} slot(s) rerun successfully, {failed} failed; "
            f"consensus regenerated for {len(runs)} run(s)"
        )
        logger.info(
            f"judge_consensus: summary written to {paths[0]} and {paths[1]} "
            f"(copies in {context.output_dir})"
        )


def _run_of(
    config: ExperimentConfig, valid: set[tuple[str, str]], outcome: Outcome
) -> RunRef | None:
    """The run a successful rerun belongs to, or None for a result that is not one.

    ``valid`` holds the experiment's (tier, subtest) pairs.
    """
    result = outcome.result
    if not isinstance(result, dict):
        return None
    tier, subtest, number = result.get("tier"), result.get("subtest"), result.get("run")
    if not (isinstance(tier, str) and isinstance(subtest, str)) or (tier, subtest) not in valid:
        return None
    if not isinstance(number, int) or not 1 <= number <= config.runs_per_subtest:
        return None
    return RunRef(config.root, tier, subtest, number)
