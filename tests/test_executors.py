"""The executor contract suite: every executor passes the same behaviour tests."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from runner.api import Executor, Item
from runner.wrapper import make_safe_call
from runner_plugins.executors import SequentialExecutor, ThreadExecutor

EXECUTORS = {"sequential": SequentialExecutor, "thread": ThreadExecutor}


@pytest.fixture(params=sorted(EXECUTORS))
def executor(request: pytest.FixtureRequest) -> Executor:
    executor: Executor = EXECUTORS[request.param]()
    return executor


def items(count: int) -> Iterator[Item]:
    for index in range(count):
        yield Item(str(index), {"index": index})


def test_exception_in_one_item_isolated(executor: Executor) -> None:
    """Items that raise fail alone; every other item still runs and succeeds."""

    def task(item: Item) -> int:
        if item["index"] % 7 == 0:
            raise RuntimeError(f"bad {item.id}")
        return int(item["index"])

    outcomes = list(executor.map(make_safe_call(task), items(200), 8))
    assert len(outcomes) == 200
    failed = {o.id for o in outcomes if o.status == "failed"}
    assert failed == {str(i) for i in range(0, 200, 7)}
    assert all(o.result == int(o.id) for o in outcomes if o.status == "ok")
    assert all(
        o.error and o.error["message"] == f"bad {o.id}" for o in outcomes if o.status == "failed"
    )


def test_exact_counts_with_64_threads_and_10k_items(executor: Executor) -> None:
    """Every one of 10k items yields exactly one outcome under 64 workers."""
    calls = Counter[str]()
    lock = threading.Lock()

    def task(item: Item) -> None:
        with lock:
            calls[item.id] += 1
        if item["index"] % 10 == 3:
            raise ValueError("planned")

    outcomes = list(executor.map(make_safe_call(task), items(10_000), 64))
    seen = Counter(o.id for o in outcomes)
    assert len(seen) == 10_000 and set(seen.values()) == {1}
    assert set(calls.values()) == {1} and len(calls) == 10_000
    statuses = Counter(o.status for o in outcomes)
    assert statuses == {"ok": 9_000, "failed": 1_000}


def test_bounded_in_flight_with_a_million_item_generator(executor: Executor) -> None:
    """Items are pulled lazily: the gap between pulled and finished stays small."""
    pulled = 0
    parallel = 6

    def source() -> Iterator[Item]:
        nonlocal pulled
        for index in range(1_000_000):
            pulled += 1
            yield Item(str(index))

    consumed = 0
    widest = 0
    for _ in executor.map(make_safe_call(lambda item: None), source(), parallel):
        consumed += 1
        widest = max(widest, pulled - consumed)
    assert consumed == 1_000_000
    if isinstance(executor, ThreadExecutor):
        # A chunk per worker, a full queue of batches, and the batch being yielded.
        queued = parallel * (executor.queue_factor + 1) + 1
        assert 0 < widest <= queued * executor.max_chunk
    else:
        assert widest <= 1


def test_order_independence(executor: Executor) -> None:
    """Outcomes may arrive in any order, yet each item's result is its own."""

    def task(item: Item) -> int:
        time.sleep(0.001 * (item["index"] % 5))
        return int(item["index"]) ** 2

    outcomes = list(executor.map(make_safe_call(task), items(60), 6))
    assert {o.id: o.result for o in outcomes} == {str(i): i * i for i in range(60)}


def test_parallel_workers_overlap(executor: Executor) -> None:
    """The thread executor runs items at once; the sequential one one at a time."""
    parties = 4 if isinstance(executor, ThreadExecutor) else 1
    # The first 4 items wait for each other: they only get through if 4 run at once
    # (each worker's first chunk is one item).
    barrier = threading.Barrier(parties)
    active = 0
    most = 0
    lock = threading.Lock()

    def task(item: Item) -> None:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        if item["index"] < 4:
            barrier.wait(timeout=30)
        with lock:
            active -= 1

    outcomes = list(executor.map(make_safe_call(task), items(24), 4))
    assert [o.status for o in outcomes] == ["ok"] * 24
    assert most == parties


def test_source_error_propagates_after_running_items(executor: Executor) -> None:
    """A source that fails part-way raises its error from map, after every earlier item."""

    def source() -> Iterator[Item]:
        yield from items(50)
        raise ValueError("line 51 is not valid JSON")

    seen = []
    with pytest.raises(ValueError, match="line 51"):
        for outcome in executor.map(make_safe_call(lambda item: None), source(), 4):
            seen.append(outcome.id)
    assert sorted(seen, key=int) == [str(i) for i in range(50)]


def test_keyboard_interrupt_in_a_task_stops_the_map(executor: Executor) -> None:
    """Ctrl-C raised inside a task reaches the caller instead of being swallowed."""

    def task(item: Item) -> None:
        if item["index"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        list(executor.map(make_safe_call(task), items(1000), 4))


def test_empty_and_single_item_sources(executor: Executor) -> None:
    """No items yields nothing; one item runs once."""
    assert list(executor.map(make_safe_call(lambda item: 1), items(0), 8)) == []
    [only] = executor.map(make_safe_call(lambda item: 1), items(1), 8)
    assert only.result == 1 and only.id == "0"
