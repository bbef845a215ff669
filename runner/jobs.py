"""``job.json``: what every job leaves in its folder, for the sweep report to read."""

from __future__ import annotations

import os
from pathlib import Path

from loguru import logger

from runner.files import atomic_write_json

#: A job's exit code and one-line error (null when it has none), in its run folder.
STATUS_FILE = "job.json"


def write_job_status(output_dir: str | os.PathLike[str], code: int, error: str | None) -> None:
    """Record a job's exit code and one-line error in ``<output_dir>/job.json``; never raises."""
    try:
        atomic_write_json(Path(output_dir) / STATUS_FILE, {"code": code, "error": error or None})
    except OSError as exc:
        logger.warning(f"Could not write {STATUS_FILE} in {output_dir}: {exc}")
