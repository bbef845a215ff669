"""The safe wrapper decides every outcome and never lets a task's error escape."""

from __future__ import annotations

import sys

import pytest

from runner.api import Item, TaskFailure
from runner.wrapper import make_safe_call


def test_result_becomes_ok_outcome() -> None:
    """A returned value becomes an ok outcome carrying the result and timings."""
    outcome = make_safe_call(lambda item: {"double": item["n"] * 2})(Item("a", {"n": 4}))
    assert outcome.status == "ok"
    assert outcome.result == {"double": 8}
    assert outcome.error is None
    assert outcome.finished >= outcome.started
    assert outcome.seconds == pytest.approx(outcome.finished - outcome.started)


def test_exception_becomes_failed_outcome_with_traceback() -> None:
    """An exception becomes a failed outcome with its type, message and traceback."""

    def boom(item: Item) -> None:
        raise ZeroDivisionError(f"cannot divide {item.id}")

    outcome = make_safe_call(boom)(Item("x"))
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error["type"] == "ZeroDivisionError"
    assert outcome.error["message"] == "cannot divide x"
    assert "in boom" in outcome.error["traceback"]


def test_task_failure_has_no_traceback() -> None:
    """An expected TaskFailure is journaled by its message only."""

    def fail(item: Item) -> None:
        raise TaskFailure("exit code 3")

    outcome = make_safe_call(fail)(Item("x"))
    assert outcome.error == {"type": "TaskFailure", "message": "exit code 3", "traceback": ""}


def test_system_exit_is_a_failure_not_the_end_of_the_run() -> None:
    """A task calling sys.exit fails its item instead of ending the process."""
    outcome = make_safe_call(lambda item: sys.exit(4))(Item("x"))
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error["type"] == "SystemExit"


def test_keyboard_interrupt_is_not_swallowed() -> None:
    """Ctrl-C inside a task propagates so the run can stop."""

    def interrupted(item: Item) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_safe_call(interrupted)(Item("x"))


def test_an_item_marked_bad_fails_without_running_the_task() -> None:
    """An item with error set fails with BadInput and its message; the task is not called."""
    calls: list[str] = []
    outcome = make_safe_call(lambda item: calls.append(item.id))(
        Item("line 3", {}, error="line 3 is not valid JSON: Expecting value")
    )
    assert calls == [] and outcome.status == "failed" and outcome.error is not None
    assert outcome.error["type"] == "BadInput"
    assert outcome.error["message"] == "line 3 is not valid JSON: Expecting value"
    assert outcome.error["traceback"] == ""
