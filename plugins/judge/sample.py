"""A deterministic sample judge experiment in which every slot status occurs.

``make_sample_experiment(dest, seed)`` writes 5 tiers x 2 subtests x 6 runs x 3 judges
(180 slots, about 40% of them missing or failed, as after a bout of rate limits; ~250 KB
in ~950 small files). A few slots have a fixed fate so that every status and every kind
of failure is present whatever the seed; the rest are drawn from
``random.Random(seed)``, so one seed always gives byte-identical files. Tier T1 also
holds a non-numeric folder (``notes``), which enumeration skips without a word; no stray
numeric folder, whose warning would open every demo run (tests/test_judge_parity.py
plants its own). The files are written into a temporary sibling folder that is renamed into
place at the end, so a sample folder is either whole or absent.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from runner_plugins.judge.consensus import apply_judge_fields, consensus, judges_list
from runner_plugins.judge.experiment import (
    AGENT_OUTPUT,
    AGENT_RESULT,
    CONFIG_FILE,
    CONSENSUS_FILE,
    JUDGMENT_FILE,
    RECORD_FILE,
    TASK_FILE,
    WORKSPACE,
    ExperimentConfig,
    RunRef,
)
from runner_plugins.judge.folders import build_whole
from runner_plugins.judge.judgment import parse_reply
from runner_plugins.judge.prompt import PROMPT_FILE
from runner_plugins.judge.reply import clamp_score
from runner_plugins.judge.slotfiles import RESPONSE_FILE, STDERR_FILE, write_model, write_timing

MODELS = ("claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929", "claude-haiku-4-5")
TIERS = ("T0", "T1", "T2", "T3", "T4")
RUNS = 6
TASK = """# Task: Write a word counter

Create `wordcount.py` that reads the text file named on the command line and prints
the number of words it contains.

## Success Criteria

- `wordcount.py` exists in the workspace
- Running `python wordcount.py sample.txt` prints the word count
- Exit code is 0
"""
ANSWERS = {
    "good": "I created `wordcount.py`, which reads the text file named on the command line "
    "and prints the number of words it contains. Running `python wordcount.py "
    "sample.txt` prints 9 and the exit code is 0.",
    "terse": "Done.",
    "broken": "I was unable to finish: running wordcount.py raised an error "
    "(FileNotFoundError) and the exit code was 1.",
}
QUALITY = {"good": (0.7, 1.0), "terse": (0.2, 0.5), "broken": (0.0, 0.35)}
FAILURE_KINDS = ("failed_timing", "failed_truncated", "failed_no_score", "failed_invalid")
# Fixed fates: (tier, subtest, run) -> how the agent failed; (..., slot) -> slot outcome.
FORCED_AGENT = {
    ("T1", "01", 2): "empty_output",
    ("T2", "01", 3): "no_run_folder",
    ("T3", "02", 4): "no_result_json",
    ("T4", "02", 1): "no_output",
}
FORCED_SLOTS = {
    ("T0", "00", 1, 1): "failed_timing",
    ("T0", "00", 2, 2): "failed_truncated",
    ("T0", "01", 1, 3): "failed_no_score",
    ("T1", "02", 1, 1): "failed_invalid",
    ("T0", "00", 3, 3): "missing",
    ("T0", "00", 4, 1): "complete",
}
BASE_TIME = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _config(dest: Path, seed: int) -> ExperimentConfig:
    """The sample's shape; its subtests are given, as records would, since no folder exists yet."""
    return ExperimentConfig(
        root=dest,
        experiment_id=f"sample-{seed}",
        judge_models=MODELS,
        runs_per_subtest=RUNS,
        tiers=TIERS,
        max_subtests=2,
        recorded={tier: ("00", "01") if tier == "T0" else ("01", "02") for tier in TIERS},
    )


def _write(path: Path, text: str) -> None:
    # Plain writes: the folder is new and private until it is renamed into place, and an
    # fsync per file (as atomic writes do) would cost more than the 0.5 s budget.
    if not path.parent.is_dir():  # one stat is cheaper than a mkdir that fails
        path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")


def _write_json(path: Path, data: Any) -> None:
    _write(path, json.dumps(data, indent=2) + "\n")


def _reply(rng: random.Random, model: str, quality: float) -> str:
    score = round(clamp_score(quality + rng.uniform(-0.08, 0.08)), 2)
    verdict = {
        "score": score,
        "passed": score >= 0.5,
        "reasoning": f"{model} judged the word counter "
        f"{'acceptable' if score >= 0.5 else 'lacking'} (sample verdict, score {score:.2f}).",
        "categories": {
            "functional": {"achieved": round(score * 3, 2), "max": 3.0, "score": score},
            "code_quality": {"achieved": round(score * 2, 2), "max": 2.0, "score": score},
        },
    }
    return f"I read the task and the workspace.\n\n```json\n{json.dumps(verdict, indent=2)}\n```\n"


def _write_slot(
    slot_dir: Path, fate: str, rng: random.Random, model: str, quality: float, when: str
) -> dict[str, Any] | None:
    """Write one slot's files for ``fate``; return its judgment when it is complete."""
    if fate == "missing":
        return None
    seconds = round(rng.uniform(20, 120), 3)
    if fate == "failed_timing":
        failure = "judge exited with code 1: 429 Too Many Requests"
        write_timing(slot_dir, seconds, at=when, failure=failure, write=_write_json)
        _write(
            slot_dir / STDERR_FILE, "Error: 429 Too Many Requests (rate limit). Retry-After: 30\n"
        )
        return None
    reply = _reply(rng, model, quality)
    judgment = parse_reply(reply)
    _write(slot_dir / RESPONSE_FILE, reply)
    write_timing(slot_dir, seconds, at=when, write=_write_json)
    write_model(slot_dir, model, at=when, write=_write)
    text = json.dumps(judgment, indent=2) + "\n"
    if fate == "failed_truncated":
        text = text[: len(text) // 2]  # what a crash mid-write used to leave behind
    elif fate == "failed_no_score":
        text = json.dumps({k: v for k, v in judgment.items() if k != "score"}, indent=2) + "\n"
    elif fate == "failed_invalid":
        text = json.dumps(judgment | {"is_valid": False}, indent=2) + "\n"
    _write(slot_dir / JUDGMENT_FILE, text)
    return judgment if fate == "complete" else None


def _write_run(config: ExperimentConfig, run: RunRef, rng: random.Random) -> None:
    run_dir = run.dir
    agent_fate = FORCED_AGENT.get((run.tier, run.subtest, run.number), "ok")
    kind = rng.choice(sorted(ANSWERS))
    quality = rng.uniform(*QUALITY[kind])
    when = (BASE_TIME + timedelta(seconds=rng.randrange(86400))).isoformat()
    if agent_fate == "no_run_folder":
        return
    answer = "" if agent_fate == "empty_output" else ANSWERS[kind]
    _write(
        run_dir / PROMPT_FILE,
        f"## Task Given to Agent\n\n{TASK}\n## Agent's Output\n\n"
        f"{answer}\n\n## Workspace State After Agent Execution\n\n"
        "- `wordcount.py`\n- `sample.txt`\n",
    )
    _write(
        run.workspace / "wordcount.py",
        "import sys\n\nprint(len(open(sys.argv[1]).read().split()))\n",
    )
    _write(run.workspace / "sample.txt", "the quick brown fox jumps over the lazy dog\n")
    if agent_fate != "no_output":
        _write(run_dir / AGENT_OUTPUT, answer)
    if agent_fate != "no_result_json":
        _write_json(
            run_dir / AGENT_RESULT,
            {
                "exit_code": int(kind == "broken"),
                "stdout": answer,
                "stderr": "",
                "cost_usd": round(rng.uniform(0.01, 0.2), 4),
            },
        )
    record: dict[str, Any] = {
        "run_number": run.number,
        "exit_code": int(kind == "broken"),
        "cost_usd": round(rng.uniform(0.01, 0.2), 4),
        "duration_seconds": round(rng.uniform(30, 300), 3),
        "judge_score": None,
        "judge_passed": None,
        "judge_grade": None,
        "judge_reasoning": "",
        "judges": [],
        "workspace_path": f"{run.id}/{WORKSPACE}",
        "criteria_scores": {},
    }
    if agent_fate == "ok":
        judgments = []
        for slot, model in zip(config.slot_numbers, config.judge_models, strict=True):
            fate = FORCED_SLOTS.get((run.tier, run.subtest, run.number, slot))
            if fate is None:
                draw = rng.random()
                fate = (
                    "missing"
                    if draw < 0.2
                    else rng.choice(FAILURE_KINDS)
                    if draw < 0.4
                    else "complete"
                )
            judgments.append(_write_slot(run.slot_dir(slot), fate, rng, model, quality, when))
        if any(j is not None for j in judgments):
            result = consensus(judgments)
            _write_json(run_dir / CONSENSUS_FILE, result)
            apply_judge_fields(record, result, judges_list(config.judge_models, judgments))
    _write_json(run_dir / RECORD_FILE, record)


def make_sample_experiment(dest: Path, seed: int) -> Path:
    """Create the sample experiment in ``dest`` (new or empty); one seed gives one set of bytes.

    The sample appears whole (see ``folders.build_whole``): an interrupted call leaves no
    ``dest`` that could pass for a sample.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"cannot create a sample experiment in {str(dest)!r}: not empty")
    return build_whole(dest, lambda partial: _write_sample(partial, seed))


def _write_sample(dest: Path, seed: int) -> None:
    rng = random.Random(seed)
    config = _config(dest, seed)
    _write_json(dest / CONFIG_FILE, config.record())
    _write(dest / TASK_FILE, TASK)
    _write(
        dest / "README.md",
        f"Sample judge experiment made by make_sample_experiment(seed={seed}).\n",
    )
    for run in config.runs():
        _write_run(config, run, rng)
    # A folder that enumeration skips: a non-numeric one.
    _write(dest / "T1" / "notes" / "README.md", "Not a subtest: the name is not numeric.\n")
