"""JudgeConsensus, the post-processor: every stale consensus regenerated, then the summary."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from runner.api import Outcome, PostProcessor, RunContext, shown_path
from runner_plugins.judge.consensus import regenerate_run, stored_consensus
from runner_plugins.judge.costs import BudgetExhausted, grand_total, in_order, usd
from runner_plugins.judge.experiment import SUMMARY_DIR, ExperimentConfig
from runner_plugins.judge.markdown import verdict
from runner_plugins.judge.source import RunState, stale_runs
from runner_plugins.judge.summary import LISTED, cost_figures, summary_outdated, write_summary
from runner_plugins.judge.task import JudgeRerun, experiment_of

#: How many runs whose pass/fail changed the terminal names.
NAMED = 5


class JudgeConsensus(PostProcessor):
    """After every item has finished: make every run's consensus match its slots.

    The consensus is a pure function of a run's slots, so this regenerates exactly the
    runs whose stored ``judge/result.json`` or ``run_result.json`` judge fields differ
    from what their slots now give: those whose slots this run judged, and any left
    stale by an interrupted repair or a hand edit. Then, if anything in the experiment
    changed or its summary is out of date (a repair killed before writing it), the
    summary is written to ``<experiment>/summary/judge_summary.{json,md}`` and copied
    into the run's output folder, with what this run did (``repair``): the runs whose
    consensus pass/fail changed (against what the source read before the first item),
    what its judge calls cost and its budget, which the last lines on the terminal say too.
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
        ok = failed = stopped = 0
        for outcome in outcomes:
            if outcome.ok:
                ok += 1
            else:
                failed += 1
                stopped += (outcome.error or {}).get("type") == BudgetExhausted.__name__
        # The source read every run before the first item: what the consensus was then.
        states: Sequence[RunState] = getattr(context.source, "states", ())
        stale = stale_runs(config)
        for run in stale:
            _, recorded = regenerate_run(config, run)
            if not recorded:
                logger.warning(
                    f"judge_consensus: {run.id}: run_result.json missing or "
                    "unreadable, only judge/result.json was written"
                )
        changes = consensus_changes(states)
        task = context.task if isinstance(context.task, JudgeRerun) else None
        spent = task.ledger.totals() if task is not None and task.ledger is not None else {}
        spent = in_order(spent, config.judge_models)
        budget = None if task is None else task.budget_usd
        prepared = getattr(context.source, "prepared", ())
        if not (ok or failed or stale or prepared or summary_outdated(config)):
            logger.info(f"judge_consensus: nothing to do; {shown_path(config.root)} unchanged")
            return
        dollars = grand_total(spent)["total_cost_usd"]
        repair: dict[str, Any] = {
            "run_folder": str(Path(context.output_dir).absolute()),
            "succeeded": ok,
            "failed": failed,
            "consensus_regenerated": len(stale),
            "consensus_changes": {"count": len(changes), "runs": changes[:LISTED]},
            "cost": cost_figures(spent),
            "budget_usd": budget,
            "budget_reached": budget is not None and dollars >= budget,
            "budget_stopped": stopped,
        }
        paths = write_summary(config, [config.root / SUMMARY_DIR, Path(context.output_dir)], repair)
        markdown = next((p for p in paths if p.suffix == ".md"), None)
        if markdown is not None:  # the run's report.html shows it below the run's figures
            context.report_sections.append(("Judge summary", markdown.read_text("utf-8")))
        logger.info(
            f"judge_consensus: {ok} item(s) succeeded, {failed} failed; consensus regenerated "
            f"for {len(stale)} run(s), its pass/fail changed for {len(changes)}"
        )
        if changes:
            logger.info(f"judge_consensus: pass/fail changed: {_named(changes)}")
        logger.info(
            f"judge_consensus: summary in {shown_path(paths[0].parent)}{os.sep} "
            f"({paths[0].name}, {paths[1].name}), copied into the run folder"
        )
        log_cost(spent, budget, stopped)


def consensus_changes(states: Iterable[RunState]) -> list[dict[str, Any]]:
    """The runs whose stored consensus pass/fail differs from what the source read."""
    changes = []
    for state in states:
        if not state.judged:
            continue
        stored = stored_consensus(state.run)
        now = None if stored is None else stored.get("passed") is True
        if now != state.passed:
            changes.append(
                {"run": state.run.id, "passed_before": state.passed, "passed_after": now}
            )
    return changes


def _named(changes: Sequence[dict[str, Any]]) -> str:
    named = ", ".join(
        f"{c['run']} {verdict(c['passed_before'])} -> {verdict(c['passed_after'])}"
        for c in changes[:NAMED]
    )
    return named + (f" and {len(changes) - NAMED} more" if len(changes) > NAMED else "")


def log_cost(spent: dict[str, dict[str, Any]], budget: float | None, stopped: int) -> None:
    """The run's last lines: what its judge calls cost, and how its budget went."""
    total = grand_total(spent)
    if total["calls"]:
        models = ", ".join(
            f"{model} {usd(t['total_cost_usd'])} in {t['calls']}" for model, t in spent.items()
        )
        unknown = total["calls_without_cost"]
        logger.info(
            f"judge cost: {usd(total['total_cost_usd'])} for {total['calls']} call(s) "
            f"({models})" + (f"; {unknown} call(s) reported no cost" if unknown else "")
        )
    if budget is None:
        return
    dollars = total["total_cost_usd"]
    if dollars < budget:
        logger.info(f"judge budget: {usd(dollars)} of {usd(budget)} spent")
    elif stopped:
        logger.warning(
            f"judge budget of {usd(budget)} reached: {usd(dollars)} spent; {stopped} slot(s) "
            "not judged and left as they were (BudgetExhausted); run again with a larger "
            "task.budget_usd to judge them"
        )
    else:
        logger.warning(
            f"judge budget of {usd(budget)} reached: {usd(dollars)} spent by the judges "
            "that were running; no slot was left unjudged"
        )
