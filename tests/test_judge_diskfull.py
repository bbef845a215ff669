"""A repair on a disk that fills up: no judge starts after the first refused write, the
run ends with exit 74 and one line, and every slot is as it was or whole.

The experiment lives on a small tmpfs mounted for the test (root only; skipped with the
reason otherwise). The judge records each call in a file outside it, and the call the
test picks fills the tmpfs to the last byte before it answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.api import StopRun
from runner_plugins.judge.plugins import JudgeConsensus
from tests.conftest import RunCli
from tests.inprocess import run_in_process
from tests.judge_support import T3, context_for, copy_fixture, remove_slot, slots_for, tree

# Logs its call outside the disk; the fill_at-th call fills the disk, then every call
# answers with a verdict that is not the fixture's (score 0.7).
JUDGE = """
import json, os, sys, time
log, fill_at, filler, model = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with open(log, "a") as fh:
    fh.write(model + "\\n")
if len(open(log).read().splitlines()) == fill_at:
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:
        pass
time.sleep(0.2)
verdict = {"score": 0.7, "passed": True, "reasoning": f"{model}: rejudged"}
print("```json\\n" + json.dumps(verdict) + "\\n```")
"""
FILL_AT = 4
PARALLEL = 2


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs mounted at tmp_path/disk, unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(filler: Path) -> None:
    """Fill the disk holding ``filler`` to the last byte."""
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def _slots(experiment: Path) -> list[Path]:
    return sorted(experiment.glob("T*/*/run_*/judge/judge_0*"))


def _files(folder: Path) -> dict[str, bytes]:
    return {k: v for k, v in tree(folder).items() if not k.startswith("attempts/")}


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if "runner: error:" in line]
    assert len(errors) == 1, stderr
    return errors[0]


def test_a_full_disk_stops_new_judge_calls_with_exit_74(
    run_app: RunCli, disk: Path, tmp_path: Path
) -> None:
    """Re-judging all 21 slots with two workers, the 4th call fills the disk: at most
    the call running beside it starts after that, the run ends with exit 74 and one line
    naming the slot and the cause, each slot is as it was or wholly rejudged (what it
    replaced kept in attempts/), nothing else in the experiment changed (no consensus
    or summary half-regenerated), and once there is room the next run catches up."""
    experiment = copy_fixture(disk / "experiment")
    before = tree(experiment)
    slots_before = {slot: _files(slot) for slot in _slots(experiment)}
    script, log = tmp_path / "judge.py", tmp_path / "calls.log"
    script.write_text(JUDGE)
    argv = [sys.executable, script, log, FILL_AT, disk / "filler", "{model}"]
    result = run_app(
        "task=judge_rerun",
        f"source.experiment={experiment}",
        "source.status=[complete]",
        f"parallel={PARALLEL}",
        "task.command=[" + ",".join(f"'{part}'" for part in argv) + "]",
    )
    assert result.returncode == 74, result.output
    line = _one_error_line(result.stderr)
    assert f"cannot write '{experiment}/" in line and "No space left on device (ENOSPC)" in line
    calls = log.read_text().splitlines()
    assert FILL_AT <= len(calls) <= FILL_AT + PARALLEL - 1, calls
    # Only the calls whose writes failed are failures; the slots never started did not run.
    failed = [r for r in result.results() if r["status"] == "failed"]
    assert 1 <= len(failed) <= PARALLEL and result.summary()["skipped"] == 21 - len(calls)
    assert result.summary()["halted"].startswith("stopped by the task: cannot write")

    rejudged, runs = 0, set()
    for slot, files in slots_before.items():
        assert sorted(p.name for p in slot.parent.iterdir() if p.name.startswith(".")) == []
        now = _files(slot)
        if now == files:
            continue
        rejudged += 1
        runs.add(slot.parent.parent)
        assert json.loads(now["judgment.json"])["score"] == 0.7
        assert {"timing.json", "MODEL.md", "response.txt", "stdout.log"} <= now.keys()
        [kept] = sorted((slot / "attempts").iterdir())
        assert _files(kept) == files  # what it replaced, whole
    assert 2 <= rejudged <= len(calls)
    outside = {k: v for k, v in tree(experiment).items() if "/judge/judge_0" not in k}
    assert outside == {k: v for k, v in before.items() if "/judge/judge_0" not in k}

    (disk / "filler").unlink()
    again = run_app("task=judge_rerun", f"source.experiment={experiment}")
    assert again.returncode == 0, again.output
    assert f"consensus regenerated for {len(runs)} run(s)" in again.output


def test_a_full_disk_stops_judge_regenerate_with_exit_74(run_app: RunCli, disk: Path) -> None:
    """judge_regenerate on a full disk: exit 74, one line naming the run, and every
    consensus file as it was (whole JSON)."""
    experiment = copy_fixture(disk / "experiment")
    for judgment in experiment.glob("T*/*/run_*/judge/judge_0*/judgment.json"):
        data = json.loads(judgment.read_text())  # every run's consensus goes stale
        judgment.write_text(json.dumps(data | {"score": 0.05, "passed": False}))
    _fill(disk / "filler")
    before = tree(experiment)
    result = run_app("task=judge_regenerate", f"source.experiment={experiment}")
    assert result.returncode == 74, result.output
    line = _one_error_line(result.stderr)
    assert f"cannot write '{experiment}/T" in line and "(ENOSPC)" in line
    assert tree(experiment) == before


def test_a_full_disk_stops_the_consensus_post_processor_with_stop_run(
    disk: Path, tmp_path: Path
) -> None:
    """judge_consensus on a full disk raises StopRun (the core's exit 74) naming the run
    it could not write, and leaves every file as it was."""
    experiment = copy_fixture(disk / "experiment")
    judgment = experiment / T3 / "judge" / "judge_01" / "judgment.json"
    judgment.write_text(json.dumps(json.loads(judgment.read_text()) | {"score": 0.01}))
    _fill(disk / "filler")
    before = tree(experiment)
    out = tmp_path / "out"
    out.mkdir()
    context = context_for(out)
    context.source = slots_for(experiment, out)
    post = JudgeConsensus()
    post.setup(context)
    with pytest.raises(StopRun, match=rf"cannot write '{experiment}/{T3}': .*\(ENOSPC\)"):
        post([], context)
    assert tree(experiment) == before


def test_a_full_disk_while_rebuilding_a_prompt_stops_with_exit_74(
    run_app: RunCli, disk: Path, tmp_path: Path
) -> None:
    """A run that lost judge_prompt.md, on a full disk: the rebuilt prompt cannot be
    written, so the run ends with exit 74 and one line naming the file, before any
    judge is called, and leaves no temporary file."""
    experiment = copy_fixture(disk / "experiment")
    remove_slot(experiment)
    (experiment / T3 / "judge_prompt.md").unlink()
    _fill(disk / "filler")
    before = tree(experiment)
    script, log = tmp_path / "judge.py", tmp_path / "calls.log"
    script.write_text(JUDGE)
    argv = [sys.executable, script, log, 0, disk / "filler", "{model}"]
    result = run_app(
        "task=judge_rerun",
        f"source.experiment={experiment}",
        "task.command=[" + ",".join(f"'{part}'" for part in argv) + "]",
    )
    assert result.returncode == 74, result.output
    line = _one_error_line(result.stderr)
    assert f"cannot write '{experiment / T3 / 'judge_prompt.md'}': " in line, line
    assert "No space left on device (ENOSPC)" in line
    assert not log.exists()  # no judge was called
    assert tree(experiment) == before  # nor a temporary prompt left behind


def test_copying_onto_a_full_disk_stops_with_one_short_line(disk: Path, tmp_path: Path) -> None:
    """source.copy=true into a run folder on a disk with too little room for the
    experiment: exit 74, one short line naming the destination and the cause (not one
    error per file), and no half-made copy left in the run folder."""
    experiment = copy_fixture(tmp_path / "experiment")
    reserve = disk / "reserve"
    reserve.write_bytes(b"x" * 512 * 1024)  # freed below: room for the run's own files
    _fill(disk / "filler")
    reserve.unlink()
    run_dir = disk / "run"
    result = run_in_process(
        "task=judge_rerun",
        f"source.experiment={experiment}",
        "source.copy=true",
        cwd=tmp_path,
        run_dir=run_dir,
    )
    assert result.returncode == 74, result.output
    line = _one_error_line(result.stderr)
    assert f"cannot write '{run_dir / 'experiment'}': No space left on device (ENOSPC)" in line
    assert len(line) < 400, line
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith("experiment")) == []
