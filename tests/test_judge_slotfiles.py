"""slotfiles: a slot is swapped in whole, and every state a crash can leave is recovered."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from runner_plugins.judge import slotfiles
from runner_plugins.judge.experiment import RunRef
from runner_plugins.judge.slotstatus import slot_status
from tests.judge_support import T3, tree


def _run(experiment: Path) -> RunRef:
    return RunRef(experiment, "T3", "01", 1)


def _attempt(slot: Path, token: str) -> Path:
    """A finished attempt whose every file names ``token``."""
    attempt = slotfiles.new_attempt_dir(slot)
    for name in ("judgment.json", "response.txt", "timing.json"):
        body = f'{{"score": 0.5, "token": "{token}"}}' if name == "judgment.json" else token
        (attempt / name).write_text(body)
    return attempt


def _tokens(folder: Path) -> set[str]:
    found = set()
    for path in folder.iterdir():
        if path.is_file():
            text = path.read_text()
            found.add(text.split('"token": "')[1].split('"')[0] if "token" in text else text)
    return found


def test_a_commit_swaps_the_slot_and_keeps_the_old_one_in_attempts(experiment: Path) -> None:
    """The attempt becomes the slot; the folder it replaced is attempts/1, byte for byte."""
    slot = experiment / T3 / "judge" / "judge_02"
    before = tree(slot)
    moved = slotfiles.commit(_attempt(slot, "new"), slot, replace=True)
    assert moved == slot / "attempts" / "1"
    assert tree(moved) == before
    assert _tokens(slot) == {"new"}
    assert slotfiles.leftovers(_run(experiment)) == []


def test_attempts_stay_flat_and_in_order(experiment: Path) -> None:
    """Three replacements give attempts/1..3 in the order they were set aside."""
    slot = experiment / T3 / "judge" / "judge_02"
    for token in ("a", "b", "c"):
        slotfiles.commit(_attempt(slot, token), slot, replace=True)
    assert sorted(p.name for p in (slot / "attempts").iterdir()) == ["1", "2", "3"]
    assert [_tokens(slot / "attempts" / n) for n in ("2", "3")] == [{"a"}, {"b"}]
    assert _tokens(slot) == {"c"}
    assert not (slot / "attempts" / "3" / "attempts").exists()


def test_an_attempt_that_must_not_replace_the_slot_is_archived(experiment: Path) -> None:
    """replace=False leaves the slot's files and puts the attempt in attempts/."""
    slot = experiment / T3 / "judge" / "judge_02"
    before = tree(slot)
    where = slotfiles.commit(_attempt(slot, "failed"), slot, replace=False)
    assert where == slot / "attempts" / "1" and _tokens(where) == {"failed"}
    assert {k: v for k, v in tree(slot).items() if not k.startswith("attempts/")} == before


def test_a_replacement_takes_the_modes_of_what_it_replaces(experiment: Path) -> None:
    """A group-writable slot stays group-writable, file by file, once replaced."""
    slot = experiment / T3 / "judge" / "judge_02"
    slot.chmod(0o775)
    (slot / "judgment.json").chmod(0o664)
    slotfiles.commit(_attempt(slot, "new"), slot, replace=True)
    assert stat.S_IMODE(slot.stat().st_mode) == 0o775
    assert stat.S_IMODE((slot / "judgment.json").stat().st_mode) == 0o664


def _crash_after_step_1(slot: Path) -> None:
    attempt = _attempt(slot, "new")
    slot.rename(slotfiles.replaced_dir(slot))
    assert attempt.exists()


def _crash_after_step_2(slot: Path) -> None:
    attempt = _attempt(slot, "new")
    slot.rename(slotfiles.replaced_dir(slot))
    attempt.rename(slot)


def _crash_mid_archive(slot: Path) -> None:
    # The slot already had attempts/1; the crash comes after moving it, before the rest.
    slotfiles.commit(_attempt(slot, "first"), slot, replace=True)
    attempt = _attempt(slot, "new")
    replaced = slotfiles.replaced_dir(slot)
    slot.rename(replaced)
    attempt.rename(slot)
    (slot / "attempts").mkdir()
    (replaced / "attempts" / "1").rename(slot / "attempts" / "1")


def _crash_while_writing(slot: Path) -> None:
    attempt = slotfiles.new_attempt_dir(slot)
    (attempt / ".judgment.json.abcd1234.tmp").write_text('{"score": 0.')


CRASHES = {
    "before the swap": _crash_while_writing,
    "after setting the slot aside": _crash_after_step_1,
    "after the commit": _crash_after_step_2,
    "in the middle of archiving": _crash_mid_archive,
}
OUTCOME = {
    "before the swap": "old",
    "after setting the slot aside": "old",
    "after the commit": "new",
    "in the middle of archiving": "new",
}


@pytest.mark.parametrize("crash", list(CRASHES))
def test_recovery_leaves_the_slot_as_it_was_or_as_the_attempt_left_it(
    experiment: Path, crash: str
) -> None:
    """Each crash state recovers to one whole attempt, loses nothing, and leaves no leftover."""
    slot = experiment / T3 / "judge" / "judge_02"
    original = tree(slot)
    (slot.parent / ".result.json.zz99xx00.tmp").write_text("{")
    CRASHES[crash](slot)
    run = _run(experiment)
    assert slotfiles.leftovers(run)
    done = slotfiles.recover_run(run)
    assert done and slotfiles.leftovers(run) == []
    assert slotfiles.recover_run(run) == []  # a second recovery has nothing to do
    if OUTCOME[crash] == "old":
        assert tree(slot) == original
    else:
        assert _tokens(slot) == {"new"}
        kept = [tree(p) for p in sorted((slot / "attempts").iterdir())]
        assert original in kept  # the replaced slot is archived whole
    assert slot_status(slot) in ("complete", "failed")


def test_a_dry_run_reads_a_slot_caught_mid_swap_as_it_was(experiment: Path) -> None:
    """Between setting the slot aside and the commit, readers still see the old slot."""
    slot = experiment / T3 / "judge" / "judge_02"
    _crash_after_step_1(slot)
    assert not slot.exists() and slot_status(slot) == "complete"


def test_a_second_process_cannot_repair_the_same_experiment(experiment: Path) -> None:
    """The repair lock keeps another process out, and a dry run there sees it held."""
    script = (
        "import sys; from pathlib import Path; from runner_plugins.judge import slotfiles\n"
        "root = Path(sys.argv[1])\n"
        "print(slotfiles.being_repaired(root))\n"
        "try:\n"
        "    with slotfiles.repair_lock(root): print('locked')\n"
        "except slotfiles.ExperimentBusy as exc: print(exc)\n"
    )
    with slotfiles.repair_lock(experiment), slotfiles.repair_lock(experiment):
        other = subprocess.run(
            [sys.executable, "-c", script, str(experiment)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ},
        )
        assert not slotfiles.being_repaired(experiment)  # this process's own lock
    assert other.stdout.splitlines()[0] == "True"
    assert "is being repaired by another process" in other.stdout
    after = subprocess.run(
        [sys.executable, "-c", script, str(experiment)], capture_output=True, text=True, timeout=60
    )
    assert after.stdout.splitlines() == ["False", "locked"]


def test_model_md_names_the_model_and_a_rerun_its_command(tmp_path: Path) -> None:
    """MODEL.md gives the model and time; a rerun's also gives its command and says rerun."""
    slotfiles.write_model(tmp_path, "opus", at="T")
    assert (tmp_path / "MODEL.md").read_text() == (
        "# Judge Model Information\n\n**Model**: opus\n**Timestamp**: T\n"
    )
    slotfiles.write_model(tmp_path, "opus", at="T", command=["judge", "-p", "f"])
    assert (tmp_path / "MODEL.md").read_text() == (
        "# Judge Model Information\n\n**Model**: opus\n**Command**: `judge -p f`\n"
        "**Timestamp**: T\n**Rerun**: true\n"
    )


def test_timing_says_whether_runner_wrote_it_and_why_an_attempt_failed(tmp_path: Path) -> None:
    """timing.json marks a rerun (was_rerun reads it) and a failure with its reason."""
    original, rerun = tmp_path / "original", tmp_path / "rerun"
    original.mkdir()
    rerun.mkdir()
    slotfiles.write_timing(original, 1.5, at="T")
    slotfiles.write_timing(rerun, 2.0, at="T", rerun=True, failure="boom", extra={"x": 1})
    assert json.loads((original / "timing.json").read_text()) == {
        "judge_duration_seconds": 1.5,
        "measured_at": "T",
    }
    assert json.loads((rerun / "timing.json").read_text()) == {
        "judge_duration_seconds": 2.0,
        "measured_at": "T",
        "rerun": True,
        "failed": True,
        "reason": "boom",
        "x": 1,
    }
    assert not slotfiles.was_rerun(original) and slotfiles.was_rerun(rerun)
    assert not slotfiles.was_rerun(tmp_path / "absent")
