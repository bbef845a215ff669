"""The deterministic sample experiment: every status, enough slots, same bytes per seed."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from runner_plugins.judge import sample as sample_module
from runner_plugins.judge.consensus import consensus
from runner_plugins.judge.experiment import load_config
from runner_plugins.judge.sample import make_sample_experiment
from runner_plugins.judge.slotstatus import read_judgment, run_slots
from tests.judge_support import tree


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sample experiment shared by the read-only tests of this module."""
    return make_sample_experiment(tmp_path_factory.mktemp("sample") / "exp", seed=0)


def test_shape_is_large_enough(sample: Path) -> None:
    """At least 4 tiers, 3 judge models and 100 slots."""
    config = load_config(sample)
    slots = [s for run in config.runs() for s in run_slots(config, run)]
    assert len(config.tiers) >= 4 and len(config.judge_models) == 3
    assert len(slots) >= 100


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
def test_every_status_is_present_for_any_seed(tmp_path: Path, seed: int) -> None:
    """missing, failed, complete and agent_failed all occur whatever the seed."""
    config = load_config(make_sample_experiment(tmp_path / "exp", seed=seed))
    counts = Counter(s.status for run in config.runs() for s in run_slots(config, run))
    assert set(counts) == {"missing", "failed", "complete", "agent_failed"}, counts


def _failed_kinds(root: Path) -> set[str]:
    config = load_config(root)
    kinds = set()
    for run in config.runs():
        for slot in run_slots(config, run):
            if slot.status != "failed":
                continue
            files = {p.name for p in slot.dir.iterdir()}
            judgment = slot.dir / "judgment.json"
            if "judgment.json" not in files:
                timing = json.loads((slot.dir / "timing.json").read_text())
                kinds.add("timing-only" if timing.get("failed") is True else "other")
                continue
            try:
                data = json.loads(judgment.read_text())
            except ValueError:
                kinds.add("truncated")
                continue
            kinds.add(
                "no-score"
                if "score" not in data
                else "invalid"
                if data.get("is_valid") is False
                else "other"
            )
    return kinds


def test_every_kind_of_failed_slot_is_present(sample: Path) -> None:
    """Failed slots include timing-only, truncated JSON, no score and is_valid false."""
    assert _failed_kinds(sample) == {"timing-only", "truncated", "no-score", "invalid"}


def test_every_kind_of_agent_failure_is_present(sample: Path) -> None:
    """Runs fail their agent by empty output, no output, no result.json and no folder."""
    config = load_config(sample)
    failed = [run for run in config.runs() if run_slots(config, run)[0].status == "agent_failed"]
    seen = set()
    for run in failed:
        output = run.dir / "agent" / "output.txt"
        seen.add(
            "no folder"
            if not run.dir.exists()
            else "no output"
            if not output.exists()
            else "empty output"
            if not output.read_text().strip()
            else "no result.json"
        )
    assert seen == {"no folder", "no output", "empty output", "no result.json"}


def test_runs_hold_the_files_of_the_format(sample: Path) -> None:
    """A judged run has prompt, agent files, workspace, run record and consensus."""
    run = sample / "T0" / "00" / "run_04"
    for name in (
        "judge_prompt.md",
        "agent/output.txt",
        "agent/result.json",
        "run_result.json",
        "judge/result.json",
        "judge/judge_01/judgment.json",
        "judge/judge_01/response.txt",
        "judge/judge_01/timing.json",
        "judge/judge_01/MODEL.md",
    ):
        assert (run / name).is_file(), name
    assert [p.name for p in (run / "workspace").iterdir() if p.is_file()]
    assert (sample / "prompt.md").is_file()


def test_consensus_files_match_the_complete_slots(sample: Path) -> None:
    """judge/result.json and run_result.json agree with the consensus of the complete slots."""
    config = load_config(sample)
    checked = 0
    for run in config.runs():
        judgments = [read_judgment(run.slot_dir(n)) for n in (1, 2, 3)]
        result_file = run.dir / "judge" / "result.json"
        if run_slots(config, run)[0].status == "agent_failed" or not any(judgments):
            assert not result_file.exists(), run.id
            continue
        expected = consensus(judgments)
        assert json.loads(result_file.read_text()) == expected
        record = json.loads((run.dir / "run_result.json").read_text())
        assert record["judge_score"] == expected["score"]
        assert [e["judge_number"] for e in record["judges"]] == [
            n for n, jd in enumerate(judgments, 1) if jd is not None
        ]
        checked += 1
    assert checked >= 20


def test_folders_outside_the_config_are_not_enumerated(sample: Path) -> None:
    """A non-numeric folder exists but is not listed; the sample plants no stray numeric
    folder, so a demo run opens with no warning about one."""
    assert (sample / "T1" / "notes").is_dir()
    config = load_config(sample)
    assert config.subtests("T1") == ["01", "02"]
    assert config.stray_warnings() == []


def test_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    """Two samples from one seed are byte-identical; another seed differs."""
    a = tree(make_sample_experiment(tmp_path / "a", seed=5))
    b = tree(make_sample_experiment(tmp_path / "b", seed=5))
    c = tree(make_sample_experiment(tmp_path / "c", seed=6))
    assert a == b
    assert a != c and a.keys() != c.keys()


def test_small(tmp_path: Path) -> None:
    """The sample takes a few hundred KB (every sweep job makes its own copy)."""
    root = make_sample_experiment(tmp_path / "exp", seed=1)
    assert sum(len(data) for data in tree(root).values()) < 400_000


def test_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    """An existing non-empty destination is never overwritten."""
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        make_sample_experiment(tmp_path / "exp", seed=0)
    assert (tmp_path / "exp" / "keep.txt").read_text() == "mine"


def test_generation_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A generation that fails part-way leaves neither the sample folder nor its temporary."""
    write_run = sample_module._write_run
    calls = iter(range(5))

    def write_then_fail(*args: Any) -> None:
        if next(calls, None) is None:
            raise OSError("No space left on device")
        write_run(*args)

    monkeypatch.setattr(sample_module, "_write_run", write_then_fail)
    with pytest.raises(OSError, match="No space left"):
        make_sample_experiment(tmp_path / "exp", seed=0)
    assert list(tmp_path.iterdir()) == []


def test_a_leftover_partial_folder_is_replaced(tmp_path: Path) -> None:
    """The temporary folder of a killed generation is never reused: the sample is made anew."""
    leftover = tmp_path / "exp.partial"
    (leftover / "config").mkdir(parents=True)
    (leftover / "config" / "experiment.json").write_text("{}")
    (leftover / "T0" / "stale.txt").parent.mkdir()
    (leftover / "T0" / "stale.txt").write_text("from a killed run")
    root = make_sample_experiment(tmp_path / "exp", seed=4)
    assert not leftover.exists()
    assert tree(root) == tree(make_sample_experiment(tmp_path / "fresh", seed=4))


def test_an_empty_destination_folder_is_filled(tmp_path: Path) -> None:
    """An existing empty folder is an allowed destination: the sample takes its place."""
    (tmp_path / "exp").mkdir()
    root = make_sample_experiment(tmp_path / "exp", seed=4)
    assert (root / "config" / "experiment.json").is_file()
