"""Each run's consensus (judge/result.json, run_result.json); the summary has its own tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner_plugins.judge.consensus import consensus, regenerate_run, run_judgments, stale_reason
from runner_plugins.judge.experiment import RunRef, load_config


def j(
    score: float, passed: bool | None = None, reasoning: str = "", **extra: Any
) -> dict[str, Any]:
    """A judgment as judgment.json holds it."""
    data: dict[str, Any] = {"score": score, "reasoning": reasoning or f"r{score}", **extra}
    if passed is not None:
        data["passed"] = passed
    return data


def test_score_is_the_mean_of_the_valid_slots() -> None:
    """Slots without a valid judgment are left out of the mean."""
    result = consensus([j(0.2), None, j(0.8)])
    assert result["score"] == pytest.approx(0.5)
    assert result["grade"] == "C"


@pytest.mark.parametrize(
    ("passes", "expected"),
    [
        ([True, True, False], True),
        ([True, False], False),
        ([True, True], True),
        ([False, False, True], False),
        ([True], True),
    ],
)
def test_passed_needs_a_strict_majority(passes: list[bool], expected: bool) -> None:
    """passed is true only when more than half of the valid slots passed (a tie fails)."""
    assert consensus([j(0.5, p) for p in passes])["passed"] is expected


def test_a_slot_without_passed_counts_as_not_passed() -> None:
    """A slot without passed votes not passed whatever its score, as in the original."""
    assert consensus([j(0.9), j(0.95), j(0.9, True)])["passed"] is False
    assert consensus([j(0.1, True), j(0.2), j(0.9, True)])["passed"] is True


def test_reasoning_comes_from_the_slot_closest_to_the_mean() -> None:
    """reasoning and criteria_scores come from the valid slot nearest the mean."""
    result = consensus(
        [
            j(0.9, reasoning="high", criteria_scores={"a": 1}),
            j(0.5, reasoning="middle", criteria_scores={"a": 2}),
            j(0.3, reasoning="low"),
        ]
    )
    assert result["score"] == pytest.approx(0.5667, abs=1e-4)
    assert (result["reasoning"], result["criteria_scores"]) == ("middle", {"a": 2})


def test_a_tie_for_closest_goes_to_the_lower_slot() -> None:
    """Two slots equally near the mean: the lower slot number gives the reasoning."""
    assert (
        consensus([j(0.4, reasoning="first"), j(0.8, reasoning="second")])["reasoning"] == "first"
    )


def test_is_valid_only_when_every_slot_is_valid() -> None:
    """One slot without a valid judgment makes the consensus is_valid false."""
    assert consensus([j(0.7), j(0.8)])["is_valid"] is True
    assert consensus([j(0.7), None])["is_valid"] is False


def test_no_valid_slot_gives_no_consensus() -> None:
    """A run without any valid slot has no consensus to derive, as in the original."""
    assert consensus([None, None]) is None


def test_regenerate_run_rewrites_result_and_judge_fields_only(experiment: Path) -> None:
    """judge/result.json and run_result.json's judge fields follow the slots; the rest stays."""
    run_dir = experiment / "T2" / "01" / "run_01"
    before = json.loads((run_dir / "run_result.json").read_text())
    result, recorded = regenerate_run(load_config(experiment), RunRef(experiment, "T2", "01", 1))
    assert recorded
    slot2 = json.loads((run_dir / "judge" / "judge_02" / "judgment.json").read_text())
    # Scores 0.95, 1.0, 1.0: slots 2 and 3 tie nearest the mean, slot 2 wins.
    assert result["score"] == pytest.approx((0.95 + 1.0 + 1.0) / 3)
    assert (result["passed"], result["grade"], result["is_valid"]) == (True, "A", True)
    assert result["reasoning"] == slot2["reasoning"]
    assert json.loads((run_dir / "judge" / "result.json").read_text()) == result
    after = json.loads((run_dir / "run_result.json").read_text())
    assert list(after) == list(before)  # no key moved, none added
    judge_keys = {
        "judge_score",
        "judge_passed",
        "judge_grade",
        "judge_reasoning",
        "judges",
        "criteria_scores",
    }
    assert {k: v for k, v in after.items() if k not in judge_keys} == {
        k: v for k, v in before.items() if k not in judge_keys
    }
    assert after["judge_reasoning"] == slot2["reasoning"]
    assert after["criteria_scores"] == slot2["criteria_scores"]
    assert [(e["judge_number"], e["model"], e["score"]) for e in after["judges"]] == [
        (1, "claude-opus-4-5-20251101", 0.95),
        (2, "claude-sonnet-4-5-20250929", 1.0),
        (3, "claude-haiku-4-5", 1.0),
    ]


def test_regenerate_run_keeps_a_missing_run_record_missing(experiment: Path) -> None:
    """Without run_result.json only judge/result.json is written, and the caller is told."""
    run_dir = experiment / "T4" / "01" / "run_01"
    (run_dir / "run_result.json").unlink()
    _, recorded = regenerate_run(load_config(experiment), RunRef(experiment, "T4", "01", 1))
    assert not recorded and not (run_dir / "run_result.json").exists()
    assert (run_dir / "judge" / "result.json").is_file()


def test_stale_reason_finds_a_changed_slot_and_accepts_the_originals_grade(
    experiment: Path,
) -> None:
    """A slot score that changed makes a run stale; the original's unrounded grade does not."""
    config = load_config(experiment)
    run = RunRef(experiment, "T2", "01", 1)
    assert stale_reason(config, run, run_judgments(config, run)) is None
    slots = [run.slot_dir(n) for n in (1, 2, 3)]
    for slot, score in zip(slots, (0.75, 0.8, 0.85), strict=True):
        data = json.loads((slot / "judgment.json").read_text())
        (slot / "judgment.json").write_text(json.dumps(data | {"score": score}))
    assert "score" in str(stale_reason(config, run, run_judgments(config, run)))
    regenerate_run(config, run)
    assert stale_reason(config, run, run_judgments(config, run)) is None
    result_file = run.dir / "judge" / "result.json"
    stored = json.loads(result_file.read_text())
    assert stored["grade"] == "A"  # runner rounds 0.7999999999999999 to 0.8
    result_file.write_text(json.dumps(stored | {"grade": "B"}))  # as the original grades it
    record_file = run.dir / "run_result.json"
    record = json.loads(record_file.read_text())
    record_file.write_text(json.dumps(record | {"judge_grade": "B"}))
    assert stale_reason(config, run, run_judgments(config, run)) is None
    result_file.write_text(json.dumps(stored | {"grade": "C"}))
    assert "grade" in str(stale_reason(config, run, run_judgments(config, run)))
