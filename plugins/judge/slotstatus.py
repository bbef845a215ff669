"""A slot's status (missing, failed, complete, agent_failed), read from its files.

A slot caught mid-swap by an interrupted repair is read as it was before the swap (see
``slotfiles``); the statuses are specified in ``judge-experiment.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runner_plugins.judge.experiment import (
    AGENT_OUTPUT,
    AGENT_RESULT,
    JUDGMENT_FILE,
    ExperimentConfig,
    RunRef,
    Slot,
    replaced_dir,
)
from runner_plugins.judge.reply import is_number

#: Every slot status, in the order tables show them.
STATUSES = ("missing", "failed", "complete", "agent_failed")
#: The statuses a rerun selects by default. Complete slots are re-judged only when the
#: status filter asks for them; agent_failed slots are never rerun (nothing to judge).
RERUNNABLE = ("missing", "failed")


def agent_finished(run_dir: Path) -> bool:
    """True when the agent left something to judge: a non-empty output.txt and a result.json.

    As in the original, one byte (a lone newline too) makes output.txt non-empty.
    """
    try:
        has_output = (run_dir / AGENT_OUTPUT).stat().st_size > 0
    except OSError:
        return False
    return has_output and (run_dir / AGENT_RESULT).is_file()


def current_slot_dir(slot_dir: Path) -> Path:
    """The folder holding the slot's files, before any recovery of an interrupted swap.

    A slot caught between being set aside and its replacement arriving is, for a
    reader, as it was.
    """
    if slot_dir.exists():
        return slot_dir
    replaced = replaced_dir(slot_dir)
    return replaced if replaced.is_dir() else slot_dir


def read_judgment(slot_dir: Path) -> dict[str, Any] | None:
    """The slot's judgment if it makes the slot ``complete``, else None."""
    try:
        data = json.loads((current_slot_dir(slot_dir) / JUDGMENT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # RecursionError: nested deeper than json reads
        return None
    if not isinstance(data, dict) or not is_number(data.get("score")):
        return None
    return None if data.get("is_valid") is False else data


def slot_status(slot_dir: Path) -> str:
    """``missing``, ``failed`` or ``complete`` (the agent is checked by :func:`run_slots`)."""
    if not current_slot_dir(slot_dir).exists():
        return "missing"
    return "complete" if read_judgment(slot_dir) is not None else "failed"


def run_slots(config: ExperimentConfig, run: RunRef) -> list[Slot]:
    """Every slot of ``run`` with its current status."""
    agent_ok = agent_finished(run.dir)
    return [
        Slot(run, number, model, slot_status(run.slot_dir(number)) if agent_ok else "agent_failed")
        for number, model in zip(config.slot_numbers, config.judge_models, strict=True)
    ]
