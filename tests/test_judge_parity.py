"""Parity with ProjectScylla's rerun_judges.py, which task=judge_rerun replaces.

The first part ports the original's unit tests (tests/unit/e2e/test_rerun_judges.py) to
runner's API; each docstring names the test it comes from and says where runner
deliberately differs. The second part checks the parity points found since: reply
defaults, older configs, stray subtest folders, rebuilt judge prompts, the judge
command's checks, rate limits and regenerate-only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.api import TaskFailure
from runner.toolkit import detect_rate_limit
from runner_plugins.judge.consensus import regenerate_run
from runner_plugins.judge.experiment import (
    SUMMARY_DIR,
    SUMMARY_JSON,
    SUMMARY_MD,
    RunRef,
    load_config,
)
from runner_plugins.judge.judgecall import JudgeRateLimited
from runner_plugins.judge.plugins import JudgeRerun, JudgeRuns, JudgeSlots
from runner_plugins.judge.slotstatus import STATUSES
from tests.conftest import RunCli
from tests.judge_support import context_for, slots_for, tree

MODELS = ("claude-opus-4-6", "claude-sonnet-4-5")
RUN = "T0/00/run_01"
TASK = "Create hello.py that prints Hello, World!\n"

# A judge that prints the reply held in the file argv[1], whatever the slot.
REPLY_JUDGE = "import sys\nprint(open(sys.argv[1]).read())\n"
# A judge that echoes the prompt file argv[1] it was given as its verdict's reasoning.
ECHO_JUDGE = """
import json, sys
prompt = open(sys.argv[1]).read()
print("```json\\n" + json.dumps({"score": 0.5, "passed": True, "reasoning": prompt}) + "\\n```")
"""
# A judge that fails with the message argv[1] on stderr.
FAILING_JUDGE = "import sys\nprint(sys.argv[1], file=sys.stderr)\nsys.exit(1)\n"
# A judge that fails with one message for run 1 (argv[1] is the run number), another for run 2.
RUN_FAILING_JUDGE = """
import sys
print({"1": "parsed 429 lines; error: invalid API key",
       "2": "API Error: HTTP 429 rate_limit_error. Retry-After: 12"}[sys.argv[1]], file=sys.stderr)
sys.exit(1)
"""


# --- building experiments -----------------------------------------------------------


def make_experiment(
    root: Path,
    models: tuple[str, ...] = MODELS,
    runs: int = 1,
    tiers: tuple[str, ...] = ("T0",),
    prompt: bool = True,
    **config: Any,
) -> Path:
    """A minimal experiment: config/experiment.json and (unless ``prompt`` is false) prompt.md."""
    (root / "config").mkdir(parents=True)
    data = {
        "experiment_id": "parity",
        "judge_models": list(models),
        "runs_per_subtest": runs,
        "tiers_to_run": list(tiers),
        **config,
    }
    (root / "config" / "experiment.json").write_text(json.dumps(data))
    if prompt:
        (root / "prompt.md").write_text(TASK)
    return root


def make_run(
    root: Path,
    run: str = RUN,
    output: str | None = "Agent output",
    result: bool = True,
    judge_prompt: bool = True,
    record: dict[str, Any] | None = None,
) -> Path:
    """A run folder: agent/output.txt (unless None), agent/result.json, judge_prompt.md,
    run_result.json (when ``record`` is given)."""
    run_dir = root / run
    (run_dir / "agent").mkdir(parents=True)
    if output is not None:
        (run_dir / "agent" / "output.txt").write_text(output)
    if result:
        (run_dir / "agent" / "result.json").write_text('{"exit_code": 0}')
    if judge_prompt:
        (run_dir / "judge_prompt.md").write_text("Judge this run.\n")
    if record is not None:
        (run_dir / "run_result.json").write_text(json.dumps(record))
    return run_dir


def write_judgment(run_dir: Path, number: int, content: dict[str, Any] | str | None) -> Path:
    """Slot ``number``'s folder with judgment.json (JSON, raw text, or none for None)."""
    slot = run_dir / "judge" / f"judge_{number:02d}"
    slot.mkdir(parents=True)
    if content is not None:
        text = content if isinstance(content, str) else json.dumps(content)
        (slot / "judgment.json").write_text(text)
    return slot


def judgment(score: Any, reasoning: str = "Good", **extra: Any) -> dict[str, Any]:
    """A judgment.json as the original writes it."""
    return {"score": score, "passed": True, "grade": "B", "reasoning": reasoning, **extra}


# --- reading statuses ---------------------------------------------------------------


def listed(root: Path, out: Path, **params: Any) -> dict[str, str]:
    """Slot id -> status of every slot a dry-run JudgeSlots lists (agent_failed is never
    listed: it cannot be rerun)."""
    params.setdefault("status", ["missing", "failed", "complete"])
    return {item.id: item["status"] for item in slots_for(root, out, dry_run=True, **params)}


def table(source: JudgeSlots) -> dict[str, dict[str, int]]:
    """describe()'s status table: row (tier or "all") -> status (and "total") -> count."""
    rows = {}
    for line in source.describe().splitlines():
        cells = line.split()
        if len(cells) == len(STATUSES) + 2 and all(c.isdigit() for c in cells[1:]):
            rows[cells[0]] = dict(zip((*STATUSES, "total"), map(int, cells[1:]), strict=True))
    return rows


def read(path: Path) -> Any:
    """The JSON in ``path``."""
    return json.loads(path.read_text())


def consensus_of(root: Path, run: str = RUN) -> tuple[dict[str, Any] | None, bool]:
    """regenerate_run on one run of ``root``."""
    tier, subtest, name = run.split("/")
    return regenerate_run(load_config(root), RunRef(root, tier, subtest, int(name[4:])))


def script(folder: Path, name: str, text: str) -> Path:
    """Write ``text`` to ``folder/name`` and return the path."""
    path = folder / name
    path.write_text(text)
    return path


def command_override(argv: list[str]) -> str:
    """``task.command=[...]`` for the command line, every element quoted."""
    return "task.command=[" + ",".join(f"'{part}'" for part in argv) + "]"


# --- ported: _is_valid_judgment (as slot statuses) ---------------------------------


@pytest.mark.parametrize(
    ("content", "status"),
    [
        pytest.param(None, "failed", id="test_is_valid_judgment_missing_file"),
        pytest.param(
            judgment(0.8, is_valid=True),
            "complete",
            id="test_is_valid_judgment_with_score_and_valid_true",
        ),
        pytest.param(
            judgment(0.0, "Heuristic fallback", is_valid=False),
            "failed",
            id="test_is_valid_judgment_with_score_and_valid_false",
        ),
        pytest.param(
            judgment(0.9, "Excellent"),
            "complete",
            id="test_is_valid_judgment_backward_compat_no_is_valid_field",
        ),
        pytest.param({"reasoning": "No score"}, "failed", id="test_is_valid_judgment_no_score"),
        pytest.param("not valid json {", "failed", id="test_is_valid_judgment_invalid_json"),
    ],
)
def test_the_judgment_file_decides_complete_or_failed(
    tmp_path: Path, out: Path, content: Any, status: str
) -> None:
    """Ported from the six test_is_valid_judgment_* tests (one per case id): a slot folder
    whose judgment.json is absent, unparsable, without score or is_valid false is failed;
    one with a score and is_valid true or absent is complete."""
    root = make_experiment(tmp_path / "exp", models=MODELS[:1])
    write_judgment(make_run(root), 1, content)
    assert listed(root, out) == {f"{RUN}/judge_01": status}


@pytest.mark.parametrize("score", ["0.8", None, True, [0.8]])
def test_a_judgment_whose_score_is_not_a_number_is_failed(
    tmp_path: Path, out: Path, score: Any
) -> None:
    """Ported from test_is_valid_judgment_with_score_and_valid_true, where runner differs on
    purpose: the original counts any "score" key, runner needs a numeric score (a string,
    null, a boolean or a list makes the slot failed, so it is rerun)."""
    root = make_experiment(tmp_path / "exp", models=MODELS[:1])
    write_judgment(make_run(root), 1, judgment(score, is_valid=True))
    assert listed(root, out) == {f"{RUN}/judge_01": "failed"}


# --- ported: _regenerate_consensus ---------------------------------------------------


def test_consensus_of_valid_judges_is_their_mean(tmp_path: Path) -> None:
    """Ported from test_regenerate_consensus_all_valid_judges: scores 0.85 and 0.9 give 0.875,
    is_valid true and criteria_scores; runner also writes judges[] into run_result.json
    (the original leaves judges[] as it was)."""
    root = make_experiment(tmp_path / "exp")
    run_dir = make_run(root, record={"run_number": 1, "judges": []})
    criteria = {"accuracy": {"score": 0.9, "explanation": "Good"}}
    for i in (1, 2):
        write_judgment(
            run_dir,
            i,
            judgment(
                0.8 + i * 0.05, f"Judge {i} reasoning", is_valid=True, criteria_scores=criteria
            ),
        )
    result, recorded = consensus_of(root)
    assert result is not None and recorded
    stored = read(run_dir / "judge" / "result.json")
    assert stored == result
    assert stored["score"] == pytest.approx(0.875)
    assert stored["is_valid"] is True and stored["criteria_scores"] == criteria
    record = read(run_dir / "run_result.json")
    assert record["judge_score"] == pytest.approx(0.875)
    assert [(e["judge_number"], e["model"], e["score"]) for e in record["judges"]] == [
        (1, MODELS[0], pytest.approx(0.85)),
        (2, MODELS[1], pytest.approx(0.9)),
    ]


def test_consensus_with_an_invalid_judge_uses_only_the_valid_one(tmp_path: Path) -> None:
    """Ported from test_regenerate_consensus_with_invalid_judge: one valid (0.9) and one
    is_valid false judge give score 0.9, is_valid false, and the valid judge's reasoning and
    criteria_scores."""
    root = make_experiment(tmp_path / "exp")
    run_dir = make_run(root)
    criteria = {"accuracy": {"score": 0.95, "explanation": "Great"}}
    write_judgment(
        run_dir, 1, judgment(0.9, "Valid judgment", is_valid=True, criteria_scores=criteria)
    )
    write_judgment(run_dir, 2, judgment(0.0, "Heuristic fallback: agent crashed", is_valid=False))
    consensus_of(root)
    stored = read(run_dir / "judge" / "result.json")
    assert stored["score"] == 0.9
    assert stored["is_valid"] is False
    assert stored["reasoning"] == "Valid judgment"
    assert stored["criteria_scores"]["accuracy"]["score"] == 0.95


def test_no_consensus_is_written_when_every_judge_is_invalid(tmp_path: Path) -> None:
    """Ported from test_regenerate_consensus_all_invalid_judges: no valid judgment, no
    judge/result.json."""
    root = make_experiment(tmp_path / "exp", models=("claude-haiku-4-5", "claude-haiku-4-5"))
    run_dir = make_run(root, record={"run_number": 1, "judge_score": 0.3})
    for i in (1, 2):
        write_judgment(run_dir, i, judgment(0.0, f"Heuristic fallback {i}", is_valid=False))
    assert consensus_of(root) == (None, False)
    assert not (run_dir / "judge" / "result.json").exists()
    assert read(run_dir / "run_result.json") == {"run_number": 1, "judge_score": 0.3}


def test_no_consensus_is_written_without_any_judge(tmp_path: Path) -> None:
    """Ported from test_regenerate_consensus_no_judges: a run with no judge folder gets no
    consensus."""
    root = make_experiment(tmp_path / "exp", models=MODELS[:1])
    run_dir = make_run(root)
    assert consensus_of(root) == (None, False)
    assert not (run_dir / "judge").exists()


def test_a_judgment_without_is_valid_counts_as_valid(tmp_path: Path) -> None:
    """Ported from test_regenerate_consensus_backward_compat_no_is_valid: an old judgment
    without is_valid is used, and the consensus is valid."""
    root = make_experiment(tmp_path / "exp", models=MODELS[:1])
    run_dir = make_run(root)
    write_judgment(run_dir, 1, judgment(0.75, "Old format judgment"))
    consensus_of(root)
    stored = read(run_dir / "judge" / "result.json")
    assert stored["score"] == 0.75 and stored["is_valid"] is True


def test_reasoning_comes_from_the_judge_closest_to_the_mean(tmp_path: Path) -> None:
    """Ported from test_regenerate_consensus_representative_reasoning: the reasoning and
    criteria_scores are those of the judge nearest the mean (0.5, 0.85 and 0.9: mean 0.75,
    judge 2). The original's own scores (0.5 and 0.85, mean 0.675) are a tie: runner gives
    it to the lower slot, as consensus() documents, where the original picks judge 2
    through float rounding (|0.85 - 0.675| computes as 0.17499999999999993)."""
    criteria = {"accuracy": {"score": 0.9, "explanation": "Good"}}
    slots = [
        judgment(0.5, "Agent failed completely", is_valid=True, passed=False),
        judgment(0.85, "Agent mostly succeeded", is_valid=True, criteria_scores=criteria),
        judgment(0.9, "Agent succeeded", is_valid=True),
    ]
    root = make_experiment(tmp_path / "exp", models=(*MODELS, "claude-haiku-4-5"))
    run_dir = make_run(root)
    for number, data in enumerate(slots, 1):
        write_judgment(run_dir, number, data)
    consensus_of(root)
    stored = read(run_dir / "judge" / "result.json")
    assert stored["score"] == pytest.approx(0.75)
    assert stored["reasoning"] == "Agent mostly succeeded"
    assert stored["criteria_scores"]["accuracy"]["score"] == 0.9

    tie = make_experiment(tmp_path / "tie")
    tie_run = make_run(tie)
    for number, data in enumerate(slots[:2], 1):
        write_judgment(tie_run, number, data)
    consensus_of(tie)
    stored = read(tie_run / "judge" / "result.json")
    assert stored["score"] == pytest.approx(0.675)
    assert (stored["reasoning"], stored["criteria_scores"]) == ("Agent failed completely", None)


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        pytest.param(
            {"accuracy": {"score": 0.9, "explanation": "Accurate"}},
            {"accuracy": {"score": 0.9, "explanation": "Accurate"}},
            id="test_regenerate_consensus_writes_criteria_scores_to_run_result_json",
        ),
        pytest.param(
            None, {}, id="test_regenerate_consensus_writes_empty_criteria_scores_when_null"
        ),
    ],
)
def test_run_result_gets_the_representative_criteria_scores(
    tmp_path: Path, criteria: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    """Ported from test_regenerate_consensus_writes_criteria_scores_to_run_result_json and
    ..._writes_empty_criteria_scores_when_null: run_result.json's criteria_scores become the
    representative judge's, {} when it has none, and judge_score follows."""
    root = make_experiment(tmp_path / "exp", models=MODELS[:1])
    stale = {"run_number": 1, "judge_score": 0.0, "judge_passed": False}
    run_dir = make_run(root, record=stale | {"judge_grade": "F", "judge_reasoning": "old"})
    write_judgment(run_dir, 1, judgment(0.8, is_valid=True, criteria_scores=criteria))
    assert consensus_of(root)[1] is True
    record = read(run_dir / "run_result.json")
    assert record["criteria_scores"] == expected
    assert record["judge_score"] == 0.8 and record["run_number"] == 1


def test_consensus_is_valid_only_when_every_configured_slot_is_valid(tmp_path: Path) -> None:
    """Ported from test_regenerate_consensus_backward_compat_no_is_valid, where runner differs
    on purpose: with two judges configured and only judge 1's judgment present, the original
    marks the consensus valid (every slot that has a judgment is valid); runner marks it
    invalid (is_valid only when every configured slot is valid)."""
    root = make_experiment(tmp_path / "exp")
    run_dir = make_run(root)
    write_judgment(run_dir, 1, judgment(0.75, "Old format judgment"))
    result, _ = consensus_of(root)
    assert result is not None
    assert result["score"] == 0.75 and result["is_valid"] is False


# --- ported: _has_valid_agent_result --------------------------------------------------


@pytest.mark.parametrize(
    ("output", "result", "agent_ok"),
    [
        pytest.param("Agent output", True, True, id="test_valid_agent_result"),
        pytest.param(None, True, False, id="test_missing_output_file"),
        pytest.param("", True, False, id="test_empty_output_file"),
        pytest.param("Agent output", False, False, id="test_missing_result_json"),
    ],
)
def test_the_agent_result_decides_agent_failed(
    tmp_path: Path, out: Path, output: str | None, result: bool, agent_ok: bool
) -> None:
    """Ported from TestHasValidAgentResult (one case id per test): without a non-empty
    output.txt and a result.json every slot of the run is agent_failed and never listed."""
    root = make_experiment(tmp_path / "exp")
    make_run(root, output=output, result=result)
    source = slots_for(root, out, dry_run=True)
    if agent_ok:
        assert table(source)["T0"]["missing"] == 2 and len(source) == 2
    else:
        assert table(source)["T0"]["agent_failed"] == 2 and len(source) == 0


def test_a_run_without_agent_folder_is_agent_failed(tmp_path: Path, out: Path) -> None:
    """Ported from TestHasValidAgentResult.test_missing_agent_dir: a run folder without
    agent/ has only agent_failed slots."""
    root = make_experiment(tmp_path / "exp")
    (root / RUN).mkdir(parents=True)
    source = slots_for(root, out, dry_run=True, status=list(STATUSES))
    assert table(source)["all"] == {
        "missing": 0,
        "failed": 0,
        "complete": 0,
        "agent_failed": 2,
        "total": 2,
    }
    assert len(source) == 0
    assert f"  agent_failed: {RUN}/judge_01, {RUN}/judge_02" in source.describe()


def test_an_output_of_one_newline_counts_as_output(tmp_path: Path, out: Path) -> None:
    """agent/output.txt holding only a newline is output, as in the original (size > 0):
    the slots are missing, not agent_failed."""
    root = make_experiment(tmp_path / "exp")
    make_run(root, output="\n")
    assert listed(root, out) == {f"{RUN}/judge_01": "missing", f"{RUN}/judge_02": "missing"}


# --- ported: _classify_judge_slots ----------------------------------------------------


def test_all_slots_complete(tmp_path: Path, out: Path) -> None:
    """Ported from TestClassifyJudgeSlots.test_all_complete."""
    root = make_experiment(tmp_path / "exp")
    run_dir = make_run(root)
    for i in (1, 2):
        write_judgment(run_dir, i, judgment(0.8, is_valid=True))
    assert listed(root, out) == {f"{RUN}/judge_01": "complete", f"{RUN}/judge_02": "complete"}
    assert len(slots_for(root, out, dry_run=True)) == 0  # nothing to rerun by default


def test_slots_without_a_folder_are_missing(tmp_path: Path, out: Path) -> None:
    """Ported from TestClassifyJudgeSlots.test_missing_judge_slots."""
    root = make_experiment(tmp_path / "exp")
    make_run(root)
    assert listed(root, out) == {f"{RUN}/judge_01": "missing", f"{RUN}/judge_02": "missing"}


def test_a_slot_with_an_invalid_judgment_is_failed(tmp_path: Path, out: Path) -> None:
    """Ported from TestClassifyJudgeSlots.test_failed_judge_slots."""
    root = make_experiment(tmp_path / "exp", models=MODELS[:1])
    write_judgment(make_run(root), 1, {"score": 0.0, "is_valid": False})
    assert listed(root, out) == {f"{RUN}/judge_01": "failed"}


def test_slots_of_a_run_whose_agent_failed(tmp_path: Path, out: Path) -> None:
    """Ported from TestClassifyJudgeSlots.test_agent_failed: an empty run folder gives
    agent_failed for every judge, even one with a judgment."""
    root = make_experiment(tmp_path / "exp")
    (root / RUN).mkdir(parents=True)
    write_judgment(root / RUN, 1, judgment(0.8))
    source = slots_for(root, out, dry_run=True, status=list(STATUSES))
    assert table(source)["T0"]["agent_failed"] == 2 and list(source) == []


def test_mixed_slot_statuses(tmp_path: Path, out: Path) -> None:
    """Ported from TestClassifyJudgeSlots.test_mixed_statuses: complete, missing and failed
    (unparsable judgment.json) slots in one run, each judged on its own."""
    root = make_experiment(tmp_path / "exp", models=(*MODELS, "claude-haiku-4-5"))
    run_dir = make_run(root)
    write_judgment(run_dir, 1, {"score": 0.8, "is_valid": True})
    write_judgment(run_dir, 3, "invalid json")
    assert listed(root, out) == {
        f"{RUN}/judge_01": "complete",
        f"{RUN}/judge_02": "missing",
        f"{RUN}/judge_03": "failed",
    }


# --- ported: scan_judges_needing_rerun and RerunJudgeStats ---------------------------


def test_scan_finds_missing_judges(tmp_path: Path, out: Path) -> None:
    """Ported from TestScanJudgesNeedingRerun.test_scan_finds_missing_judges: one run, two
    judges never run: two missing slots, two expected."""
    root = make_experiment(tmp_path / "exp")
    make_run(root)
    source = slots_for(root, out, dry_run=True)
    assert [(i.id, i["status"]) for i in source] == [
        (f"{RUN}/judge_01", "missing"),
        (f"{RUN}/judge_02", "missing"),
    ]
    assert table(source)["all"]["missing"] == table(source)["all"]["total"] == 2


def test_scan_with_tier_filter(tmp_path: Path, out: Path) -> None:
    """Ported from TestScanJudgesNeedingRerun.test_scan_with_tier_filter: a tier filter on a
    tier without runs lists nothing. Runner differs on purpose for a tier outside
    tiers_to_run: the original silently finds nothing, runner refuses the filter."""
    root = make_experiment(tmp_path / "exp", tiers=("T0", "T1"))
    make_run(root)
    source = slots_for(root, out, dry_run=True, tiers=["T1"])
    assert len(source) == 0 and table(source)["all"]["total"] == 0
    assert "T0" not in table(source)
    only_t0 = make_experiment(tmp_path / "t0")
    make_run(only_t0)
    with pytest.raises(ValueError, match=r"tier filter value 'T1' is not in tiers_to_run"):
        slots_for(only_t0, out, dry_run=True, tiers=["T1"])


def test_scan_with_status_filter(tmp_path: Path, out: Path) -> None:
    """Ported from TestScanJudgesNeedingRerun.test_scan_with_status_filter: asking for
    complete slots lists none, yet both slots are still counted."""
    root = make_experiment(tmp_path / "exp")
    make_run(root)
    source = slots_for(root, out, dry_run=True, status=["complete"])
    assert list(source) == []
    assert table(source)["all"]["total"] == 2 and table(source)["all"]["missing"] == 2
    assert "selected for rerun: 0 slot(s) with status in ['complete']" in source.describe()


def test_scan_with_run_filter(tmp_path: Path, out: Path) -> None:
    """Ported from TestScanJudgesNeedingRerun.test_scan_with_run_filter: a run filter skips
    the other runs. Runner differs on purpose for a run number beyond runs_per_subtest: the
    original skips every run, runner refuses the filter naming the valid range."""
    root = make_experiment(tmp_path / "exp", runs=2)
    make_run(root)
    make_run(root, "T0/00/run_02")
    source = slots_for(root, out, dry_run=True, runs=[2])
    assert [i.id for i in source] == ["T0/00/run_02/judge_01", "T0/00/run_02/judge_02"]
    assert table(source)["all"]["total"] == 2
    single = make_experiment(tmp_path / "single")
    make_run(single)
    with pytest.raises(ValueError, match=r"run filter value 2 is out of range; valid: 1\.\.1"):
        slots_for(single, out, dry_run=True, runs=[2])


def test_describe_counts_like_the_original_stats(tmp_path: Path, out: Path) -> None:
    """Ported from TestRerunJudgeStats (default initialization, print_summary): describe()
    counts every expected slot by status (zero for an untouched experiment), and with the
    slot filter only that judge's slots, like per_slot_stats."""
    root = make_experiment(tmp_path / "exp", runs=3)
    run1 = make_run(root)
    write_judgment(run1, 1, judgment(0.8))
    run2 = make_run(root, "T0/00/run_02")
    write_judgment(run2, 1, None)
    write_judgment(run2, 2, judgment(0.0, is_valid=False))
    make_run(root, "T0/00/run_03", output=None)
    source = slots_for(root, out, dry_run=True)
    assert table(source)["all"] == {
        "missing": 1,
        "failed": 2,
        "complete": 1,
        "agent_failed": 2,
        "total": 6,
    }
    assert "selected for rerun: 3 slot(s) with status in ['missing', 'failed']" in (
        source.describe()
    )
    per_slot = slots_for(root, out, dry_run=True, slots=[2])
    assert table(per_slot)["all"] == {
        "missing": 1,
        "failed": 1,
        "complete": 0,
        "agent_failed": 1,
        "total": 3,
    }
    empty = make_experiment(tmp_path / "empty")
    assert table(slots_for(empty, out, dry_run=True))["all"] == dict.fromkeys(
        (*STATUSES, "total"), 0
    )


def test_a_listed_slot_carries_what_the_original_slot_record_held(
    tmp_path: Path, out: Path
) -> None:
    """Ported from TestJudgeSlotToRerun.test_initialization and TestJudgeSlotStatus: an item
    holds tier, subtest, run number, run folder, judge number, model and status; the
    statuses are the original's four values."""
    root = make_experiment(tmp_path / "exp")
    run_dir = make_run(root)
    first = next(iter(slots_for(root, out, dry_run=True)))
    assert {k: first[k] for k in ("tier", "subtest", "run", "slot", "model", "status")} == {
        "tier": "T0",
        "subtest": "00",
        "run": 1,
        "slot": 1,
        "model": MODELS[0],
        "status": "missing",
    }
    assert first["run_dir"] == str(run_dir)
    assert set(STATUSES) == {"complete", "missing", "failed", "agent_failed"}


# --- parity points ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("categories", "expected"),
    [({"functional": {"score": 0.7}}, {"functional": {"score": 0.7}}), (None, {})],
    ids=["criteria", "no-criteria"],
)
def test_a_repair_updates_run_result_criteria_scores(
    run_app: RunCli, tmp_path: Path, categories: Any, expected: dict[str, Any]
) -> None:
    """After task=judge_rerun repairs a slot, run_result.json's criteria_scores is the
    representative judge's criteria, {} when its reply has none."""
    root = make_experiment(tmp_path / "exp", models=MODELS[:1])
    record = {"run_number": 1, "judge_score": 0.0, "criteria_scores": {"old": 1}}
    run_dir = make_run(root, record=record)
    verdict = {"score": 0.7, "passed": True, "reasoning": "fine"}
    if categories:
        verdict["categories"] = categories
    reply = script(tmp_path, "reply.txt", "```json\n" + json.dumps(verdict) + "\n```")
    judge = script(tmp_path, "judge.py", REPLY_JUDGE)
    result = run_app(
        "task=judge_rerun",
        f"source.experiment={root}",
        command_override([sys.executable, str(judge), str(reply)]),
    )
    assert result.returncode == 0, result.output
    after = read(run_dir / "run_result.json")
    assert after["criteria_scores"] == expected
    assert after["judge_score"] == 0.7 and after["judge_reasoning"] == "fine"
    assert read(run_dir / "judge" / "result.json")["criteria_scores"] == (categories or None)


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        (
            {"score": 0.9},
            {"passed": False, "reasoning": "No reasoning provided", "criteria_scores": None},
        ),
        ({"score": 0.9, "reasoning": ""}, {"reasoning": "No reasoning provided"}),
        (
            {"score": 0.9, "categories": {"a": 1}, "criteria_scores": {"b": 2}},
            {"criteria_scores": {"a": 1}},
        ),
        ({"score": 0.9, "criteria_scores": {"b": 2}}, {"criteria_scores": {"b": 2}}),
        ({"score": 0.9, "passed": True}, {"passed": True}),
        ({"score": 0.9, "passed": "false"}, {"passed": False}),
    ],
    ids=["bare", "empty-reasoning", "categories-first", "criteria", "passed", "string-false"],
)
def test_reply_defaults_follow_the_original(
    tmp_path: Path, out: Path, verdict: dict[str, Any], expected: dict[str, Any]
) -> None:
    """The judgment.json written from a reply follows the original's _parse_judge_response:
    no passed is not passed, no (or empty) reasoning is "No reasoning provided", no criteria
    is criteria_scores null, categories wins over criteria_scores. Runner differs on purpose
    for passed "false": the original's bool("false") passes it, runner does not."""
    root = make_experiment(tmp_path / "exp", models=MODELS[:1])
    make_run(root)
    reply = script(tmp_path, "reply.txt", "Verdict:\n```json\n" + json.dumps(verdict) + "\n```")
    judge = script(tmp_path, "judge.py", REPLY_JUDGE)
    [item] = slots_for(root, out, dry_run=True)
    JudgeRerun(command=[sys.executable, str(judge), str(reply)]).run(item)
    written = read(Path(item["slot_dir"]) / "judgment.json")
    assert {k: written[k] for k in expected} == expected
    assert "criteria_scores" in written  # present even when null
    assert (written["score"], written["grade"], written["is_valid"]) == (0.9, "A", True)


def test_a_config_with_the_older_judge_model_key_has_one_judge(tmp_path: Path, out: Path) -> None:
    """A config.json with "judge_model": "..." and no judge_models (older experiments, see the
    original's models.py) is read as one judge."""
    root = tmp_path / "exp"
    (root / "config").mkdir(parents=True)
    (root / "config" / "experiment.json").write_text(
        json.dumps(
            {"judge_model": "claude-opus-4-5", "runs_per_subtest": 1, "tiers_to_run": ["T0"]}
        )
    )
    make_run(root)
    items = list(slots_for(root, out, dry_run=True))
    assert [(i.id, i["model"], i["status"]) for i in items] == [
        (f"{RUN}/judge_01", "claude-opus-4-5", "missing")
    ]
    assert load_config(root).judge_models == ("claude-opus-4-5",)


def test_a_stray_subtest_folder_does_not_displace_the_real_one(
    experiment: Path, out: Path, log_lines: list[str]
) -> None:
    """In the real fixture (max_subtests 1, checkpoint.json and T1/result.json naming
    subtest 01), a stray T1/00/ with a judgeable run does not take T1/01's place: T1/01's
    slots are listed, T1/00's are not, and a warning names the stray folder."""
    stray = experiment / "T1" / "00" / "run_01"
    (stray / "agent").mkdir(parents=True)
    (stray / "agent" / "output.txt").write_text("stray output")
    (stray / "agent" / "result.json").write_text("{}")
    ids = listed(experiment, out, tiers=["T1"])
    assert sorted(ids) == [f"T1/01/run_01/judge_{n:02d}" for n in (1, 2, 3)]
    assert set(ids.values()) == {"complete"}
    warnings = [line for line in log_lines if "T1" in line and "'00'" in line]
    assert warnings and "ignored" in warnings[0]


def _git_workspace(run_dir: Path) -> None:
    """workspace/ as a git repository with README committed, then hello.py created."""
    workspace = run_dir / "workspace"
    workspace.mkdir()
    (workspace / "README").write_text("readme\n")
    env_args = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "README"], [*env_args, "commit", "-q", "-m", "base"]):
        subprocess.run(["git", *args], cwd=workspace, check=True, capture_output=True)
    (workspace / "hello.py").write_text('print("Hello, World!")\n')


@pytest.mark.parametrize("rubric", [True, False], ids=["rubric", "no-rubric"])
def test_a_missing_judge_prompt_is_rebuilt_before_judging(
    run_app: RunCli, tmp_path: Path, rubric: bool
) -> None:
    """A run without judge_prompt.md gets one rebuilt in the original's build_task_prompt
    format (Rubric first when rubric.yaml exists, then Task Given to Agent, Agent's Output,
    Workspace State After Agent Execution, the closing line), and the judge is given it."""
    root = make_experiment(tmp_path / "exp", models=MODELS[:1])
    rubric_text = "categories:\n  functional:\n    weight: 1.0\n"
    if rubric:
        (root / "rubric.yaml").write_text(rubric_text)
    run_dir = make_run(root, output="Created hello.py\n", judge_prompt=False)
    _git_workspace(run_dir)
    judge = script(tmp_path, "judge.py", ECHO_JUDGE)
    result = run_app(
        "task=judge_rerun",
        f"source.experiment={root}",
        command_override([sys.executable, str(judge), "{prompt_file}"]),
    )
    assert result.returncode == 0, result.output
    sections = [
        f"## Task Given to Agent\n\n{TASK}",
        "## Agent's Output\n\nCreated hello.py\n",
        "## Workspace State After Agent Execution\n\n"
        "Files modified/created by agent:\n- `hello.py` (created)",
        "---\n\nEvaluate the agent's work using the rubric and criteria in your system prompt.",
    ]
    if rubric:
        sections.insert(0, f"## Rubric (Evaluation Criteria)\n\n```yaml\n{rubric_text}\n```")
    expected = "\n\n".join(sections)
    assert (run_dir / "judge_prompt.md").read_text() == expected
    given = read(run_dir / "judge" / "judge_01" / "judgment.json")["reasoning"]
    assert given.rstrip("\n") == expected


def test_without_prompt_md_the_slots_are_unjudgeable(run_app: RunCli, tmp_path: Path) -> None:
    """With no judge_prompt.md and no prompt.md to rebuild it from, a dry run lists the slots
    as unjudgeable with the reason, and a repair fails each slot once with that reason
    without writing into it."""
    root = make_experiment(tmp_path / "exp", prompt=False)
    run_dir = make_run(root, judge_prompt=False)
    reason = "judge_prompt.md is missing and cannot be rebuilt: the experiment has no prompt.md"
    dry = run_app("task=judge_rerun", f"source.experiment={root}", "dry_run=true")
    assert dry.returncode == 0, dry.output
    assert "unjudgeable (each fails once with this reason): 2 slot(s)" in dry.output
    assert f"{RUN}/judge_01: {reason}" in dry.output and f"{RUN}/judge_02: {reason}" in dry.output
    before = tree(root)
    judge = script(tmp_path, "judge.py", ECHO_JUDGE)
    repair = run_app(
        "task=judge_rerun",
        f"source.experiment={root}",
        command_override([sys.executable, str(judge), "{prompt_file}"]),
    )
    assert repair.returncode == 1, repair.output
    results = repair.results()
    assert [r["status"] for r in results] == ["failed", "failed"]
    assert all(reason in json.dumps(r) for r in results)
    assert not (run_dir / "judge").exists() and not (run_dir / "judge_prompt.md").exists()
    assert {k: v for k, v in tree(root).items() if not k.startswith(SUMMARY_DIR)} == before


def test_judge_rerun_claude_allows_twenty_minutes(run_app: RunCli) -> None:
    """task=judge_rerun_claude has the original's 1200 s judge timeout."""
    result = run_app("--cfg", "job", "task=judge_rerun_claude")
    assert result.returncode == 0, result.output
    task = yaml.safe_load(result.stdout)["task"]
    assert task["timeout"] == 1200 and task["command"][0] == "claude"


def test_a_judge_program_that_does_not_exist_stops_before_the_first_slot(
    run_app: RunCli, tmp_path: Path
) -> None:
    """A judge command whose program is not on PATH ends with exit code 2 and one line on
    stderr naming it, before any slot folder is created; a dry run with it still works."""
    root = make_experiment(tmp_path / "exp")
    run_dir = make_run(root)
    before = tree(root)
    command = command_override(["no-such-judge-cli-7f3", "{model}", "{prompt_file}"])
    result = run_app("task=judge_rerun", f"source.experiment={root}", command)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "'no-such-judge-cli-7f3'" in lines[0]
    assert "Traceback" not in result.output
    assert not (run_dir / "judge").exists() and tree(root) == before
    dry = run_app("task=judge_rerun", f"source.experiment={root}", command, "dry_run=true")
    assert dry.returncode == 0, dry.output
    assert "selected for rerun: 2 slot(s)" in dry.output


RATE_LIMIT_CASES = [
    pytest.param("parsed 429 lines; error: invalid API key", False, None, id="not-429"),
    pytest.param("API Error: HTTP 429", True, None, id="http-429"),
    pytest.param("request failed, status: 429", True, None, id="status-429"),
    pytest.param("429 Too Many Requests", True, None, id="too-many-requests"),
    pytest.param("rate limit reached for requests", True, None, id="rate-limit"),
    pytest.param("Error: the API is overloaded", True, None, id="overloaded"),
    pytest.param("try later. Retry-After: 12", True, 12.0, id="retry-after"),
]


@pytest.mark.parametrize(("message", "limited", "retry_after"), RATE_LIMIT_CASES)
def test_detect_rate_limit(message: str, limited: bool, retry_after: float | None) -> None:
    """Only a 429 that reads as an HTTP status, "rate limit", "overloaded" or a Retry-After
    is a rate limit ("parsed 429 lines" is not), and the Retry-After seconds are read."""
    assert detect_rate_limit(message) == (limited, retry_after)


@pytest.mark.parametrize(("message", "limited", "retry_after"), RATE_LIMIT_CASES)
def test_a_failing_judge_records_whether_it_was_rate_limited(
    tmp_path: Path, out: Path, message: str, limited: bool, retry_after: float | None
) -> None:
    """A judge that exits 1 with the message on stderr fails its slot; timing.json says
    rate_limited (with retry_after) only when the message is a rate limit."""
    root = make_experiment(tmp_path / "exp", models=MODELS[:1])
    make_run(root)
    judge = script(tmp_path, "judge.py", FAILING_JUDGE)
    [item] = slots_for(root, out, dry_run=True)
    with pytest.raises(TaskFailure, match="judge exited with code 1") as info:
        JudgeRerun(command=[sys.executable, str(judge), message]).run(item)
    assert isinstance(info.value, JudgeRateLimited) is limited
    assert getattr(info.value, "retry_after", None) == retry_after
    timing = read(Path(item["slot_dir"]) / "timing.json")
    assert timing["failed"] is True
    assert timing.get("rate_limited", False) is limited
    assert timing.get("retry_after") == retry_after


def test_a_run_with_a_rate_limited_judge_records_it_end_to_end(
    run_app: RunCli, tmp_path: Path
) -> None:
    """Through `python -m runner task=judge_rerun`: the slot whose judge said "parsed 429
    lines" fails as an ordinary failure, the one whose judge said "HTTP 429 ... Retry-After:
    12" fails as a rate limit, and each slot's timing.json says which."""
    root = make_experiment(tmp_path / "exp", models=MODELS[:1], runs=2)
    runs = [make_run(root), make_run(root, "T0/00/run_02")]
    judge = script(tmp_path, "judge.py", RUN_FAILING_JUDGE)
    result = run_app(
        "task=judge_rerun",
        f"source.experiment={root}",
        command_override([sys.executable, str(judge), "{run}"]),
    )
    assert result.returncode == 1, result.output
    errors = {r["id"]: r["error"] for r in result.results()}
    assert errors["T0/00/run_01/judge_01"]["type"] == "TaskFailure"
    assert errors["T0/00/run_02/judge_01"]["type"] == "JudgeRateLimited"
    assert "(retry after 12 s)" in errors["T0/00/run_02/judge_01"]["message"]
    first, second = (read(r / "judge" / "judge_01" / "timing.json") for r in runs)
    assert first["failed"] is True and "rate_limited" not in first
    assert (second["failed"], second["rate_limited"], second["retry_after"]) == (True, True, 12.0)


def test_judge_regenerate_rebuilds_every_consensus_without_a_judge(
    run_app: RunCli, experiment: Path
) -> None:
    """task=judge_regenerate (the original's --regenerate-only) brings a hand-edited
    consensus back to the mean of its slots, writes the summary and changes no slot file."""
    run_dir = experiment / "T2" / "01" / "run_01"
    result_file = run_dir / "judge" / "result.json"
    result_file.write_text(json.dumps(read(result_file) | {"score": 0.1}))
    slots = {k: v for k, v in tree(experiment).items() if "/judge/judge_" in k}
    done = run_app("task=judge_regenerate", f"source.experiment={experiment}")
    assert done.returncode == 0, done.output
    scores = [
        read(run_dir / "judge" / f"judge_{n:02d}" / "judgment.json")["score"] for n in (1, 2, 3)
    ]
    assert read(result_file)["score"] == pytest.approx(sum(scores) / 3)
    assert read(run_dir / "run_result.json")["judge_score"] == pytest.approx(sum(scores) / 3)
    assert len(done.results()) == 7  # every run, stale or not
    assert (experiment / SUMMARY_DIR / SUMMARY_JSON).is_file()
    assert (experiment / SUMMARY_DIR / SUMMARY_MD).is_file()
    assert {k: v for k, v in tree(experiment).items() if "/judge/judge_" in k} == slots
    source = JudgeRuns(experiment=str(experiment))
    source.setup(context_for(done.run_dir, dry_run=True))
    assert all(item["stale"] is None for item in source)
