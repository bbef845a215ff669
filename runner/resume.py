"""``resume=<run folder>`` or ``resume=last``: what a previous run finished is not run again.

The previous run's ``results.jsonl`` says which items succeeded; the new run copies
those records into its own journal (so it is complete, and can itself be resumed) and
runs every other item of the source: the ones that failed and the ones that never
finished. A torn last line (a run killed mid-write) is ignored, like any line that is
not a whole record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from loguru import logger

from runner.api import Item
from runner.errors import UsageError

JOURNAL = "results.jsonl"


def previous_run(value: str, output_dir: Path) -> Path:
    """The run folder ``resume`` names; ``last`` is the newest other run beside this one.

    "Beside" means in the layout of the default ``hydra.run.dir``: any
    ``outputs/<date>/<time>`` folder (for a sweep's job, any job of another sweep of
    ``multirun/<date>``), by the time its journal was last written.
    """
    if value == "last":
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
        return max(runs, key=lambda p: (p / JOURNAL).stat().st_mtime)
    folder = Path(value).expanduser()
    if not (folder / JOURNAL).is_file():
        raise UsageError(
            f"resume={value!r} is not a run folder: it has no {JOURNAL}. Give a folder "
            "of an earlier run (outputs/<date>/<time>) or resume=last."
        )
    return folder


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


def remaining(items: Iterator[Item], done: dict[str, str]) -> Iterator[Item]:
    """The items whose id is not among those already done."""
    for item in items:
        if item.id not in done:
            yield item
