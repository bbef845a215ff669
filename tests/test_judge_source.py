"""JudgeSlots: which slots an experiment lists, its filters, describe() and copies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner_plugins.judge.plugins import JudgeSlots
from tests.judge_support import (
    FIXTURE,
    T3,
    context_for,
    remove_slot,
    slots_for,
    tree,
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sample experiment shared by the tests that only read it."""
    source = JudgeSlots()
    source.setup(context_for(tmp_path_factory.mktemp("shared")))
    assert source.experiment_path is not None
    return source.experiment_path


def test_without_experiment_a_sample_is_created_in_the_run_folder(out: Path) -> None:
    """No experiment: the sample is made in <output_dir>/sample-experiment and listed."""
    source = slots_for(None, out, seed=2)
    assert source.experiment_path == out / "sample-experiment"
    items = list(source)
    assert len(source) == len(items) > 0
    assert {i["status"] for i in items} == {"missing", "failed"}
    first = items[0]
    assert first.id == f"{first['run_id']}/judge_{first['slot']:02d}"
    assert first.label == f"{first['run_id']} judge_{first['slot']:02d}"
    assert set(first.data) >= {
        "tier",
        "subtest",
        "run",
        "slot",
        "model",
        "status",
        "run_dir",
        "slot_dir",
        "workspace",
        "prompt_file",
        "experiment",
    }
    json.dumps(first.data)  # journal-friendly


def test_a_second_setup_reuses_the_sample(out: Path) -> None:
    """A resumed run finds its sample instead of failing on a non-empty folder."""
    slots_for(None, out)
    assert len(slots_for(None, out)) == len(slots_for(None, out))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": ["missing"]}, {"missing"}),
        ({"status": "failed"}, {"failed"}),
        ({"status": []}, {"missing", "failed"}),
    ],
)
def test_status_filter(sample: Path, out: Path, params: dict[str, Any], expected: set[str]) -> None:
    """Only slots whose status passes the filter are listed; empty means both."""
    assert {i["status"] for i in slots_for(sample, out, **params)} == expected


def test_location_filters_normalise_numbers(sample: Path, out: Path) -> None:
    """Runs and slots may be 1, "01", "run_01" or "judge_01"; subtest "1" matches "01"."""
    source = slots_for(
        sample,
        out,
        tiers=["T0", "T1"],
        subtests=["1"],
        runs=["01", 2, "run_04"],
        slots=["judge_01", "3"],
        status=["missing", "failed"],
    )
    everything = slots_for(sample, out)
    expected = [
        i.id
        for i in everything
        if i["tier"] in ("T0", "T1")
        and i["subtest"] == "01"
        and i["run"] in (1, 2, 4)
        and i["slot"] in (1, 3)
    ]
    assert [i.id for i in source] == expected and expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"status": ["bogus"]},
            r"'bogus' is not a slot status; valid: \['missing', 'failed', 'complete', "
            r"'agent_failed'\]",
        ),
        ({"tiers": ["T9"]}, r"'T9' is not in tiers_to_run; valid: \['T0'"),
        ({"runs": [9]}, r"run filter value 9 is out of range; valid: 1..6"),
        ({"slots": ["x"]}, "slot filter value 'x' is not a number"),
        ({"subtests": ["7"]}, r"matches no subtest folder; valid: \['00', '01', '02'\]"),
    ],
)
def test_bad_filters_name_the_value_and_the_choices(
    sample: Path, out: Path, params: dict[str, Any], message: str
) -> None:
    """A bad filter value stops setup with a ValueError naming it and the valid choices."""
    with pytest.raises(ValueError, match=message):
        slots_for(sample, out, **params)


def test_a_missing_experiment_is_named(out: Path, tmp_path: Path) -> None:
    """An experiment folder that does not exist fails setup with its path."""
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        slots_for(tmp_path / "does-not-exist", out)


def test_a_malformed_config_is_named(out: Path, experiment: Path) -> None:
    """A malformed config/experiment.json fails setup naming the file."""
    (experiment / "config" / "experiment.json").write_text("{oops")
    with pytest.raises(ValueError, match=r"experiment\.json.*not valid JSON"):
        slots_for(experiment, out)


def test_describe_counts_all_statuses_and_writes_nothing(out: Path, experiment: Path) -> None:
    """describe() tabulates statuses per tier, the selection and examples, and writes nothing."""
    remove_slot(experiment)
    (experiment / "T5/01/run_01/agent/output.txt").write_text("")
    before = tree(experiment)
    source = slots_for(experiment, out, dry_run=True)
    text = source.describe()
    list(source)
    len(source)
    assert tree(experiment) == before
    lines = text.splitlines()
    assert "missing" in lines[1] and "agent_failed" in lines[1]
    row = {line.split()[0]: line.split()[1:] for line in lines[2:10]}
    assert row["T3"] == ["1", "0", "2", "0", "3"]
    assert row["T5"] == ["0", "0", "0", "3", "3"]
    assert row["all"] == ["1", "0", "17", "3", "21"]
    assert "selected for rerun: 1 slot(s) with status in ['missing', 'failed']" in text
    assert f"  missing: {T3}/judge_02" in lines
    assert (
        "  agent_failed: T5/01/run_01/judge_01, T5/01/run_01/judge_02, T5/01/run_01/judge_03"
        in lines
    )


def test_copy_works_on_a_private_writable_copy(out: Path) -> None:
    """copy=true repairs <output_dir>/experiment, never the (read-only) original."""
    source = slots_for(FIXTURE, out, copy=True, status=["missing"])
    assert source.experiment_path == out / "experiment"
    assert tree(out / "experiment") == tree(FIXTURE)
    probe = out / "experiment" / "T0" / "00" / "run_01" / "judge" / "probe.txt"
    probe.write_text("writable")
    assert probe.read_text() == "writable"


def test_copy_is_skipped_in_a_dry_run(out: Path, experiment: Path) -> None:
    """A dry run reads the original and copies nothing."""
    source = slots_for(experiment, out, dry_run=True, copy=True)
    assert source.experiment_path == experiment and not (out / "experiment").exists()


def test_complete_slots_can_be_rejudged_but_agent_failed_never_run(sample: Path, out: Path) -> None:
    """status=[complete] selects complete slots; agent_failed ones are listed, never yielded."""
    complete = list(slots_for(sample, out, status=["complete"]))
    assert complete and {i["status"] for i in complete} == {"complete"}
    source = slots_for(sample, out, status=["agent_failed"])
    assert list(source) == [] and len(source) == 0
    assert "agent_failed" in source.describe()
