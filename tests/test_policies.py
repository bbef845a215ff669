"""runner.execute.policies: halt thresholds, retry waits, the rate-limit gate, the retry loop."""

from __future__ import annotations

import threading
import time

import pytest

from runner.api import RetryableError
from runner.execute.policies import Gate, HaltPolicy, RetryPolicy, Stopped, retrying


@pytest.mark.parametrize(
    ("value", "count", "fraction"),
    [(None, None, None), (3, 3, None), ("3", 3, None), ("10%", None, 0.1), ("100%", None, 1.0)],
)
def test_halt_reads_a_count_or_a_percentage(value: object, count: object, fraction: object) -> None:
    """on_failures is a count, a percentage string, or null (never halt)."""
    policy = HaltPolicy.parse(value, "soon")
    assert (policy.count, policy.fraction) == (count, fraction)


@pytest.mark.parametrize("value", [0, -1, "0%", "101%", "x", "1.5", True, "nan%"])
def test_a_bad_halt_value_is_named(value: object) -> None:
    """A bad on_failures names the value and the valid forms."""
    with pytest.raises(ValueError, match=r"halt.on_failures=.* give a count >= 1"):
        HaltPolicy.parse(value, "soon")


def test_a_bad_halt_mode_lists_the_modes() -> None:
    """halt.mode other than soon or now is refused with the choices."""
    with pytest.raises(ValueError, match=r"halt.mode='later' is invalid. Valid choices: soon, now"):
        HaltPolicy.parse(2, "later")


def test_halt_thresholds() -> None:
    """A count halts at that many failures; a percentage of all items, else of those done."""
    assert not HaltPolicy.parse(2, "soon").reached(1, 10, 100)
    assert HaltPolicy.parse(2, "soon").reached(2, 10, 100)
    tenth = HaltPolicy.parse("10%", "now")
    assert not tenth.reached(9, 20, 100) and tenth.reached(10, 20, 100)
    assert tenth.reached(2, 20, None) and not tenth.reached(1, 20, None)
    assert not HaltPolicy.parse(None, "soon").reached(1000, 1000, 1000)


def test_retry_waits_grow_are_jittered_capped_and_honour_the_service() -> None:
    """backoff * 2**(n-1), times 0.5..1, at most max_wait; a longer Retry-After is kept, up
    to max_wait too (no single wait is longer)."""
    policy = RetryPolicy(attempts=5, backoff=1.0, max_wait=3.0)
    plain = RetryableError("busy")
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 3.0), (4, 3.0)):
        waits = [policy.wait_for(attempt, plain) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
    assert policy.wait_for(1, RetryableError("429", wait=2.5)) == 2.5
    assert policy.wait_for(1, RetryableError("429", wait=30.0)) == 3.0


def test_retrying_records_each_failed_attempt_then_succeeds() -> None:
    """After a first failure, one more failure then a success: two records, the result."""
    calls: list[int] = [1]  # the first attempt already ran and failed
    records: list[tuple[str, float]] = []

    def run() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RetryableError(f"try {len(calls)}")
        return "done"

    result = retrying(
        run,
        RetryPolicy(attempts=3, backoff=0.001),
        Gate(),
        lambda error, seconds, wait: records.append((str(error), wait)),
        RetryableError("try 1"),
        0.01,
    )
    assert result == "done" and len(calls) == 3
    assert [r[0] for r in records] == ["try 1", "try 2"]


def test_the_last_attempt_is_the_error_not_a_retry() -> None:
    """With every attempt failing, each failure but the last is recorded, the last raised."""
    calls: list[int] = [1]
    records: list[str] = []

    def always() -> None:
        calls.append(1)
        raise RetryableError(f"busy {len(calls)}")

    with pytest.raises(RetryableError, match="busy 3"):
        retrying(
            always,
            RetryPolicy(attempts=3, backoff=0.001),
            Gate(),
            lambda error, *_: records.append(str(error)),
            RetryableError("busy 1"),
            0.01,
        )
    assert len(calls) == 3 and records == ["busy 1", "busy 2"]


def test_a_non_retryable_error_is_not_retried() -> None:
    """A ValueError on the second attempt ends the retries at once."""
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("bug")

    with pytest.raises(ValueError):
        retrying(
            broken,
            RetryPolicy(attempts=5, backoff=0.001),
            Gate(),
            lambda *a: None,
            RetryableError("first"),
            0.01,
        )
    assert len(calls) == 1


def test_a_pause_holds_every_start_until_it_ends() -> None:
    """After pause(s), enter() returns no sooner than the pause's end."""
    gate = Gate()
    assert gate.idle
    gate.pause(0.3, "429")
    assert not gate.idle and gate.pauses == 1
    began = time.monotonic()
    gate.enter()
    assert time.monotonic() - began >= 0.25
    gate.pause(0.01, "shorter")  # a pause within an ended one is a new pause
    assert gate.pauses == 2


def test_per_second_spaces_the_starts() -> None:
    """At 20 starts per second, six starts span at least a quarter of a second."""
    gate = Gate(per_second=20)
    began = time.monotonic()
    for _ in range(6):
        gate.enter()
    assert time.monotonic() - began >= 0.24


def test_stop_wakes_every_waiter() -> None:
    """stop() ends a pause for every thread waiting in it, with Stopped."""
    gate = Gate()
    gate.pause(60, "long")
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            gate.enter()
        except Stopped as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wait) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    gate.stop()
    for thread in threads:
        thread.join(5)
    assert len(errors) == 3


class _Recording(Gate):
    """A gate that records each start time it hands out (when an attempt is due), before
    the thread sleeps until it: what the cap is about, whatever the scheduler does."""

    def __init__(self, per_second: float) -> None:
        super().__init__(per_second)
        self.drawn: list[float] = []

    def ticket(self, now: float, start: float) -> float:
        self.drawn.append(start)
        return super().ticket(now, start)


def test_a_pause_keeps_the_per_second_spacing_of_starts_already_drawn() -> None:
    """Threads waiting for their start when a short pause comes still start at their
    times; the starts drawn after the pause come after those, so the cap holds across
    the pause (every start at least 1/per_second after the one before it in order)."""
    gate = _Recording(per_second=10)
    first = [threading.Thread(target=gate.enter) for _ in range(3)]
    for thread in first:
        thread.start()
    deadline = time.monotonic() + 30
    while len(gate.drawn) < 3 and time.monotonic() < deadline:  # all three hold a start
        time.sleep(0.001)
    assert len(gate.drawn) == 3
    gate.pause(0.05, "429")  # shorter than the starts already drawn (+0.1 s, +0.2 s)
    later = [threading.Thread(target=gate.enter) for _ in range(2)]
    for thread in later:
        thread.start()
    for thread in first + later:
        thread.join()
    starts = sorted(gate.drawn)
    assert len(starts) == 5
    for k, at in enumerate(starts):
        assert at >= starts[0] + k * 0.1 - 1e-9, (k, [round(s - starts[0], 3) for s in starts])
