"""Logging: loguru to the console and to each run's runner.log, stdlib intercepted."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

from loguru import logger

if TYPE_CHECKING:  # loguru's types exist only in its stubs
    from loguru import Record

#: Each run's log file, in its folder.
RUN_LOG = "runner.log"
CONSOLE_FORMAT = "<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {message}"
FILE_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {name}:{line} | {message}"


class InterceptHandler(logging.Handler):
    """Route stdlib logging records (Hydra's, libraries') into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        # Hydra's --info prints through the root logger on a stdout handler it adds
        # beside this one: its lines are on screen already, not to be shown twice.
        if any(
            type(handler) is logging.StreamHandler and record.levelno >= handler.level
            for handler in logging.getLogger().handlers
        ):
            return
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def _console_filter(record: Record) -> bool:
    return not record["extra"].get("file_only", False)


def error_with_traceback(message: str, exc: BaseException) -> None:
    """One line on the console; the line and the traceback in the run's runner.log."""
    logger.error(message)
    logger.bind(file_only=True).opt(exception=exc).info(f"Traceback of: {message}")


class Console:
    """runner's console sink: loguru's default sink replaced by ours, stdlib logging
    intercepted. One per ``main()`` call, which hands it to each job it runs.

    A console carried into another process (a launcher's worker, which unpickles the
    task) starts there with no sink: loguru's sink ids are its process's.
    """

    def __init__(self) -> None:
        self._sink: int | None = None
        self._setting: tuple[str, str] | None = None  # (level, prefix) of the sink
        self._carried = False

    def __reduce__(self) -> tuple[type[Console], tuple[()], dict[str, bool]]:
        return Console, (), {"_carried": True}

    def configure(self, level: str = "INFO", prefix: str = "") -> None:
        """Write messages of ``level`` and above to stderr, each line starting with
        ``prefix``. Idempotent.

        ``prefix``: ``[job 3] `` for the jobs of a sweep, whose lines may interleave when
        a launcher runs them side by side. Only loguru's own default sink is removed: a
        run's runner.log sink added before stays.
        """
        if (level, prefix) == self._setting:
            return  # adding a sink costs milliseconds of start-up
        self._setting = (level, prefix)
        if self._sink is not None:
            logger.remove(self._sink)
        else:
            with contextlib.suppress(ValueError):  # already gone (a library caller's choice)
                logger.remove(0)
        escaped = prefix.replace("{", "{{").replace("}", "}}").replace("<", "\\<")
        self._sink = logger.add(
            sys.stderr,
            level=level,
            format=escaped + CONSOLE_FORMAT,
            filter=_console_filter,
            colorize=None,
        )
        root = logging.getLogger()
        if not any(isinstance(h, InterceptHandler) for h in root.handlers):
            root.handlers = [InterceptHandler()]
            root.setLevel(logging.INFO)

    def end_job(self) -> None:
        """A job ended: console lines lose its prefix (Hydra's own lines follow). A
        console carried into a worker process removes its sink instead: the worker's next
        job brings a console of its own."""
        if self._carried:
            self.close()
        elif self._setting is not None and self._setting[1]:
            self.configure(self._setting[0], "")

    def close(self) -> None:
        """Remove the console sink (the next :meth:`configure` adds one again)."""
        if self._sink is not None:
            with contextlib.suppress(ValueError):  # removed by a library caller
                logger.remove(self._sink)
        self._sink = self._setting = None


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
    sink = RunLog(run_dir / RUN_LOG)
    sink.sink_id = logger.add(sink, level="INFO", format=FILE_FORMAT, enqueue=False, colorize=False)
    return sink


def remove_run_log(sink: RunLog) -> None:
    # A multirun runs jobs one after another in this process: a sink left behind would
    # keep writing the next job's lines into this job's log.
    with contextlib.suppress(ValueError):
        logger.remove(sink.sink_id)
    sink.close()
