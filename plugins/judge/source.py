"""The judge sources: the slots of an experiment that need a judge, or its runs.

Both read the whole experiment once, in ``setup``: every run's slots and statuses,
whether its stored consensus still matches its slots (stale), and what an interrupted
repair left behind. Before a repair (never in a dry run) they take the experiment's
repair lock, finish or undo interrupted slot swaps (``slotfiles.recover_run``) and
rebuild the judge prompts that are missing.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from runner.api import Item, RunContext, Source
from runner.toolkit import atomic_write_text, leftover_temp_files
from runner_plugins.judge import copies, prompt, slotfiles
from runner_plugins.judge.consensus import run_judgments, stale_reason, stored_consensus
from runner_plugins.judge.experiment import (
    CONFIG_FILE,
    RERUNNABLE,
    RUN_PREFIX,
    SLOT_PREFIX,
    STATUSES,
    SUMMARY_DIR,
    ExperimentConfig,
    RunRef,
    Slot,
    load_config,
    run_slots,
)
from runner_plugins.judge.sample import make_sample_experiment
from runner_plugins.judge.writes import refused, stop_repair


def _as_list(value: Any) -> list[Any]:
    """A filter value as a list: None -> [], a lone scalar (``status=missing``) -> [it]."""
    if value is None:
        return []
    return [value] if isinstance(value, str | int) else list(value)


def _numbers(values: Sequence[Any], what: str, prefix: str, limit: int | None) -> frozenset[int]:
    """Normalise filter values ("01", "1", 1, "run_01") to numbers, within 1..limit if given."""
    numbers = set()
    for value in values:
        text = str(value).strip().removeprefix(prefix)
        if not text.isdigit():
            raise ValueError(f"{what} filter value {value!r} is not a number; use e.g. 1 or '01'")
        if limit is not None and not 1 <= int(text) <= limit:
            raise ValueError(f"{what} filter value {value!r} is out of range; valid: 1..{limit}")
        numbers.add(int(text))
    return frozenset(numbers)


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


class _ExperimentSource(Source):
    """What both judge sources share: the experiment, the location filters, the scan."""

    def __init__(
        self,
        experiment: str | None = None,
        seed: int = 0,
        tiers: Sequence[str] | None = (),
        subtests: Sequence[str] | None = (),
        runs: Sequence[str] | None = (),
        copy: bool = False,
    ) -> None:
        self.experiment = experiment
        self.seed = seed
        self.tiers = [str(t) for t in _as_list(tiers)]
        self.subtests = [str(s) for s in _as_list(subtests)]
        self.runs = _as_list(runs)
        self.copy = copy
        #: The experiment this run reads and repairs (the copy with ``copy``); set by setup.
        self.config: ExperimentConfig | None = None
        self._states: list[RunState] | None = None
        self._repair = False
        #: What was done to the experiment before the first item (recoveries, prompts).
        self.prepared: list[str] = []
        self._subtest_set: frozenset[int] = frozenset()
        self._run_set: frozenset[int] = frozenset()
        self._lock = contextlib.ExitStack()

    def setup(self, context: RunContext) -> None:
        """Resolve (or create, or copy) the experiment, check the filters, take the lock."""
        config = self._resolve(context)
        unknown = [t for t in self.tiers if t not in config.tiers]
        if unknown:
            raise ValueError(
                f"tier filter value {unknown[0]!r} is not in tiers_to_run; "
                f"valid: {list(config.tiers)}"
            )
        self._subtest_set = _numbers(self.subtests, "subtest", "", None)
        present = sorted({run.subtest for run in config.runs()})
        known = {int(s) for s in present}
        for value in self.subtests:
            if int(value.strip()) not in known:
                raise ValueError(
                    f"subtest filter value {value!r} matches no subtest; valid: {present}"
                )
        self._run_set = _numbers(self.runs, "run", RUN_PREFIX, config.runs_per_subtest)
        self._check_filters(config)
        for line in config.stray_warnings():
            logger.warning(line)
        self._repair = not context.dry_run
        if self._repair:
            self._lock.enter_context(slotfiles.repair_lock(config.root))
        elif slotfiles.being_repaired(config.root):
            logger.warning(
                f"experiment {str(config.root)!r} is being repaired by another process: "
                "its attempt folders are in use, not leftovers"
            )
        self.config = config

    @property
    def states(self) -> list[RunState]:
        """Every run of the experiment, read once, when first needed.

        Not in ``setup``: the other plugins' setup may still refuse the run, and a refused
        run must leave the experiment as it was. Before a repair, what an interrupted one
        left is recovered first and missing prompts are rebuilt (``prepared`` says what
        was done).
        """
        if self._states is None:
            config = self._require_setup()
            if self._repair:
                self.prepared = self._recover(config)
            self._states = [scan_run(config, run) for run in config.runs()]
            if self._repair:
                self.prepared += self._prepare(config)
            for line in self.prepared:
                logger.info(line)
        return self._states

    def close(self) -> None:
        """Release the experiment's repair lock."""
        self._lock.close()

    def _resolve(self, context: RunContext) -> ExperimentConfig:
        # Absolute, because the judge runs from workspace/ and must still find every path.
        output_dir = Path(context.output_dir).absolute()
        name = copies.SAMPLE_FOLDER if self.experiment is None else copies.COPY_FOLDER
        earlier = (
            copies.earlier_copy(context, name) if self.experiment is None or self.copy else None
        )
        if earlier is not None:
            if context.dry_run:
                return load_config(earlier)  # read where it is: a dry run writes nothing
            copies.copy_earlier(earlier, output_dir / name)
            return load_config(output_dir / name)
        if self.experiment is None:
            path = output_dir / copies.SAMPLE_FOLDER
            # The sample appears all at once, so a folder with a config is a whole sample.
            if not (path / CONFIG_FILE).is_file():
                make_sample_experiment(path, self.seed)
            return load_config(path)
        config = load_config(Path(self.experiment).expanduser().absolute())
        if self.copy and not context.dry_run:
            dest = output_dir / copies.COPY_FOLDER
            if not dest.exists():  # a run continued in place keeps the copy it repaired
                copies.copy_experiment(config.root, dest)
            config = dataclasses.replace(config, root=dest)
        return config

    def _check_filters(self, config: ExperimentConfig) -> None:
        """Check the source's own filters against the experiment (none here)."""

    def _recover(self, config: ExperimentConfig) -> list[str]:
        """Finish or undo what an interrupted repair left; one line per run touched."""
        lines = []
        for run in config.runs():
            done = slotfiles.recover_run(run)
            if done:
                lines.append(f"{run.id}: {'; '.join(done)} (left by an interrupted repair)")
        for path in leftover_temp_files(config.root / SUMMARY_DIR):
            path.unlink(missing_ok=True)
            lines.append(f"{SUMMARY_DIR}: removed the temporary file {path.name}")
        return lines

    def _prepare(self, config: ExperimentConfig) -> list[str]:
        """Anything to write before the first item; one line per change."""
        return []

    def _in_scope(self, run: RunRef) -> bool:
        return (
            (not self.tiers or run.tier in self.tiers)
            and (not self._subtest_set or int(run.subtest) in self._subtest_set)  # numeric
            and (not self._run_set or run.number in self._run_set)
        )

    def _require_setup(self) -> ExperimentConfig:
        if self.config is None:
            raise RuntimeError(f"{type(self).__name__}.setup(context) must be called first")
        return self.config

    @property
    def experiment_path(self) -> Path | None:
        """The experiment folder this run reads and repairs, once set up."""
        return None if self.config is None else self.config.root

    def _filters(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in (("tiers", self.tiers), ("subtests", self.subtests), ("runs", self.runs))
            if v
        }

    def _describe_runs(self) -> list[str]:
        """Dry-run lines about the runs: stale consensus, unjudgeable, leftovers."""
        stale = [s for s in self.states if s.stale is not None]
        lines = [f"stale consensus (regenerated by a repair): {len(stale)} run(s)"]
        lines += [f"  {s.run.id}: {s.stale}" for s in stale[:10]]
        if len(stale) > 10:
            lines.append(f"  ... and {len(stale) - 10} more")
        left = [s for s in self.states if s.leftovers]
        if left:
            lines.append(
                f"left by an interrupted repair (recovered by the next repair): "
                f"{sum(len(s.leftovers) for s in left)} path(s) in {len(left)} run(s)"
            )
            lines += [f"  {s.run.id}: {', '.join(p.name for p in s.leftovers)}" for s in left[:5]]
        return lines


#: What a prompt the experiment's file system refused leaves, said after the cause.
PROMPT_REFUSED = (
    "no judge ran and every slot is as it was (prompts rebuilt before it are whole): make "
    "room and run the same command again"
)


class JudgeSlots(_ExperimentSource):
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
        self.status = [str(s) for s in _as_list(status)] or list(RERUNNABLE)
        self.slots = _as_list(slots)
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
        self._slot_set = _numbers(self.slots, "slot", SLOT_PREFIX, len(config.judge_models))

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


class JudgeRuns(_ExperimentSource):
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
