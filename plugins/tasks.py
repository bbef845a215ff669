"""Built-in tasks: ``sleep`` and ``shell`` (and the placeholders of an argv template)."""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.api import Item, RetryableError, RunContext, StopRun, Task, TaskFailure
from runner.toolkit import (
    STREAMS_FILE,
    StreamLog,
    detect_rate_limit,
    fill_for_item,
    run_command,
    template_fields,
)

#: The exit code of a run stopped by a template no item can fill (runner/errors.py's 2).
EXIT_USAGE = 2


class Placeholders:
    """A template's ``{field}`` placeholders, filled from each item.

    :meth:`check` is given the source's first item before any item runs: a placeholder
    it lacks (``{nosuch}``: a typo, or a field the source does not give) would fail every
    item, so it stops the run instead (``StopRun``, exit 2, one line naming it and the
    item's fields), on every executor. A later item that lacks one fails alone: that is
    bad input, not a bad template.
    """

    def __init__(self, template: Sequence[str], what: str) -> None:
        self.template = list(template)
        self.what = what  # "command placeholder": how the message names one
        self.fields = template_fields(self.template)

    def check(self, first: Item | None) -> None:
        """StopRun (exit 2) when the first item lacks a field the template names."""
        if first is None:
            return
        fields = {"id", *first.data}
        unknown = [f for f in self.fields if f not in fields]
        if unknown:
            stop = StopRun(
                f"{self.what} {{{unknown[0]}}} has no value in the first item "
                f"({first.id!r}, which has {', '.join(sorted(fields))}): the run stops "
                "before any item runs"
            )
            stop.exit_code = EXIT_USAGE
            raise stop

    def fill(self, item: Item) -> list[str]:
        """The template filled from ``item``; TaskFailure when it cannot be."""
        return fill_for_item(self.template, self.fields, item, self.what)


class SleepTask(Task):
    """Sleeps ``seconds``; fails the fraction ``fail_rate`` of items chosen by ``seed``.

    Which items fail depends only on ``seed`` and the item id, so every executor and
    every worker count fails the same items.
    """

    def __init__(self, seconds: float = 0.1, fail_rate: float = 0.0, seed: int = 0) -> None:
        if seconds < 0:
            raise ValueError(f"seconds={seconds!r} must be >= 0")
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError(f"fail_rate={fail_rate!r} must be between 0 and 1")
        self.seconds = seconds
        self.fail_rate = fail_rate
        self._salt = f"{seed}:".encode()

    def fails(self, item: Item) -> bool:
        """Whether this item is one of the deterministic failures."""
        if self.fail_rate <= 0.0:
            return False
        return zlib.crc32(self._salt + item.id.encode()) / 0x1_0000_0000 < self.fail_rate

    def run(self, item: Item) -> Any:
        if self.seconds:
            time.sleep(self.seconds)
        if self.fail_rate and self.fails(item):
            raise TaskFailure(f"item {item.id} fails by design (fail_rate={self.fail_rate})")
        return None


#: The exit code (sysexits.h) of a command that failed for a reason worth a retry.
EX_TEMPFAIL = 75


class ShellTask(Task):
    """Runs ``command`` (an argv template) per item, never through a shell.

    ``{field}`` placeholders are filled from the item's data, plus ``{id}``; text in the
    data is passed literally, so ``; rm -rf`` in a file name is just part of an argument.
    A non-zero exit fails the item with the exit code and the end of stderr; exit code 75
    (EX_TEMPFAIL) or output saying the service is rate limited or overloaded makes the
    failure retryable (``retry.attempts``), with any Retry-After as its wait. With
    ``keep_streams`` the stdout and stderr of every attempt that printed anything are
    kept in ``<run folder>/streams.jsonl`` (``python -m runner.streams RUN_DIR ID`` prints
    them back); one file per run, not two per item. Settings no item could run with (a
    timeout that is not a finite number > 0, a ``cwd`` that is not a folder, a positional
    placeholder, an element that is not text) are refused here, before the first item.
    """

    def __init__(
        self,
        command: list[str],
        timeout: float | None = None,
        cwd: str | None = None,
        keep_streams: bool = True,
    ) -> None:
        if not command:
            raise ValueError("command is empty: give an argv list, e.g. command=[echo,'{id}']")
        self.placeholders = Placeholders(command, "command placeholder")
        self.command: list[str] = list(command)
        if timeout is not None and not (
            isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0
        ):
            raise ValueError(
                f"timeout={timeout!r} is invalid: give seconds, a finite number > 0, "
                "or null for no timeout"
            )
        if cwd is not None:
            folder = Path(cwd).expanduser()
            if not cwd or not folder.exists():
                raise FileNotFoundError(f"cwd={cwd!r} does not exist: give an existing folder")
            if not folder.is_dir():
                raise NotADirectoryError(f"cwd={cwd!r} is not a folder")
            cwd = str(folder)
        self.timeout = timeout
        self.cwd = cwd
        self.keep_streams = keep_streams
        self.streams: StreamLog | None = None

    def setup(self, context: RunContext) -> None:
        self.placeholders.check(context.first_item())
        if self.keep_streams and not context.dry_run:
            self.streams = StreamLog(context.output_dir / STREAMS_FILE)

    def close(self) -> None:
        if self.streams is not None:
            self.streams.close()

    def run(self, item: Item) -> Any:
        argv = self.placeholders.fill(item)
        try:
            result = run_command(argv, cwd=self.cwd, timeout=self.timeout)
        except OSError as exc:
            raise TaskFailure(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from None
        if self.streams is not None:
            try:
                self.streams.add(item.id, result.stdout, result.stderr)
            except OSError as exc:
                raise TaskFailure(
                    f"cannot keep the streams in {str(self.streams.path)!r}: {exc.strerror or exc}"
                ) from None
        if result.timed_out:
            # The task's own timeout or the run's, whichever came first.
            raise TaskFailure(f"timed out after {round(result.seconds, 2):g} s: {argv[0]}")
        if result.returncode != 0:
            tail = result.stderr.strip()[-500:]
            message = f"exit code {result.returncode}" + (f": {tail}" if tail else "")
            limited, wait = detect_rate_limit(result.stderr[-4000:] + "\n" + result.stdout[-4000:])
            if limited:
                raise RetryableError(f"rate limited: {message}", wait, rate_limited=True)
            if result.returncode == EX_TEMPFAIL:
                raise RetryableError(f"temporary failure (EX_TEMPFAIL): {message}")
            raise TaskFailure(message)
        return {"returncode": 0, "stdout": result.stdout[-1000:]}
