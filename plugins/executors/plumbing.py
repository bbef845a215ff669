"""What the built-in executors share: reading the source, sizing chunks, sending items
and outcomes to other processes, and the outcome of an item that never reached its task."""

from __future__ import annotations

import dataclasses
import itertools
import math
import operator
import pickle
import time
from collections.abc import Iterator
from typing import Any

from runner.api import Item, Outcome, TaskFailure
from runner.toolkit import error_info

PICKLE = pickle.HIGHEST_PROTOCOL
#: Items and outcomes travel as tuples of their fields, which pickle several times faster
#: than the objects (a million no-op items spend most of their time being pickled):
#: ``Item(*row)`` and ``Outcome(*row)`` make them again.
item_row = operator.attrgetter("id", "data", "label", "error")  # Item's parameters
outcome_row = operator.attrgetter(*(field.name for field in dataclasses.fields(Outcome)))


class NotPicklable(TaskFailure):
    """An item, or its result, cannot travel between the run and another process."""


class WorkerDied(TaskFailure):
    """The worker running the item died (a crash, a signal, ``os._exit``), or died with
    earlier starts of it: it may have run, and is not run again."""


class Interrupted(TaskFailure):
    """The run stopped (a signal, ``halt.mode=now``) and the item was still running when
    ``timeout_grace`` had passed: it was not waited for, and may have done part of its work."""


def interrupted(grace: float, how: str) -> str:
    """The message of an item :class:`Interrupted` after ``grace`` s (``how``: what became
    of its attempt)."""
    return f"still running timeout_grace={grace:.3g} s after the run stopped: {how}"


class Feed:
    """The source, read a few items at a time; a source that fails ends the feed and
    keeps its error, so the items it gave before still run and the error is raised last."""

    __slots__ = ("_source", "error", "exhausted")

    def __init__(self, source: Iterator[Item]) -> None:
        self._source = source
        self.error: Exception | None = None
        self.exhausted = False

    def take(self, count: int) -> list[Item]:
        """Up to ``count`` items; fewer once the source ends (or failed)."""
        todo: list[Item] = []
        if not self.exhausted:
            try:
                todo.extend(itertools.islice(self._source, count))
            except Exception as exc:  # the source failed part-way: what it gave still runs
                self.error = exc
            self.exhausted = self.error is not None or len(todo) < count
        return todo


def next_chunk(chunk: int, seconds: float, max_chunk: int) -> int:
    """The next chunk's size after one of ``chunk`` items took ``seconds``: a chunk runs
    2 to 20 ms, so that items of milliseconds go one at a time (good balance at the tail
    of a run) and no-op items up to ``max_chunk`` at a time (little overhead per item)."""
    if seconds < 0.002 and chunk < max_chunk:
        return min(chunk * 2, max_chunk)
    if seconds > 0.02 and chunk > 1:
        return chunk // 2
    return chunk


def drain_deadline(timeout: float | None, current: float = math.inf) -> float:
    """Until when (``time.monotonic()``) outcomes of running items are still handed on
    after ``shutdown(wait=False, timeout)``: ``timeout`` s from now, never later than
    ``current``."""
    return current if timeout is None else min(current, time.monotonic() + timeout)


def unpicklable(obj: Any) -> str | None:
    """Why ``obj`` cannot be pickled, in one line; None when it can."""
    try:
        pickle.dumps(obj, PICKLE)
    except Exception as exc:  # TypeError, PicklingError, AttributeError, RecursionError...
        return " ".join(f"{type(exc).__name__}: {exc}".split())
    return None


def sendable(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """An outcome's row as it can travel back to the run: one whose result does not
    pickle fails its own item (``NotPicklable``)."""
    problem = unpicklable(row)
    if problem is None:
        return row
    message = f"the result of item {row[0]!r} cannot be sent back from its worker: {problem}"
    failed = Outcome(*row)
    failed.status, failed.result, failed.error = "failed", None, error_info(NotPicklable(message))
    return tuple(outcome_row(failed))


def failed(item: Item, error: BaseException, started: float | None = None) -> Outcome:
    """The failed outcome of ``item`` whose attempt the executor ended (or never made),
    from ``started`` (``time.perf_counter()``; now when not given) until now."""
    now = time.perf_counter()
    began = now if started is None else started
    return Outcome(item.id, "failed", now - began, None, error_info(error), item.label, began, now)


def lost_error(exc: BaseException, what: str) -> dict[str, Any]:
    """The journal's error of an item lost with its batch (``what`` happened, ``exc``
    says why): the item's own task never raised it, so it has no traceback."""
    return {"type": type(exc).__name__, "message": f"{what}: {exc}", "traceback": ""}
