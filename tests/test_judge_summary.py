"""The experiment summary (summary.py) and its Markdown (markdown.py).

Most tests build a small experiment by hand, slot by slot, so that every figure has a
value worked out here and a summary that miscounted would fail.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from runner_plugins.judge import markdown
from runner_plugins.judge import summary as summary_module
from runner_plugins.judge.consensus import regenerate_run
from runner_plugins.judge.experiment import ExperimentConfig, load_config
from runner_plugins.judge.sample import make_sample_experiment
from runner_plugins.judge.slotfiles import write_timing
from runner_plugins.judge.slotstatus import run_slots
from runner_plugins.judge.summary import (
    SUMMARY_DIR,
    SUMMARY_JSON,
    SUMMARY_MD,
    build_summary,
    summary_markdown,
    summary_outdated,
    write_summary,
)

MODELS = ("judge-a", "judge-b", "judge-c")
#: A slot's state: ("ok", score, passed), ("failed", kind), ("legacy", reason), "missing",
#: "truncated", "no_score" or "invalid"; a run of None has an agent that failed.
Slot = Any


def ok(score: float, passed: bool) -> Slot:
    return ("ok", score, passed)


def failed(kind: str) -> Slot:
    return ("failed", kind)


def _write_slot(folder: Path, state: Slot) -> None:
    if state == "missing":
        return
    folder.mkdir(parents=True)
    if isinstance(state, tuple) and state[0] == "ok":
        judgment = {"score": state[1], "passed": state[2], "reasoning": f"r{state[1]}"}
        (folder / "judgment.json").write_text(json.dumps(judgment))
        write_timing(folder, 1.0, at="T")
    elif isinstance(state, tuple) and state[0] == "failed":
        write_timing(
            folder, 1.0, at="T", rerun=True, failure=f"it failed: {state[1]}", kind=state[1]
        )
    elif isinstance(state, tuple) and state[0] == "legacy":  # before failure_kind existed
        write_timing(folder, 1.0, at="T", failure=state[1])
    else:
        text = {
            "truncated": '{"score": 0.',
            "no_score": '{"passed": true}',
            "invalid": '{"score": 0.5, "is_valid": false}',
        }[state]
        (folder / "judgment.json").write_text(text)


def build(root: Path, runs: dict[str, Sequence[Slot] | None]) -> ExperimentConfig:
    """An experiment of MODELS whose runs ("T0/00/run_01") have the given slots."""
    tiers = sorted({run.split("/")[0] for run in runs})
    config = {
        "experiment_id": "hand-made",
        "judge_models": list(MODELS),
        "runs_per_subtest": max(int(run.rsplit("_", 1)[1]) for run in runs),
        "tiers_to_run": tiers,
    }
    (root / "config").mkdir(parents=True)
    (root / "config" / "experiment.json").write_text(json.dumps(config))
    for run, slots in runs.items():
        run_dir = root / run
        run_dir.mkdir(parents=True)
        if slots is None:
            continue  # no agent/output.txt: every slot is agent_failed
        (run_dir / "agent").mkdir()
        (run_dir / "agent" / "output.txt").write_text("done\n")
        (run_dir / "agent" / "result.json").write_text("{}")
        (run_dir / "run_result.json").write_text("{}")
        for number, state in enumerate(slots, 1):
            _write_slot(run_dir / "judge" / f"judge_{number:02d}", state)
    loaded = load_config(root)
    for run in loaded.runs():
        regenerate_run(loaded, run)  # the consensus files, from the slots
    return loaded


def test_each_judge_model_has_its_slots_valid_judgments_scores_and_failures(
    tmp_path: Path,
) -> None:
    """Per model: slots to judge (agent finished), valid, failed, missing, mean, pass rate."""
    config = build(
        tmp_path / "exp",
        {
            "T0/00/run_01": [ok(0.9, True), ok(0.5, False), "missing"],
            "T0/00/run_02": [ok(0.7, True), failed("timeout"), ok(0.2, False)],
            "T0/00/run_03": None,
        },
    )
    judges = build_summary(config)["judges"]
    assert judges["judge-a"] == {
        "slot_numbers": [1],
        "slots": 3,
        "slots_to_judge": 2,
        "valid": 2,
        "failed": 0,
        "missing": 0,
        "mean_score": pytest.approx(0.8),
        "pass_rate": 1.0,
    }
    b, c = judges["judge-b"], judges["judge-c"]
    assert (b["valid"], b["failed"], b["missing"], b["mean_score"], b["pass_rate"]) == (
        1,
        1,
        0,
        0.5,
        0.0,
    )
    assert (c["valid"], c["failed"], c["missing"], c["mean_score"], c["pass_rate"]) == (
        1,
        0,
        1,
        0.2,
        0.0,
    )
    text = summary_markdown(build_summary(config))
    assert "| `judge-a` (slot 1) | 2 | 2 | 0 | 0 | 0.800 | 100% |" in text
    assert "| `judge-b` (slot 2) | 2 | 1 | 1 | 0 | 0.500 | 0% |" in text


def test_agreement_is_the_share_of_unanimous_runs_and_the_score_spread(tmp_path: Path) -> None:
    """Runs with 2+ valid judgments: all agree on pass/fail or not; spread = max - min."""
    config = build(
        tmp_path / "exp",
        {
            "T0/00/run_01": [ok(0.9, True), ok(0.7, True), ok(0.8, True)],
            "T0/00/run_02": [ok(0.9, True), ok(0.3, False), "missing"],
            "T1/00/run_01": [ok(0.5, True), "missing", failed("exit_code")],
            "T1/00/run_02": [ok(0.1, False), ok(0.2, False), ok(0.15, False)],
        },
    )
    summary = build_summary(config)
    t0, t1 = (summary["tiers"][t]["agreement"] for t in ("T0", "T1"))
    assert t0 == {
        "runs_compared": 2,
        "unanimous_runs": 1,
        "unanimous_rate": 0.5,
        "mean_score_spread": pytest.approx(0.4),
        "max_score_spread": pytest.approx(0.6),
    }
    assert (t1["runs_compared"], t1["unanimous_rate"]) == (1, 1.0)  # T1/00/run_01 has 1
    assert t1["mean_score_spread"] == pytest.approx(0.1)
    whole = summary["totals"]["agreement"]
    assert (whole["runs_compared"], whole["unanimous_runs"]) == (3, 2)
    assert whole["mean_score_spread"] == pytest.approx(0.3)
    assert summary["tiers"]["T0"]["subtests"]["00"]["agreement"] == t0
    text = summary_markdown(summary)
    assert "| T0 | 2 | 50% | 0.400 | 0.600 | 1 |" in text
    assert "| T1 | 1 | 100% | 0.100 | 0.100 | 1 |" in text
    assert "| **all** | 3 | 67% | 0.300 | 0.600 | 2 |" in text


def test_runs_short_of_judges_are_counted_and_listed_up_to_a_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose agent finished but lacks a valid judgment from some model is flagged;
    the JSON lists LISTED of them and the Markdown SHOWN, with the whole count."""
    monkeypatch.setattr(summary_module, "LISTED", 2)
    monkeypatch.setattr(markdown, "SHOWN", 1)
    config = build(
        tmp_path / "exp",
        {
            "T0/00/run_01": [ok(0.9, True), ok(0.7, True), ok(0.8, True)],
            "T0/00/run_02": [ok(0.9, True), "truncated", "missing"],
            "T0/00/run_03": None,  # agent failed: nothing to judge, not flagged
            "T0/01/run_01": ["missing", "missing", "missing"],
            "T0/01/run_02": [ok(0.4, False), ok(0.5, True), failed("timeout")],
            "T0/01/run_03": [ok(0.4, False), ok(0.5, True), ok(0.6, True)],
        },
    )
    summary = build_summary(config)
    assert summary["runs_short_of_judges"] == {
        "count": 3,
        "runs": [
            {"run": "T0/00/run_02", "valid_judges": 1, "judges": 3},
            {"run": "T0/01/run_01", "valid_judges": 0, "judges": 3},
        ],
    }
    assert summary["totals"]["short_of_judges"] == 3
    assert summary["tiers"]["T0"]["subtests"]["01"]["short_of_judges"] == 2
    text = summary_markdown(summary)
    assert "**3** run(s) whose agent finished lack a valid judgment" in text
    assert "| `T0/00/run_02` | 1 of 3 |" in text
    assert "T0/01/run_01" not in text.split("lack a valid judgment")[1].split("## ")[0]
    assert "... and 2 more (judge_summary.json lists 2)." in text


def test_failure_reasons_count_failed_slots_and_every_recorded_failed_attempt(
    tmp_path: Path,
) -> None:
    """A failed slot counts once, by its last attempt's kind or its broken judgment.json;
    failed attempts count every failed timing.json, attempts/ included; timing.json
    files without failure_kind are read by their reason."""
    config = build(
        tmp_path / "exp",
        {
            "T0/00/run_01": [failed("timeout"), failed("judge_error"), ok(0.5, True)],
            "T0/00/run_02": [
                ("legacy", "judge exited with code 1: 429 Too Many Requests"),
                ("legacy", "timed out after 3 s"),
                "truncated",
            ],
            "T0/00/run_03": ["no_score", "invalid", failed("exit_code")],
        },
    )
    # Earlier attempts kept in attempts/: one behind a failed slot, one behind a complete one.
    runs = tmp_path / "exp" / "T0" / "00"
    for slot, kind in (
        ("run_03/judge/judge_03", "unusable_reply"),
        ("run_01/judge/judge_03", "rate_limited"),
    ):
        kept = runs / slot / "attempts" / "1"
        kept.mkdir(parents=True)
        write_timing(kept, 1.0, at="T", rerun=True, failure="earlier", kind=kind)
    failures = build_summary(config)["failures"]
    assert failures["failed_slots"] == {
        "timeout": 2,
        "judge_error": 1,
        "rate_limited": 1,
        "unreadable_judgment": 1,
        "no_score": 1,
        "invalid_judgment": 1,
        "exit_code": 1,
    }
    assert failures["failed_attempts"] == {
        "timeout": 2,
        "rate_limited": 2,
        "judge_error": 1,
        "exit_code": 1,
        "unusable_reply": 1,
    }
    text = summary_markdown(build_summary(config))
    assert "| timed out (task.timeout) (`timeout`) | 2 | 2 |" in text
    assert "| reply without a usable verdict (`unusable_reply`) | 0 | 1 |" in text
    assert "| judgment.json has no numeric score (`no_score`) | 1 | 0 |" in text


def test_cost_totals_sum_every_recorded_attempt_per_model(tmp_path: Path) -> None:
    """timing.json's cost, the slot's and its attempts', is summed per model; a call
    that reported no cost is counted as such."""
    config = build(
        tmp_path / "exp", {"T0/00/run_01": [ok(0.9, True), ok(0.7, True), ok(0.8, True)]}
    )
    slot = tmp_path / "exp" / "T0" / "00" / "run_01" / "judge"
    usage = {"input_tokens": 10, "output_tokens": 200, "cache_creation_input_tokens": 3000}
    cost = {"model": "judge-a", "total_cost_usd": 0.25, "cache_read_input_tokens": 40000}
    write_timing(
        slot / "judge_01", 2.0, rerun=True, extra={"cost": cost | usage | {"duration_ms": 1500}}
    )
    kept = slot / "judge_01" / "attempts" / "1"
    kept.mkdir(parents=True)
    write_timing(
        kept,
        1.0,
        rerun=True,
        failure="x",
        kind="judge_error",
        extra={"cost": {"total_cost_usd": 0.05}},
    )
    write_timing(slot / "judge_02", 2.0, rerun=True, extra={"cost": {"total_cost_usd": None}})
    figures = build_summary(config)["cost"]
    a, b = figures["per_model"]["judge-a"], figures["per_model"]["judge-b"]
    assert (a["calls"], a["total_cost_usd"], a["calls_without_cost"]) == (2, 0.3, 0)
    assert (a["input_tokens"], a["cache_read_input_tokens"], a["duration_ms"]) == (10, 40000, 1500)
    assert (b["calls"], b["calls_without_cost"], b["total_cost_usd"]) == (1, 1, 0.0)
    assert (figures["total"]["calls"], figures["total"]["total_cost_usd"]) == (3, 0.3)
    text = summary_markdown(build_summary(config))
    assert "**$0.30** in 3 call(s)" in text
    # The kept attempt reported no duration; judge-b's one call reported none: '-', not 0.0.
    assert "| `judge-a` | 2 | $0.30 | 10 | 200 | 3,000 | 40,000 | 1.5 (1 unreported) |" in text
    assert "| `judge-b` | 1 | $0.00 (1 unknown) | 0 | 0 | 0 | 0 | - |" in text


def test_no_reported_cost_says_so(tmp_path: Path) -> None:
    """An experiment judged by text judges has no cost to total, and the Markdown says so."""
    config = build(tmp_path / "exp", {"T0/00/run_01": [ok(0.9, True), "missing", "missing"]})
    summary = build_summary(config)
    assert summary["cost"] == {"per_model": {}, "total": summary["cost"]["total"]}
    assert summary["cost"]["total"]["calls"] == 0
    assert "No judge reported its cost" in summary_markdown(summary)


def test_every_column_states_its_unit_and_runs_are_not_slots(tmp_path: Path) -> None:
    """The main table says which columns count runs and which count slots; scores and
    rates say their scale and what they are a share of; the JSON says so in ``units``."""
    config = build(tmp_path / "exp", {"T0/00/run_01": [ok(0.9, True), "missing", "missing"]})
    summary = build_summary(config)
    text = summary_markdown(summary)
    assert (
        "| tier | subtest | runs | runs with a consensus | missing (slots) | failed (slots) "
        "| complete (slots) | agent_failed (slots) | mean score (0-1, runs with a consensus) "
        "| pass rate (% of runs with a consensus) |"
    ) in text
    assert "| T0 | 00 | 1 | 1 | 2 | 0 | 1 | 0 | 0.900 | 100% |" in text
    assert "pass rate (% of valid judgments)" in text
    assert "all judges agree on pass/fail (% of runs compared)" in text
    for key in ("runs", "scored_runs", "slots", "mean_score", "pass_rate", "short_of_judges"):
        assert key in summary["units"]


def test_the_repair_section_lists_changed_runs_cost_and_budget(tmp_path: Path) -> None:
    """What the run did is in ``repair`` and in its own Markdown section; a stored summary
    is not outdated for carrying it."""
    config = build(tmp_path / "exp", {"T0/00/run_01": [ok(0.9, True), "missing", "missing"]})
    per_model = {"judge-b": {"calls": 2, "calls_without_cost": 0, "total_cost_usd": 0.5}}
    per_model["judge-b"] |= {key: 0 for key in ("input_tokens", "output_tokens", "duration_ms")}
    per_model["judge-b"] |= {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    repair = {
        "run_folder": "/runs/1",
        "succeeded": 2,
        "failed": 3,
        "consensus_regenerated": 2,
        "consensus_changes": {
            "count": 2,
            "runs": [
                {"run": "T0/00/run_01", "passed_before": True, "passed_after": False},
                {"run": "T0/00/run_02", "passed_before": None, "passed_after": True},
            ],
        },
        "cost": summary_module.cost_figures(per_model),
        "budget_usd": 0.5,
        "budget_reached": True,
        "budget_stopped": 3,
    }
    paths = write_summary(config, [config.root / SUMMARY_DIR], repair)
    stored = json.loads(paths[0].read_text())
    assert stored["repair"] == repair and list(stored)[-1] == "repair"
    text = (config.root / SUMMARY_DIR / SUMMARY_MD).read_text()
    section = text.split("## This repair")[1]
    assert "its pass/fail changed in **2** run(s)" in section
    assert "| `T0/00/run_01` | pass | **fail** |" in section
    assert "| `T0/00/run_02` | none | **pass** |" in section
    assert "judge cost of this run: **$0.50** in 2 call(s)" in section
    assert "3 slot(s) not started and left as they were (BudgetExhausted)" in section
    assert not summary_outdated(config)
    (config.root / "T0" / "00" / "run_01" / "judge" / "judge_01" / "judgment.json").unlink()
    assert summary_outdated(config)


def test_summary_counts_every_slot_and_scores_runs_with_a_consensus(tmp_path: Path) -> None:
    """Per tier and subtest: slot counts add up, mean score and pass rate come from result.json."""
    root = make_sample_experiment(tmp_path / "sample", seed=3)
    config = load_config(root)
    summary = build_summary(config)
    statuses = [s.status for run in config.runs() for s in run_slots(config, run)]
    assert sum(summary["totals"]["slots"].values()) == len(statuses) == 180
    for status, count in summary["totals"]["slots"].items():
        assert statuses.count(status) == count
    sub = summary["tiers"]["T0"]["subtests"]["00"]
    results = [
        json.loads(p.read_text()) for p in sorted(root.glob("T0/00/run_*/judge/result.json"))
    ]
    assert sub["scored_runs"] == len(results) > 0
    assert sub["mean_score"] == pytest.approx(sum(r["score"] for r in results) / len(results))
    assert sub["pass_rate"] == pytest.approx(sum(r["passed"] for r in results) / len(results))
    assert summary["tiers"]["T0"]["runs"] == 12 and summary["totals"]["runs"] == 60
    # The sample's failed slots are of its four kinds (its 429 written before failure_kind).
    failed = summary["failures"]["failed_slots"]
    assert set(failed) == {"rate_limited", "unreadable_judgment", "no_score", "invalid_judgment"}
    assert sum(failed.values()) == statuses.count("failed")


def test_summary_markdown_has_a_row_per_subtest_and_totals(tmp_path: Path) -> None:
    """The main table has one row per subtest, one per tier and one for the experiment."""
    config = load_config(make_sample_experiment(tmp_path / "sample", seed=3))
    text = summary_markdown(build_summary(config))
    main = text.split("## Scores and slot statuses by tier and subtest")[1].split("\n## ")[0]
    rows = [line for line in main.splitlines() if line.startswith("| T")]
    assert len(rows) == 10
    assert sum(line.startswith("| **") for line in main.splitlines()) == 6
    for section in ("By judge model", "Agreement between judges", "Failure reasons"):
        assert f"\n## {section}\n" in text


def test_write_summary_writes_both_files_to_each_folder(tmp_path: Path) -> None:
    """The same summary lands in every folder given."""
    config = load_config(make_sample_experiment(tmp_path / "sample", seed=3))
    paths = write_summary(config, [tmp_path / "a", tmp_path / "b" / "c"])
    assert paths == [
        tmp_path / "a" / SUMMARY_JSON,
        tmp_path / "a" / SUMMARY_MD,
        tmp_path / "b" / "c" / SUMMARY_JSON,
        tmp_path / "b" / "c" / SUMMARY_MD,
    ]
    assert (tmp_path / "a" / SUMMARY_MD).read_text() == (
        tmp_path / "b" / "c" / SUMMARY_MD
    ).read_text()
    assert json.loads((tmp_path / "a" / SUMMARY_JSON).read_text())["experiment_id"] == "sample-3"
