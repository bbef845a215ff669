"""Progress: a tqdm bar on a terminal, thinned ``[k/N] <id> -> OK`` lines otherwise, each
with the rate so far and, when the count is known, the time left at that rate (GNU
parallel's ``--eta``)."""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

from loguru import logger

from runner.api import Outcome
from runner.show.labels import MESSAGE_CHARS, printable

# Runs of up to this many items get a line per item; larger ones are thinned.
EVERY_ITEM_UP_TO = 200
# Thinned runs print the first few items, then at most one line per interval.
FIRST_LINES = 10
INTERVAL_SECONDS = 2.0
# Failures get their own line until this many were shown (the journal has them all).
FAILURE_LINES = 20
# A terminal narrower than this gets lines instead of a bar (0: it reports no width).
MIN_BAR_WIDTH = 20
# What the console puts before a message: "HH:MM:SS LEVEL   ".
CONSOLE_MARGIN = 17


def _terminal_width() -> int:
    """Columns of the terminal stderr is on (0: none, or one that reports no width).

    Asked of the terminal itself: a ``COLUMNS`` exported long ago may be stale.
    """
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns if sys.stderr.isatty() else 0
    except (OSError, ValueError):
        return 0


class Progress:
    """Counts finished items and reports them; called only from the run loop's thread."""

    def __init__(self, total: int | None, mode: str = "auto", prefix: str = "") -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self._last_line = 0.0
        self._failure_lines = 0
        # A terminal's width, when stderr is one (0 when it reports none: a pty of
        # `script -qc`), which a bar needs and lines are fitted to.
        self.width = _terminal_width()
        if mode == "auto":
            mode = "bar" if self.width >= MIN_BAR_WIDTH else "lines"
        self.mode = mode
        self._bar: Any = None
        #: What the console puts before each line (``[job 3] `` in a sweep): the lines
        #: written above the bar, which bypass the console, start with it too.
        self.prefix = prefix
        if mode == "bar":
            from tqdm import tqdm  # only on a terminal: keeps start-up light elsewhere

            self._bar = tqdm(
                total=total,
                unit="item",
                dynamic_ncols=True,
                mininterval=0.2,
                desc=self.prefix.strip() or None,
            )
        every = total is not None and total <= EVERY_ITEM_UP_TO
        #: Items shown each: every item of a short run, the first few of a long one.
        self._shown_up_to = math.inf if every else FIRST_LINES

    def update(self, outcome: Outcome) -> None:
        self.done = done = self.done + 1
        ok = outcome.status == "ok"
        if not ok:
            self.failed += 1
        if self._bar is not None:
            self._bar.update(1)
            if not ok:
                self._bar.set_postfix(failed=self.failed, refresh=False)
        if self.mode == "off":
            return
        now = time.monotonic()
        show = (
            done <= self._shown_up_to
            or done == self.total
            or now - self._last_line >= INTERVAL_SECONDS
            or (not ok and self._failure_lines < FAILURE_LINES)
        )
        if not show:
            return
        self._last_line = now
        if not ok:
            self._failure_lines += 1
        line = self.line(outcome, now)
        if self._bar is not None:
            logger.bind(file_only=True).info(line)
            if not ok:  # above the bar, as it happens: the count alone says too little
                prefix = self.prefix
                self._bar.write(prefix + self.fit(line, len(prefix)), file=sys.stderr)
        elif ok:
            logger.info(self.fit(line))
        else:
            logger.warning(self.fit(line))

    def fit(self, line: str, margin: int = CONSOLE_MARGIN) -> str:
        """``line`` shortened to the terminal's width, less ``margin`` (the time and
        level the console adds); as is when stderr is no terminal."""
        room = self.width - margin
        if self.width <= 0 or len(line) <= room:
            return line
        return line[: max(room - 1, 10)] + "…"

    def line(self, outcome: Outcome, now: float) -> str:
        elapsed = now - self.started
        verdict = "OK" if outcome.status == "ok" else "FAIL"
        label = printable(outcome.label or outcome.id)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        speed = f"{_rate(rate)} items/s, " if rate > 0 else ""
        if self.total is None:
            message = f"[{self.done}/?] {label} -> {verdict} ({speed}{elapsed:.0f}s elapsed)"
        else:
            remaining = max(self.total - self.done, 0)
            eta = f"ETA {_duration(remaining / rate)}, " if rate > 0 and remaining else ""
            message = (
                f"[{self.done}/{self.total}] {label} -> {verdict} "
                f"({remaining} remaining, {speed}{eta}{elapsed:.0f}s elapsed)"
            )
        if outcome.error and outcome.status != "ok":
            # The message may quote the id or a command's stderr: escaped as well.
            error = f"{outcome.error['type']}: {outcome.error['message']}"
            message += f": {printable(error, MESSAGE_CHARS)}"
        return message

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _rate(rate: float) -> str:
    """Items per second, rounded: 1,234 / 56.7 / 0.25."""
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


def _duration(seconds: float) -> str:
    """A time left as a person reads it: 42s, 3m05s, 2h07m."""
    whole = math.ceil(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
