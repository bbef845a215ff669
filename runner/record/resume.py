"""A run folder's journal belongs to one run; ``resume=`` continues only a run of the same work.

Every run records its identity (its task and source, each with every option) in its
folder's ``job.json`` before it opens a journal. ``resume=<run folder>`` compares it with
this run's and refuses a run of other work; ``resume=last`` takes the newest earlier run
of the same work. What the executor, ``parallel``, ``retry.*``, ``timeout`` and the like
say may differ: they change how items run, not which items there are or what they do.

The previous run's ``results.jsonl`` says which items succeeded; the new run's journal
starts with those records (so it is complete, and can itself be resumed) and the run
runs every other item of the source: the ones that failed and the ones that never
finished. A torn last line (a run killed mid-write) is ignored, like any line that is
not a whole record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from loguru import logger

from runner.api import Item
from runner.config.settings import Settings
from runner.errors import UsageError, WriteError
from runner.record.jobs import STATUS_FILE, write_job_identity

JOURNAL = "results.jsonl"
#: The config groups whose selection and options are a run's identity.
IDENTITY = ("task", "source")
_MAY_DIFFER = "executor, parallel, retry.*, timeout, halt.*, rate_limit.* may differ"


class FolderInUse(UsageError):
    """This run's folder holds another run's journal: refused, the folder left as it was
    (its ``job.json`` too)."""


def identity(settings: Settings) -> dict[str, dict[str, Any]]:
    """What makes two runs the same work: the task and the source, with all their options.

    As JSON gives it back, so that a recorded identity compares equal to a computed one.
    """
    value: dict[str, dict[str, Any]] = json.loads(
        json.dumps({group: settings.plugins[group] for group in IDENTITY})
    )
    return value


def recorded_identity(folder: Path) -> dict[str, Any] | None:
    """The identity a run recorded in its folder, or None (an older runner's run)."""
    try:
        status = json.loads((folder / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    found = status.get("identity") if isinstance(status, dict) else None
    return found if isinstance(found, dict) else None


def first_difference(theirs: Any, ours: Any, key: str = "") -> tuple[str, Any, Any] | None:
    """The first key (dotted, in config order) whose value differs, with both values."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        keys = list(ours) + [k for k in theirs if k not in ours]
        keys.sort(key=lambda k: k != "name")  # a plugin's name says the most
        for k in keys:
            found = first_difference(theirs.get(k, _UNSET), ours.get(k, _UNSET), f"{key}.{k}")
            if found is not None:
                return found
        return None
    if theirs != ours or isinstance(theirs, bool) != isinstance(ours, bool):
        return (key.lstrip("."), theirs, ours)
    return None


class _Unset:
    def __repr__(self) -> str:
        return "not set"


_UNSET = _Unset()


def mismatch(folder: Path, ours: dict[str, Any]) -> str | None:
    """Why ``folder``'s run is not a run of this work, or None when it is."""
    theirs = recorded_identity(folder)
    if theirs is None:
        return (
            f"its {STATUS_FILE} records no task and source (a run of an older runner, "
            "or not a run folder)"
        )
    found = first_difference(theirs, ours)
    if found is None:
        return None
    key, before, now = found
    return f"its {key} was {before!r}, this run has {now!r}"


def claim(settings: Settings, output_dir: Path) -> Path | None:
    """Check this run's folder and the run ``resume`` names, then record this run's
    identity in its folder; return the run folder to resume, if any.

    Refused, with one line: a folder whose journal holds a line, unless this run
    continues it (``resume=`` that folder); a ``resume`` of a run of other work.
    """
    ours = identity(settings)
    value = settings.resume
    here = output_dir.resolve()
    in_place = value is not None and value != "last" and _folder(value).resolve() == here
    if _holds_records(output_dir / JOURNAL) and not in_place:
        raise FolderInUse(
            f"hydra.run.dir={str(output_dir)!r} already holds a run's {JOURNAL}: continue "
            f"that run with resume={str(output_dir)!r} and the same hydra.run.dir, or give "
            "this run another folder"
        )
    previous = None if value is None else previous_run(value, output_dir, ours)
    if in_place:
        # The folder's record stays as it was: it already says the same.
        return previous
    try:
        write_job_identity(output_dir, ours)
    except OSError as exc:
        raise WriteError(output_dir / STATUS_FILE, exc) from exc
    return previous


def _holds_records(journal: Path) -> bool:
    # An empty journal (a run stopped before any item finished) has nothing to mix with.
    try:
        return journal.stat().st_size > 0
    except OSError:
        return False


def _folder(value: str) -> Path:
    return Path(value).expanduser()


def previous_run(value: str, output_dir: Path, ours: dict[str, Any]) -> Path:
    """The run folder ``resume`` names, if its run is of this work (``ours``); ``last`` is
    the newest other run beside this one that is.

    "Beside" means in the layout of the default ``hydra.run.dir``: any
    ``outputs/<date>/<time>`` folder (for a sweep's job, any job of another sweep of
    ``multirun/<date>``), newest by the time its journal was last written.
    """
    if value == "last":
        return _last(output_dir, ours)
    folder = _folder(value)
    if not (folder / JOURNAL).is_file():
        raise UsageError(
            f"resume={value!r} is not a run folder: it has no {JOURNAL}. Give a folder "
            "of an earlier run (outputs/<date>/<time>) or resume=last."
        )
    why = mismatch(folder, ours)
    if why is not None:
        refused = FolderInUse if folder.resolve() == output_dir.resolve() else UsageError
        raise refused(
            f"resume={value!r}: {why}; resume only a run of the same task and source "
            f"({_MAY_DIFFER})"
        )
    return folder


def _last(output_dir: Path, ours: dict[str, Any]) -> Path:
    here = output_dir.resolve()
    root = here.parent.parent
    # In a sweep (<sweep>/<job>) the other jobs of the same sweep are not earlier runs.
    sweep = here.parent if (here.parent / "multirun.yaml").exists() else None
    runs = [
        p.parent
        for p in root.glob(f"*/*/{JOURNAL}")
        if p.parent.resolve() != here and (sweep is None or p.parent.parent != sweep)
    ]
    if not runs:
        raise UsageError(
            f"resume=last found no earlier run with a {JOURNAL} under {str(root)!r}; "
            "give the run folder instead: resume=PATH"
        )
    runs.sort(key=lambda p: (p / JOURNAL).stat().st_mtime, reverse=True)
    for skipped, folder in enumerate(runs):
        if mismatch(folder, ours) is None:
            logger.info(
                f"resume=last took {str(folder)!r}, the newest run of this task and source"
                + (f" ({skipped} newer run(s) of other work passed over)" if skipped else "")
            )
            return folder
    raise UsageError(
        f"resume=last found no earlier run of task {ours['task'].get('name')!r} on source "
        f"{ours['source'].get('name')!r} with these options under {str(root)!r} "
        f"({len(runs)} run(s) of other work; the newest, {str(runs[0])!r}: "
        f"{mismatch(runs[0], ours)}); give the run folder instead: resume=PATH"
    )


def succeeded_records(folder: Path) -> dict[str, str]:
    """The journal lines of the items that succeeded in ``folder``'s run, by item id."""
    records: dict[str, str] = {}
    torn = 0
    with open(folder / JOURNAL, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                record = json.loads(line) if line.endswith("\n") else None
            except ValueError:
                record = None
            if not isinstance(record, dict) or "id" not in record:
                torn += 1
                continue
            if record.get("status") == "ok":
                records[str(record["id"])] = line
            else:
                records.pop(str(record["id"]), None)  # a later failure of a resumed item
    if torn:
        logger.warning(f"resume: {torn} line(s) of {folder / JOURNAL} are not whole records")
    return records


def count_remaining(source: Iterable[Item], done: dict[str, str]) -> int | None:
    """How many of ``source``'s items are not among those done, or None if unknown.

    Counted, not subtracted: a source may itself leave out what the earlier run finished
    (the judge source lists no complete slot), and the earlier run may have done items
    this source no longer has. A source that is its own iterator cannot be read twice:
    its count is unknown. Reading the ids once more costs about a second per million.
    """
    if iter(source) is source:
        return None
    try:
        return sum(1 for item in source if item.id not in done)
    except Exception:  # the run itself reads the source again and reports its error
        return None


def remaining(items: Iterator[Item], done: dict[str, str]) -> Iterator[Item]:
    """The items whose id is not among those already done."""
    for item in items:
        if item.id not in done:
            yield item
