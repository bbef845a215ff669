"""Built-in tasks: ``sleep`` and ``shell``."""

from __future__ import annotations

import re
import string
import time
import zlib
from pathlib import Path
from typing import Any

from runner.api import Item, RunContext, Task, TaskFailure, fill_template, run_command


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
        if self.fails(item):
            raise TaskFailure(f"item {item.id} fails by design (fail_rate={self.fail_rate})")
        return None


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _stream_name(item_id: str) -> str:
    """A file name for an item's streams: readable, and unique even when ids differ
    only in characters a file name cannot hold."""
    return f"{_UNSAFE.sub('_', item_id)[:60]}-{zlib.crc32(item_id.encode()):08x}"


class ShellTask(Task):
    """Runs ``command`` (an argv template) per item, never through a shell.

    ``{field}`` placeholders are filled from the item's data, plus ``{id}``; text in the
    data is passed literally, so ``; rm -rf`` in a file name is just part of an argument.
    A non-zero exit fails the item with the exit code and the end of stderr. With
    ``keep_streams`` each item's stdout and stderr are kept in ``<run folder>/items/``.
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
        self.command = [str(part) for part in command]
        self.fields = sorted(
            {
                name
                for part in self.command
                for _, name, _, _ in string.Formatter().parse(part)
                if name
            }
        )
        self.timeout = timeout
        self.cwd = cwd
        self.keep_streams = keep_streams
        self.streams_dir: Path | None = None

    def setup(self, context: RunContext) -> None:
        if self.keep_streams and not context.dry_run:
            self.streams_dir = context.output_dir / "items"
            self.streams_dir.mkdir(parents=True, exist_ok=True)

    def run(self, item: Item) -> Any:
        values = {"id": item.id, **item.data}
        missing = [name for name in self.fields if name not in values]
        if missing:
            raise TaskFailure(
                f"command placeholder {{{missing[0]}}} has no value in item {item.id!r}; "
                f"its fields: {', '.join(values)}"
            )
        argv = fill_template(self.command, values)
        out = err = None
        if self.streams_dir is not None:
            base = self.streams_dir / _stream_name(item.id)
            out, err = base.with_suffix(".stdout"), base.with_suffix(".stderr")
        try:
            result = run_command(
                argv, cwd=self.cwd, timeout=self.timeout, stdout_path=out, stderr_path=err
            )
        except OSError as exc:
            raise TaskFailure(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from None
        if result.timed_out:
            raise TaskFailure(f"timed out after {self.timeout}s: {argv[0]}")
        if result.returncode != 0:
            tail = result.stderr.strip()[-500:]
            raise TaskFailure(f"exit code {result.returncode}" + (f": {tail}" if tail else ""))
        return {"returncode": 0, "stdout": result.stdout[-1000:]}
