"""The judge_rerun plugins: JudgeSlots (source), JudgeRerun (task), JudgeConsensus (post-processor).

Together they repair a judge experiment: the source lists the slots that never ran or
failed, the task re-runs the judge command for one slot and writes its outputs, and the
post-processor, once every slot has finished, regenerates each touched run's consensus
and the experiment summary.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

from loguru import logger

from runner.api import (
    CommandResult,
    Item,
    Outcome,
    PostProcessor,
    RunContext,
    Source,
    Task,
    TaskFailure,
    atomic_write_json,
    atomic_write_text,
    fill_template,
    run_command,
)
from runner_plugins.judge.experiment import (
    CONFIG_FILE,
    RERUNNABLE,
    STATUSES,
    SUMMARY_DIR,
    ExperimentConfig,
    JudgeRateLimited,
    ReplyError,
    RunRef,
    Slot,
    detect_rate_limit,
    load_config,
    parse_reply,
    regenerate_run,
    run_slots,
)
from runner_plugins.judge.local_judge import LATENCY_ENV
from runner_plugins.judge.sample import make_sample_experiment
from runner_plugins.judge.summary import write_summary

DEFAULT_COMMAND = (
    "{python}",
    "-m",
    "runner_plugins.judge.local_judge",
    "--model",
    "{model}",
    "--prompt-file",
    "{prompt_file}",
    "--run-dir",
    "{run_dir}",
)
#: The placeholders a judge command template may use.
PLACEHOLDERS = (
    "python",
    "model",
    "prompt_file",
    "workspace",
    "slot_dir",
    "run_dir",
    "experiment",
    "tier",
    "subtest",
    "run",
    "slot",
)


def copy_experiment(src: Path, dest: Path) -> None:
    """Copy an experiment folder and make the copy writable (sources are often read-only)."""
    shutil.copytree(src, dest, symlinks=True)
    for folder, dirs, files in os.walk(dest):
        for name in [*dirs, *files, ""]:
            path = Path(folder, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)


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
    dry run) so that each job of a sweep repairs its own copy. The source only reads.
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
        self.experiment_path: Path | None = None
        self._config: ExperimentConfig | None = None
        self._subtest_set: frozenset[int] = frozenset()
        self._run_set: frozenset[int] = frozenset()
        self._slot_set: frozenset[int] = frozenset()

    def setup(self, context: RunContext) -> None:
        """Resolve (or create, or copy) the experiment and check every filter against it."""
        for value in self.status:
            if value not in RERUNNABLE:
                raise ValueError(
                    f"status filter value {value!r} cannot be rerun; valid: "
                    f"{list(RERUNNABLE)} (complete and agent_failed slots never are)"
                )
        output_dir = Path(context.output_dir)
        if self.experiment is None:
            path = output_dir / "sample-experiment"
            if not (path / CONFIG_FILE).is_file():
                make_sample_experiment(path, self.seed)
        else:
            path = Path(self.experiment).expanduser().absolute()
            load_config(path)  # fail on a bad experiment before copying it
            if self.copy and not context.dry_run:
                dest = output_dir / "experiment"
                if not dest.exists():  # a resumed run keeps the copy it already repaired
                    copy_experiment(path, dest)
                path = dest
        config = load_config(path)
        unknown = [t for t in self.tiers if t not in config.tiers]
        if unknown:
            raise ValueError(
                f"tier filter value {unknown[0]!r} is not in tiers_to_run; "
                f"valid: {list(config.tiers)}"
            )
        self._subtest_set = _numbers(self.subtests, "subtest", "", None)
        present = sorted({s for tier in config.tiers for s in config.subtests(tier)})
        if self._subtest_set and not self._subtest_set & {int(s) for s in present}:
            raise ValueError(
                f"subtest filter {self.subtests!r} matches no subtest folder; valid: {present}"
            )
        self._run_set = _numbers(self.runs, "run", "run_", config.runs_per_subtest)
        self._slot_set = _numbers(self.slots, "slot", "judge_", len(config.judge_models))
        self._config, self.experiment_path = config, path

    def _require_config(self) -> ExperimentConfig:
        if self._config is None:
            raise RuntimeError("JudgeSlots.setup(context) must be called before iterating")
        return self._config

    def _located(self) -> Iterator[Slot]:
        """Every slot inside the tier/subtest/run/slot filters, whatever its status."""
        config = self._require_config()
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

    def __iter__(self) -> Iterator[Item]:
        for slot in self._located():
            if slot.status in self.status:
                yield self._item(slot)

    def __len__(self) -> int:
        return sum(1 for slot in self._located() if slot.status in self.status)

    def describe(self) -> str:
        """The dry-run table: slots per tier and status, what is selected, a few examples."""
        config = self._require_config()
        counts: dict[str, Counter[str]] = {tier: Counter() for tier in config.tiers}
        examples: dict[str, list[str]] = {status: [] for status in STATUSES}
        for slot in self._located():
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
        selected = sum(total[s] for s in self.status)
        lines.append(f"selected for rerun: {selected} slot(s) with status in {self.status}{scope}")
        lines += [f"  {status}: {', '.join(examples[status]) or '-'}" for status in STATUSES]
        return "\n".join(lines)


class JudgeRerun(Task):
    """Re-run the judge command for one slot and write the slot's outputs.

    Success writes judgment.json (last, so a crash never leaves a half-made slot looking
    complete), response.txt, the streams, timing.json and MODEL.md. A non-zero exit, a
    timeout or an unusable reply removes any stale judgment.json, writes only timing.json
    with ``failed: true`` (plus the streams) and raises TaskFailure; a rate-limited or
    overloaded service raises its subclass JudgeRateLimited, carrying any Retry-After.
    """

    def __init__(
        self, command: list[str] | None = None, timeout: float = 120.0, latency: float | None = None
    ) -> None:
        self.command = [str(part) for part in (command or DEFAULT_COMMAND)]
        self.timeout = float(timeout)
        self.latency = latency
        self._env: dict[str, str] | None = None
        if latency is not None:
            # Only the local judge reads this variable, so a real judge CLI ignores it.
            self._env = {**os.environ, LATENCY_ENV: str(float(latency))}

    def setup(self, context: RunContext) -> None:
        """Check the command template and the timeout before the first slot runs."""
        if not self.command:
            raise ValueError("command is empty; give the judge command as an argv list")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout!r}")
        try:
            fill_template(self.command, dict.fromkeys(PLACEHOLDERS, ""))
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"command template {self.command!r} has a bad placeholder {exc}; "
                f"valid placeholders: {list(PLACEHOLDERS)}"
            ) from None

    def run(self, item: Item) -> dict[str, Any]:
        """Judge one slot; return its score or raise TaskFailure (the slot is then failed)."""
        run_dir, slot_dir = Path(item["run_dir"]), Path(item["slot_dir"])
        values = {"python": sys.executable, **{k: item[k] for k in PLACEHOLDERS[1:]}}
        argv = fill_template(self.command, values)
        slot_dir.mkdir(parents=True, exist_ok=True)
        workspace = Path(item["workspace"])
        try:
            result = run_command(
                argv,
                cwd=workspace if workspace.is_dir() else run_dir,
                timeout=self.timeout,
                env=self._env,
            )
        except OSError as exc:
            self._fail(slot_dir, None, f"cannot start {argv[0]!r}: {exc.strerror or exc}")
        if result.timed_out:
            self._fail(slot_dir, result, f"timed out after {self.timeout:g} s")
        if result.returncode != 0:
            tail = " | ".join(line.strip() for line in result.stderr.strip().splitlines()[-3:])
            self._fail(
                slot_dir,
                result,
                f"judge exited with code {result.returncode}"
                + (f": {tail[-300:]}" if tail else " (stderr empty)"),
            )
        try:
            judgment = parse_reply(result.stdout)
        except ReplyError as exc:
            self._fail(slot_dir, result, str(exc))
        if not judgment["is_valid"]:
            self._fail(slot_dir, result, "judge marked its reply invalid (is_valid: false)")
        atomic_write_text(slot_dir / "stdout.log", result.stdout)
        atomic_write_text(slot_dir / "stderr.log", result.stderr)
        atomic_write_text(slot_dir / "response.txt", result.stdout)
        atomic_write_text(slot_dir / "MODEL.md", _model_md(item["model"], argv))
        atomic_write_json(slot_dir / "timing.json", _timing(result.seconds))
        atomic_write_json(slot_dir / "judgment.json", judgment)
        return {k: item[k] for k in ("tier", "subtest", "run", "slot", "model")} | {
            k: judgment[k] for k in ("score", "passed", "grade")
        }

    @staticmethod
    def _fail(slot_dir: Path, result: CommandResult | None, reason: str) -> NoReturn:
        """Leave the slot ``failed`` (stale judgment removed, failed timing) and raise."""
        for name in ("judgment.json", "response.txt", "MODEL.md"):
            (slot_dir / name).unlink(missing_ok=True)
        limited, retry_after = (False, None)
        if result is not None:
            atomic_write_text(slot_dir / "stdout.log", result.stdout)
            atomic_write_text(slot_dir / "stderr.log", result.stderr)
            if not result.timed_out:
                limited, retry_after = detect_rate_limit(result.stderr + "\n" + result.stdout)
        timing = _timing(0.0 if result is None else result.seconds) | {
            "failed": True,
            "reason": reason,
        }
        if limited:
            timing |= {"rate_limited": True, "retry_after": retry_after}
        atomic_write_json(slot_dir / "timing.json", timing)
        if limited:
            hint = f" (retry after {retry_after:g} s)" if retry_after is not None else ""
            raise JudgeRateLimited(f"judge rate limited or overloaded{hint}: {reason}", retry_after)
        raise TaskFailure(reason)


def _timing(seconds: float) -> dict[str, Any]:
    return {
        "judge_duration_seconds": seconds,
        "measured_at": datetime.now(timezone.utc).isoformat(),
        "rerun": True,
    }


def _model_md(model: str, argv: list[str]) -> str:
    return (
        f"# Judge Model Information\n\n**Model**: {model}\n**Command**: `{' '.join(argv)}`\n"
        f"**Timestamp**: {datetime.now(timezone.utc).isoformat()}\n**Rerun**: true\n"
    )


class JudgeConsensus(PostProcessor):
    """After every slot has finished: regenerate consensus, then the experiment summary.

    Runs with at least one successfully rerun slot get ``judge/result.json`` and the judge
    fields of ``run_result.json`` regenerated; other runs are left untouched. If any slot
    was rerun successfully, the summary is written to
    ``<experiment>/summary/judge_summary.json`` and ``judge_summary.md`` and copied into the
    run's output folder.
    """

    def __call__(self, outcomes: Iterable[Outcome], context: RunContext) -> None:
        root = getattr(context.source, "experiment_path", None)
        if root is None:
            raise ValueError(
                "judge_consensus needs the judge_slots source (after setup); "
                f"got source {type(context.source).__name__!r}"
            )
        config = load_config(Path(root))
        runs: set[RunRef] = set()
        ok = failed = 0
        for outcome in outcomes:
            run = _run_of(config, outcome) if outcome.ok else None
            if run is None:
                failed += 1
                continue
            ok += 1
            runs.add(run)
        if not runs:
            logger.info(
                f"judge_consensus: no slot was rerun successfully ({failed} failed); "
                f"experiment {str(config.root)!r} left untouched"
            )
            return
        order = {tier: i for i, tier in enumerate(config.tiers)}
        for run in sorted(runs, key=lambda r: (order[r.tier], int(r.subtest), r.number)):
            _, recorded = regenerate_run(config, run)
            if not recorded:
                logger.warning(
                    f"judge_consensus: {run.id}: run_result.json missing or "
                    "unreadable, only judge/result.json was written"
                )
        paths = write_summary(config, [config.root / SUMMARY_DIR, Path(context.output_dir)])
        logger.info(
            f"judge_consensus: {ok} slot(s) rerun successfully, {failed} failed; "
            f"consensus regenerated for {len(runs)} run(s)"
        )
        logger.info(
            f"judge_consensus: summary written to {paths[0]} and {paths[1]} "
            f"(copies in {context.output_dir})"
        )
        context.summary["judge_consensus"] = {
            "runs_regenerated": len(runs),
            "slots_ok": ok,
            "slots_failed": failed,
            "summary": [str(p) for p in paths[:2]],
        }


def _run_of(config: ExperimentConfig, outcome: Outcome) -> RunRef | None:
    """The run a successful rerun belongs to, or None for a result that is not one."""
    result = outcome.result
    if not isinstance(result, dict):
        return None
    tier, subtest, number = result.get("tier"), result.get("subtest"), result.get("run")
    if tier not in config.tiers or subtest not in config.subtests(str(tier)):
        return None
    if not isinstance(number, int) or not 1 <= number <= config.runs_per_subtest:
        return None
    return RunRef(config.root, str(tier), str(subtest), number)
