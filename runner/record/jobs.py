"""``job.json``: what every job leaves in its folder, for the sweep report and ``resume``.

It holds the job's exit code and one-line error (``code`` is null while the job runs,
and stays null if it is killed), and the run's ``identity``: its task and source with
their options, recorded before the run opens its journal (runner/record/resume.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from loguru import logger

from runner.record.files import atomic_write_json

#: A job's exit code and one-line error (null when it has none), in its run folder.
STATUS_FILE = "job.json"


def write_job_identity(output_dir: str | os.PathLike[str], identity: dict[str, Any]) -> None:
    """Record a starting run's identity (no exit code yet); raises OSError if it cannot."""
    status = {"code": None, "error": None, "identity": identity}
    atomic_write_json(Path(output_dir) / STATUS_FILE, status)


def write_job_status(output_dir: str | os.PathLike[str], code: int, error: str | None) -> None:
    """Record a job's exit code and one-line error in ``<output_dir>/job.json``, keeping
    the identity its run recorded there; never raises."""
    path = Path(output_dir) / STATUS_FILE
    status: dict[str, Any] = {"code": code, "error": error or None}
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    if isinstance(recorded, dict) and "identity" in recorded:
        status["identity"] = recorded["identity"]
    try:
        atomic_write_json(path, status)
    except OSError as exc:
        logger.warning(f"Could not write {STATUS_FILE} in {output_dir}: {exc}")
