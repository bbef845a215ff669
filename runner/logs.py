"""Logging: loguru to the console and to each run's runner.log, stdlib intercepted."""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loguru import Logger


def _import_loguru() -> Logger:
    # Imported, loguru builds a stderr sink (unless LOGURU_AUTOINIT is false) that runner
    # replaces at once: skip building it, a few ms of every start-up. The variable is put
    # back so that the commands runner starts see the user's environment.
    saved = os.environ.get("LOGURU_AUTOINIT")
    os.environ["LOGURU_AUTOINIT"] = "False"
    try:
        from loguru import logger
    finally:
        if saved is None:
            del os.environ["LOGURU_AUTOINIT"]
        else:
            os.environ["LOGURU_AUTOINIT"] = saved
    return logger


logger = _import_loguru()


def _cache_library_folders() -> None:
    # Every logger.add() builds an exception formatter, which asks sysconfig for the
    # library folders of every install scheme: ~3 ms per sink, for a list that cannot
    # change within a process. Computed once instead. Guarded: if loguru's internals
    # change, sinks are merely as slow as before.
    try:
        from loguru._better_exceptions import ExceptionFormatter

        lib_dirs = ExceptionFormatter._get_lib_dirs
        if not hasattr(lib_dirs, "cache_info"):
            cached = staticmethod(functools.cache(lib_dirs))
            ExceptionFormatter._get_lib_dirs = cached  # type: ignore[method-assign]
    except (ImportError, AttributeError, TypeError):
        pass


_cache_library_folders()

CONSOLE_FORMAT = "<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {message}"
FILE_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {name}:{line} | {message}"

_console_id: int | None = None
_console_level: str | None = None


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


def configure_console(level: str = "INFO") -> None:
    """Replace loguru's default sink with ours, and intercept stdlib logging. Idempotent."""
    global _console_id, _console_level
    if level == _console_level:
        return  # adding a sink costs milliseconds of start-up
    _console_level = level
    if _console_id is not None:
        logger.remove(_console_id)
    else:
        logger.remove()
    _console_id = logger.add(
        sys.stderr,
        level=level,
        format=CONSOLE_FORMAT,
        filter=_console_filter,  # type: ignore[arg-type]
        colorize=None,
    )
    root = logging.getLogger()
    if not any(isinstance(h, InterceptHandler) for h in root.handlers):
        root.handlers = [InterceptHandler()]
        root.setLevel(logging.INFO)


def add_run_log(run_dir: Path) -> int:
    """Start writing runner.log in ``run_dir``; remove the sink with ``remove_run_log``."""
    return logger.add(
        run_dir / "runner.log", level="INFO", format=FILE_FORMAT, enqueue=False, encoding="utf-8"
    )


def remove_run_log(sink_id: int) -> None:
    # A multirun runs jobs one after another in this process: a sink left behind would
    # keep writing the next job's lines into this job's log.
    try:
        logger.remove(sink_id)
    except ValueError:
        pass
