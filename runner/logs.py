"""Logging: loguru to the console and to each run's runner.log, stdlib intercepted."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loguru import Logger


def _import_loguru() -> Logger:
    # Imported, loguru builds a stderr sink (unless LOGURU_AUTOINIT is false) that runner
    # replaces at once: skip building it, a few ms of every start-up. The variable is put
    # back so that the commands runner starts see the user's environment.
    saved = os.environ.get("LOGURU_AUTOINIT")
    os.environ["LOGURU_AUTOINIT"] = "False"
    deferred = _defer_asyncio()
    try:
        from loguru import logger
    except (ImportError, AttributeError):
        if not deferred:
            raise
        # A loguru this code does not know: import it exactly as it comes.
        for name in [m for m in sys.modules if m == "loguru" or m.startswith("loguru.")]:
            del sys.modules[name]
        from loguru import logger
    finally:
        if saved is None:
            del os.environ["LOGURU_AUTOINIT"]
        else:
            os.environ["LOGURU_AUTOINIT"] = saved
    return logger


def _defer_asyncio() -> bool:
    """Let loguru import without asyncio; True if that was arranged.

    loguru's ``_asyncio_loop`` imports asyncio (and with it ssl: some 20 ms of every
    start-up) only to find the running event loop when a coroutine is used as a sink.
    This stand-in has the same two functions and imports asyncio on first use; with no
    asyncio imported yet there can be no running loop, so nothing is lost. Should a later
    loguru want more of that module at import, it is imported as it comes.
    tests/test_logs.py checks that coroutine sinks still work and that asyncio stays out.
    """
    name = "loguru._asyncio_loop"
    if "asyncio" in sys.modules or "loguru" in sys.modules or name in sys.modules:
        return False
    module = types.ModuleType(name, "runner's lazy stand-in for loguru._asyncio_loop")

    def get_running_loop() -> Any:
        import asyncio

        return asyncio.get_running_loop()

    def get_task_loop(task: Any) -> Any:
        return task.get_loop()

    module.get_running_loop = get_running_loop  # type: ignore[attr-defined]
    module.get_task_loop = get_task_loop  # type: ignore[attr-defined]
    sys.modules[name] = module
    return True


logger = _import_loguru()


class _LibraryFolders(Sequence[str]):
    """loguru's list of library folders, computed when an exception is first formatted.

    Every ``logger.add()`` builds an exception formatter, which asks sysconfig for the
    folders of every install scheme (~4 ms, spent at every start-up although most runs
    format no exception). They are only read to tell library frames from the user's in a
    traceback, so they are computed then, once per process. Calling the list returns it:
    it stands in for loguru's static method ``ExceptionFormatter._get_lib_dirs``.
    """

    def __init__(self, compute: Callable[[], list[str]]) -> None:
        self._compute = compute

    def __call__(self) -> _LibraryFolders:
        return self

    @functools.cached_property
    def _folders(self) -> list[str]:
        return list(self._compute())

    def __getitem__(self, index: Any) -> Any:
        return self._folders[index]

    def __len__(self) -> int:
        return len(self._folders)

    def __iter__(self) -> Iterator[str]:
        return iter(self._folders)


def _defer_library_folders() -> None:
    # Guarded: if loguru's internals change, sinks are merely as slow as before.
    try:
        from loguru._better_exceptions import ExceptionFormatter

        compute = ExceptionFormatter.__dict__["_get_lib_dirs"].__func__
        if not isinstance(compute, _LibraryFolders):
            folders = staticmethod(_LibraryFolders(compute))
            ExceptionFormatter._get_lib_dirs = folders  # type: ignore[method-assign,assignment]
    except (ImportError, AttributeError, KeyError, TypeError):
        pass


_defer_library_folders()

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


def error_with_traceback(message: str, exc: BaseException) -> None:
    """One line on the console; the line and the traceback in the run's runner.log."""
    logger.error(message)
    logger.bind(file_only=True).opt(exception=exc).info(f"Traceback of: {message}")


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


class RunLog:
    """The sink writing ``runner.log``: a write that fails (disk full, folder gone) turns
    it off with one line on stderr, instead of a traceback per message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = open(path, "a", encoding="utf-8")
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
