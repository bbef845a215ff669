"""The safe wrapper: the one place that decides an item's outcome."""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from runner.api import BadInput, Item, Outcome, RetryableError, StopRun, TaskFailure
from runner.policies import Gate, RetryPolicy, Stopped, retrying
from runner.process import (
    CommandGroup,
    CommandsStopped,
    current_group,
    group_var,
    thread_attempt,
)


class TimedOut(TaskFailure):
    """An attempt of a Python task ran past the run's ``timeout``."""


def error_info(exc: BaseException, pause: float | None = None) -> dict[str, Any]:
    """Type, message and traceback of a task's exception, as the journal stores them.

    ``pause``: for a rate-limited failure, the seconds it held every start (``pause``
    in the record, so that a driver running the item elsewhere can hold its starts too).
    """
    info: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": str(exc),
        # An expected failure (TaskFailure) says all there is in its message.
        "traceback": ""
        if isinstance(exc, TaskFailure)
        else "".join(traceback.format_exception(exc)),
    }
    if pause is not None and isinstance(exc, RetryableError) and exc.rate_limited:
        info["pause"] = round(pause, 3)
    if isinstance(exc, StopRun):  # the run stops with it, wherever the item ran
        info["exit_code"] = exc.exit_code
    return info


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

    # Each thread's attempt under a timeout: [start, timeout, claim, late], the list that
    # also stops the thread's commands (``thread_attempt``); the watchdog reads them all.
    # The claim holds the running item: the attempt pops it when it ends, the watchdog
    # removes it at the deadline (both atomic, and remove() finds only that very item),
    # so exactly one of them records the item. ``late``: the item the watchdog recorded
    # while its attempt still runs (its commands still stop at its deadline).
    local = threading.local()
    slots: list[list[Any]] = []

    def slot() -> list[Any]:
        mine: list[Any] = thread_attempt()
        local.slot = mine
        slots.append(mine)
        return mine

    # A command past the deadline gets SIGTERM, then SIGKILL after the group's grace:
    # the watchdog leaves it that long (and a moment) to end and be recorded as it does.
    patience = (timeout or 0.0) + group.grace + 0.5
    limit = math.inf if timeout is None else timeout  # one comparison per item

    def overdue(now: float | None = None) -> list[Outcome]:
        """Timed-out outcomes of the attempts running past their deadline, once each.

        An executor that can hand out an outcome while the item's thread still runs
        (the thread executor) calls this a few times a second: the item is recorded as
        timed out at its deadline, and what the attempt returns later is dropped
        (``skipped``). Only with a ``timeout``.
        """
        now = clock() if now is None else now
        late = []
        for mine in list(slots):
            # The item first: the start read after it is its attempt's, or a later one's.
            claim = mine[2]
            try:
                item = claim[0]
            except IndexError:
                continue  # nothing runs there
            began = mine[0]
            if now - began <= patience:
                continue
            mine[3] = item  # set first: its commands keep their deadline once it is removed
            try:
                claim.remove(item)  # the attempt has not ended: the watchdog records it
            except ValueError:
                mine[3] = None
                continue  # it ended meanwhile
            error = TimedOut(f"timed out after {timeout:g} s (the task is still running)")
            late.append(
                Outcome(
                    item.id, "failed", now - began, None, error_info(error), item.label, began, now
                )
            )
        return late

    def attempt(item: Item, mine: list[Any] | None) -> Any:
        """One attempt, the way every attempt after the first runs (see ``call``);
        ``mine``: the thread's slot, with a timeout."""
        began = clock()
        if mine is not None:
            if mine[3] is not None:  # the watchdog has recorded the item: no more attempts
                raise TimedOut(f"timed out after {timeout:g} s (recorded at its deadline)")
            mine[0], mine[1] = began, timeout
        result = run(item)
        if timeout is not None and clock() - began > timeout:
            raise TimedOut(f"timed out after {timeout:g} s (the task ran {clock() - began:.1f} s)")
        return result

    in_group = group_var.get
    join = group_var.set
    # per_second without a method call per item: the gate's start times, drawn here.
    spaced, burst = gate.spaced, gate.burst

    def record_retry(
        retries: list[dict[str, Any]],
        mine: list[Any] | None,
        error: RetryableError,
        seconds: float,
        wait: float,
    ) -> None:
        """A failed attempt that another follows, after ``wait`` s."""
        retries.append(
            {"error": error_info(error, wait), "seconds": round(seconds, 6), "wait": round(wait, 3)}
        )
        if mine is not None:
            mine[0] = math.inf  # waiting, not running: nothing for the watchdog to time

    def build(bound: list[Any] | None) -> Callable[[Item], Outcome]:
        """The wrapper; ``bound``: the calling thread's attempt slot, found once (see
        ``bind``) rather than at every item."""

        def call(item: Item) -> Outcome:
            started = clock()
            retries: Any = ()  # a list once an attempt failed and another followed
            if in_group() is not group:
                join(group)  # later commands of this thread (or task) join the run's group
            claim = None
            try:
                if item.error is not None:
                    raise BadInput(item.error)
                if not gate.idle:
                    if spaced:  # a pause moves the start times on: no check of it here
                        at = next(gate.times)
                        if not started - burst <= at <= started:
                            started = gate.ticket(started, at)  # a sleep, or a burst reset
                    else:
                        started = gate.enter(started)
                # The first attempt, inlined: nothing here costs more than a check until
                # something fails.
                if timeout is not None:
                    mine = bound
                    if mine is None:
                        try:
                            mine = local.slot
                        except AttributeError:
                            mine = slot()
                    mine[0] = started
                    mine[1] = timeout  # the thread's slot may have served another run
                    claim = mine[2]
                    claim.append(item)
                try:
                    result = run(item)
                except RetryableError as first:
                    if not retrying_on:
                        raise
                    retries = []
                    held = mine if claim is not None else None
                    result = retrying(
                        functools.partial(attempt, item, held),
                        policy,
                        gate,
                        functools.partial(record_retry, retries, held),
                        first,
                        clock() - started,
                    )
                finished = clock()
                if finished - started > limit and not retries:
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
                    tuple(retries) if retries else (),
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
                pause = None
                if isinstance(exc, RetryableError) and exc.rate_limited:
                    # Whether or not this item is tried again, the others should wait too.
                    pause = policy.wait_for(len(retries) + 1, exc)
                    gate.pause(pause, str(exc)[:120])
                outcome = Outcome(
                    item.id,
                    "failed",
                    finished - started,
                    None,
                    error_info(exc, pause),
                    item.label,
                    started,
                    finished,
                    tuple(retries),
                )
            except BaseException:  # Ctrl-C in a library caller: the thread's slot is freed
                if claim is not None:
                    with contextlib.suppress(IndexError):
                        claim.pop()
                    assert mine is not None  # the claim is its slot's
                    mine[3] = None
                raise
            if claim is not None:
                try:
                    claim.pop()  # no later command of this thread inherits the deadline
                except IndexError:  # recorded as timed out at its deadline: this one is dropped
                    assert mine is not None  # the claim is its slot's
                    mine[3] = None
                    return Outcome(item.id, "skipped", 0.0, None, None, item.label, started)
            return outcome

        return call

    call = build(None)

    def bind() -> Callable[[Item], Outcome]:
        """The wrapper for the calling thread only, for an executor's long-lived worker:
        the same outcomes, without looking up the thread's state at every item."""
        return call if timeout is None else build(getattr(local, "slot", None) or slot())

    def admit() -> bool:
        """Wait until an item may start (the gate); False: the run is stopping."""
        if gate.idle:
            return True
        try:
            gate.enter()
        except Stopped:
            return False
        return True

    if timeout is not None:
        call.overdue = overdue  # type: ignore[attr-defined]
        call.tick = min(timeout / 4, 0.25)  # type: ignore[attr-defined]
    # For executors that run items in other processes (see ``runner.api.Executor``).
    call.portable = Portable(run, policy, timeout, group.grace)  # type: ignore[attr-defined]
    call.admit = admit  # type: ignore[attr-defined]
    call.bind = bind  # type: ignore[attr-defined]
    call.receive = lambda outcome: receive(outcome, gate)  # type: ignore[attr-defined]
    return call


class Portable:
    """The run's safe wrapper, for executors that run items in other processes.

    Picklable when the task is (with ``spawn``, over a network): it carries the task's
    ``run``, the retry policy, the timeout and the commands' grace, and each process
    builds its own wrapper from them on first use (its own command group and rate-limit
    gate; ``per_second`` and pauses for new items are kept by the driver: the run's
    ``fn.admit``). Call it with a batch of items: it returns their outcomes with
    ``started``/``finished`` as ``time.time()`` seconds, which ``fn.receive`` (see
    :func:`receive`) turns back into the driver's clock (machines' clocks differ; wall
    clocks agree).
    """

    def __init__(
        self,
        run: Callable[[Item], Any],
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        grace: float = 5.0,
    ) -> None:
        self.run = run
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.grace = grace
        self._call: Callable[[Item], Outcome] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_call": None}

    def build(self) -> Callable[[Item], Outcome]:
        """This process's safe wrapper (built once)."""
        if self._call is None:
            self._call = make_safe_call(
                self.run, self.retry, Gate(), CommandGroup(grace=self.grace), self.timeout
            )
        return self._call

    def __call__(self, items: list[Item]) -> list[Outcome]:
        call = self.build()
        offset = time.time() - time.perf_counter()
        outcomes = [call(item) for item in items]
        for outcome in outcomes:
            outcome.started += offset
            outcome.finished += offset
        return outcomes


def receive(outcome: Outcome, gate: Gate) -> Outcome:
    """An outcome a :class:`Portable` returned, in this process's clock; its rate-limit
    pauses that still run hold the ``gate`` (every start the driver hands out)."""
    offset = time.time() - time.perf_counter()
    outcome.started -= offset
    outcome.finished -= offset
    # Attempts ran one after another from ``started``: each pause ends ``wait`` after
    # its attempt did.
    now, at = time.perf_counter(), outcome.started
    for retry in outcome.retries:
        at += retry["seconds"]
        pause = retry["error"].get("pause")
        if pause is not None:
            if at + pause > now:
                gate.pause(at + pause - now, retry["error"]["message"][:120])
            else:
                gate.limited(retry["error"]["message"][:120])
        at += retry["wait"]
    error = outcome.error or {}
    pause = error.get("pause")
    if pause is not None:
        if outcome.finished + pause > now:
            gate.pause(outcome.finished + pause - now, error["message"][:120])
        else:
            gate.limited(error["message"][:120])
    return outcome
