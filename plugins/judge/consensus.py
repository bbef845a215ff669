"""After every slot has finished: each run's consensus, then the experiment summary.

A run's consensus lives in ``judge/result.json`` and in the judge fields of its
``run_result.json``. The summary (slot statuses, mean consensus score and pass rate per
tier and subtest) is written as ``<experiment>/summary/judge_summary.json`` and
``judge_summary.md``; runs without a ``judge/result.json`` count towards the slot
statuses but not towards the mean score or the pass rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runner.api import atomic_write_json, atomic_write_text
from runner_plugins.judge.experiment import (
    CONSENSUS_FILE,
    RECORD_FILE,
    STATUSES,
    ExperimentConfig,
    RunRef,
    grade_for,
    make_judgment,
    read_judgment,
    read_object,
    run_slots,
)
from runner_plugins.judge.reply import clamp_score, is_number, passed_value
from runner_plugins.judge.slotfiles import was_rerun

SUMMARY_DIR = "summary"
SUMMARY_JSON = "judge_summary.json"
SUMMARY_MD = "judge_summary.md"


def _passed(judgment: dict[str, Any]) -> bool:
    return passed_value(judgment.get("passed"))


def consensus(judgments: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Combine a run's slot judgments (None where a slot has no valid one) into judge/result.json.

    score = mean of the valid slots; passed = a strict majority of them passed; grade from
    the mean; reasoning and criteria_scores from the valid slot closest to the mean (the
    lower slot number on a tie); is_valid only when every slot is valid. None when no
    slot is valid: there is nothing to derive a consensus from (the original writes none).
    """
    valid = [(n, j) for n, j in enumerate(judgments, 1) if j is not None]
    if not valid:
        return None
    mean = math.fsum(clamp_score(j["score"]) for _, j in valid) / len(valid)
    # Distances are rounded so that float noise cannot break a tie against the lower slot.
    _, closest = min(
        valid, key=lambda nj: (round(abs(clamp_score(nj[1]["score"]) - mean), 9), nj[0])
    )
    return make_judgment(
        mean,
        2 * sum(_passed(j) for _, j in valid) > len(valid),
        closest.get("reasoning", ""),
        len(valid) == len(judgments),
        closest.get("criteria_scores"),
    )


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
        entries.append(
            {
                "model": model,
                "score": score,
                "passed": _passed(judgment),
                "grade": grade if isinstance(grade, str) else grade_for(score),
                "reasoning": judgment.get("reasoning", ""),
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
    record["criteria_scores"] = result["criteria_scores"] or {}
    record["judges"] = judges
    return record


def run_judgments(config: ExperimentConfig, run: RunRef) -> list[dict[str, Any] | None]:
    """Each slot's valid judgment, or None, in slot order."""
    return [read_judgment(run.slot_dir(n)) for n in config.slot_numbers]


def _same(stored: Any, want: Any) -> bool:
    if isinstance(want, float):  # a mean: equal up to float noise
        return is_number(stored) and abs(float(stored) - want) <= 1e-9
    return bool(stored == want)


def _judges_problem(have: Any, want: list[dict[str, Any]]) -> str | None:
    """How a stored judges[] differs from the expected one, or None."""
    if not isinstance(have, list) or len(have) != len(want):
        count = len(have) if isinstance(have, list) else 0
        return f"lists {count} judge(s), its valid slots are {len(want)}"
    for entry, expected in zip(have, want, strict=True):
        for key, value in expected.items():
            stored = entry.get(key) if isinstance(entry, dict) else None
            if not _same(stored, value):
                return f"entry of judge {expected['judge_number']} has an out-of-date {key}"
    return None


def stale_reason(
    config: ExperimentConfig, run: RunRef, judgments: Sequence[dict[str, Any] | None]
) -> str | None:
    """Why ``run``'s stored consensus does not match its slots, or None when it does.

    Compared: judge/result.json's score, passed and grade (and is_valid where stored),
    and run_result.json's judge_score, judge_passed, judge_grade and judges[] (every
    field of every entry). The reasoning and criteria must be those of one of the valid
    slots (older versions of the original chose the representative slot differently,
    and did not copy criteria into run_result.json: neither makes a run stale). A run
    with no valid slot has no consensus to compare with.
    """
    expected = consensus(judgments)
    if expected is None:
        return None
    valid = [j for j in judgments if j is not None]
    reasonings = [j.get("reasoning", "") for j in valid]
    criteria = [j.get("criteria_scores") or {} for j in valid] + [{}]
    stored = read_object(run.dir / CONSENSUS_FILE)
    if stored is None:
        return "judge/result.json is missing or unreadable"
    record = read_object(run.dir / RECORD_FILE)
    # The original grades the unrounded mean; runner rounds it to 9 places first (so
    # 0.7999999999999999 is an A). Either grade is consistent with the slots.
    if stored.get("grade") == grade_for(expected["score"], rounded=False):
        expected = expected | {"grade": stored["grade"]}
    checks: list[tuple[str, Any, Any]] = [
        (f"judge/result.json's {key}", stored.get(key), expected[key])
        for key in ("score", "passed", "grade", "is_valid")
        if key in stored or key != "is_valid"
    ]
    if record is not None:  # a repair never creates one, so a missing one is no conflict
        checks += [
            (f"run_result.json's judge_{key}", record.get(f"judge_{key}"), expected[key])
            for key in ("score", "passed", "grade")
        ]
        checks.append(
            (
                "run_result.json's judges[]",
                record.get("judges"),
                judges_list(config.judge_models, judgments),
            )
        )
    for what, have, want in checks:
        if isinstance(want, list):
            problem = _judges_problem(have, want)
            if problem:
                return f"{what} {problem}"
        elif not _same(have, want):
            return f"{what} is {have!r}, its slots give {want!r}"[:300]
    for what, have, allowed in (
        ("judge/result.json's reasoning", stored.get("reasoning"), reasonings),
        ("judge/result.json's criteria_scores", stored.get("criteria_scores") or {}, criteria),
    ) + (
        ()
        if record is None
        else (
            ("run_result.json's judge_reasoning", record.get("judge_reasoning"), reasonings),
            ("run_result.json's criteria_scores", record.get("criteria_scores") or {}, criteria),
        )
    ):
        if have not in allowed:
            return f"{what} is not that of any of its slots"
    return None


def regenerate_run(config: ExperimentConfig, run: RunRef) -> tuple[dict[str, Any] | None, bool]:
    """Rewrite judge/result.json and run_result.json's judge fields from the run's slots.

    Returns the consensus (None, and nothing written, when no slot is valid) and whether
    run_result.json was updated: a missing or unreadable one is left alone rather than
    replaced by a record holding only judge fields.
    """
    judgments = run_judgments(config, run)
    result = consensus(judgments)
    if result is None:
        return None, False
    atomic_write_json(run.dir / CONSENSUS_FILE, result)
    record_path = run.dir / RECORD_FILE
    record = read_object(record_path)
    if record is None:
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
    data = read_object(run.dir / CONSENSUS_FILE)
    return data if data is not None and is_number(data.get("score")) else None


def build_summary(config: ExperimentConfig) -> dict[str, Any]:
    """The summary as a JSON-serialisable dict: totals, then tiers -> subtests."""
    # Every tier is listed, one without subtests too; runs() gives the rest in order.
    tallies: dict[str, dict[str, _Tally]] = {tier: {} for tier in config.tiers}
    for run in config.runs():
        tally = tallies[run.tier].setdefault(run.subtest, _Tally())
        tally.add((slot.status for slot in run_slots(config, run)), _consensus_of(run))
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


def summary_outdated(config: ExperimentConfig) -> bool:
    """Whether ``<experiment>/summary/`` no longer says what the runs give.

    A missing summary is outdated only where runner has repaired the experiment before
    (a slot's timing.json says ``rerun``): a repair killed before it wrote its summary.
    """
    stored = read_object(config.root / SUMMARY_DIR / SUMMARY_JSON)
    if stored is None:
        return any(was_rerun(run.slot_dir(n)) for run in config.runs() for n in config.slot_numbers)
    fresh = build_summary(config)
    return any(stored.get(k) != v for k, v in fresh.items() if k != "generated_at")


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
