"""The experiment summary: slot statuses, mean consensus score and pass rate per tier and subtest.

Written as ``<experiment>/summary/judge_summary.json`` and ``judge_summary.md``. A run's
consensus is read from its ``judge/result.json``; runs without one count towards the
slot statuses but not towards the mean score or the pass rate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runner.api import atomic_write_json, atomic_write_text
from runner_plugins.judge.experiment import (
    STATUSES,
    SUMMARY_JSON,
    SUMMARY_MD,
    ExperimentConfig,
    RunRef,
    is_number,
    run_slots,
)


class _Tally:
    """Counts for one group of runs (a subtest, a tier or the whole experiment)."""

    def __init__(self) -> None:
        self.runs = 0
        self.slots = dict.fromkeys(STATUSES, 0)
        self.scores: list[float] = []
        self.passes = 0

    def add(self, statuses: Iterable[str], result: dict[str, Any] | None) -> None:
        self.runs += 1
        for status in statuses:
            self.slots[status] += 1
        if result is not None:
            self.scores.append(float(result["score"]))
            self.passes += result.get("passed") is True

    def merge(self, other: _Tally) -> None:
        self.runs += other.runs
        for status, count in other.slots.items():
            self.slots[status] += count
        self.scores += other.scores
        self.passes += other.passes

    def as_dict(self) -> dict[str, Any]:
        scored = len(self.scores)
        return {
            "runs": self.runs,
            "scored_runs": scored,
            "slots": dict(self.slots),
            "mean_score": math.fsum(self.scores) / scored if scored else None,
            "pass_rate": self.passes / scored if scored else None,
        }


def _consensus_of(run: RunRef) -> dict[str, Any] | None:
    try:
        data = json.loads((run.dir / "judge" / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and is_number(data.get("score")) else None


def build_summary(config: ExperimentConfig) -> dict[str, Any]:
    """The summary as a JSON-serialisable dict: totals, then tiers -> subtests."""
    total = _Tally()
    tiers: dict[str, Any] = {}
    for tier in config.tiers:
        tier_tally = _Tally()
        subtests: dict[str, Any] = {}
        for subtest in config.subtests(tier):
            tally = _Tally()
            for number in range(1, config.runs_per_subtest + 1):
                run = RunRef(config.root, tier, subtest, number)
                tally.add((slot.status for slot in run_slots(config, run)), _consensus_of(run))
            subtests[subtest] = tally.as_dict()
            tier_tally.merge(tally)
        tiers[tier] = {**tier_tally.as_dict(), "subtests": subtests}
        total.merge(tier_tally)
    return {
        "experiment_id": config.experiment_id,
        "experiment": str(config.root),
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "judge_models": list(config.judge_models),
        "totals": total.as_dict(),
        "tiers": tiers,
    }


def _row(tier: str, subtest: str, stats: dict[str, Any]) -> str:
    mean = "-" if stats["mean_score"] is None else f"{stats['mean_score']:.3f}"
    rate = "-" if stats["pass_rate"] is None else f"{stats['pass_rate']:.0%}"
    counts = " | ".join(str(stats["slots"][s]) for s in STATUSES)
    return f"| {tier} | {subtest} | {stats['runs']} | {counts} | {mean} | {rate} |"


def summary_markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown table, one row per subtest plus tier and experiment totals."""
    lines = [
        f"# Judge summary: {summary['experiment_id']}",
        "",
        f"- experiment: `{summary['experiment']}`",
        f"- generated at: {summary['generated_at']}",
        f"- judge models: {', '.join(summary['judge_models'])}",
        "- mean score and pass rate are over runs with a consensus (judge/result.json)",
        "",
        f"| tier | subtest | runs | {' | '.join(STATUSES)} | mean score | pass rate |",
        "|---|---|" + "---:|" * (len(STATUSES) + 3),
    ]
    for tier, stats in summary["tiers"].items():
        lines += [_row(tier, subtest, sub) for subtest, sub in stats["subtests"].items()]
        lines.append(_row(f"**{tier}**", "all", stats))
    lines.append(_row("**all**", "all", summary["totals"]))
    return "\n".join(lines) + "\n"


def write_summary(config: ExperimentConfig, folders: Iterable[Path]) -> list[Path]:
    """Write the summary (JSON and Markdown) into each folder; return the paths written."""
    summary = build_summary(config)
    markdown = summary_markdown(summary)
    written = []
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / SUMMARY_JSON, summary)
        atomic_write_text(folder / SUMMARY_MD, markdown)
        written += [folder / SUMMARY_JSON, folder / SUMMARY_MD]
    return written
