"""The judge experiment format: config, layout, slot statuses, replies, grades, rate limits."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.toolkit import detect_rate_limit
from runner_plugins.judge.experiment import (
    CONFIG_FILE,
    RunRef,
    load_config,
    replaced_dir,
    replaced_slot,
)
from runner_plugins.judge.judgment import grade_for, parse_reply
from runner_plugins.judge.slotstatus import read_judgment, run_slots
from tests.judge_support import FIXTURE


def _write_config(root: Path, **changes: object) -> None:
    path = root / "config" / "experiment.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _status(root: Path, run: str = "T2/01/run_01", slot: int = 1) -> str:
    config = load_config(root)
    tier, subtest, name = run.split("/")
    slots = run_slots(config, RunRef(root, tier, subtest, int(name.removeprefix("run_"))))
    return slots[slot - 1].status


# --- config and layout ------------------------------------------------------------------


def test_config_of_the_real_experiment(experiment: Path) -> None:
    """The fixture's config gives 7 tiers, 3 judges, 1 run and 1 subtest per tier."""
    config = load_config(experiment)
    assert config.tiers == ("T0", "T1", "T2", "T3", "T4", "T5", "T6")
    assert config.judge_models == (
        "claude-opus-4-5-20251101",
        "claude-sonnet-4-5-20250929",
        "claude-haiku-4-5",
    )
    assert (config.runs_per_subtest, config.max_subtests) == (1, 1)
    assert [r.id for r in config.runs()][:2] == ["T0/00/run_01", "T1/01/run_01"]
    assert len(list(config.runs())) == 7


def test_every_fixture_slot_is_complete(experiment: Path) -> None:
    """All 21 slots of the real experiment are complete."""
    config = load_config(experiment)
    statuses = [s.status for run in config.runs() for s in run_slots(config, run)]
    assert statuses == ["complete"] * 21


def test_subtests_are_sorted_numeric_folders_capped_by_max_subtests(experiment: Path) -> None:
    """Without records, subtests are numeric folders in numeric order, at most max_subtests."""
    (experiment / "checkpoint.json").unlink()
    (experiment / "T1" / "result.json").unlink()
    for name in ("10", "2", "notes", "03x"):
        (experiment / "T1" / name).mkdir()
    (experiment / "T1" / "7").write_text("a file, not a folder")
    _write_config(experiment, max_subtests=None)
    assert load_config(experiment).subtests("T1") == ["01", "2", "10"]
    _write_config(experiment, max_subtests=2)
    assert load_config(experiment).subtests("T1") == ["01", "2"]


def test_a_tier_without_a_folder_has_no_subtests(experiment: Path) -> None:
    """A tier listed in tiers_to_run but absent on disk contributes no runs."""
    _write_config(experiment, tiers_to_run=["T0", "T9"])
    config = load_config(experiment)
    assert config.subtests("T9") == []
    assert [r.id for r in config.runs()] == ["T0/00/run_01"]


def _layout(root: Path, folders: dict[str, list[str]], **config: object) -> Path:
    """An experiment of bare folders: config/experiment.json and ``tier -> subtest`` folders."""
    data = {"judge_models": ["m"], "runs_per_subtest": 1, "tiers_to_run": list(folders)}
    (root / "config").mkdir(parents=True)
    (root / CONFIG_FILE).write_text(json.dumps(data | config))
    for tier, subtests in folders.items():
        for subtest in subtests:
            (root / tier / subtest).mkdir(parents=True)
    return root


def test_runs_walk_tiers_in_config_order_then_subtests_numerically_then_runs(
    tmp_path: Path,
) -> None:
    """The walk keeps tiers_to_run's order, sorts subtests as numbers, and counts runs 1..N."""
    root = _layout(tmp_path, {"T2": ["10", "9"], "T0": ["01"]}, runs_per_subtest=2)
    assert [run.id for run in load_config(root).runs()] == [
        "T2/9/run_01",
        "T2/9/run_02",
        "T2/10/run_01",
        "T2/10/run_02",
        "T0/01/run_01",
        "T0/01/run_02",
    ]


def test_recorded_subtests_are_walked_and_other_folders_are_warned_about(tmp_path: Path) -> None:
    """A tier named by the records walks the recorded subtests only, and its other numeric
    folders are named in a warning; a tier no record names walks its folders, unwarned."""
    root = _layout(tmp_path, {"T0": ["00", "01", "notes"], "T1": ["05"]})
    checkpoint = {"completed_runs": {"T0": {"01": {"1": "passed"}, "notes": {}}}}
    (root / "checkpoint.json").write_text(json.dumps(checkpoint))
    config = load_config(root)
    assert [run.id for run in config.runs()] == ["T0/01/run_01", "T1/05/run_01"]
    assert config.stray_warnings() == [
        "T0: folder(s) ['00'] are not subtests of this experiment (its records name "
        "['01']); they are ignored"
    ]


def test_a_config_record_loads_back_as_the_same_config(tmp_path: Path) -> None:
    """config.record() is what load_config reads: writing it and loading gives the config."""
    root = _layout(tmp_path, {"T1": ["01"], "T0": ["00"]}, runs_per_subtest=3, max_subtests=1)
    config = load_config(root)
    (root / CONFIG_FILE).write_text(json.dumps(config.record()))
    assert load_config(root) == config


def test_run_fields_locate_their_run(experiment: Path) -> None:
    """RunRef.of reads back the run that RunRef.fields describes."""
    run = RunRef(experiment, "T3", "01", 2)
    fields = run.fields()
    assert (fields["run"], fields["run_id"]) == (2, "T3/01/run_02")
    assert RunRef.of(experiment, fields) == run


def test_replaced_slot_is_the_inverse_of_replaced_dir(experiment: Path) -> None:
    """A slot's replaced folder leads back to the slot; any other folder leads nowhere."""
    slot = RunRef(experiment, "T3", "01", 1).slot_dir(12)
    assert replaced_slot(replaced_dir(slot)) == slot
    assert replaced_slot(slot) is None
    assert replaced_slot(slot.with_name(".judge_12.attempt-1-ab")) is None


def test_missing_experiment_folder_is_named(tmp_path: Path) -> None:
    """A folder that does not exist is reported with its path."""
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_config(tmp_path / "nowhere")


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    """A folder without config/experiment.json is reported with the file's path."""
    with pytest.raises(FileNotFoundError, match=r"config/experiment\.json"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"judge_models": [], "runs_per_subtest": 1, "tiers_to_run": []}', "'judge_models'"),
        (
            '{"judge_models": ["m"], "runs_per_subtest": 0, "tiers_to_run": []}',
            "'runs_per_subtest'",
        ),
        (
            '{"judge_models": ["m"], "runs_per_subtest": 1, "tiers_to_run": ["../x"]}',
            "'tiers_to_run'",
        ),
        (
            '{"judge_models": ["m"], "runs_per_subtest": 1, "tiers_to_run": [], '
            '"max_subtests": "2"}',
            "'max_subtests'",
        ),
    ],
)
def test_malformed_config_is_a_one_line_error(tmp_path: Path, text: str, message: str) -> None:
    """A malformed config raises ValueError naming the file and the bad key or problem."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "experiment.json").write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        load_config(tmp_path)
    assert "experiment.json" in str(info.value) and "\n" not in str(info.value)


# --- slot statuses ----------------------------------------------------------------------

RUN = "T2/01/run_01"


def _agent(root: Path) -> Path:
    return root / RUN / "agent"


def _slot(root: Path, n: int = 1) -> Path:
    return root / RUN / "judge" / f"judge_{n:02d}"


def _set_judgment(root: Path, data: object) -> None:
    (_slot(root) / "judgment.json").write_text(json.dumps(data))


Mutation = Callable[[Path], object]
AGENT_FAILED: dict[str, Mutation] = {
    "output.txt missing": lambda r: (_agent(r) / "output.txt").unlink(),
    "output.txt empty": lambda r: (_agent(r) / "output.txt").write_text(""),
    "result.json missing": lambda r: (_agent(r) / "result.json").unlink(),
}


@pytest.mark.parametrize("mutation", list(AGENT_FAILED), ids=list(AGENT_FAILED))
def test_agent_failure_makes_every_slot_agent_failed(experiment: Path, mutation: str) -> None:
    """Without an agent answer or result record, all slots of the run are agent_failed."""
    AGENT_FAILED[mutation](experiment)
    assert [_status(experiment, RUN, n) for n in (1, 2, 3)] == ["agent_failed"] * 3


def test_an_absent_run_folder_still_has_agent_failed_slots(experiment: Path) -> None:
    """Runs come from runs_per_subtest, so a run with no folder is listed as agent_failed."""
    _write_config(experiment, runs_per_subtest=2)
    assert [_status(experiment, "T2/01/run_02", n) for n in (1, 2, 3)] == ["agent_failed"] * 3


FAILED: dict[str, Mutation] = {
    "judgment.json absent": lambda r: (_slot(r) / "judgment.json").unlink(),
    "judgment.json truncated": lambda r: (_slot(r) / "judgment.json").write_text(
        '{"score": 0.9, "pass'
    ),
    "judgment.json not an object": lambda r: _set_judgment(r, [0.9]),
    "score missing": lambda r: _set_judgment(r, {"passed": True, "reasoning": "ok"}),
    "score is a string": lambda r: _set_judgment(r, {"score": "0.9"}),
    "score is a boolean": lambda r: _set_judgment(r, {"score": True}),
    "is_valid false": lambda r: _set_judgment(r, {"score": 0.9, "is_valid": False}),
}


@pytest.mark.parametrize("mutation", list(FAILED), ids=list(FAILED))
def test_failed_slot_rules(experiment: Path, mutation: str) -> None:
    """A slot folder without a usable judgment is failed; the other slots stay complete."""
    FAILED[mutation](experiment)
    assert _status(experiment, RUN, 1) == "failed"
    assert _status(experiment, RUN, 2) == "complete"


def test_only_timing_with_failed_true_is_failed(experiment: Path) -> None:
    """A failed attempt (only timing.json with failed: true) leaves the slot failed."""
    slot = _slot(experiment)
    for child in slot.iterdir():
        child.unlink()
    (slot / "timing.json").write_text(json.dumps({"failed": True}))
    assert _status(experiment) == "failed"


def test_a_slot_without_folder_is_missing(experiment: Path) -> None:
    """A slot whose judge_NN folder does not exist is missing."""
    for child in _slot(experiment, 3).iterdir():
        child.unlink()
    _slot(experiment, 3).rmdir()
    assert _status(experiment, RUN, 3) == "missing"


@pytest.mark.parametrize(
    "judgment",
    [{"score": 0.4}, {"score": 0, "is_valid": True}, {"score": 7, "passed": "maybe"}],
)
def test_any_numeric_score_not_marked_invalid_is_complete(
    experiment: Path, judgment: dict[str, object]
) -> None:
    """A judgment with a numeric score and no is_valid: false makes the slot complete."""
    _set_judgment(experiment, judgment)
    assert _status(experiment) == "complete"
    assert read_judgment(_slot(experiment)) == judgment


# --- replies --------------------------------------------------------------------------


def test_prose_then_fenced_json() -> None:
    """The JSON object inside a ```json fence after prose is the verdict."""
    reply = (
        "Here is my evaluation.\n\n"
        '```json\n{"score": 0.72, "passed": true, "reasoning": "ok"}\n```\nDone.'
    )
    judgment = parse_reply(reply)
    assert judgment == {
        "score": 0.72,
        "passed": True,
        "grade": "B",
        "reasoning": "ok",
        "is_valid": True,
        "criteria_scores": None,
    }


def test_bare_object_without_fence() -> None:
    """A bare JSON object in the reply is found too, and the original's defaults fill the rest."""
    judgment = parse_reply('Verdict: {"score": 0.8} as requested')
    assert (judgment["score"], judgment["passed"], judgment["grade"]) == (0.8, False, "A")
    assert judgment["reasoning"] == "No reasoning provided" and judgment["is_valid"] is True
    assert judgment["criteria_scores"] is None


@pytest.mark.parametrize(("score", "clamped"), [(1.7, 1.0), (-0.2, 0.0), (1, 1.0), (0.5, 0.5)])
def test_score_is_clamped(score: float, clamped: float) -> None:
    """Scores outside [0, 1] are clamped; passed is false unless the reply says so."""
    judgment = parse_reply(f'```json\n{{"score": {score}}}\n```')
    assert judgment["score"] == clamped
    assert judgment["passed"] is False


def test_passed_and_is_valid_are_taken_as_given() -> None:
    """An explicit passed or is_valid wins over the defaults."""
    judgment = parse_reply('```json\n{"score": 0.9, "passed": false, "is_valid": false}\n```')
    assert judgment["passed"] is False and judgment["is_valid"] is False


def test_categories_become_criteria_scores() -> None:
    """A reply's categories are carried into criteria_scores; categories win if both."""
    categories = {"functional": {"achieved": 3, "max": 3, "score": 1.0}}
    judgment = parse_reply(json.dumps({"score": 0.9, "categories": categories}))
    assert judgment["criteria_scores"] == categories
    both = parse_reply(
        json.dumps({"score": 0.9, "categories": {"a": 1}, "criteria_scores": {"b": 2}})
    )
    assert both["criteria_scores"] == {"a": 1}


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "I could not evaluate this run.",
        '```json\n{"passed": true, "reasoning": "no score given"}\n```',
        '{"score": "high"}',
        '{"score": null}',
        '```json\n{"score": 0.8, "reasoning": "truncat',
        '{"verdict": {"score": 0.9}}',
        '{"reasoning": "outer has no score", "categories": {"f": {"score": 1.0}}}',
    ],
    ids=[
        "empty",
        "prose",
        "no-score",
        "string-score",
        "null-score",
        "truncated",
        "nested",
        "category-score",
    ],
)
def test_replies_without_a_numeric_score_are_refused(reply: str) -> None:
    """Garbage, a missing score, or a score only inside a nested object is a ReplyError."""
    with pytest.raises(ValueError, match="no JSON object with a numeric score"):
        parse_reply(reply)


def test_the_first_block_with_a_score_wins() -> None:
    """Of several fenced blocks the first with a numeric score is the verdict."""
    reply = '```python\nprint({})\n```\n```json\n{"score": 0.6}\n```\n```json\n{"score": 0.9}\n```'
    assert parse_reply(reply)["score"] == 0.6


def test_braces_inside_strings_do_not_confuse_the_bare_scan() -> None:
    """Quoted braces inside a bare object do not end it early."""
    judgment = parse_reply('ok {"reasoning": "uses {x} and \\"}\\"", "score": 0.65} end')
    assert judgment["score"] == 0.65 and judgment["reasoning"] == 'uses {x} and "}"'


def test_real_replies_parse_to_their_recorded_judgments() -> None:
    """Every real response.txt in the fixture parses to the score its judgment.json records."""
    slots = sorted(FIXTURE.glob("T*/*/run_*/judge/judge_*"))
    assert len(slots) == 21
    for slot in slots:
        recorded = json.loads((slot / "judgment.json").read_text())
        parsed = parse_reply((slot / "response.txt").read_text())
        assert parsed["score"] == recorded["score"], slot
        assert parsed["criteria_scores"] == recorded["criteria_scores"], slot


@pytest.mark.parametrize(
    ("score", "grade"),
    [
        (1.0, "S"),
        (0.9999, "A"),
        (0.8, "A"),
        (0.7999, "B"),
        (0.6, "B"),
        (0.5999, "C"),
        (0.4, "C"),
        (0.3999, "D"),
        (0.2, "D"),
        (0.1999, "F"),
        (0.0, "F"),
    ],
)
def test_grade_thresholds(score: float, grade: str) -> None:
    """S = 1.0, A >= 0.8, B >= 0.6, C >= 0.4, D >= 0.2, else F."""
    assert grade_for(score) == grade


def test_float_noise_never_costs_a_grade() -> None:
    """0.1 + 0.7 (0.7999999999999999) grades as 0.8."""
    assert 0.1 + 0.7 < 0.8
    assert grade_for(0.1 + 0.7) == "A"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Error: 429 Too Many Requests", (True, None)),
        ("API Error: Rate limit exceeded. Retry-After: 30", (True, 30.0)),
        ('{"type": "overloaded_error", "retry_after": 2.5}', (True, 2.5)),
        ("The service is overloaded, try again in 12s", (True, 12.0)),
        ("rate_limit_error", (True, None)),
        ("score 0.429 and 1429 tokens", (False, None)),
        ("Traceback: ValueError", (False, None)),
    ],
)
def test_rate_limit_detection(text: str, expected: tuple[bool, float | None]) -> None:
    """429, rate limit, overloaded and Retry-After hints are recognised; numbers alone are not."""
    assert detect_rate_limit(text) == expected
