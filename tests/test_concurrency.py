"""parallel=auto (runner/execute/concurrency.py): real threads, real items, a real HTTP service."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.api import Item
from runner.config.settings import settings_from
from runner.execute.concurrency import AdaptiveLimit
from runner.execute.safecall import SafeCall
from runner_plugins.executors.thread import ThreadExecutor
from tests.browser import rendered_dom
from tests.conftest import Compose, RunCli
from tests.http_service import serve


def items(count: int) -> Iterator[Item]:
    for index in range(count):
        yield Item(str(index), {"index": index})


def run_auto(task: object, count: int, maximum: int = 64) -> tuple[AdaptiveLimit, int]:
    """Run ``count`` items through the thread executor with an adaptive limit, feeding it
    as the run loop does; the limit and the highest level it reached."""
    limit = AdaptiveLimit(1, maximum)
    call = SafeCall(task, limit=limit)  # type: ignore[arg-type]
    for outcome in ThreadExecutor().map(call, items(count), maximum):
        assert outcome.status == "ok", outcome.error
        limit.observe(outcome.seconds)
    return limit, max(level for _, level, _ in limit.changes)


def test_a_pure_latency_task_rises_to_auto_max() -> None:
    """Items that only wait gain from every doubling: the limit starts at 1, climbs by
    doublings and reaches auto.max, where it stays. (Which windows a busy machine makes
    look flat, and so which doublings are tried twice, is the machine's, not the test's.)"""
    limit, highest = run_auto(lambda item: time.sleep(0.05), 2500, maximum=32)
    assert highest == 32 and limit.current == 32
    levels = [level for _, level, _ in limit.changes]
    assert levels[0] == 1
    first_top = levels.index(32)
    rises = [(a, b) for a, b in itertools.pairwise(levels[: first_top + 1]) if b > a]
    assert rises and all(b == 2 * a for a, b in rises)


def test_no_more_items_run_at_once_than_the_limit_allows() -> None:
    """Counted inside the task: never more running than the highest level the limit
    reached, which never passes auto.max, and rate-limit cuts take hold."""
    lock = threading.Lock()
    running = [0, 0]

    def task(item: Item) -> None:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1

    _, highest = run_auto(task, 1500, maximum=6)
    assert 1 < highest <= 6 and running[1] <= highest


def test_a_task_whose_throughput_does_not_grow_settles_at_the_bottom() -> None:
    """A GIL-bound task (or a service at capacity) finishes 100 items a second whatever
    the limit: the first doubling gains nothing, so the limit goes back to the best level
    below it and keeps there, trying the ceiling again only now and then.

    The throughput is simulated on a clock of the test's own, so the decisions under
    test do not depend on how busy the machine is (real threads on two cores measure
    windows that differ by a third under load).
    """
    now = [1000.0]
    limit = AdaptiveLimit(1, 64, clock=lambda: now[0])
    for _ in range(3000):  # 30 s of items finishing one every 10 ms
        now[0] += 0.01
        limit.observe(limit.current * 0.01)  # latency grows with the items running at once
    assert [level for _, level, _ in limit.changes[:3]] == [1, 2, 1]  # a doubling, undone
    assert "no gain" in limit.changes[2][2]
    assert max(level for _, level, _ in limit.changes) == 2  # only the ceiling is retried
    assert limit.settled() == 1


def _climb_after_a_cut(latency_of: Callable[[int], float], seed: int) -> AdaptiveLimit:
    """A run on a clock of the test's own: started at 32, cut to 24 by a refusal (so the
    climb by ones begins), then 20,000 items finishing at random (Poisson) at ``level /
    latency`` a second, each taking about ``latency_of(level)``: a window's throughput is
    as noisy as a real one's (some 10%), its mean latency is not."""
    rng = random.Random(seed)
    now = [1000.0]
    limit = AdaptiveLimit(1, 64, start=32, clock=lambda: now[0])
    limit.rate_limited("HTTP 429")
    for _ in range(20_000):
        latency = latency_of(limit.current)
        now[0] += rng.expovariate(limit.current / latency)
        limit.observe(latency * rng.uniform(0.97, 1.03))
    return limit


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_more_among_many_is_judged_by_the_items_times(seed: int) -> None:
    """Above 20 at once, one more adds less to the throughput than a window's noise. A
    service that takes 150 ms however many it serves, up to 48 (queueing past them), is
    climbed by ones to its 48; work whose items each take longer by the share added (a
    resource serving 200 a second) is not climbed."""
    free = _climb_after_a_cut(lambda level: 0.15 * max(1.0, level / 48), seed)
    assert 46 <= free.settled() <= 52, free.changes[-5:]
    saturated = _climb_after_a_cut(lambda level: level / 200, seed)
    assert saturated.settled() <= 32, saturated.changes[-5:]


def test_a_rate_limit_cuts_the_limit_at_once_and_only_once_per_window() -> None:
    """A rate-limit signal that does not say how many were in flight (an item refused in
    another process, through the gate) during slow start cuts to 3/4 of the level;
    signals right after it count but cut nothing more; a later one takes one off. (One
    refused here cuts to what was in flight: tests/test_admission.py.)"""
    limit = AdaptiveLimit(1, 64)
    limit.current = 8
    limit.rate_limited("HTTP 429")
    limit.rate_limited("HTTP 429")  # from requests started before the cut
    assert limit.current == 6 and limit.limited == 2
    limit._holdoff_until = 0.0
    limit.rate_limited("HTTP 429")
    assert limit.current == 5
    assert [why.startswith("rate limited at") for _, _, why in limit.changes[1:]] == [True, True]


def test_a_refusal_from_before_the_limit_fell_cuts_nothing_more() -> None:
    """Refusals reported from another process say how long ago their attempt started:
    one started before the limit last fell was answered to the level already cut for
    it (with a Retry-After of 1 s, a Dask worker's refusals arrive a second or more
    late); one started after it still cuts."""
    now = [100.0]
    limit = AdaptiveLimit(1, 64, start=64, clock=lambda: now[0])
    limit.signalled("HTTP 429", age=0.1)  # slow start: to 3/4
    assert limit.current == 48
    now[0] += 1.5  # past the hold-off after the cut
    limit.signalled("HTTP 429", age=1.6)  # started at 99.9: before the cut
    limit.signalled("HTTP 429", age=1.55)
    assert limit.current == 48 and limit.limited == 3
    limit.signalled("HTTP 429", age=0.5)  # started at 101.0: after it
    assert limit.current == 47
    now[0] += 1.0
    limit.signalled("HTTP 429", age=0.2)
    assert limit.current == 46
    limit.signalled("HTTP 429")  # no age: the hold-off alone (within it: nothing)
    assert limit.current == 46


def test_acquire_holds_workers_to_the_current_limit_and_stop_releases_them() -> None:
    """No more places than the limit; stop() lets every waiter go, refused."""
    limit = AdaptiveLimit(2, 4)
    assert limit.acquire() and limit.acquire()
    assert limit.running == 2
    limit.stop()
    assert limit.acquire() is False
    with pytest.raises(ValueError, match=r"auto\.min=3"):
        AdaptiveLimit(3, 2)


@pytest.mark.parametrize(
    ("overrides", "first"),
    [([], 4), (["auto.start=1"], 1), (["auto.max=2"], 2), (["auto.min=6", "auto.max=8"], 6)],
)
def test_auto_begins_at_auto_start_held_within_its_range(
    compose_config: Compose, overrides: list[str], first: int
) -> None:
    """auto.start (4) is where the climb begins; auto.min and auto.max hold it."""
    settings = settings_from(compose_config("parallel=auto", *overrides))
    assert settings.auto is not None
    limit = AdaptiveLimit(*settings.auto)
    assert limit.current == first and limit.changes == [(0.0, first, "start")]


@pytest.mark.slow
def test_auto_finds_a_services_capacity_and_stops_knocking(run_cli: RunCli) -> None:
    """Against a service that answers 429 past 6 requests at once, parallel=auto settles
    at its capacity, every item succeeds, and after the first 10 s at most 5% of the
    requests are refused."""
    with serve(latency=0.1, capacity=6, retry_after=0.5) as service:
        started = time.monotonic()
        result = run_cli(
            "parallel=auto", "task=http", f"task.url='{service.url}/{{id}}'",
            "source.count=1200", "retry.attempts=20", "retry.backoff=0.1",
            "postprocessor=none", timeout=300,
        )  # fmt: skip
        late = [status for at, status in service.answers if at - started > 10]
        most = service.most
    assert result.returncode == 0, result.output
    summary = result.summary()
    assert summary["succeeded"] == 1200
    concurrency = summary["concurrency"]
    assert concurrency["mode"] == "auto" and concurrency["settled"] in (5, 6)
    assert late and late.count(429) / len(late) <= 0.05
    assert most <= 9  # it never ran far past the capacity
    assert "parallel=auto: " in result.output  # every change is logged with its reason


def test_summary_and_report_record_the_concurrency(run_app: RunCli, tmp_path: Path) -> None:
    """summary.json holds every change with its reason and the settled level; the run's
    page draws the limit over time."""
    result = run_app("parallel=auto", "auto.max=8", "source.count=300", "task.seconds=0.02")
    assert result.returncode == 0, result.output
    concurrency = result.summary()["concurrency"]
    assert (concurrency["mode"], concurrency["min"], concurrency["max"]) == ("auto", 1, 8)
    levels = [change["parallel"] for change in concurrency["changes"]]
    assert levels[0] == 4 and max(levels) <= 8 and concurrency["settled"] in levels
    assert all(change["reason"] for change in concurrency["changes"])
    dom = rendered_dom(result.run_dir / "report.html", tmp_path)
    assert "Concurrency (parallel=auto)" in dom and 'class="limit"' in dom
    fixed = run_app("parallel=3", "source.count=5", "task.seconds=0")
    assert fixed.summary()["concurrency"] == {"mode": "fixed", "parallel": 3}


def test_an_auto_run_is_headed_by_its_range_and_ends_saying_where_it_settled(
    run_app: RunCli,
) -> None:
    """The first line names auto's range, not its ceiling as if it were a fixed count; the
    Done line, summary.md and report.html say the range and where the run settled."""
    result = run_app("parallel=auto", "auto.max=8", "source.count=200", "task.seconds=0.02")
    assert result.returncode == 0, result.output
    settled = result.summary()["concurrency"]["settled"]
    assert "with executor 'thread', parallel=auto (1..8); output:" in result.output
    assert "parallel=8" not in result.output
    shown = f"auto (1..8, settled at {settled})"
    assert f" parallel={shown}." in result.output
    assert f"| {shown} |" in (result.run_dir / "summary.md").read_text()
    assert f"parallel={shown}," in (result.run_dir / "report.html").read_text()
    fixed = run_app("parallel=3", "source.count=5", "task.seconds=0")
    assert "parallel=3; output:" in fixed.output and "settled" not in fixed.output
    assert "| 3 |" in (fixed.run_dir / "summary.md").read_text()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["parallel=auto", "auto.min=0"], "auto.min=0 is invalid"),
        (["parallel=auto", "auto.start=0"], "auto.start=0 is invalid"),
        (["parallel=auto", "auto.min=9", "auto.max=8"], "auto.min=9 is above auto.max=8"),
        (["parallel=auto", "auto.max=5000"], "auto.max=5000 is too large"),
        (
            ["parallel=sometimes"],
            "parallel='sometimes' is invalid: it must be an integer >= 1, or auto",
        ),
    ],
)
def test_bad_auto_settings_are_refused(
    run_app: RunCli, overrides: list[str], expected: str
) -> None:
    result = run_app("source.count=1", *overrides)
    assert result.returncode == 2 and expected in result.output, result.output
