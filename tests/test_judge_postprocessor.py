"""JudgeConsensus: only rerun runs are regenerated, then the summary is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner.api import Outcome, RunContext
from runner.execute.safecall import SafeCall
from runner_plugins.judge.plugins import JudgeConsensus, JudgeRerun, JudgeSlots
from tests.judge_support import (
    FIXTURE,
    T3,
    context_for,
    copy_fixture,
    remove_slot,
    set_up,
    status_of,
    tree,
)


def _rerun_all(
    experiment: Path, out: Path, command: list[str], **params: Any
) -> tuple[RunContext, list[Outcome]]:
    """Run every listed slot like the core does and return the context and outcomes."""
    context = context_for(out)
    source = JudgeSlots(experiment=str(experiment), **params)
    context.source = source
    set_up(source, context)
    run = SafeCall(JudgeRerun(command=command).run)
    return context, [run(item) for item in source]


def _consensus(outcomes: list[Outcome], context: RunContext) -> None:
    """Set up the post-processor and call it, as the core does."""
    post = JudgeConsensus()
    post.setup(context)
    post(outcomes, context)


def test_consensus_regenerates_the_rerun_run_and_nothing_else(
    experiment: Path, out: Path, judge_cmd: Any
) -> None:
    """After one slot is rerun only its run's consensus files change, plus the summary."""
    remove_slot(experiment)
    before = tree(experiment)
    record_before = json.loads((experiment / T3 / "run_result.json").read_text())
    context, outcomes = _rerun_all(experiment, out, judge_cmd("good", 0.4))
    assert [o.status for o in outcomes] == ["ok"]
    _consensus(outcomes, context)
    after = tree(experiment)
    new_slot = {k for k in after if k.startswith(f"{T3}/judge/judge_02/")}
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed == {f"{T3}/judge/result.json", f"{T3}/run_result.json"}
    assert set(after) - set(before) == new_slot | {
        "summary/judge_summary.json",
        "summary/judge_summary.md",
    }

    slot1 = json.loads((experiment / T3 / "judge/judge_01/judgment.json").read_text())
    result = json.loads((experiment / T3 / "judge/result.json").read_text())
    # Slots 0.96 (pass), 0.4 (fail), 0.99 (pass): mean 0.7833, 2 of 3 pass, slot 1 nearest.
    assert result == {
        "score": pytest.approx((0.96 + 0.4 + 0.99) / 3),
        "passed": True,
        "grade": "B",
        "reasoning": slot1["reasoning"],
        "is_valid": True,
        "criteria_scores": slot1["criteria_scores"],
    }
    record = json.loads((experiment / T3 / "run_result.json").read_text())
    judge_keys = {
        "judge_score",
        "judge_passed",
        "judge_grade",
        "judge_reasoning",
        "judges",
        "criteria_scores",
    }
    assert list(record) == list(record_before)
    assert {k: v for k, v in record.items() if k not in judge_keys} == {
        k: v for k, v in record_before.items() if k not in judge_keys
    }
    assert (record["judge_score"], record["judge_passed"], record["judge_grade"]) == (
        result["score"],
        True,
        "B",
    )
    assert record["judges"][1] == {
        "model": "claude-sonnet-4-5-20250929",
        "score": 0.4,
        "passed": False,
        "grade": "C",
        "reasoning": record["judges"][1]["reasoning"],
        "judge_number": 2,
    }
    assert [e["score"] for e in record["judges"]] == [0.96, 0.4, 0.99]

    summary = json.loads((experiment / "summary" / "judge_summary.json").read_text())
    assert summary["tiers"]["T3"]["subtests"]["01"]["mean_score"] == pytest.approx(result["score"])
    assert summary["totals"]["slots"]["complete"] == 21
    assert (out / "judge_summary.json").read_bytes() == after["summary/judge_summary.json"]
    assert (out / "judge_summary.md").read_bytes() == after["summary/judge_summary.md"]


def test_every_run_whose_consensus_no_longer_matches_its_slots_is_regenerated(
    experiment: Path, out: Path, judge_cmd: Any
) -> None:
    """A run is regenerated because its slots changed, whatever its items' outcomes say."""
    remove_slot(experiment, T3, 2)
    remove_slot(experiment, "T5/01/run_01", 1)
    before = tree(experiment)
    context, outcomes = _rerun_all(experiment, out, judge_cmd("garbage"), tiers=["T3"])
    assert [o.status for o in outcomes] == ["failed"]
    _consensus(outcomes, context)
    after = tree(experiment)
    # T5 lost slot 1 and was not rerun: its consensus is now that of slots 2 and 3.
    t5 = json.loads(after["T5/01/run_01/judge/result.json"])
    assert t5["score"] == pytest.approx((1.0 + 1.0) / 2) and t5["is_valid"] is False
    # T3's rerun failed: the slot is failed and the consensus is that of slots 1 and 3.
    t3 = json.loads(after[f"{T3}/run_result.json"])
    assert t3["judge_score"] == pytest.approx((0.96 + 0.99) / 2)
    assert [e["judge_number"] for e in t3["judges"]] == [1, 3]
    # A run whose consensus matched its slots is not touched.
    for name in ("judge/result.json", "run_result.json"):
        assert after[f"T0/00/run_01/{name}"] == before[f"T0/00/run_01/{name}"]
    assert "summary/judge_summary.json" in after


def test_nothing_to_do_means_nothing_written(experiment: Path, out: Path, judge_cmd: Any) -> None:
    """No item and no stale consensus: the experiment stays byte-identical, no summary."""
    before = tree(experiment)
    context, outcomes = _rerun_all(experiment, out, judge_cmd("good"))
    assert outcomes == []
    _consensus(outcomes, context)
    assert tree(experiment) == before and not (experiment / "summary").exists()
    assert not (out / "judge_summary.json").exists()


def test_a_failed_rerun_leaves_the_slot_failed_and_keeps_what_it_had(
    experiment: Path, out: Path, judge_cmd: Any
) -> None:
    """A failed attempt at a failed slot becomes the slot; the earlier files go to attempts/."""
    slot = experiment / T3 / "judge" / "judge_02"
    (slot / "judgment.json").write_text('{"score": 0.5, "is_valid": false}')
    earlier = tree(slot)
    _, outcomes = _rerun_all(experiment, out, judge_cmd("garbage"))
    assert [o.status for o in outcomes] == ["failed"]
    assert "attempts/1" in outcomes[0].error["message"]  # type: ignore[index]
    assert status_of(slot) == "failed"
    timing = json.loads((slot / "timing.json").read_text())
    assert timing["failed"] is True and "no JSON object" in timing["reason"]
    assert tree(slot / "attempts" / "1") == earlier


def test_consensus_repairs_the_copy_the_source_set_up(
    tmp_path: Path, out: Path, judge_cmd: Any
) -> None:
    """With copy=true the consensus and summary go to the source's copy; the original stays."""
    original = copy_fixture(tmp_path / "original")
    remove_slot(original)
    before = tree(original)
    context, outcomes = _rerun_all(original, out, judge_cmd("good"), copy=True)
    assert [o.status for o in outcomes] == ["ok"]
    _consensus(outcomes, context)
    assert tree(original) == before
    copy = tree(out / "experiment")
    assert copy[f"{T3}/judge/result.json"] != before[f"{T3}/judge/result.json"]
    assert "summary/judge_summary.json" in copy


@pytest.mark.parametrize("source", [object(), JudgeSlots(experiment=str(FIXTURE))])
def test_consensus_needs_the_judge_slots_source(out: Path, source: object) -> None:
    """Another source, or one not set up, stops setup naming the source it needs."""
    with pytest.raises(
        ValueError, match="judge_consensus needs the judge_slots or judge_runs source"
    ):
        JudgeConsensus().setup(context_for(out, source=source))


def test_a_summary_left_out_of_date_by_a_kill_is_rewritten(
    experiment: Path, out: Path, judge_cmd: Any
) -> None:
    """A repair killed before its summary: the next run, with nothing else to do, writes it."""
    remove_slot(experiment)
    context, outcomes = _rerun_all(experiment, out, judge_cmd("good", 0.3))
    _consensus(outcomes, context)
    summary = experiment / "summary" / "judge_summary.json"
    stored = json.loads(summary.read_text())
    summary.write_text(json.dumps(stored | {"totals": {}}))  # what an older run had left
    context, outcomes = _rerun_all(experiment, out, judge_cmd("good"))
    assert outcomes == []
    _consensus(outcomes, context)
    assert json.loads(summary.read_text())["totals"] == stored["totals"]
    summary.unlink()  # a first repair killed before it wrote any summary
    _consensus([], context)
    assert json.loads(summary.read_text())["totals"] == stored["totals"]


def test_runs_whose_consensus_pass_fail_changed_are_named_with_before_and_after(
    experiment: Path, out: Path, judge_cmd: Any, log_lines: list[str]
) -> None:
    """The consensus the source read before the first item is compared with the one the
    repair leaves: T3 passed and now fails, T0 had none (its result.json was lost) and
    now passes; a run whose pass/fail held (T5, re-judged to a pass) is not named."""
    remove_slot(experiment, T3, 1)
    remove_slot(experiment, T3, 3)
    remove_slot(experiment, "T5/01/run_01", 1)
    (experiment / "T0/00/run_01/judge/result.json").unlink()
    context, outcomes = _rerun_all(experiment, out, judge_cmd("good", 0.1), tiers=["T3"])
    assert [o.status for o in outcomes] == ["ok", "ok"]
    _consensus(outcomes, context)
    repair = json.loads((experiment / "summary" / "judge_summary.json").read_text())["repair"]
    decided = {"valid_judges": 3, "judges": 3, "provisional": False}
    assert repair["consensus_changes"] == {
        "count": 2,
        "provisional": 0,
        "runs": [
            {"run": "T0/00/run_01", "passed_before": None, "passed_after": True} | decided,
            {"run": T3, "passed_before": True, "passed_after": False} | decided,
        ],
    }
    assert (repair["succeeded"], repair["failed"], repair["consensus_regenerated"]) == (2, 0, 3)
    assert repair["run_folder"] == str(out.absolute())
    assert (repair["budget_usd"], repair["cost"]["total"]["calls"]) == (None, 0)
    assert any(
        f"pass/fail changed: T0/00/run_01 none -> pass, {T3} pass -> fail" in line
        for line in log_lines
    )
    assert not any(line.startswith("judge cost") for line in log_lines)  # a text judge
    markdown = (out / "judge_summary.md").read_text()
    assert f"| `{T3}` | pass | **fail** |" in markdown
