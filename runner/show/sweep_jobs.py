"""A sweep's job folders, read: what each job left on disk.

The report is built from what each job left in its folder (``summary.json``, the
``job.json`` status the CLI writes, ``.hydra/overrides.yaml``), never from Hydra's
in-memory job returns: jobs run by any launcher, in any process, are reported, and a job
that could not run at all still gets its row.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from omegaconf import ListConfig, OmegaConf

from runner.errors import EXIT_FAILED_ITEMS, EXIT_INTERRUPTED, EXIT_OK, INTERRUPT_CODES
from runner.record.jobs import STATUS_FILE


@dataclasses.dataclass
class Job:
    """What one job left on disk."""

    folder: Path
    num: int | None
    overrides: dict[str, Any]  # the job's task overrides: key -> parsed value
    code: int
    error: str | None  # one line, when the job could not run
    summary: dict[str, Any] | None  # summary.json, when the run got that far
    configured: Any = None  # parallel in .hydra/config.yaml, for a job with no summary

    @property
    def status(self) -> str:
        """ok, failed_items, error or interrupted."""
        summary = self.summary or {}
        if self.code in INTERRUPT_CODES or summary.get("interrupted"):
            return "interrupted"
        if self.summary is None and (self.code != EXIT_OK or self.error):
            return "error"
        if self.code != EXIT_OK or summary.get("failed"):
            return "failed_items"
        return "ok"

    @property
    def parallel(self) -> int | None:
        """Its worker count; for ``parallel=auto``, the level it settled at."""
        summary = self.summary or {}
        concurrency = summary.get("concurrency") or {}
        if concurrency.get("mode") == "auto":
            value = concurrency.get("settled")
        else:
            value = summary.get("parallel", self.overrides.get("parallel"))
        value = self.configured if value is None else value
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def auto(self) -> bool:
        """Whether the job ran with ``parallel=auto``."""
        return self.overrides.get("parallel") == "auto"

    def stat(self, key: str) -> float | None:
        """A number from summary.json, or None."""
        value = (self.summary or {}).get(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_yaml(path: Path, key: str | None = None) -> Any:
    try:
        node = OmegaConf.load(path)
        return node if key is None else OmegaConf.select(node, key)
    except Exception:  # absent (output_subdir=null) or unreadable: the row shows less
        return None


def _parse_overrides(lines: list[str]) -> dict[str, Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    parsed: dict[str, Any] = {}
    for line in lines:
        try:
            override = parser.parse_override(line)
        except Exception:  # Hydra ran the job with it, so keep its text rather than fail
            key, _, text = line.partition("=")
            parsed[key.lstrip("+~")] = text
            continue
        value: Any = override.value()
        if not isinstance(value, str | int | float | bool | type(None)):
            value = override.get_value_element_as_str()
        parsed[override.get_key_element().lstrip("+~")] = value
    return parsed


def read_job(folder: Path) -> Job:
    """Read one job folder; missing or broken files make an error row, not an exception."""
    summary = _read_json(folder / "summary.json")
    status = _read_json(folder / STATUS_FILE) or {}
    error: str | None = status.get("error") or None
    if isinstance(status.get("code"), int):
        code: int = status["code"]
    elif summary is not None:  # run by a launcher or a version that writes no job.json
        code = EXIT_FAILED_ITEMS if summary.get("failed") else EXIT_OK
        code = EXIT_INTERRUPTED if summary.get("interrupted") else code
    else:
        code = EXIT_FAILED_ITEMS
        error = f"the job did not finish: no {STATUS_FILE} or summary.json in {folder}"
    hydra_dir = folder / ".hydra"
    lines = _read_yaml(hydra_dir / "overrides.yaml")
    overrides = _parse_overrides([str(x) for x in lines]) if isinstance(lines, ListConfig) else {}
    num = _read_yaml(hydra_dir / "hydra.yaml", "hydra.job.num")
    # A job that never ran still has a worker count: the one its config asked for.
    configured = _read_yaml(hydra_dir / "config.yaml", "parallel") if summary is None else None
    return Job(
        folder,
        num if isinstance(num, int) else None,
        overrides,
        code,
        error,
        summary,
        configured,
    )


def find_jobs(sweep_dir: Path) -> list[Job]:
    """Every job folder under ``sweep_dir``, in job-number order."""
    folders: list[Path] = []
    for root, dirs, files in os.walk(sweep_dir):
        here = Path(root)
        if here != sweep_dir and (
            STATUS_FILE in files or (here / ".hydra" / "overrides.yaml").is_file()
        ):
            folders.append(here)
            dirs.clear()  # a job's own outputs hold no further jobs
        else:
            dirs[:] = [d for d in dirs if d != ".hydra"]
    jobs = [read_job(folder) for folder in folders]
    jobs.sort(key=lambda j: (j.num is None, j.num or 0, str(j.folder)))
    return jobs
