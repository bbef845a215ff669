"""What the judge sources share: the experiment, the location filters, the one scan.

Both sources (``slotsource.JudgeSlots``, ``runsource.JudgeRuns``) read the whole
experiment once, before the first item: every run's slots and statuses, whether its
stored consensus still matches its slots (stale), and what an interrupted repair left
behind (``runstate``). Before a repair (never in a dry run) they take the experiment's
repair lock, finish or undo interrupted slot swaps (``slotfiles.recover_run``) and
rebuild the judge prompts that are missing.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from runner.api import RunContext, Source
from runner.toolkit import leftover_temp_files
from runner_plugins.judge import copies, slotfiles
from runner_plugins.judge.experiment import (
    CONFIG_FILE,
    RUN_PREFIX,
    SUMMARY_DIR,
    ExperimentConfig,
    RunRef,
    load_config,
)
from runner_plugins.judge.runstate import RunState, scan_run
from runner_plugins.judge.sample import make_sample_experiment


def as_list(value: Any) -> list[Any]:
    """A filter value as a list: None -> [], a lone scalar (``status=missing``) -> [it]."""
    if value is None:
        return []
    return [value] if isinstance(value, str | int) else list(value)


def filter_numbers(
    values: Sequence[Any], what: str, prefix: str, limit: int | None
) -> frozenset[int]:
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


class ExperimentSource(Source):
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
        self.tiers = [str(t) for t in as_list(tiers)]
        self.subtests = [str(s) for s in as_list(subtests)]
        self.runs = as_list(runs)
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
        self._subtest_set = filter_numbers(self.subtests, "subtest", "", None)
        present = sorted({run.subtest for run in config.runs()})
        known = {int(s) for s in present}
        for value in self.subtests:
            if int(value.strip()) not in known:
                raise ValueError(
                    f"subtest filter value {value!r} matches no subtest; valid: {present}"
                )
        self._run_set = filter_numbers(self.runs, "run", RUN_PREFIX, config.runs_per_subtest)
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
