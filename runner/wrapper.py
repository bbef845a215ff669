"""The safe wrapper: the one place that decides an item's outcome."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from runner.api import BadInput, Item, Outcome, TaskFailure


def error_info(exc: BaseException) -> dict[str, str]:
    """Type, message and traceback of a task's exception, as the journal stores them."""
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        # An expected failure (TaskFailure) says all there is in its message.
        "traceback": ""
        if isinstance(exc, TaskFailure)
        else "".join(traceback.format_exception(exc)),
    }


def make_safe_call(run: Callable[[Item], Any]) -> Callable[[Item], Outcome]:
    """Wrap ``run`` so that it never raises: every call returns an :class:`Outcome`.

    Any ``Exception`` (and ``SystemExit``, so a task calling ``sys.exit`` cannot end the
    run) becomes a failed outcome; ``KeyboardInterrupt`` propagates so Ctrl-C still stops
    the run. The wrapper is what executors call, so one crashing item never costs a worker.
    """
    clock = time.perf_counter

    def call(item: Item) -> Outcome:
        started = clock()
        try:
            if item.error is not None:
                raise BadInput(item.error)
            result = run(item)
        except (Exception, SystemExit) as exc:
            finished = clock()
            return Outcome(
                item.id,
                "failed",
                finished - started,
                None,
                error_info(exc),
                item.label,
                started,
                finished,
            )
        finished = clock()
        return Outcome(
            item.id, "ok", finished - started, result, None, item.label, started, finished
        )

    return call
