"""``source=judge_runs``: the runs of an experiment that have a consensus to derive."""

from __future__ import annotations

from collections.abc import Iterator

from runner.api import Item
from runner_plugins.judge.runstate import RunState
from runner_plugins.judge.source import ExperimentSource


class JudgeRuns(ExperimentSource):
    """The runs of an experiment that have a consensus to derive (for ``judge_regenerate``).

    A run is listed when its agent finished and at least one of its slots holds a valid
    judgment. Parameters as for ``judge_slots``, without ``status`` and ``slots``.
    """

    def _runs(self) -> Iterator[RunState]:
        for state in self.states:
            if self._in_scope(state.run) and state.judged:
                if any(slot.status == "complete" for slot in state.slots):
                    yield state

    def __iter__(self) -> Iterator[Item]:
        self._require_setup()
        for state in self._runs():
            yield Item(id=state.run.id, data=state.run.fields() | {"stale": state.stale})

    def __len__(self) -> int:
        self._require_setup()
        return sum(1 for _ in self._runs())

    def describe(self) -> str:
        """The dry-run lines: how many runs would be regenerated, which are stale."""
        config = self._require_setup()
        scope = f" within {self._filters()}" if self._filters() else ""
        skipped = sum(1 for s in self.states if self._in_scope(s.run)) - len(self)
        lines = [
            f"judge experiment {str(config.root)!r} ({config.experiment_id}): "
            f"{len(self)} run(s) with a valid judgment{scope} would get their consensus "
            f"regenerated; {skipped} run(s) have none (agent failed or no valid slot)",
        ]
        return "\n".join(lines + self._describe_runs())
