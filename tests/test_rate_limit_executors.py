"""``rate_limit.per_second`` holds on every executor: in any one-second window, at most
``per_second`` starts, plus one (README, "Retries, rate limits, timeouts").

Each item writes the wall-clock time it started into a file (it may run in another
process or on a Dask worker), so the bound is checked on what the task saw, whatever
the executor batched, queued or sent ahead.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.api import Executor, Item, RunContext
from runner.config import registry
from runner.execute.policies import Gate
from runner.execute.safecall import SafeCall
from tests.worker_tasks import note_start

PER_SECOND = 5
ITEMS = 25
PARALLEL = 8
#: Per executor: its parameters (Dask: the issue's two worker processes, its own cluster).
EXECUTORS: dict[str, dict[str, Any]] = {
    "sequential": {},
    "thread": {},
    "process": {},
    "dask": {"workers": 2},
}


def items(count: int, starts: Path) -> Iterator[Item]:
    for index in range(count):
        yield Item(str(index), {"index": index, "starts": str(starts)})


def busiest_second(starts: list[float]) -> int:
    """The most starts in any window of one second (each start opens one)."""
    starts = sorted(starts)
    return max(bisect.bisect_left(starts, at + 1.0) - i for i, at in enumerate(starts))


@pytest.fixture(params=list(EXECUTORS))
def executor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Executor]:
    if request.param == "dask":
        pytest.importorskip("distributed")
    executor: Executor = registry.load_plugin("executor", request.param)(**EXECUTORS[request.param])
    setup = getattr(executor, "setup", None)
    if setup is not None:
        setup(RunContext(output_dir=tmp_path, config={}, parallel=PARALLEL))
    yield executor
    executor.shutdown(wait=True, timeout=10)


def test_busiest_second_counts_the_starts_of_the_fullest_window() -> None:
    """The helper the bound rests on: 0.0 .. 0.9 and 1.5 put six starts in [0.5, 1.5)."""
    assert busiest_second([0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.5]) == 6
    assert busiest_second([0.0, 1.0, 2.0]) == 1


def test_per_second_holds_in_every_one_second_window(executor: Executor, tmp_path: Path) -> None:
    """25 quick items, 8 at once, at most 5 per second: no one-second window holds more
    than 6 starts, and the run is not held back far below the cap either."""
    path = tmp_path / "starts"
    call = SafeCall(note_start, gate=Gate(per_second=PER_SECOND))
    outcomes = list(executor.map(call, items(ITEMS, path), PARALLEL))
    assert [o.status for o in outcomes] == ["ok"] * ITEMS, [o.error for o in outcomes]
    starts = [float(line) for line in path.read_text().split()]
    assert len(starts) == ITEMS
    assert busiest_second(starts) <= PER_SECOND + 1, sorted(s - min(starts) for s in starts)
    # 24 spacings of 0.2 s: 4.8 s at the cap; twice that and 5 s more is "held back".
    assert max(starts) - min(starts) <= 2 * (ITEMS - 1) / PER_SECOND + 5
