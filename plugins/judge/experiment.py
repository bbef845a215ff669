"""The judge experiment format: its config and its layout.

The format is specified in ``judge-experiment.md``. This module only reads, and is the
one place that knows the layout: its file names and the one walk of its tiers, subtests
and runs (:meth:`ExperimentConfig.runs`). A slot's status is read in ``slotstatus.py``,
a judgment's fields are made in ``judgment.py``. A rerun's files are written by
``task.py`` and ``slotfiles.py`` (a slot) and ``consensus.py`` (a run's consensus and
the summary).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeGuard

# Each name relative to its experiment, run or slot.
CONFIG_FILE = Path("config") / "experiment.json"
TASK_FILE = "prompt.md"
RUN_PREFIX = "run_"
AGENT_OUTPUT = Path("agent") / "output.txt"
AGENT_RESULT = Path("agent") / "result.json"
RECORD_FILE = "run_result.json"
WORKSPACE = "workspace"
JUDGE_DIR = "judge"
CONSENSUS_FILE = Path(JUDGE_DIR) / "result.json"
SLOT_PREFIX = "judge_"
JUDGMENT_FILE = "judgment.json"
# The experiment's summary, rewritten by every repair (``summary.py``).
SUMMARY_DIR = "summary"
SUMMARY_JSON = "judge_summary.json"
SUMMARY_MD = "judge_summary.md"


def slot_name(number: int) -> str:
    """Folder name of slot ``number`` (1-based): ``judge_01``."""
    return f"{SLOT_PREFIX}{number:02d}"


def replaced_dir(slot_dir: Path) -> Path:
    """Where a slot is set aside while an attempt replaces it (see ``slotfiles``)."""
    return slot_dir.with_name(f".{slot_dir.name}.replaced")


def replaced_slot(path: Path) -> Path | None:
    """The slot that ``path`` is the :func:`replaced_dir` of, or None when it is none."""
    match = re.fullmatch(rf"\.({SLOT_PREFIX}\d+)\.replaced", path.name)
    return path.with_name(match.group(1)) if match else None


@dataclasses.dataclass(frozen=True)
class RunRef:
    """One run's place in the experiment; the folder need not exist."""

    root: Path
    tier: str
    subtest: str
    number: int

    @property
    def name(self) -> str:
        return f"{RUN_PREFIX}{self.number:02d}"

    @property
    def id(self) -> str:
        return f"{self.tier}/{self.subtest}/{self.name}"

    @property
    def dir(self) -> Path:
        return self.root / self.tier / self.subtest / self.name

    @property
    def workspace(self) -> Path:
        return self.dir / WORKSPACE

    def slot_dir(self, number: int) -> Path:
        """The folder of slot ``number`` of this run."""
        return self.dir / JUDGE_DIR / slot_name(number)

    def fields(self) -> dict[str, Any]:
        """The item fields that locate this run (:meth:`of` reads them back)."""
        return {
            "tier": self.tier,
            "subtest": self.subtest,
            "run": self.number,
            "run_id": self.id,
            "run_dir": str(self.dir),
            "experiment": str(self.root),
        }

    @classmethod
    def of(cls, root: Path, fields: Mapping[str, Any]) -> RunRef:
        """The run of ``root`` that the item ``fields`` locate."""
        return cls(root, fields["tier"], fields["subtest"], int(fields["run"]))


@dataclasses.dataclass(frozen=True)
class Slot:
    """One judge slot of one run, with the status it had when it was listed."""

    run: RunRef
    number: int
    model: str
    status: str

    @property
    def id(self) -> str:
        return f"{self.run.id}/{slot_name(self.number)}"

    @property
    def dir(self) -> Path:
        return self.run.slot_dir(self.number)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """The shape of an experiment, as ``config/experiment.json`` and its records declare it.

    ``recorded`` maps a tier to the subtests the experiment's own records name
    (``checkpoint.json``'s ``completed_runs``, the tier's ``result.json``); a tier they
    do not mention falls back to its numeric folders.
    """

    root: Path
    experiment_id: str
    judge_models: tuple[str, ...]
    runs_per_subtest: int
    tiers: tuple[str, ...]
    max_subtests: int | None = None
    recorded: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    @property
    def slot_numbers(self) -> range:
        """The slot numbers of every run: 1..len(judge_models)."""
        return range(1, len(self.judge_models) + 1)

    def _folders(self, tier: str) -> list[str]:
        folder = self.root / tier
        if not folder.is_dir():
            return []
        names = [p.name for p in folder.iterdir() if p.is_dir() and is_subtest_name(p.name)]
        return sorted(names, key=_subtest_order)

    def subtests(self, tier: str) -> list[str]:
        """The tier's subtests, sorted, at most ``max_subtests`` of them.

        Taken from the experiment's records where they name the tier (so a stray numeric
        folder cannot displace a real subtest), else from the tier's numeric folders.
        """
        names = list(self.recorded[tier]) if tier in self.recorded else self._folders(tier)
        return names if self.max_subtests is None else names[: self.max_subtests]

    def stray_subtests(self, tier: str) -> list[str]:
        """Numeric folders of ``tier`` that its subtests leave out (unrecorded or over the cap)."""
        chosen = set(self.subtests(tier))
        return [name for name in self._folders(tier) if name not in chosen]

    def stray_warnings(self) -> list[str]:
        """One line per tier with numeric folders that :meth:`runs` leaves out."""
        return [
            f"{tier}: folder(s) {stray} are not subtests of this experiment "
            f"(its records name {self.subtests(tier)}); they are ignored"
            for tier in self.tiers
            if (stray := self.stray_subtests(tier))
        ]

    def runs(self) -> Iterator[RunRef]:
        """Every run the config declares, in tier, subtest, run order.

        The one walk of the layout: whatever reads or writes the experiment run by run
        (sources, consensus, summary, sample) goes through it.
        """
        for tier in self.tiers:
            for subtest in self.subtests(tier):
                for number in range(1, self.runs_per_subtest + 1):
                    yield RunRef(self.root, tier, subtest, number)

    def record(self) -> dict[str, Any]:
        """What ``config/experiment.json`` holds for this config (:func:`load_config` reads it)."""
        return {
            "experiment_id": self.experiment_id,
            "judge_models": list(self.judge_models),
            "runs_per_subtest": self.runs_per_subtest,
            "tiers_to_run": list(self.tiers),
            "max_subtests": self.max_subtests,
        }


def is_subtest_name(name: object) -> bool:
    """Whether ``name`` can name a subtest: subtest folders are numeric."""
    return isinstance(name, str) and re.fullmatch(r"\d+", name) is not None


def _subtest_order(name: str) -> tuple[int, str]:
    return (int(name), name)


def read_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # nested deeper than json reads
        return None
    return data if isinstance(data, dict) else None


def recorded_subtests(root: Path, tiers: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The subtests each tier ran, by the experiment's own records (none: no entry).

    Read from ``checkpoint.json`` (``completed_runs`` -> tier -> subtest) and from each
    tier's ``result.json`` (``subtest_results`` -> subtest); the union of both, keeping
    only numeric names (subtest folders are numeric).
    """
    found: dict[str, set[str]] = {}
    checkpoint = read_object(root / "checkpoint.json")
    completed = checkpoint.get("completed_runs") if checkpoint is not None else None
    for tier in tiers:
        names: set[str] = set()
        if isinstance(completed, dict) and isinstance(completed.get(tier), dict):
            names.update(completed[tier])
        tier_result = read_object(root / tier / "result.json") or {}
        if isinstance(tier_result.get("subtest_results"), dict):
            names.update(tier_result["subtest_results"])
        names = {n for n in names if is_subtest_name(n)}
        if names:
            found[tier] = names
    return {tier: tuple(sorted(names, key=_subtest_order)) for tier, names in found.items()}


def _positive_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _safe_name(value: Any) -> bool:
    # A tier becomes a path component: refuse anything that could leave the experiment.
    return (
        isinstance(value, str) and value not in ("", ".", "..") and not re.search(r"[/\\]", value)
    )


def load_config(root: Path) -> ExperimentConfig:
    """Read and check ``<root>/config/experiment.json``; errors name the file and the key."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"experiment folder {str(root)!r} does not exist")
    path = root / CONFIG_FILE
    where = repr(str(path))
    if not path.is_file():
        raise FileNotFoundError(f"{where} is missing: {str(root)!r} is not a judge experiment")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than json reads
        raise ValueError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must hold a JSON object, got {type(raw).__name__}")
    models = raw.get("judge_models")
    if models is None and isinstance(raw.get("judge_model"), str):
        models = [raw["judge_model"]]  # older experiments name a single judge
    if not (isinstance(models, list) and models and all(isinstance(m, str) and m for m in models)):
        raise ValueError(
            f"{where}: 'judge_models' must be a non-empty list of names (or 'judge_model' "
            f"one name), got {models!r}"
        )
    runs = raw.get("runs_per_subtest")
    if not _positive_int(runs):
        raise ValueError(f"{where}: 'runs_per_subtest' must be a positive integer, got {runs!r}")
    tiers = raw.get("tiers_to_run")
    if not (isinstance(tiers, list) and all(_safe_name(t) for t in tiers)):
        raise ValueError(f"{where}: 'tiers_to_run' must be a list of folder names, got {tiers!r}")
    max_subtests = raw.get("max_subtests")
    if max_subtests is not None and not _positive_int(max_subtests):
        raise ValueError(
            f"{where}: 'max_subtests' must be a positive integer or null, got {max_subtests!r}"
        )
    return ExperimentConfig(
        root=root,
        experiment_id=str(raw.get("experiment_id") or root.name),
        judge_models=tuple(models),
        runs_per_subtest=runs,
        tiers=tuple(tiers),
        max_subtests=max_subtests,
        recorded=recorded_subtests(root, tiers),
    )
