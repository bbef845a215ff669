"""``source=judge_slots``: the slots of an experiment that need a judge."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence

from loguru import logger

from runner.api import Item
from runner.toolkit import atomic_write_text
from runner_plugins.judge import prompt
from runner_plugins.judge.experiment import SLOT_PREFIX, ExperimentConfig, Slot
from runner_plugins.judge.runstate import RunState
from runner_plugins.judge.slotstatus import RERUNNABLE, STATUSES
from runner_plugins.judge.source import ExperimentSource, as_list, filter_numbers
from runner_plugins.judge.writes import refused, stop_repair

#: What a prompt the experiment's file system refused leaves, said after the cause.
PROMPT_REFUSED = (
    "no judge ran and every slot is as it was (prompts rebuilt before it are whole): make "
    "room and run the same command again"
)


class JudgeSlots(ExperimentSource):
    """The judge slots of an experiment (see judge-experiment.md) that need a rerun.

    - ``experiment``: its folder; null creates a deterministic sample (``seed``) in the
      run folder;
    - ``status``: which slots to rerun, any of missing, failed, complete (re-judged; a
      failed re-judge keeps the old judgment); agent_failed slots are listed by a dry
      run but never rerun;
    - ``tiers`` (T0), ``subtests`` (01), ``runs`` and ``slots`` (1, "01", run_01,
      judge_01) narrow the slots; empty means all;
    - ``copy``: copy the experiment into ``<output_dir>/experiment`` first (except in a
      dry run) and repair the copy, so that each job of a sweep repairs its own.

    A run resumed into another folder copies the experiment (or the sample) of the run it
    resumes, with that run's repairs, rather than the original (or a new sample).

    A selected slot whose run has no judge prompt is rebuilt before the first item when
    the experiment holds what it needs; otherwise the slot's item carries the reason
    (``unjudgeable``).
    """

    def __init__(
        self,
        experiment: str | None = None,
        seed: int = 0,
        status: Sequence[str] | None = RERUNNABLE,
        tiers: Sequence[str] | None = (),
        subtests: Sequence[str] | None = (),
        runs: Sequence[str] | None = (),
        slots: Sequence[str] | None = (),
        copy: bool = False,
    ) -> None:
        super().__init__(experiment, seed, tiers, subtests, runs, copy)
        # Empty means every rerunnable status, like the empty location filters mean "all".
        self.status = [str(s) for s in as_list(status)] or list(RERUNNABLE)
        self.slots = as_list(slots)
        self._slot_set: frozenset[int] = frozenset()

    def _check_filters(self, config: ExperimentConfig) -> None:
        for value in self.status:
            if value not in STATUSES:
                raise ValueError(
                    f"status filter value {value!r} is not a slot status; valid: {list(STATUSES)}"
                )
        if "agent_failed" in self.status:
            # Listed by a dry run, but there is no agent output to judge.
            logger.warning("agent_failed slots are listed but never rerun: nothing to judge")
        self._slot_set = filter_numbers(self.slots, "slot", SLOT_PREFIX, len(config.judge_models))

    def _prepare(self, config: ExperimentConfig) -> list[str]:
        lines = []
        for state in self.states:
            run = state.run
            needed = any(self._selected(slot) for slot in state.slots)
            path = run.dir / prompt.PROMPT_FILE
            if needed and state.unjudgeable is None and not path.is_file():
                try:
                    atomic_write_text(path, prompt.build_prompt(run))
                except OSError as exc:
                    if refused(exc):  # no slot could be written either
                        raise stop_repair(path, exc, PROMPT_REFUSED) from exc
                    # Another cause (the run folder is not ours to write): its slots
                    # fail once with it, the other runs are judged.
                    state.unjudgeable = f"{prompt.PROMPT_FILE} could not be rebuilt: {exc}"
                    continue
                lines.append(
                    f"{run.id}: {prompt.PROMPT_FILE} was missing; rebuilt from the experiment"
                )
        return lines

    def _located(self) -> Iterator[tuple[RunState, Slot]]:
        """Every slot inside the tier/subtest/run/slot filters, whatever its status."""
        for state in self.states:
            for slot in state.slots:
                if self._slot_in_scope(slot):
                    yield state, slot

    def _slot_in_scope(self, slot: Slot) -> bool:
        return self._in_scope(slot.run) and (not self._slot_set or slot.number in self._slot_set)

    def _item(self, state: RunState, slot: Slot) -> Item:
        run = slot.run
        data = run.fields() | {
            "slot": slot.number,
            "model": slot.model,
            "status": slot.status,
            "slot_dir": str(slot.dir),
            "workspace": str(run.workspace),
            "prompt_file": str(run.dir / prompt.PROMPT_FILE),
            "unjudgeable": state.unjudgeable,
        }
        return Item(id=slot.id, data=data, label=f"{run.id} {slot.dir.name}")

    def _selected(self, slot: Slot) -> bool:
        return (
            slot.status in self.status
            and slot.status != "agent_failed"
            and self._slot_in_scope(slot)
        )

    def __iter__(self) -> Iterator[Item]:
        self._require_setup()
        for state, slot in self._located():
            if self._selected(slot):
                yield self._item(state, slot)

    def __len__(self) -> int:
        self._require_setup()
        return sum(1 for _, slot in self._located() if self._selected(slot))

    def describe(self) -> str:
        """The dry-run table: slots per tier and status, what is selected, a few examples."""
        config = self._require_setup()
        counts: dict[str, Counter[str]] = {tier: Counter() for tier in config.tiers}
        examples: dict[str, list[str]] = {status: [] for status in STATUSES}
        unjudgeable: list[str] = []
        for state, slot in self._located():
            counts[slot.run.tier][slot.status] += 1
            if len(examples[slot.status]) < 3:
                examples[slot.status].append(slot.id)
            if self._selected(slot) and state.unjudgeable is not None:
                unjudgeable.append(f"{slot.id}: {state.unjudgeable}")
        width = max([8, *(len(t) + 2 for t in config.tiers)])
        lines = [
            f"judge experiment {str(config.root)!r} ({config.experiment_id}): "
            f"{len(config.tiers)} tiers, {config.runs_per_subtest} run(s) per subtest, "
            f"judges {', '.join(config.judge_models)}",
            "tier".ljust(width) + "".join(s.rjust(14) for s in STATUSES) + "total".rjust(8),
        ]
        total: Counter[str] = Counter()
        for tier, counter in counts.items():
            if self.tiers and tier not in self.tiers:
                continue
            total.update(counter)
            lines.append(
                tier.ljust(width)
                + "".join(str(counter[s]).rjust(14) for s in STATUSES)
                + str(sum(counter.values())).rjust(8)
            )
        lines.append(
            "all".ljust(width)
            + "".join(str(total[s]).rjust(14) for s in STATUSES)
            + str(sum(total.values())).rjust(8)
        )
        filters = self._filters() | ({"slots": self.slots} if self.slots else {})
        scope = f" within {filters}" if filters else ""
        selected = len(self)  # agent_failed slots are counted above but never selected
        lines.append(f"selected for rerun: {selected} slot(s) with status in {self.status}{scope}")
        lines += [f"  {status}: {', '.join(examples[status]) or '-'}" for status in STATUSES]
        if unjudgeable:
            lines.append(
                f"unjudgeable (each fails once with this reason): {len(unjudgeable)} slot(s)"
            )
            lines += [f"  {line}" for line in unjudgeable[:10]]
        return "\n".join(lines + self._describe_runs())
