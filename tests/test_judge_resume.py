"""A judge run whose experiment lives in its run folder (the sample, or ``source.copy``),
resumed into another folder or in place: every slot is judged once, and the experiment
the last run leaves holds every repair, its consensus matching its slots."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

from runner.config.settings import settings_from
from runner.errors import UsageError
from runner.execute.run import execute
from runner_plugins.judge.experiment import load_config
from runner_plugins.judge.runstate import scan_run
from runner_plugins.judge.sample import MODELS, make_sample_experiment
from tests.conftest import Compose
from tests.judge_support import tree

# Fails (exit 3) for the models $FAIL_MODELS names; otherwise notes the slot in
# $JUDGED_LOG and becomes the local judge.
JUDGE = """
import os, sys
model, number, local_judge, prompt_file, run_dir = sys.argv[1:]
slot = "/".join(run_dir.split(os.sep)[-3:]) + f"/judge_{int(number):02d}"  # the item id
if model in os.environ.get("FAIL_MODELS", "").split(","):
    sys.exit(3)
with open(os.environ["JUDGED_LOG"], "a") as log:
    log.write(slot + "\\n")
os.execv(sys.executable, [sys.executable, "-S", local_judge, "--model", model,
         "--prompt-file", prompt_file, "--run-dir", run_dir])
"""
SCOPE = ("source.tiers=[T0]", "source.subtests=[1]")  # 8 slots of the seed-0 sample


def _command(script: Path) -> str:
    argv = [
        sys.executable,
        str(script),
        "{model}",
        "{slot}",
        "{local_judge}",
        "{prompt_file}",
        "{run_dir}",
    ]
    return "task.command=[" + ",".join(f"'{part}'" for part in argv) + "]"


def _run(compose: Compose, out: Path, *overrides: str) -> int:
    out.mkdir(parents=True, exist_ok=True)  # as Hydra does
    return execute(settings_from(compose(*overrides)), out)


def _ok(folder: Path) -> list[str]:
    lines = (folder / "results.jsonl").read_text().splitlines()
    return [r["id"] for r in map(json.loads, lines) if r["status"] == "ok"]


def _scope(experiment: Path) -> list[tuple[str, list[str], str | None]]:
    """Each T0/01 run of ``experiment``: its id, its slots' statuses, why its consensus
    is stale (None: it matches its slots)."""
    config = load_config(experiment)
    states = [scan_run(config, run) for run in config.runs() if run.id.startswith("T0/01/")]
    return [(s.run.id, [slot.status for slot in s.slots], s.stale) for s in states]


@pytest.mark.parametrize("copied", [False, True], ids=["sample", "copy"])
def test_a_resumed_run_carries_over_the_repairs_of_the_run_it_resumes(
    compose_config: Compose, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copied: bool
) -> None:
    """Run 1 repairs the first judge's slots (the others fail); run 2, resume=last in a
    new folder, the second judge's; run 3 continues run 2 in place, the third's. Each
    slot is judged once, and run 2's experiment ends with every slot complete and every
    consensus matching: run 1's repairs came with it, run 3 kept them."""
    script = tmp_path / "judge.py"
    script.write_text(JUDGE)
    judged = tmp_path / "judged.log"
    monkeypatch.setenv("JUDGED_LOG", str(judged))
    monkeypatch.setenv("RUNNER_LOCAL_JUDGE_LATENCY", "0.01")
    work = ["task=judge_rerun", _command(script), *SCOPE, "retry.attempts=1", "progress=off"]
    name = "sample-experiment"
    if copied:
        original = make_sample_experiment(tmp_path / "original", 0)
        work += [f"source.experiment={original}", "source.copy=true"]
        name = "experiment"
        before = tree(original)
    first, second = tmp_path / "outputs" / "day" / "1", tmp_path / "outputs" / "day" / "2"

    monkeypatch.setenv("FAIL_MODELS", f"{MODELS[1]},{MODELS[2]}")
    assert _run(compose_config, first, *work) == 1
    once = _ok(first)
    assert once and all(slot.endswith("judge_01") for slot in once)

    monkeypatch.setenv("FAIL_MODELS", MODELS[2])
    assert _run(compose_config, second, *work, "resume=last") == 1
    summary = json.loads((second / "summary.json").read_text())
    assert summary["resumed_from"] == str(first) and summary["already_succeeded"] == len(once)
    # Run 1's repairs are in run 2's experiment, though run 2 did not make them.
    carried = {run: statuses for run, statuses, _ in _scope(second / name)}
    for slot in once:
        run, number = slot.rsplit("/", 1)
        assert carried[run][int(number.removeprefix("judge_")) - 1] == "complete", slot
    # Run 1's own experiment is as run 1 left it: run 2 repaired only its copy.
    assert not any(s.endswith("judge_02") for s in _ok(first))
    first_statuses = {run: statuses for run, statuses, _ in _scope(first / name)}
    assert first_statuses != carried

    monkeypatch.delenv("FAIL_MODELS")
    assert _run(compose_config, second, *work, f"resume={second}") == 0

    counts = Counter(judged.read_text().splitlines())
    assert len(counts) == 8 and set(counts.values()) == {1}, counts
    final = _ok(second)
    assert sorted(final) == sorted(counts) and len(final) == len(set(final))
    for run, statuses, stale in _scope(second / name):
        assert set(statuses) == {"complete"} and stale is None, (run, statuses, stale)
    if copied:
        assert tree(original) == before  # the original is never repaired


def test_a_resume_whose_experiment_is_gone_is_refused(
    compose_config: Compose, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resumed into another folder, a run whose sample is gone (or is a symlink) cannot
    carry its repairs over: refused before the first item, one line naming the folder;
    no sample is made anew in the new folder."""
    monkeypatch.setenv("RUNNER_LOCAL_JUDGE_LATENCY", "0")
    work = ["task=judge_rerun", *SCOPE, "source.slots=[1]", "progress=off"]
    first, second = tmp_path / "first", tmp_path / "second"
    assert _run(compose_config, first, *work) == 0
    sample = first / "sample-experiment"
    os.rename(sample, tmp_path / "moved")
    sample.symlink_to(tmp_path / "moved")
    with pytest.raises(UsageError) as refused:
        _run(compose_config, second, *work, f"resume={first}")
    message = str(refused.value)
    assert "\n" not in message
    assert f"resume={str(first)!r}" in message and str(sample) in message
    assert not (second / "sample-experiment").exists()
    assert not (second / "results.jsonl").exists()
