"""After every slot has finished: each run's consensus, then the experiment summary.

A run's consensus lives in ``judge/result.json`` and in the judge fields of its
``run_result.json``. The summary (slot statuses, mean consensus score and pass rate per
tier and subtest) is written as ``<experiment>/summary/judge_summary.json`` and
``judge_summary.md``; runs without a ``judge/result.json`` count towards the slot
statuses but not towards the mean score or the pass rate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runner.api import atomic_write_json, atomic_write_text
from runner_plugins.judge.experiment import (
    STATUSES,
    ExperimentConfig,
    RunRef,
    clamp_score,
    grade_for,
    is_number,
    read_judgment,
    run_slots,
)

SUMMARY_DIR = "summary"
SUMMARY_JSON = "judge_summary.json"
SUMMARY_MD = "judge_summary.md"


def _passed(judgment: dict[str, Any]) -> bool:
    passed = judgment.get("passed")
    return passed if isinstance(passed, bool) else clamp_score(judgment["score"]) >= 0.5


def consensus(judgments: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """Combine a run's slot judgments (None where a slot has no valid one) into judge/result.json.

    score = mean of the valid slots; passed = a strict majority of them passed; grade from
    the mean; reasoning and criteria_scores from the valid slot closest to the mean (the
    lower slot number on a tie); is_valid only when every slot is valid.
    """
    valid = [(n, j) for n, j in enumerate(judgments, 1) if j is not None]
    if not valid:
        return {
            "score": 0.0,
            "passed": False,
            "grade": "F",
            "is_valid": False,
            "reasoning": "no judge slot has a valid judgment",
            "criteria_scores": {},
        }
    mean = math.fsum(clamp_score(j["score"]) for _, j in valid) / len(valid)
    # Distances are rounded so that float noise cannot break a tie against the lower slot.
    _, closest = min(
        valid, key=lambda nj: (round(abs(clamp_score(nj[1]["score"]) - mean), 9), nj[0])
    )
    criteria = closest.get("criteria_scores")
    reasoning = closest.get("reasoning")
    return {
        "score": mean,
        "passed": 2 * sum(_passed(j) for _, j in valid) > len(valid),
        "grade": grade_for(mean),
        "reasoning": reasoning if isinstance(reasoning, str) else "",
        "is_valid": len(valid) == len(judgments),
        "criteria_scores": criteria if isinstance(criteria, dict) else {},
    }


def judges_list(
    models: Sequence[str], judgments: Sequence[dict[str, Any] | None]
) -> list[dict[str, Any]]:
    """The ``judges[]`` entries of run_result.json: one per slot with a valid judgment."""
    entries = []
    for number, (model, judgment) in enumerate(zip(models, judgments, strict=True), 1):
        if judgment is None:
            continue
        score = clamp_score(judgment["score"])
        grade = judgment.get("grade")
        reasoning = judgment.get("reasoning")
        entries.append(
            {
                "model": model,
                "score": score,
                "passed": _passed(judgment),
                "grade": grade if isinstance(grade, str) else grade_for(score),
                "reasoning": reasoning if isinstance(reasoning, str) else "",
                "judge_number": number,
            }
        )
    return entries


def apply_judge_fields(
    record: dict[str, Any], result: dict[str, Any], judges: list[dict[str, Any]]
) -> dict[str, Any]:
    """Set a run record's judge fields in place (existing keys keep their position)."""
    record["judge_score"] = result["score"]
    record["judge_passed"] = result["passed"]
    record["judge_grade"] = result["grade"]
    record["judge_reasoning"] = result["reasoning"]
    record["judges"] = judges
    return record


def regenerate_run(config: ExperimentConfig, run: RunRef) -> tuple[dict[str, Any], bool]:
    """Rewrite judge/result.json and run_result.json's judge fields from the run's slots.

    Returns the consensus and whether run_result.json was updated: a missing or unreadable
    one is left alone rather than replaced by a record holding only judge fields.
    """
    judgments = [read_judgment(run.slot_dir(n)) for n in range(1, len(config.judge_models) + 1)]
    result = consensus(judgments)
    (run.dir / "judge").mkdir(parents=True, exist_ok=True)
    atomic_write_json(run.dir / "judge" / "result.json", result)
    record_path = run.dir / "run_result.json"
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return result, False
    if not isinstance(record, dict):
        return result, False
    judges = judges_list(config.judge_models, judgments)
    atomic_write_json(record_path, apply_judge_fields(record, result, judges))
    return result, True


# --- summary -------------------------------------------------------------------------


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
