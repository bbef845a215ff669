"""The safe call: the one place that decides an item's outcome."""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from runner.api import (
    BadInput,
    ConcurrencyLimit,
    Item,
    Outcome,
    RetryableError,
    StopRun,
    TaskFailure,
)
from runner.execute.admission import Admission
from runner.execute.commands import (
    AttemptSlot,
    CommandGroup,
    CommandsStopped,
    current_group,
    group_var,
    thread_attempt,
)
from runner.execute.concurrency import AdaptiveLimit
from runner.execute.policies import Gate, RetryPolicy, Stopped, retrying
from runner.execute.portable import Portable

clock = time.perf_counter


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


class SafeCall:
    """``run`` wrapped so that it never raises: every call returns an :class:`Outcome`
    (it fulfils :class:`runner.api.ItemCall`, what executors are given).

    Any ``Exception`` (and ``SystemExit``, so a task calling ``sys.exit`` cannot end the
    run) becomes a failed outcome; ``KeyboardInterrupt`` propagates so Ctrl-C still stops
    the run. One crashing item never costs a worker. An item a source marked bad
    (``item.error``) fails with ``BadInput`` without running.

    With a ``retry`` policy of more than one attempt, a ``RetryableError`` is tried again
    after its wait (the failed attempts go into ``Outcome.retries``); every attempt first
    passes the ``gate`` (rate-limit pauses, ``per_second``), then the limits the
    service's refusals taught (:class:`Admission`): a refused item waits alone, the
    others go on under those limits. The first attempt runs
    without the retry machinery: it costs nothing until something fails. An item the
    run stops before it ends by itself (in the gate, or a command killed because the run
    is stopping) is ``skipped``: it did not finish.

    Commands the task runs join the run's ``group`` (so an interrupted run stops exactly
    its own commands) and, with a ``timeout``, are stopped at the attempt's deadline. A
    Python task cannot be stopped from outside its thread: :meth:`overdue` gives an
    executor the timed-out outcomes of attempts past their deadline; an attempt that
    returns after its deadline is recorded as timed out in any case.

    Speed: a no-op item costs about a microsecond here, the bulk of runner's own cost
    per item (``bench/bench_reliability.py`` measures it, "wrapper µs/call"): the first
    attempt is written out in :meth:`_decide` rather than shared with later ones, and
    ``per_second`` draws its start times without a method call.
    """

    __slots__ = (
        "_alone",
        "_local",
        "_patience",
        "_slots",
        "_spaced",
        "admission",
        "gate",
        "group",
        "halting",
        "limit",
        "portable",
        "retry",
        "run",
        "tick",
        "timeout",
    )

    def __init__(
        self,
        run: Callable[[Item], Any],
        retry: RetryPolicy | None = None,
        gate: Gate | None = None,
        group: CommandGroup | None = None,
        timeout: float | None = None,
        limit: ConcurrencyLimit | None = None,
        halting: bool = False,
    ) -> None:
        self.run = run
        self.retry = retry or RetryPolicy()
        #: Whether a failure may halt the run (``runner.api.ItemCall.halting``).
        self.halting = halting
        self.gate = gate or Gate()
        self.group = group or current_group()
        self.timeout = timeout
        #: ``parallel=auto``: how many items may run at once now.
        self.limit = limit
        adaptive = limit if isinstance(limit, AdaptiveLimit) else None
        #: The attempts in flight and what the service's refusals taught (this process's).
        self.admission = Admission(adaptive, self.gate.sleep, lambda: self.gate.stopping)
        # A refused item waits alone; with parallel=auto it leaves its place meanwhile.
        self._alone = (
            self.gate.sleep
            if adaptive is None
            else lambda seconds: adaptive.aside(lambda: self.gate.sleep(seconds))
        )
        #: With a ``timeout``: how often an executor calls :meth:`overdue`.
        self.tick = None if timeout is None else min(timeout / 4, 0.25)
        #: For executors that run items in other processes.
        self.portable = Portable(SafeCall, run, self.retry, timeout, self.group.grace)
        # A command past the deadline gets SIGTERM, then SIGKILL after the group's grace:
        # the watchdog leaves it that long (and a moment) to end and be recorded as it does.
        self._patience = (timeout or 0.0) + self.group.grace + 0.5
        self._spaced = self.gate.spaced
        self._local = threading.local()
        self._slots: list[AttemptSlot] = []  # every thread's, for the watchdog

    def __call__(self, item: Item) -> Outcome:
        """The item's outcome, from any thread."""
        return self._decide(None, item)

    def bind(self) -> Callable[[Item], Outcome]:
        """The call for the calling thread only, for an executor's long-lived worker:
        the same outcomes, without looking up the thread's state at every item."""
        # The function itself, not the bound method: one call less per item.
        slot = None if self.timeout is None else self._slot()
        return functools.partial(SafeCall._decide, self, slot)

    @property
    def paced(self) -> bool:
        """Whether ``per_second`` spaces the starts (see :class:`runner.api.ItemCall`)."""
        return self._spaced

    def admit(self) -> bool:
        """Wait until an item may start (the gate); False: the run is stopping."""
        if self.gate.idle:
            return True
        try:
            self.gate.enter()
        except Stopped:
            return False
        return True

    def receive(self, outcome: Outcome) -> Outcome:
        """An outcome :attr:`portable` returned, in this process's clock; its rate-limit
        pauses that still run hold the gate (every start the driver hands out)."""
        offset = time.time() - clock()
        outcome.started -= offset
        outcome.finished -= offset
        # Attempts ran one after another from ``started``: each pause ends ``wait`` after
        # its attempt did.
        now, at = clock(), outcome.started
        for retry in outcome.retries:
            self._signal(retry["error"], at, at + retry["seconds"], now)
            at += retry["seconds"] + retry["wait"]
        # The last attempt started once the last wait ended.
        self._signal(outcome.error or {}, at, outcome.finished, now)
        return outcome

    def _signal(self, error: dict[str, Any], started: float, ended: float, now: float) -> None:
        """A refusal's pause (``error["pause"]`` seconds from ``ended``, when it has one) on
        the gate: held while it still runs, a rate-limit signal only once it is over; with
        the refused attempt's age (it began at ``started``)."""
        pause = error.get("pause")
        if pause is None:
            return
        message, age = error["message"][:120], now - started
        if ended + pause > now:
            self.gate.pause(ended + pause - now, message, age)
        else:
            self.gate.limited(message, age)

    def overdue(self, now: float | None = None) -> list[Outcome]:
        """Timed-out outcomes of the attempts running past their deadline, once each.

        An executor that can hand out an outcome while the item's thread still runs
        (the thread executor) calls this every :attr:`tick` seconds: the item is
        recorded as timed out at its deadline, and what the attempt returns later is
        dropped (``skipped``). Only with a ``timeout``.
        """
        now = clock() if now is None else now
        late = []
        for slot in list(self._slots):
            # The item first: the start read after it is its attempt's, or a later one's.
            try:
                item = slot.claim[0]
            except IndexError:
                continue  # nothing runs there
            began = slot.started
            if now - began <= self._patience:
                continue
            slot.late = item  # set first: its commands keep their deadline once it is removed
            try:
                slot.claim.remove(item)  # the attempt has not ended: the watchdog records it
            except ValueError:
                slot.late = None
                continue  # it ended meanwhile
            error = TimedOut(f"timed out after {self.timeout:g} s (the task is still running)")
            late.append(
                Outcome(
                    item.id, "failed", now - began, None, error_info(error), item.label, began, now
                )
            )
        return late

    def _slot(self) -> AttemptSlot:
        """The calling thread's attempt slot, registered with the watchdog once."""
        try:
            slot: AttemptSlot = self._local.slot
        except AttributeError:
            slot = self._local.slot = thread_attempt()
            self._slots.append(slot)
        return slot

    def _decide(self, slot: AttemptSlot | None, item: Item) -> Outcome:
        """The item's outcome: ``slot``, the calling thread's (found here when None)."""
        started = clock()
        retries: Any = ()  # a list once an attempt failed and another followed
        if group_var.get() is not self.group:
            group_var.set(self.group)  # later commands of this thread (or task) join it
        timeout = self.timeout
        claim = None
        try:
            if item.error is not None:
                raise BadInput(item.error)
            gate = self.gate
            if not gate.idle:
                if self._spaced:  # a pause moves the start times on: no check of it here
                    at = next(gate.times)
                    if not started - gate.burst <= at <= started:
                        started = gate.ticket(started, at)  # a sleep, or a burst reset
                else:
                    started = gate.enter(started)
            admission = self.admission
            if admission.active:  # a refusal came: wait for what it taught
                in_flight = admission.enter()
                started = clock()
            else:
                flight = admission.flight
                flight.append(None)
                in_flight = len(flight)
            if timeout is not None:
                if slot is None:
                    slot = self._slot()
                slot.started = started
                slot.timeout = timeout  # the thread's slot may have served another run
                claim = slot.claim
                claim.append(item)
            try:
                result = self.run(item)
            except RetryableError as first:
                admission.end(in_flight, started, first)
                if self.retry.attempts <= 1:
                    raise
                retries = []
                held = slot if claim is not None else None
                result = retrying(
                    functools.partial(self._attempt, item, held),
                    self.retry,
                    gate,
                    functools.partial(self._record_retry, retries, held),
                    first,
                    clock() - started,
                    self._alone,
                )
            except BaseException:
                admission.end(in_flight, started)
                raise
            else:
                if admission.active:
                    admission.end(in_flight, started)
                else:
                    admission.flight.pop()
            finished = clock()
            if timeout is not None and finished - started > timeout and not retries:
                took = finished - started
                raise TimedOut(f"timed out after {timeout:g} s (the task ran {took:.1f} s)")
        except (Stopped, CommandsStopped):
            # The run is stopping: an item that did not end by itself did not finish.
            finished = clock()
            if retries:  # failed with the error of the last attempt that ended
                outcome = self._failed(item, retries.pop()["error"], started, finished, retries)
            else:
                outcome = Outcome(item.id, "skipped", 0.0, None, None, item.label, started)
        except (Exception, SystemExit) as exc:
            finished = clock()
            pause = None
            if isinstance(exc, RetryableError) and exc.rate_limited:
                # The others go on under what the refusal taught (Admission); the wait is
                # recorded for a driver running the item elsewhere.
                pause = self.retry.wait_for(len(retries) + 1, exc)
            outcome = self._failed(item, error_info(exc, pause), started, finished, retries)
        except BaseException:  # Ctrl-C in a library caller: the thread's slot is freed
            if claim is not None:
                with contextlib.suppress(IndexError):
                    claim.pop()
                assert slot is not None  # the claim is its slot's
                slot.late = None
            raise
        else:
            outcome = Outcome(
                item.id, "ok", finished - started, result, None, item.label, started, finished
            )
            if retries:
                outcome.retries = tuple(retries)
        if claim is not None:
            try:
                claim.pop()  # no later command of this thread inherits the deadline
            except IndexError:  # recorded as timed out at its deadline: this one is dropped
                assert slot is not None  # the claim is its slot's
                slot.late = None
                return Outcome(item.id, "skipped", 0.0, None, None, item.label, started)
        return outcome

    @staticmethod
    def _failed(
        item: Item, error: dict[str, Any], began: float, end: float, retries: Any
    ) -> Outcome:
        """A failed outcome; ``retries``, the failed attempts before the last one."""
        return Outcome(
            item.id, "failed", end - began, None, error, item.label, began, end, tuple(retries)
        )

    def _attempt(self, item: Item, slot: AttemptSlot | None) -> Any:
        """One attempt, the way every attempt after the first runs (see ``_decide``);
        ``slot``: the thread's, with a timeout."""
        timeout = self.timeout
        if slot is not None and slot.late is not None:  # recorded by the watchdog: no more
            raise TimedOut(f"timed out after {timeout:g} s (recorded at its deadline)")
        admission = self.admission
        in_flight = admission.begin()  # a wait for the learned limits is not the attempt's
        began = clock()
        if slot is not None:
            slot.started, slot.timeout = began, math.inf if timeout is None else timeout
        try:
            result = self.run(item)
        except BaseException as exc:
            admission.end(in_flight, began, exc)
            raise
        admission.end(in_flight, began)
        if timeout is not None and clock() - began > timeout:
            raise TimedOut(f"timed out after {timeout:g} s (the task ran {clock() - began:.1f} s)")
        return result

    @staticmethod
    def _record_retry(
        retries: list[dict[str, Any]],
        slot: AttemptSlot | None,
        error: RetryableError,
        seconds: float,
        wait: float,
    ) -> None:
        """A failed attempt that another follows, after ``wait`` s."""
        retries.append(
            {"error": error_info(error, wait), "seconds": round(seconds, 6), "wait": round(wait, 3)}
        )
        if slot is not None:
            slot.started = math.inf  # waiting, not running: nothing for the watchdog to time
