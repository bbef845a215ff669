"""The safe wrapper decides every outcome and never lets a task's error escape."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.api import Item, Outcome, RetryableError, TaskFailure
from runner.execute.commands import CommandGroup, run_command
from runner.execute.policies import RetryPolicy
from runner.execute.safecall import SafeCall


def test_result_becomes_ok_outcome() -> None:
    """A returned value becomes an ok outcome carrying the result and timings."""
    outcome = SafeCall(lambda item: {"double": item["n"] * 2})(Item("a", {"n": 4}))
    assert outcome.status == "ok"
    assert outcome.result == {"double": 8}
    assert outcome.error is None
    assert outcome.finished >= outcome.started
    assert outcome.seconds == pytest.approx(outcome.finished - outcome.started)


def test_exception_becomes_failed_outcome_with_traceback() -> None:
    """An exception becomes a failed outcome with its type, message and traceback."""

    def boom(item: Item) -> None:
        raise ZeroDivisionError(f"cannot divide {item.id}")

    outcome = SafeCall(boom)(Item("x"))
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error["type"] == "ZeroDivisionError"
    assert outcome.error["message"] == "cannot divide x"
    assert "in boom" in outcome.error["traceback"]


def test_task_failure_has_no_traceback() -> None:
    """An expected TaskFailure is journaled by its message only."""

    def fail(item: Item) -> None:
        raise TaskFailure("exit code 3")

    outcome = SafeCall(fail)(Item("x"))
    assert outcome.error == {"type": "TaskFailure", "message": "exit code 3", "traceback": ""}


def test_system_exit_is_a_failure_not_the_end_of_the_run() -> None:
    """A task calling sys.exit fails its item instead of ending the process."""
    outcome = SafeCall(lambda item: sys.exit(4))(Item("x"))
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error["type"] == "SystemExit"


def test_keyboard_interrupt_is_not_swallowed() -> None:
    """Ctrl-C inside a task propagates so the run can stop."""

    def interrupted(item: Item) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        SafeCall(interrupted)(Item("x"))


def test_an_item_marked_bad_fails_without_running_the_task() -> None:
    """An item with error set fails with BadInput and its message; the task is not called."""
    calls: list[str] = []
    outcome = SafeCall(lambda item: calls.append(item.id))(
        Item("line 3", {}, error="line 3 is not valid JSON: Expecting value")
    )
    assert calls == [] and outcome.status == "failed" and outcome.error is not None
    assert outcome.error["type"] == "BadInput"
    assert outcome.error["message"] == "line 3 is not valid JSON: Expecting value"
    assert outcome.error["traceback"] == ""


def test_with_per_second_a_pause_holds_the_next_starts_then_spaces_them() -> None:
    """With rate_limit.per_second, the wrapper's fast path draws start times: a
    rate-limit pause moves them on, so no item starts before the pause ends and the
    starts after it are still spaced by the cap. (A refusal in this process teaches the
    limits instead of pausing: the pause is a driver's, for an item refused in another
    process, whose record carries the wait.)"""
    from runner.execute.policies import Gate

    def task(item: Item) -> None:
        if item.id == "limited":
            raise RetryableError("429 Too Many Requests", 0.3, rate_limited=True)

    call = SafeCall(task, gate=Gate(per_second=20))
    first = call(Item("limited"))
    assert first.status == "failed" and first.error is not None
    pause = first.error["pause"]
    assert pause >= 0.3  # at least what the service asked for
    call.gate.pause(pause - (time.perf_counter() - first.finished), "429 elsewhere")
    time.sleep(0.2)  # within the pause, and long enough for the cap's next start to be due
    later = [call(Item(str(n))) for n in range(4)]
    assert all(outcome.status == "ok" for outcome in later)
    # Start times come on the cap's grid from the pause's end (a start may come late
    # on a busy machine, never early).
    for k, outcome in enumerate(later):
        assert outcome.started >= first.finished + pause + k * 0.05 - 0.002, k


def _watched(
    call: SafeCall, *items: Item, bind: bool = False
) -> tuple[list[Outcome], list[Outcome]]:
    """Call ``call`` on ``items`` in a worker thread (bound to it with ``bind``) while this
    thread plays the thread executor's collector, asking ``overdue()`` every 50 ms until
    the worker ends: (what the calls returned, what the watchdog handed out)."""
    returned: list[Outcome] = []

    def worker() -> None:
        run = call.bind() if bind else call
        returned.extend(run(item) for item in items)

    thread = threading.Thread(target=worker)
    thread.start()
    late: list[Outcome] = []
    while thread.is_alive():
        late += call.overdue()
        time.sleep(0.05)
    thread.join()
    late += call.overdue()
    return returned, late


# A deadline of 0.2 s and a grace of 0.1 s: the watchdog records an attempt still running
# after 0.8 s (the deadline, the grace and half a second for a command to be recorded).
def _timed(task: Callable[[Item], object], retry: RetryPolicy | None = None) -> SafeCall:
    return SafeCall(task, retry, group=CommandGroup(grace=0.1), timeout=0.2)


@pytest.mark.parametrize("bind", [False, True])
def test_an_attempt_past_its_deadline_is_recorded_once_by_the_watchdog(bind: bool) -> None:
    """A Python task cannot be stopped: ``overdue()`` hands out its timed-out outcome
    once the deadline (plus the commands' grace) has passed, once, and what the attempt
    returns later is dropped as skipped. The same through ``bind()``, the per-thread
    wrapper the thread executor uses."""

    def task(item: Item) -> str:
        if item.id == "slow":
            time.sleep(1.5)
        return item.id

    returned, late = _watched(_timed(task), Item("fast"), Item("slow"), bind=bind)
    assert [(o.id, o.status) for o in late] == [("slow", "failed")]
    assert late[0].error is not None and late[0].error["type"] == "TimedOut"
    assert [(o.id, o.status) for o in returned] == [("fast", "ok"), ("slow", "skipped")]


def test_a_command_an_overdue_task_starts_after_its_deadline_does_not_run(
    tmp_path: Path,
) -> None:
    """Once the watchdog has recorded an attempt as timed out, the task's thread still
    runs; a command it starts then meets the attempt's deadline (already past) and is
    not run, rather than running with no deadline at all."""
    ran = tmp_path / "ran"  # the command's first act: it exists once the command started
    seen: list[bool] = []

    def task(item: Item) -> None:
        time.sleep(1.2)  # past the watchdog's 0.8 s
        seen.append(run_command(["sh", "-c", 'touch "$0"; sleep 5', str(ran)]).timed_out)

    returned, late = _watched(_timed(task), Item("stuck"))
    assert [o.id for o in late] == ["stuck"]
    assert returned[0].status == "skipped"
    assert seen == [True]
    assert not ran.exists()  # the command never started


def test_a_thread_serving_two_runs_gives_each_attempt_its_own_runs_timeout() -> None:
    """One thread (a Dask worker's, or the main one running runs in turn) calls the
    wrappers of two runs: a command of the run with the short timeout still stops at it."""
    stopped: list[bool] = []

    def task(item: Item) -> None:
        if item.id == "sleep":
            stopped.append(run_command(["sleep", "2"]).timed_out)

    short = SafeCall(task, group=CommandGroup(grace=0.1), timeout=0.3)
    long = SafeCall(task, group=CommandGroup(grace=0.1), timeout=30)
    for call in (short, long):
        assert call(Item("warm")).status == "ok"  # each registers the thread's slot
    assert short(Item("sleep")).status == "failed"
    assert stopped == [True]  # stopped at the short run's deadline, not after its 2 s


def test_the_watchdog_does_not_time_an_item_waiting_to_be_retried() -> None:
    """While an item waits for its next attempt (a service's Retry-After longer than the
    timeout), nothing runs: the watchdog leaves it alone and the retry's success counts."""
    calls = []

    def task(item: Item) -> str:
        calls.append(item.id)
        if len(calls) == 1:
            raise RetryableError("busy", 1.2)  # longer than the watchdog's 0.8 s
        return "done"

    returned, late = _watched(_timed(task, RetryPolicy(attempts=2, backoff=0.01)), Item("x"))
    assert late == []
    [outcome] = returned
    assert outcome.status == "ok" and outcome.result == "done" and len(outcome.retries) == 1


def test_an_item_recorded_at_its_deadline_gets_no_further_attempt() -> None:
    """Once the watchdog has recorded an attempt as timed out, a retryable error it then
    raises starts no other attempt: the item's outcome is already handed out."""
    calls = []

    def task(item: Item) -> None:
        calls.append(item.id)
        time.sleep(1.2)  # past the watchdog's 0.8 s
        raise RetryableError("busy", 0.01)

    returned, late = _watched(_timed(task, RetryPolicy(attempts=3, backoff=0.01)), Item("x"))
    assert [o.id for o in late] == ["x"]
    assert returned[0].status == "skipped"
    assert calls == ["x"]  # one attempt only
