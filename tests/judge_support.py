"""Helpers shared by the judge plugin tests: the real experiment, a fake judge, statuses."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from runner.api import Item, RunContext, Source
from runner_plugins.judge.copies import copy_experiment
from runner_plugins.judge.experiment import RunRef, load_config
from runner_plugins.judge.local_judge import LATENCY_ENV
from runner_plugins.judge.plugins import JudgeSlots
from runner_plugins.judge.slotstatus import run_slots

REPO = Path(__file__).resolve().parent.parent
# A real experiment (BSD-3, see its LICENSE file), vendored so CI has it; tests only read
# it and work on copies.
FIXTURE = REPO / "tests" / "fixtures" / "scylla-dryrun"
T3 = "T3/01/run_01"

# A judge whose behaviour the test picks: good, invalid, exit3, garbage or ratelimit.
JUDGE_SCRIPT = """
import json, os, sys
LATENCY_ENV = sys.argv[4]
mode, model, score = sys.argv[1], sys.argv[2], float(sys.argv[3])
if mode == "exit3":
    print("partial reply")
    print("loading rubric\\nboom: judge crashed", file=sys.stderr)
    sys.exit(3)
if mode == "garbage":
    print("I am not able to give a verdict today.")
    sys.exit(0)
if mode == "ratelimit":
    print("API Error: 429 rate_limit_error. Retry-After: 12", file=sys.stderr)
    sys.exit(1)
verdict = {"score": score, "passed": score >= 0.5, "categories": {"functional": {"score": score}},
           "reasoning": f"{model} cwd={os.getcwd()} latency={os.environ.get(LATENCY_ENV)}"}
if mode == "invalid":
    verdict["is_valid"] = False
print("Evaluation follows.\\n\\n```json\\n" + json.dumps(verdict) + "\\n```")
"""


def copy_fixture(dest: Path) -> Path:
    """A writable copy of the real experiment at ``dest``."""
    copy_experiment(FIXTURE, dest)
    return dest


def judge_command(folder: Path, mode: str = "good", score: float = 0.4) -> list[str]:
    """The argv template of the fake judge, its script written into ``folder``."""
    script = folder / "fake_judge.py"
    if not script.exists():
        script.write_text(JUDGE_SCRIPT)
    return [sys.executable, str(script), mode, "{model}", str(score), LATENCY_ENV]


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def context_for(out: Path, **kw: Any) -> RunContext:
    """A RunContext as the core builds it."""
    return RunContext(output_dir=out, config={}, parallel=2, **kw)


#: Sources set up by the current test; the conftest closes them after it, since a source
#: set up for a repair holds the experiment's lock.
OPEN_SOURCES: list[Source] = []


def set_up(source: Source, context: RunContext) -> None:
    """``source.setup(context)``, remembering the source so that it is closed after the test."""
    OPEN_SOURCES.append(source)
    source.setup(context)


def close_sources() -> None:
    """Close every source the test set up (releasing the experiment locks they hold)."""
    while OPEN_SOURCES:
        close = getattr(OPEN_SOURCES.pop(), "close", None)
        if close is not None:
            close()


def slots_for(
    experiment: Path | None, out: Path, dry_run: bool = False, **params: Any
) -> JudgeSlots:
    """A JudgeSlots source after setup."""
    source = JudgeSlots(experiment=None if experiment is None else str(experiment), **params)
    set_up(source, context_for(out, dry_run=dry_run))
    return source


def remove_slot(experiment: Path, run: str = T3, slot: int = 2) -> Path:
    """Delete one slot folder, making that slot missing."""
    path = experiment / run / "judge" / f"judge_{slot:02d}"
    shutil.rmtree(path)
    return path


def status_of(slot_dir: Path) -> str:
    """The current status of the slot in ``slot_dir``."""
    run_dir = slot_dir.parent.parent
    root = run_dir.parent.parent.parent
    config = load_config(root)
    run = RunRef(root, run_dir.parent.parent.name, run_dir.parent.name, int(run_dir.name[4:]))
    return run_slots(config, run)[int(slot_dir.name[6:]) - 1].status


def one_item(experiment: Path, out: Path) -> Item:
    """The single item of a source over an experiment with one slot to rerun."""
    items = list(slots_for(experiment, out))
    assert len(items) == 1
    return items[0]
