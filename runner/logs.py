"""Logging: loguru to the console and to each run's runner.log, stdlib intercepted."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import IO

from loguru import logger

CONSOLE_FORMAT = "<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {message}"
FILE_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {name}:{line} | {message}"

_console_id: int | None = None
_console_level: tuple[str, str] | None = None


class InterceptHandler(logging.Handler):
    """Route stdlib logging records (Hydra's, libraries') into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def _console_filter(record: dict[str, object]) -> bool:
    extra = record["extra"]
    assert isinstance(extra, dict)
    return not extra.get("file_only", False)


def error_with_traceback(message: str, exc: BaseException) -> None:
    """One line on the console; the line and the traceback in the run's runner.log."""
    logger.error(message)
    logger.bind(file_only=True).opt(exception=exc).info(f"Traceback of: {message}")


def configure_console(level: str = "INFO", prefix: str = "") -> None:
    """Replace loguru's default sink with ours, and intercept stdlib logging. Idempotent.

    ``prefix`` starts every console line (``[job 3] `` for the jobs of a sweep, whose
    lines may interleave when a launcher runs them side by side). Only loguru's own
    default sink is removed: a run's runner.log sink added before stays.
    """
    global _console_id, _console_level
    if (level, prefix) == _console_level:
        return  # adding a sink costs milliseconds of start-up
    _console_level = (level, prefix)
    if _console_id is not None:
        logger.remove(_console_id)
    else:
        with contextlib.suppress(ValueError):  # already gone (a library caller's choice)
            logger.remove(0)
    escaped = prefix.replace("{", "{{").replace("}", "}}").replace("<", "\\<")
    _console_id = logger.add(
        sys.stderr,
        level=level,
        format=escaped + CONSOLE_FORMAT,
        filter=_console_filter,  # type: ignore[arg-type]
        colorize=None,
    )
    root = logging.getLogger()
    if not any(isinstance(h, InterceptHandler) for h in root.handlers):
        root.handlers = [InterceptHandler()]
        root.setLevel(logging.INFO)


def clear_prefix() -> None:
    """Console lines lose the job prefix (the job ended; Hydra's own lines follow)."""
    if _console_level is not None and _console_level[1]:
        configure_console(_console_level[0], "")


class RunLog:
    """The sink writing ``runner.log``: a write that fails (disk full, folder gone) turns
    it off with one line on stderr, instead of a traceback per message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # A message may quote a name that is not UTF-8 (a lone surrogate): it is written
        # as its backslash escape, as the console shows it, instead of failing the write.
        self._fh: IO[str] | None = open(path, "a", encoding="utf-8", errors="backslashreplace")
        self.sink_id = -1

    def write(self, message: str) -> None:
        if self._fh is None:
            return
        try:
            self._fh.write(message)
            self._fh.flush()
        except OSError as exc:
            self.close()
            sys.stderr.write(
                f"runner: cannot write {str(self.path)!r}: {exc.strerror or exc}; "
                "logging to the console only\n"
            )

    def close(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                fh.close()


def add_run_log(run_dir: Path) -> RunLog:
    """Start writing runner.log in ``run_dir``; stop with ``remove_run_log``."""
    sink = RunLog(run_dir / "runner.log")
    sink.sink_id = logger.add(sink, level="INFO", format=FILE_FORMAT, enqueue=False, colorize=False)
    return sink


def remove_run_log(sink: RunLog) -> None:
    # A multirun runs jobs one after another in this process: a sink left behind would
    # keep writing the next job's lines into this job's log.
    with contextlib.suppress(ValueError):
        logger.remove(sink.sink_id)
    sink.close()
