"""The safe wrapper: the one place that decides an item's outcome."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from runner.api import BadInput, Item, Outcome, RetryableError, TaskFailure
from runner.policies import Gate, RetryPolicy, Stopped, retrying
from runner.process import (
    CommandGroup,
    CommandsStopped,
    current_group,
    join_group,
    thread_attempt,
)


class TimedOut(TaskFailure):
    """An attempt of a Python task ran past the run's ``timeout``."""


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


def make_safe_call(
    run: Callable[[Item], Any],
    retry: RetryPolicy | None = None,
    gate: Gate | None = None,
    group: CommandGroup | None = None,
    timeout: float | None = None,
) -> Callable[[Item], Outcome]:
    """Wrap ``run`` so that it never raises: every call returns an :class:`Outcome`.

    Any ``Exception`` (and ``SystemExit``, so a task calling ``sys.exit`` cannot end the
    run) becomes a failed outcome; ``KeyboardInterrupt`` propagates so Ctrl-C still stops
    the run. The wrapper is what executors call, so one crashing item never costs a worker.
    An item a source marked bad (``item.error``) fails with ``BadInput`` without running.

    With a ``retry`` policy of more than one attempt, a ``RetryableError`` is tried again
    after its wait (the failed attempts go into ``Outcome.retries``); every attempt first
    passes the ``gate`` (rate-limit pauses, ``per_second``). The first attempt runs
    without the retry machinery: it costs nothing until something fails. An item the
    run stops before it ends by itself (in the gate, or a command killed because the run
    is stopping) is ``skipped``: it did not finish.

    Commands the task runs join the run's ``group`` (so an interrupted run stops exactly
    its own commands) and, with a ``timeout``, are stopped at the attempt's deadline. A
    Python task cannot be stopped from outside its thread: the returned function's
    ``overdue()`` gives an executor the timed-out outcomes of attempts past their
    deadline (the thread executor records them at the deadline); an attempt that
    returns after its deadline is recorded as timed out in any case.
    """
    clock = time.perf_counter
    policy = retry or RetryPolicy()
    gate = gate or Gate()
    group = group or current_group()
    retrying_on = policy.attempts > 1

    # Each thread's attempt under a timeout: [item or None, start, timeout], the list that
    # also stops the thread's commands (``thread_attempt``); the watchdog reads them all.
    local = threading.local()
    slots: list[list[Any]] = []
    abandoned: set[str] = set()

    def slot() -> list[Any]:
        mine: list[Any] = thread_attempt()
        local.slot = mine
        slots.append(mine)
        return mine

    # A command past the deadline gets SIGTERM, then SIGKILL after the group's grace:
    # the watchdog leaves it that long (and a moment) to end and be recorded as it does.
    patience = (timeout or 0.0) + group.grace + 0.5

    def overdue(now: float | None = None) -> list[Outcome]:
        """Timed-out outcomes of the attempts running past their deadline, once each.

        An executor that can hand out an outcome while the item's thread still runs
        (the thread executor) calls this a few times a second: the item is recorded as
        timed out at its deadline, and what the attempt returns later is dropped
        (``skipped``). Only with a ``timeout``.
        """
        now = clock() if now is None else now
        late = []
        for item, began, _ in [list(s) for s in slots]:
            if item is not None and now - began > patience and item.id not in abandoned:
                abandoned.add(item.id)
                error = TimedOut(f"timed out after {timeout:g} s (the task is still running)")
                info = error_info(error)
                late.append(
                    Outcome(item.id, "failed", now - began, None, info, item.label, began, now)
                )
        return late

    def attempt(item: Item) -> Any:
        """One attempt, the way every attempt after the first runs (see ``call``)."""
        began = clock()
        if timeout is not None:
            mine = local.slot
            mine[0], mine[1], mine[2] = item, began, timeout
        result = run(item)
        if timeout is not None and clock() - began > timeout:
            raise TimedOut(f"timed out after {timeout:g} s (the task ran {clock() - began:.1f} s)")
        return result

    def call(item: Item) -> Outcome:
        started = clock()
        retries: list[dict[str, Any]] = []
        join_group(group)
        mine = None
        try:
            if item.error is not None:
                raise BadInput(item.error)
            if not gate.idle:
                started = gate.enter(started)
            # The first attempt, inlined: nothing here costs more than a check until
            # something fails.
            if timeout is not None:
                try:
                    mine = local.slot
                except AttributeError:
                    mine = slot()
                mine[0] = item
                mine[1] = started
                mine[2] = timeout
            try:
                result = run(item)
            except RetryableError as first:
                if not retrying_on:
                    raise
                result = retrying(
                    lambda: attempt(item),
                    policy,
                    gate,
                    lambda error, seconds, wait: retries.append(
                        {
                            "error": error_info(error),
                            "seconds": round(seconds, 6),
                            "wait": round(wait, 3),
                        }
                    ),
                    first,
                    clock() - started,
                )
            finished = clock()
            if timeout is not None and not retries and finished - started > timeout:
                took = finished - started
                raise TimedOut(f"timed out after {timeout:g} s (the task ran {took:.1f} s)")
            outcome = Outcome(
                item.id,
                "ok",
                finished - started,
                result,
                None,
                item.label,
                started,
                finished,
                tuple(retries),
            )
        except (Stopped, CommandsStopped):
            # The run is stopping: an item that did not end by itself did not finish.
            finished = clock()
            if retries:
                last = retries.pop()
                outcome = Outcome(
                    item.id,
                    "failed",
                    finished - started,
                    None,
                    last["error"],
                    item.label,
                    started,
                    finished,
                    tuple(retries),
                )
            else:
                outcome = Outcome(item.id, "skipped", 0.0, None, None, item.label, started)
        except (Exception, SystemExit) as exc:
            finished = clock()
            if isinstance(exc, RetryableError) and exc.rate_limited:
                # Whether or not this item is tried again, the others should wait too.
                gate.pause(policy.wait_for(len(retries) + 1, exc), str(exc)[:120])
            outcome = Outcome(
                item.id,
                "failed",
                finished - started,
                None,
                error_info(exc),
                item.label,
                started,
                finished,
                tuple(retries),
            )
        if mine is not None:
            mine[0] = None  # no later command of this thread inherits the deadline
            if abandoned and item.id in abandoned:
                abandoned.discard(item.id)  # already recorded as timed out at its deadline
                return Outcome(item.id, "skipped", 0.0, None, None, item.label, started)
        return outcome

    if timeout is not None:
        call.overdue = overdue  # type: ignore[attr-defined]
        call.tick = min(timeout / 4, 0.25)  # type: ignore[attr-defined]
    return call
