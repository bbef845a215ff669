"""After every slot has finished: each run's consensus, derived from its slots.

A run's consensus lives in ``judge/result.json`` and in the judge fields of its
``run_result.json``; ``summary.py`` then sums up the experiment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from runner.toolkit import atomic_write_json
from runner_plugins.judge.experiment import (
    CONSENSUS_FILE,
    RECORD_FILE,
    ExperimentConfig,
    RunRef,
    read_object,
)
from runner_plugins.judge.judgment import grade_for, make_judgment

# The summary's names, importable from here as before it had its own module.
from runner_plugins.judge.reply import clamp_score, is_number, passed_value
from runner_plugins.judge.slotstatus import read_judgment


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


def stored_consensus(run: RunRef) -> dict[str, Any] | None:
    """The run's judge/result.json when it holds a numeric score, else None."""
    data = read_object(run.dir / CONSENSUS_FILE)
    return data if data is not None and is_number(data.get("score")) else None


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
