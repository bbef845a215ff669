"""JudgeSlots, the source: the judge slots of an experiment that need a rerun."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from runner.api import Item, RunContext, Source
from runner_plugins.judge.experiment import (
    CONFIG_FILE,
    RERUNNABLE,
    STATUSES,
    ExperimentConfig,
    RunRef,
    Slot,
    load_config,
    run_slots,
)
from runner_plugins.judge.sample import make_sample_experiment


def copy_experiment(src: Path, dest: Path) -> None:
    """Copy an experiment folder and make the copy writable (sources are often read-only).

    The copy is made in ``<dest>.partial`` and renamed when complete: a run killed while
    copying leaves no ``dest`` that a resumed run would take for a finished copy.
    """
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        shutil.copytree(src, partial, symlinks=True)
        for folder, dirs, files in os.walk(partial):
            for name in [*dirs, *files, ""]:
                path = Path(folder, name)
                if not path.is_symlink():
                    path.chmod(path.stat().st_mode | stat.S_IWUSR)
        partial.rename(dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


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


class JudgeSlots(Source):
    """The judge slots of an experiment whose status passes the filter (default missing, failed).

    With no ``experiment`` a deterministic sample is created in the run folder. With
    ``copy`` the experiment is copied into ``<output_dir>/experiment`` first (except in a
    dry run) so that each job of a sweep repairs its own copy. The slots and their
    statuses are read once, in ``setup``. The source only reads.
    """

    def __init__(
        self,
        experiment: str | None = None,
        seed: int = 0,
        status: list[str] | None = None,
        tiers: list[str] | None = None,
        subtests: list[str] | None = None,
        runs: list[str] | None = None,
        slots: list[str] | None = None,
        copy: bool = False,
    ) -> None:
        self.experiment = experiment
        self.seed = seed
        # Empty means every rerunnable status, like the empty location filters mean "all".
        self.status = [str(s) for s in _as_list(status)] or list(RERUNNABLE)
        self.tiers = [str(t) for t in _as_list(tiers)]
        self.subtests = [str(s) for s in _as_list(subtests)]
        self.runs = _as_list(runs)
        self.slots = _as_list(slots)
        self.copy = copy
        #: The experiment this run reads and repairs (the copy with ``copy``); set by setup.
        self.config: ExperimentConfig | None = None
        self._slots: list[Slot] | None = None
        self._subtest_set: frozenset[int] = frozenset()
        self._run_set: frozenset[int] = frozenset()
        self._slot_set: frozenset[int] = frozenset()

    def setup(self, context: RunContext) -> None:
        """Resolve (or create, or copy) the experiment and check every filter against it."""
        for value in self.status:
            if value not in STATUSES:
                raise ValueError(
                    f"status filter value {value!r} is not a slot status; valid: {list(STATUSES)}"
                )
        if "agent_failed" in self.status:
            # Listed by a dry run, but there is no agent output to judge.
            logger.warning("agent_failed slots are listed but never rerun: nothing to judge")
        # Absolute, because the judge runs from workspace/ and must still find every path.
        output_dir = Path(context.output_dir).absolute()
        if self.experiment is None:
            path = output_dir / "sample-experiment"
            # The sample appears all at once, so a folder with a config is a whole sample.
            if not (path / CONFIG_FILE).is_file():
                make_sample_experiment(path, self.seed)
            config = load_config(path)
        else:
            config = load_config(Path(self.experiment).expanduser().absolute())
            if self.copy and not context.dry_run:
                dest = output_dir / "experiment"
                if not dest.exists():  # a resumed run keeps the copy it already repaired
                    copy_experiment(config.root, dest)
                config = dataclasses.replace(config, root=dest)
        unknown = [t for t in self.tiers if t not in config.tiers]
        if unknown:
            raise ValueError(
                f"tier filter value {unknown[0]!r} is not in tiers_to_run; "
                f"valid: {list(config.tiers)}"
            )
        self._subtest_set = _numbers(self.subtests, "subtest", "", None)
        present = sorted({s for tier in config.tiers for s in config.subtests(tier)})
        known = {int(s) for s in present}
        for value in self.subtests:
            if int(value.strip()) not in known:
                raise ValueError(
                    f"subtest filter value {value!r} matches no subtest folder; valid: {present}"
                )
        self._run_set = _numbers(self.runs, "run", "run_", config.runs_per_subtest)
        self._slot_set = _numbers(self.slots, "slot", "judge_", len(config.judge_models))
        # One walk (a judgment.json read per slot) serves len(), iteration and describe().
        self._slots = list(self._locate(config))
        self.config = config

    @property
    def experiment_path(self) -> Path | None:
        """The experiment folder this run reads and repairs, once set up."""
        return None if self.config is None else self.config.root

    def _require_setup(self) -> tuple[ExperimentConfig, list[Slot]]:
        if self.config is None or self._slots is None:
            raise RuntimeError("JudgeSlots.setup(context) must be called before iterating")
        return self.config, self._slots

    def _locate(self, config: ExperimentConfig) -> Iterator[Slot]:
        """Every slot inside the tier/subtest/run/slot filters, whatever its status."""
        for tier in config.tiers:
            if self.tiers and tier not in self.tiers:
                continue
            for subtest in config.subtests(tier):
                if self._subtest_set and int(subtest) not in self._subtest_set:
                    continue
                for number in range(1, config.runs_per_subtest + 1):
                    if self._run_set and number not in self._run_set:
                        continue
                    for slot in run_slots(config, RunRef(config.root, tier, subtest, number)):
                        if not self._slot_set or slot.number in self._slot_set:
                            yield slot

    def _item(self, slot: Slot) -> Item:
        run = slot.run
        data = {
            "tier": run.tier,
            "subtest": run.subtest,
            "run": run.number,
            "slot": slot.number,
            "model": slot.model,
            "status": slot.status,
            "run_id": run.id,
            "run_dir": str(run.dir),
            "slot_dir": str(slot.dir),
            "workspace": str(run.dir / "workspace"),
            "prompt_file": str(run.dir / "judge_prompt.md"),
            "experiment": str(run.root),
        }
        return Item(id=slot.id, data=data, label=f"{run.id} {slot.dir.name}")

    def _selected(self, slot: Slot) -> bool:
        return slot.status in self.status and slot.status != "agent_failed"

    def __iter__(self) -> Iterator[Item]:
        _, slots = self._require_setup()
        for slot in slots:
            if self._selected(slot):
                yield self._item(slot)

    def __len__(self) -> int:
        _, slots = self._require_setup()
        return sum(1 for slot in slots if self._selected(slot))

    def describe(self) -> str:
        """The dry-run table: slots per tier and status, what is selected, a few examples."""
        config, slots = self._require_setup()
        counts: dict[str, Counter[str]] = {tier: Counter() for tier in config.tiers}
        examples: dict[str, list[str]] = {status: [] for status in STATUSES}
        for slot in slots:
            counts[slot.run.tier][slot.status] += 1
            if len(examples[slot.status]) < 3:
                examples[slot.status].append(slot.id)
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
        filters = {
            k: v
            for k, v in (
                ("tiers", self.tiers),
                ("subtests", self.subtests),
                ("runs", self.runs),
                ("slots", self.slots),
            )
            if v
        }
        scope = f" within {filters}" if filters else ""
        selected = len(self)  # agent_failed slots are counted above but never selected
        lines.append(f"selected for rerun: {selected} slot(s) with status in {self.status}{scope}")
        lines += [f"  {status}: {', '.join(examples[status]) or '-'}" for status in STATUSES]
        return "\n".join(lines)
