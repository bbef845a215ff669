"""One run as the judge sources read it: its slots, whether its consensus is stale, and
what an interrupted repair left in it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from runner_plugins.judge import prompt, slotfiles
from runner_plugins.judge.consensus import run_judgments, stale_reason, stored_consensus
from runner_plugins.judge.experiment import ExperimentConfig, RunRef, Slot
from runner_plugins.judge.slotstatus import run_slots


@dataclasses.dataclass
class RunState:
    """One run as a source read it: its slots, and what is wrong with it."""

    run: RunRef
    slots: list[Slot]
    #: Why the stored consensus does not match the slots (None: it matches, or none is due).
    stale: str | None = None
    #: Why the judge prompt can be neither read nor rebuilt (None: it can).
    unjudgeable: str | None = None
    #: What an interrupted repair left in the run's folders.
    leftovers: list[Path] = dataclasses.field(default_factory=list)
    #: Whether the stored consensus (judge/result.json) passed when the run was read
    #: (None: it had none), so that a repair can say whose pass/fail it changed.
    passed: bool | None = None

    @property
    def judged(self) -> bool:
        """Whether the agent finished (so its slots have a status other than agent_failed)."""
        return bool(self.slots) and self.slots[0].status != "agent_failed"


def scan_run(config: ExperimentConfig, run: RunRef) -> RunState:
    """Read one run's slots, consensus and leftovers."""
    state = RunState(run, run_slots(config, run), leftovers=slotfiles.leftovers(run))
    if state.judged:
        state.stale = stale_reason(config, run, run_judgments(config, run))
        state.unjudgeable = prompt.missing_inputs(run)
        stored = stored_consensus(run)
        state.passed = None if stored is None else stored.get("passed") is True
    return state


def stale_runs(config: ExperimentConfig) -> list[RunRef]:
    """Every run whose stored consensus does not match its slots."""
    return [run for run in config.runs() if scan_run(config, run).stale is not None]
