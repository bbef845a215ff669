"""The judge experiment format: config, layout, slot statuses, and what a judge's reply means.

The format is specified in ``judge-experiment.md``. This module only reads; the files a
rerun writes are written by ``task.py`` (one slot) and ``consensus.py`` (a run's consensus
and the summary), always atomically.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeGuard

from runner.api import RetryableError

#: Every slot status, in the order tables show them.
STATUSES = ("missing", "failed", "complete", "agent_failed")
#: The statuses a rerun selects by default. Complete slots are re-judged only when the
#: status filter asks for them; agent_failed slots are never rerun (nothing to judge).
RERUNNABLE = ("missing", "failed")
CONFIG_FILE = Path("config") / "experiment.json"
#: The reasoning of a reply that gives none, as the original writes it.
NO_REASONING = "No reasoning provided"


def is_number(value: Any) -> bool:
    """True for a finite int or float (a JSON ``true`` is not a score)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def clamp_score(value: float) -> float:
    """Clamp a score into [0, 1]."""
    return min(1.0, max(0.0, float(value)))


def grade_for(score: float, *, rounded: bool = True) -> str:
    """Letter grade of a score: S = 1.0, A >= 0.8, B >= 0.6, C >= 0.4, D >= 0.2, else F.

    The score is rounded to 9 places first, so float noise in a mean (0.7999999999999999)
    never costs a grade; ``rounded=False`` grades it as the original does.
    """
    if rounded:
        score = round(score, 9)
    if score >= 1.0:
        return "S"
    for grade, floor in (("A", 0.8), ("B", 0.6), ("C", 0.4), ("D", 0.2)):
        if score >= floor:
            return grade
    return "F"


# --- layout ---------------------------------------------------------------------------


def slot_name(number: int) -> str:
    """Folder name of slot ``number`` (1-based): ``judge_01``."""
    return f"judge_{number:02d}"


@dataclasses.dataclass(frozen=True)
class RunRef:
    """One run's place in the experiment; the folder need not exist."""

    root: Path
    tier: str
    subtest: str
    number: int

    @property
    def name(self) -> str:
        return f"run_{self.number:02d}"

    @property
    def id(self) -> str:
        return f"{self.tier}/{self.subtest}/{self.name}"

    @property
    def dir(self) -> Path:
        return self.root / self.tier / self.subtest / self.name

    def slot_dir(self, number: int) -> Path:
        """The folder of slot ``number`` of this run."""
        return self.dir / "judge" / slot_name(number)


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

    def _folders(self, tier: str) -> list[str]:
        folder = self.root / tier
        if not folder.is_dir():
            return []
        names = [p.name for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name)]
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

    def runs(self) -> Iterator[RunRef]:
        """Every run the config declares, in tier, subtest, run order."""
        for tier in self.tiers:
            for subtest in self.subtests(tier):
                for number in range(1, self.runs_per_subtest + 1):
                    yield RunRef(self.root, tier, subtest, number)


def _subtest_order(name: str) -> tuple[int, str]:
    return (int(name), name)


def read_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
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
        names = {n for n in names if isinstance(n, str) and n.isdigit()}
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
    except ValueError as exc:
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


# --- statuses -------------------------------------------------------------------------


def agent_finished(run_dir: Path) -> bool:
    """True when the agent left something to judge: a non-empty output.txt and a result.json.

    As in the original, one byte (a lone newline too) makes output.txt non-empty.
    """
    try:
        has_output = (run_dir / "agent" / "output.txt").stat().st_size > 0
    except OSError:
        return False
    return has_output and (run_dir / "agent" / "result.json").is_file()


def read_judgment(slot_dir: Path) -> dict[str, Any] | None:
    """The slot's judgment if it makes the slot ``complete``, else None."""
    try:
        data = json.loads(
            (current_slot_dir(slot_dir) / "judgment.json").read_text(encoding="utf-8")
        )
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not is_number(data.get("score")):
        return None
    return None if data.get("is_valid") is False else data


def replaced_dir(slot_dir: Path) -> Path:
    """Where a slot is set aside while an attempt replaces it (see ``slotfiles``)."""
    return slot_dir.with_name(f".{slot_dir.name}.replaced")


def current_slot_dir(slot_dir: Path) -> Path:
    """The folder holding the slot's files, before any recovery of an interrupted swap.

    A slot caught between being set aside and its replacement arriving is, for a
    reader, as it was.
    """
    if slot_dir.exists():
        return slot_dir
    replaced = replaced_dir(slot_dir)
    return replaced if replaced.is_dir() else slot_dir


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
        for number, model in enumerate(config.judge_models, 1)
    ]


# --- judge replies --------------------------------------------------------------------


class ReplyError(ValueError):
    """The judge's reply holds no usable judgment."""


class JudgeRateLimited(RetryableError):
    """The judge failed because its service is rate limited or overloaded: worth a retry.

    ``retry_after`` (also ``wait``) is the wait in seconds the reply asked for, or None.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after, rate_limited=True)
        self.retry_after = retry_after


_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\r?\n(.*?)```", re.DOTALL | re.IGNORECASE)


def _top_level_objects(text: str) -> Iterator[str]:
    """Balanced ``{...}`` spans outside any other object, quotes inside them respected."""
    depth, start, in_string, escaped = 0, 0, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"' and depth:
            in_string = True
        elif ch == "{":
            start = i if depth == 0 else start
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                yield text[start : i + 1]


def find_verdict(text: str) -> dict[str, Any] | None:
    """The first JSON object with a numeric ``score``: fenced blocks first, then bare objects.

    Only whole top-level objects are considered, so a category's nested ``score`` is never
    taken for the verdict (an unbalanced ``{`` in prose therefore hides a later bare
    object, never a fenced one). The first block wins, as in the experiments this format
    comes from (a judge that "reconsiders" in later blocks was recorded with its first).
    """
    fenced = (m.group(1) for m in _FENCE.finditer(text))
    for candidate in itertools.chain(fenced, _top_level_objects(text)):
        try:
            obj = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(obj, dict) and is_number(obj.get("score")):
            return obj
    return None


def passed_value(value: object) -> bool:
    """A reply's ``passed`` as the original reads it (truthy passes, absent fails), except
    that the strings "false", "no" and "0" mean what they say."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "0", "none", "null")
    return bool(value)


def parse_reply(text: str) -> dict[str, Any]:
    """Turn a judge's reply into ``judgment.json`` content; raise ReplyError if it has none.

    As the original parses it: ``passed`` false when absent, ``reasoning`` "No reasoning
    provided" when absent or empty, ``criteria_scores`` from ``categories`` (else
    ``criteria_scores``), null when absent. Unlike it, a non-numeric score is no score
    and a reply's own ``"is_valid": false`` is kept (the slot then stays failed).
    """
    verdict = find_verdict(text)
    if verdict is None:
        raise ReplyError("reply has no JSON object with a numeric score")
    score = clamp_score(verdict["score"])
    is_valid = verdict.get("is_valid")
    return {
        "score": score,
        "passed": passed_value(verdict.get("passed")),
        "grade": grade_for(score),
        "reasoning": str(verdict.get("reasoning") or NO_REASONING),
        "is_valid": is_valid if isinstance(is_valid, bool) else True,
        "criteria_scores": verdict.get("categories") or verdict.get("criteria_scores") or None,
    }
