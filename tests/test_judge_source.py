"""JudgeSlots: which slots an experiment lists, its filters, describe() and copies."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.api import StopRun
from runner_plugins.judge import copies, slotstatus
from runner_plugins.judge import sample as sample_module
from runner_plugins.judge import source as source_module
from runner_plugins.judge.plugins import JudgeSlots
from tests.judge_support import (
    FIXTURE,
    T3,
    context_for,
    copy_fixture,
    remove_slot,
    slots_for,
    tree,
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sample experiment shared by the tests that only read it."""
    source = JudgeSlots()
    # A dry run: it makes the sample but takes no lock, so the source need not be closed.
    source.setup(context_for(tmp_path_factory.mktemp("shared"), dry_run=True))
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
    """A resumed run finds its sample (with its repairs) instead of failing or remaking it."""
    first = list(slots_for(None, out))
    repaired = Path(first[0]["slot_dir"])
    repaired.mkdir(exist_ok=True)
    (repaired / "judgment.json").write_text(json.dumps({"score": 0.5}))
    second = slots_for(None, out)
    assert [i.id for i in second] == [i.id for i in first[1:]]
    assert len(second) == len(first) - 1


def test_an_interrupted_sample_is_made_again_in_full(
    out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sample generation that stops part-way leaves nothing a later setup would reuse."""
    write_run = sample_module._write_run
    calls = iter(range(10))

    def write_then_stop(*args: Any) -> None:
        if next(calls, None) is None:
            raise KeyboardInterrupt
        write_run(*args)

    monkeypatch.setattr(sample_module, "_write_run", write_then_stop)
    with pytest.raises(KeyboardInterrupt):
        slots_for(None, out)
    assert list(out.iterdir()) == []
    monkeypatch.undo()
    source = slots_for(None, out)
    whole = sample_module.make_sample_experiment(tmp_path / "whole", 0)
    assert tree(out / "sample-experiment") == tree(whole)
    assert len(source) == len(slots_for(whole, tmp_path))


def test_the_experiment_is_read_once(
    sample: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first len() reads the slots; iteration and describe() re-read no judgment."""
    reads: list[Path] = []
    read_judgment = slotstatus.read_judgment

    def counting(slot_dir: Path) -> dict[str, Any] | None:
        reads.append(slot_dir)
        return read_judgment(slot_dir)

    monkeypatch.setattr(slotstatus, "read_judgment", counting)
    source = slots_for(sample, out)
    assert reads == []  # setup reads nothing: another plugin may still refuse the run
    count = len(source)
    listed = len(reads)
    assert listed > 0
    assert count == len(list(source)) > 0 and source.describe()
    assert len(reads) == listed


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
        ({"subtests": ["7"]}, r"matches no subtest; valid: \['00', '01', '02'\]"),
        (
            {"subtests": ["1", "7"]},
            r"subtest filter value '7' matches no subtest; valid: \['00', '01', '02'\]",
        ),
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


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in root.rglob("*")}


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A copy of the real experiment with every write permission removed (restored after)."""
    root = copy_fixture(tmp_path / "read-only")
    for path in [root, *root.rglob("*")]:
        path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)
    yield root
    for path in [root, *root.rglob("*")]:
        path.chmod(stat.S_IMODE(path.stat().st_mode) | stat.S_IWUSR)


def test_copy_works_on_a_private_writable_copy(
    read_only: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """copy=true repairs a writable <output_dir>/experiment, never the read-only original."""
    before, modes = tree(read_only), _modes(read_only)
    loads: list[Path] = []
    load_config = source_module.load_config

    def counting(root: Path) -> Any:
        loads.append(root)
        return load_config(root)

    monkeypatch.setattr(source_module, "load_config", counting)
    source = slots_for(read_only, out, copy=True, status=["missing"])
    assert source.experiment_path == out / "experiment"
    assert source.config is not None and source.config.root == out / "experiment"
    assert len(loads) == 1  # the original's config is read once, then pointed at the copy
    copy = out / "experiment"
    assert tree(copy) == tree(read_only) == tree(FIXTURE)
    assert all(mode & stat.S_IWUSR for mode in _modes(copy).values())
    assert os.access(copy / T3 / "judge", os.W_OK)
    probe = copy / "T0" / "00" / "run_01" / "judge" / "probe.txt"
    probe.write_text("writable")
    assert probe.read_text() == "writable"
    assert tree(read_only) == before and _modes(read_only) == modes
    assert not any(mode & 0o222 for mode in modes.values())


def test_an_interrupted_copy_is_never_taken_for_a_finished_one(
    experiment: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy that fails part-way leaves no <output_dir>/experiment; the next run copies anew."""
    copytree = copies.shutil.copytree
    calls = 0

    def copy_then_fail(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        top = calls == 1  # copytree calls itself for each subfolder
        copied = copytree(*args, **kwargs)
        if top:
            raise OSError(28, "No space left on device")
        return copied

    monkeypatch.setattr(copies.shutil, "copytree", copy_then_fail)
    with pytest.raises(StopRun, match=r"No space left on device \(ENOSPC\)"):
        slots_for(experiment, out, copy=True)
    assert sorted(p.name for p in out.iterdir() if "experiment" in p.name) == []
    monkeypatch.setattr(copies.shutil, "copytree", copytree)
    source = slots_for(experiment, out, copy=True)
    assert source.experiment_path == out / "experiment"
    assert tree(out / "experiment") == tree(experiment)


def test_a_copy_that_fails_says_which_file_and_how_many_others(experiment: Path, out: Path) -> None:
    """Files that cannot be copied (here two named pipes) make one short line: the first
    that failed, the count of the others; no half-made copy is left."""
    for name in ("pipe-a", "pipe-b"):
        os.mkfifo(experiment / name)
    with pytest.raises(ValueError) as caught:
        slots_for(experiment, out, copy=True)
    message = str(caught.value)
    assert message.startswith(f"cannot copy the experiment to '{out / 'experiment'}': ")
    assert "is a named pipe (and 1 other file(s)); the partial copy was removed" in message
    assert len(message) < 400 and "\n" not in message
    assert sorted(p.name for p in out.iterdir() if "experiment" in p.name) == []


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
    assert "selected for rerun: 0 slot(s) with status in ['agent_failed']" in source.describe()
