"""The experiment summary: ``<experiment>/summary/judge_summary.json`` and ``.md``.

:func:`build_summary` reads the experiment alone (slot statuses, judgments, consensus
files, the timing.json of every attempt), so a stored summary can be compared with what
the experiment now gives (:func:`summary_outdated`). What one repair did (runs whose
consensus changed, what its judges cost, its budget) only that run knows: it is added
under ``repair`` by :func:`write_summary`, and the comparison leaves it out.

Counts say what they count: ``runs`` are runs (``<tier>/<subtest>/run_NN``), ``slots``
are judge slots (one per run and judge model). Scores are 0-1; rates are fractions in
the JSON and percentages in the Markdown, each of the group its name gives.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runner.toolkit import atomic_write_json, atomic_write_text
from runner_plugins.judge.agreement import UNITS as AGREEMENT_UNITS
from runner_plugins.judge.agreement import Agreement
from runner_plugins.judge.consensus import consensus, run_judgments, stored_consensus
from runner_plugins.judge.costs import grand_total, in_order, totals_of
from runner_plugins.judge.experiment import (
    JUDGMENT_FILE,
    SUMMARY_DIR,
    SUMMARY_JSON,
    SUMMARY_MD,
    ExperimentConfig,
    Slot,
    read_object,
)
from runner_plugins.judge.markdown import summary_markdown
from runner_plugins.judge.reply import clamp_score, is_number, passed_value
from runner_plugins.judge.slotfiles import ATTEMPTS, TIMING_FILE, failure_kind, was_rerun
from runner_plugins.judge.slotstatus import STATUSES, current_slot_dir, run_slots

__all__ = [
    "SUMMARY_DIR",
    "SUMMARY_JSON",
    "SUMMARY_MD",
    "build_summary",
    "summary_markdown",
    "summary_outdated",
    "write_summary",
]

#: How many runs the JSON lists (short of judges, consensus changed); the count is whole.
LISTED = 100
#: What each figure of the JSON counts or measures.
UNITS = {
    "runs": "runs (<tier>/<subtest>/run_NN), judged or not",
    "scored_runs": "runs with a consensus (judge/result.json with a numeric score)",
    "slots": "judge slots (one per run and judge model), by status",
    "mean_score": "mean consensus score of the scored runs (0-1)",
    "pass_rate": "fraction (0-1) of the scored runs whose consensus passed",
    "agreement.runs_compared": "runs whose agent finished, with 2 or more valid judgments",
    "agreement.unanimous_rate": "fraction (0-1) of the compared runs whose valid judgments "
    "all say the same passed",
    "agreement.mean_score_spread": "mean over the compared runs of the highest minus the "
    "lowest valid score (0-1)",
    "agreement.max_score_spread": "the largest such spread (0-1)",
    "short_of_judges": "runs whose agent finished with fewer valid judgments than judge models",
    "runs_short_of_judges": "those runs: their count, and the first of them listed",
    "judges.<model>.mean_score": "mean score of the model's valid judgments (0-1)",
    "judges.<model>.pass_rate": "fraction (0-1) of the model's valid judgments that passed",
    "failures.failed_slots": "failed slots now, by reason",
    "failures.failed_attempts": "failed attempts recorded in timing.json files (attempts/ "
    "included), by reason",
    "cost": "US dollars and tokens as the judges reported them (claude_json), summed over "
    "every attempt recorded in the experiment",
    "repair": "what the run that wrote this summary did: its items, the runs whose consensus "
    "pass/fail it changed (provisional: decided by fewer valid judgments than judge models), "
    "what its own judge calls cost, its budget",
} | AGREEMENT_UNITS


class _Tally:
    """Counts for one group of runs (a subtest, a tier or the whole experiment)."""

    def __init__(self) -> None:
        self.runs = 0
        self.slots = dict.fromkeys(STATUSES, 0)
        self.scores: list[float] = []
        self.passes = 0
        self.unanimous = 0
        self.spreads: list[float] = []
        self.short = 0

    def add(
        self,
        slots: Sequence[Slot],
        judgments: Sequence[dict[str, Any] | None],
        result: dict[str, Any] | None,
    ) -> bool:
        """Count one run; return whether it is short of judges (see ``UNITS``)."""
        self.runs += 1
        for slot in slots:
            self.slots[slot.status] += 1
        if result is not None:
            self.scores.append(float(result["score"]))
            self.passes += result.get("passed") is True
        if not slots or slots[0].status == "agent_failed":
            return False  # nothing to judge: no judge is missing, none can disagree
        valid = [j for j in judgments if j is not None]
        if len(valid) >= 2:
            self.unanimous += len({passed_value(j.get("passed")) for j in valid}) == 1
            scores = [clamp_score(j["score"]) for j in valid]
            self.spreads.append(round(max(scores) - min(scores), 9))
        short = len(valid) < len(slots)
        self.short += short
        return short

    def merge(self, other: _Tally) -> None:
        self.runs += other.runs
        for status, count in other.slots.items():
            self.slots[status] += count
        self.scores += other.scores
        self.passes += other.passes
        self.unanimous += other.unanimous
        self.spreads += other.spreads
        self.short += other.short

    def as_dict(self) -> dict[str, Any]:
        scored, compared = len(self.scores), len(self.spreads)
        return {
            "runs": self.runs,
            "scored_runs": scored,
            "slots": dict(self.slots),
            "mean_score": math.fsum(self.scores) / scored if scored else None,
            "pass_rate": self.passes / scored if scored else None,
            "agreement": {
                "runs_compared": compared,
                "unanimous_runs": self.unanimous,
                "unanimous_rate": self.unanimous / compared if compared else None,
                "mean_score_spread": math.fsum(self.spreads) / compared if compared else None,
                "max_score_spread": max(self.spreads, default=None),
            },
            "short_of_judges": self.short,
        }


class _Judge:
    """Counts for one judge model, over its slots in every run."""

    def __init__(self) -> None:
        self.slot_numbers: list[int] = []
        self.statuses = dict.fromkeys(STATUSES, 0)
        self.scores: list[float] = []
        self.passes = 0

    def add(self, slot: Slot, judgment: dict[str, Any] | None) -> None:
        if slot.number not in self.slot_numbers:
            self.slot_numbers.append(slot.number)
        self.statuses[slot.status] += 1
        if slot.status == "complete" and judgment is not None:
            self.scores.append(clamp_score(judgment["score"]))
            self.passes += passed_value(judgment.get("passed"))

    def as_dict(self) -> dict[str, Any]:
        valid = len(self.scores)
        return {
            "slot_numbers": self.slot_numbers,
            "slots": sum(self.statuses.values()),
            "slots_to_judge": sum(self.statuses.values()) - self.statuses["agent_failed"],
            "valid": valid,
            "failed": self.statuses["failed"],
            "missing": self.statuses["missing"],
            "mean_score": math.fsum(self.scores) / valid if valid else None,
            "pass_rate": self.passes / valid if valid else None,
        }


def slot_problem(slot: Slot) -> str:
    """Why a failed slot is failed: its last attempt's failure kind (``FAILURE_KINDS``),
    else what is wrong with its judgment.json (``markdown.SLOT_PROBLEMS``)."""
    folder = current_slot_dir(slot.dir)
    kind = failure_kind(read_object(folder / TIMING_FILE) or {})
    if kind is not None:
        return str(kind)
    path = folder / JUDGMENT_FILE
    if not path.is_file():
        return "no_judgment"
    data = read_object(path)
    if data is None:
        return "unreadable_judgment"
    if not is_number(data.get("score")):
        return "no_score"
    return "invalid_judgment" if data.get("is_valid") is False else "other"


def attempt_timings(slot: Slot) -> Iterable[dict[str, Any]]:
    """The timing.json of the slot and of each attempt kept in its ``attempts/``."""
    folder = current_slot_dir(slot.dir)
    try:
        kept = [p for p in (folder / ATTEMPTS).iterdir() if p.name.isdigit()]
    except (FileNotFoundError, NotADirectoryError):
        kept = []
    for path in [folder, *sorted(kept, key=lambda p: int(p.name))]:
        timing = read_object(path / TIMING_FILE)
        if timing is not None:
            yield timing


def build_summary(config: ExperimentConfig) -> dict[str, Any]:
    """The summary as a JSON-serialisable dict (see the module doc and ``UNITS``)."""
    # Every tier is listed, one without subtests too; runs() gives the rest in order.
    tallies: dict[str, dict[str, _Tally]] = {tier: {} for tier in config.tiers}
    judges = {model: _Judge() for model in config.judge_models}
    agreement = Agreement(config.judge_models)
    failed_slots: Counter[str] = Counter()
    failed_attempts: Counter[str] = Counter()
    costs: list[dict[str, Any]] = []
    short: list[dict[str, Any]] = []
    short_count = 0
    for run in config.runs():
        slots = run_slots(config, run)
        judgments = run_judgments(config, run)
        tally = tallies[run.tier].setdefault(run.subtest, _Tally())
        if tally.add(slots, judgments, stored_consensus(run)):
            short_count += 1
            if len(short) < LISTED:
                valid = sum(j is not None for j in judgments)
                short.append({"run": run.id, "valid_judges": valid, "judges": len(slots)})
        if slots and slots[0].status != "agent_failed":  # an unjudgeable run agrees on nothing
            agreement.add(judgments, consensus(judgments))
        for slot, judgment in zip(slots, judgments, strict=True):
            judges[slot.model].add(slot, judgment)
            if slot.status == "failed":
                failed_slots[slot_problem(slot)] += 1
            for timing in attempt_timings(slot):
                kind = failure_kind(timing)
                if kind is not None:
                    failed_attempts[kind] += 1
                cost = timing.get("cost")
                if isinstance(cost, dict):
                    costs.append({"model": slot.model} | cost)
    total = _Tally()
    tiers: dict[str, Any] = {}
    for tier, subtests in tallies.items():
        tier_tally = _Tally()
        for tally in subtests.values():
            tier_tally.merge(tally)
        tiers[tier] = {
            **tier_tally.as_dict(),
            "subtests": {name: tally.as_dict() for name, tally in subtests.items()},
        }
        total.merge(tier_tally)
    return {
        "experiment_id": config.experiment_id,
        "experiment": str(config.root),
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "judge_models": list(config.judge_models),
        "units": UNITS,
        "totals": total.as_dict(),
        "tiers": tiers,
        "judges": {model: judge.as_dict() for model, judge in judges.items()},
        "judge_agreement": agreement.as_dict(),
        "failures": {
            "failed_slots": _ordered(failed_slots),
            "failed_attempts": _ordered(failed_attempts),
        },
        "runs_short_of_judges": {"count": short_count, "runs": short},
        "cost": cost_figures(totals_of(costs), config.judge_models),
    }


def cost_figures(
    totals: Mapping[str, dict[str, Any]], models: Iterable[str] = ()
) -> dict[str, Any]:
    """Per-model cost totals (``models`` first, in order) and their sum, as the summary
    holds them."""
    return {"per_model": in_order(totals, models), "total": grand_total(totals)}


def _ordered(counts: Counter[str]) -> dict[str, int]:
    return dict(counts.most_common())  # most frequent first, ties as first met


def summary_outdated(config: ExperimentConfig) -> bool:
    """Whether ``<experiment>/summary/`` no longer says what the runs give.

    A missing summary is outdated only where runner has repaired the experiment before
    (a slot's timing.json says ``rerun``): a repair killed before it wrote its summary.
    What a repair did (``repair``) and when the summary was made are not compared.
    """
    stored = read_object(config.root / SUMMARY_DIR / SUMMARY_JSON)
    if stored is None:
        return any(was_rerun(run.slot_dir(n)) for run in config.runs() for n in config.slot_numbers)
    fresh = build_summary(config)
    return any(stored.get(k) != v for k, v in fresh.items() if k != "generated_at")


def write_summary(
    config: ExperimentConfig, folders: Iterable[Path], repair: dict[str, Any] | None = None
) -> list[Path]:
    """Write the summary (JSON and Markdown) into each folder; return the paths written.

    ``repair`` (what the run that writes it did) is added as the summary's last key.
    """
    summary = build_summary(config)
    if repair is not None:
        summary["repair"] = repair
    markdown = summary_markdown(summary)
    written = []
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / SUMMARY_JSON, summary)
        atomic_write_text(folder / SUMMARY_MD, markdown)
        written += [folder / SUMMARY_JSON, folder / SUMMARY_MD]
    return written
