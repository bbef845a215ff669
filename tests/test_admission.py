"""What refusals teach (runner/execute/admission.py): the controller on a clock of the
test's own, then real threads against a real HTTP service."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.api import Item, RetryableError
from runner.execute.admission import PROBE_START, Admission
from runner.execute.concurrency import AdaptiveLimit
from runner.execute.policies import Gate, RetryPolicy
from runner.execute.safecall import SafeCall
from runner_plugins.executors.thread import ThreadExecutor
from runner_plugins.http import HttpTask
from tests.conftest import RunCli
from tests.http_service import Service, serve


def refusal() -> RetryableError:
    return RetryableError("HTTP 429", 1.0, rate_limited=True)


class Clock:
    """Seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))


def admission(clock: Clock, limit: AdaptiveLimit | None = None) -> Admission:
    return Admission(limit, clock.sleep, lambda: False, clock)


def capped_at(clock: Clock, most: int) -> Admission:
    """An Admission whose first refusal, with ``most + 1`` in flight, capped it at ``most``."""
    adm = admission(clock)
    levels = [adm.begin() for _ in range(most + 1)]
    adm.end(levels.pop(), clock.now, refusal())
    for level in reversed(levels):
        adm.end(level, clock.now - 0.1)
    assert adm.cap == most
    return adm


def rounds(adm: Admission, clock: Clock, at_once: int, seconds: float, latency: float) -> None:
    """``at_once`` attempts start together and are served ``latency`` later, again and
    again for ``seconds``."""
    end = clock.now + seconds
    while clock.now < end:
        started = clock.now
        levels = [adm.begin() for _ in range(at_once)]
        clock.now += latency
        for level in reversed(levels):
            adm.end(level, started)


def test_the_first_refusal_caps_a_fixed_count_at_one_less_than_were_in_flight(
    log_lines: list[str],
) -> None:
    """8 in flight, one refused: at most 7 from then on, said once; refusals of attempts
    started before the cut cut nothing more; one refused as soon as a level is reached
    cuts below it."""
    clock = Clock()
    adm = admission(clock)
    started = clock.now
    levels = [adm.begin() for _ in range(8)]
    assert levels == list(range(1, 9)) and not adm.active
    clock.now += 0.01
    adm.end(levels.pop(), started, refusal())
    assert adm.active and adm.cap == 7
    for level in levels[4:]:  # answered 429 too, but sent before the cut
        adm.end(level, started, refusal())
    assert adm.cap == 7 and adm.refusals == 4
    for level in levels[:4]:
        clock.now += 0.1
        adm.end(level, started)  # served, 0.1 s and more each
    # Under the cap, 5 in flight is reached for the first time and refused at once.
    levels = [adm.begin() for _ in range(5)]
    assert levels == [1, 2, 3, 4, 5]
    clock.now += 0.005
    adm.end(levels.pop(), clock.now - 0.005, refusal())
    assert adm.cap == 4
    said = [line for line in log_lines if "at once from now on" in line]
    assert len(said) == 1 and "refused a request with 8 in flight" in said[0]
    assert "at most 7 at once" in said[0] and "parallel is an upper bound" in said[0]


def test_one_more_is_tried_after_a_quiet_spell_and_less_often_when_refused_again() -> None:
    """A cap of 3 is raised to 4 after PROBE_START quiet seconds; 4 refused at once puts
    it back to 3, and the next try waits twice as long."""
    clock = Clock()
    adm = capped_at(clock, 3)
    rounds(adm, clock, 3, PROBE_START + 0.2, latency=0.1)
    assert adm.cap == 4
    probed = clock.now
    started = clock.now
    levels = [adm.begin() for _ in range(4)]
    clock.now += 0.002
    adm.end(levels.pop(), started, refusal())
    for level in reversed(levels):
        adm.end(level, started)
    assert adm.cap == 3
    rounds(adm, clock, 3, PROBE_START + 0.2, latency=0.1)
    assert adm.cap == 3  # not yet: twice PROBE_START now
    rounds(adm, clock, 3, PROBE_START, latency=0.1)
    assert adm.cap == 4 and clock.now - probed >= 2 * PROBE_START


def test_a_level_served_faster_then_refused_is_a_rate_limit_and_paces_the_starts(
    log_lines: list[str],
) -> None:
    """A service of 25 a second at 0.1 s: 2 at once serve 20/s; 3 at once serve 30/s for
    a while, then the bucket is empty and one is refused. That is a rate limit: starts are
    paced at about what 3 served, the cap of 3 is kept, and a pace is what the log says."""
    clock = Clock()
    adm = capped_at(clock, 2)
    rounds(adm, clock, 2, PROBE_START + 0.2, latency=0.1)
    assert adm.cap == 3 and adm.rate is None
    rounds(adm, clock, 3, 0.5, latency=0.1)  # 30/s, served: the bucket empties
    started = clock.now
    levels = [adm.begin() for _ in range(3)]
    clock.now += 0.002
    adm.end(levels.pop(), started, refusal())
    assert adm.cap == 3 and adm.rate is not None and 25 <= adm.rate <= 36
    assert any("refuses by rate" in line and "starts paced at" in line for line in log_lines)
    # Paced: starts come 1/rate apart, whoever asks.
    clock.slept.clear()
    for level in reversed(levels):
        adm.end(level, started)
    adm.end(adm.begin(), clock.now)
    adm.end(adm.begin(), clock.now)
    adm.end(adm.begin(), clock.now)
    gap = 1 / adm.rate
    assert clock.slept == pytest.approx([gap, 2 * gap], rel=0.01)


@pytest.mark.parametrize(
    ("below", "at"),
    [((3.0, 0.1), (60.0, 0.1)), ((20.0, 0.1), (8.5, 0.12))],
    ids=["level-reached-a-minute-before", "level-below-partly-kept"],
)
def test_a_refusal_is_judged_on_the_answers_kept(
    below: tuple[float, float], at: tuple[float, float]
) -> None:
    """Capped at 6: 5 at once, then 6 at once (``(seconds, latency)`` each), then one
    refused at 6 (another process's requests filled the service). Only the last
    KEPT_SECONDS of answers are kept, and answers dropped are not answers never served:

    * 6 served 60 a second for a minute: its rate is what the last 10 s show, and the
      rate below it, from before them, is unknown (the old reading paced the starts at a
      sixth of what 6 served, then raised them by 5% a second: a worker of a 100k-item
      Dask run fell to a fifth of its throughput for 40 s);
    * 5 and 6 both serve 50 a second, 6 reached 8.5 s before the refusal: what 5 served
      in the 2 s before is kept for 1.5 s, 50 a second over those (the old reading, over
      all 2 s, gave 37.5, and 6 looked like a rate limit's emptied bucket).

    Either way that is no evidence of a rate limit: the cap falls to 5, no start paced.
    """
    clock = Clock()
    adm = capped_at(clock, 6)
    rounds(adm, clock, 5, below[0], latency=below[1])
    rounds(adm, clock, 6, at[0], latency=at[1])
    started = clock.now
    levels = [adm.begin() for _ in range(6)]
    clock.now += 0.002
    adm.end(levels.pop(), started, refusal())
    assert adm.rate is None and adm.cap == 5


def test_with_auto_a_refusal_cuts_the_limit_to_what_was_served() -> None:
    """parallel=auto at 16 in slow start: a refusal with 7 in flight cuts it to 6 at once
    (not to 3/4 of 16), ends slow start, and the refused level is the ceiling."""
    clock = Clock()
    limit = AdaptiveLimit(1, 64, clock=clock)
    limit.current = 16
    adm = admission(clock, limit)
    started = clock.now
    levels = [adm.begin() for _ in range(7)]
    clock.now += 0.01
    adm.end(levels.pop(), started, refusal())
    assert limit.current == 6 and adm.cap is None and limit.limited == 1
    assert "the service refused one of 7 at once" in limit.changes[-1][2]
    adm.end(levels.pop(), started, refusal())  # started before the cut: counted only
    assert limit.current == 6 and limit.limited == 2


def test_a_place_given_up_while_waiting_is_taken_back_when_there_is_room() -> None:
    """aside(): the caller's place is free while it waits (another worker may take it),
    and it returns holding one again, once there is room."""
    limit = AdaptiveLimit(2, 2)
    assert limit.acquire() and limit.acquire()
    waiting, go = threading.Event(), threading.Event()

    def wait() -> None:
        waiting.set()
        go.wait(10)

    thread = threading.Thread(target=limit.aside, args=(wait,))
    thread.start()
    assert waiting.wait(10)
    assert limit.running == 1 and limit.acquire()  # another worker runs in its place
    go.set()
    thread.join(0.3)
    assert thread.is_alive()  # no room: 2 places, 2 held
    limit.release()
    thread.join(10)
    assert not thread.is_alive() and limit.running == 2


def test_a_refused_item_waits_alone() -> None:
    """A 429 with Retry-After: 0.5 on one item holds that item only: the others (20 ms
    each) go on during its wait on the other worker (the whole run paused for it before:
    one started meanwhile at most, as the pause began)."""
    asked: list[tuple[str, float]] = []

    def task(item: Item) -> None:
        asked.append((item.id, time.perf_counter()))
        if item.id != "0":
            time.sleep(0.02)
        elif sum(1 for i, _ in asked if i == "0") == 1:
            raise RetryableError("HTTP 429", 0.5, rate_limited=True)

    call = SafeCall(task, RetryPolicy(attempts=3), Gate())
    items = [Item(str(n)) for n in range(40)]
    outcomes = list(ThreadExecutor().map(call, iter(items), 2))
    assert all(outcome.status == "ok" for outcome in outcomes)
    first_0, again_0 = (at for i, at in asked if i == "0")
    assert again_0 - first_0 >= 0.5
    assert sum(1 for i, at in asked if i != "0" and first_0 < at < again_0) >= 8


def items(count: int) -> Iterator[Item]:
    for index in range(count):
        yield Item(str(index), {"index": index})


def run_http(service: Service, parallel: int | str, count: int) -> tuple[SafeCall, list[str]]:
    """``count`` items through the thread executor against ``service``, as the run does
    (auto's limit fed every outcome); the wrapper and the statuses."""
    limit = AdaptiveLimit(1, 64) if parallel == "auto" else None
    gate = Gate(None, limit.signalled if limit is not None else None)
    task = HttpTask(url=service.url + "/{id}")
    call = SafeCall(task.run, RetryPolicy(10, 0.05), gate, limit=limit)
    statuses = []
    for outcome in ThreadExecutor().map(call, items(count), 64 if limit else int(parallel)):
        statuses.append(outcome.status)
        if limit is not None:
            limit.observe(outcome.seconds)
    return call, statuses


@pytest.mark.parametrize("parallel", [12, "auto"])
@pytest.mark.parametrize("retry_after", [0.2, None])
def test_above_a_services_concurrency_no_item_fails_and_few_are_refused(
    parallel: int | str, retry_after: float | None
) -> None:
    """A service of 3 at once (50 ms), Retry-After: 0.2 or no header: parallel=12 (4x
    its limit) and parallel=auto lose no item, and the service refuses few requests
    (before: every refusal paused all 12 workers, which then came back together and were
    refused together)."""
    with serve(latency=0.05, capacity=3, retry_after=retry_after) as service:
        call, statuses = run_http(service, parallel, 150)
        ok, refused = service.count(200), service.count(429)
    assert statuses == ["ok"] * 150 and ok == 150
    # A fixed count starts all its workers at once: that first burst is refused before
    # anything is learned (10-16% of the answers here; 51-57% before, on this machine).
    assert refused <= (0.1 if parallel == "auto" else 0.25) * (ok + refused), refused
    if parallel == 12:
        assert call.admission.cap is not None and 2 <= call.admission.cap <= 4


@pytest.mark.parametrize("parallel", [8, "auto"])
def test_under_a_rate_limit_no_item_fails_and_few_are_refused(parallel: int | str) -> None:
    """A service of 40 requests a second (50 ms each, so 2 at once would do): parallel=8
    and parallel=auto lose no item and the service refuses few requests."""
    with serve(latency=0.05, capacity=None, retry_after=0.2, per_second=40) as service:
        _, statuses = run_http(service, parallel, 200)
        ok, refused = service.count(200), service.count(429)
    assert statuses == ["ok"] * 200 and ok == 200
    assert refused <= (0.1 if parallel == "auto" else 0.25) * (ok + refused), refused


# The first attempt of each item is refused (429), the second served.
REFUSED_ONCE = (
    "import os, sys; mark = os.path.join(sys.argv[1], sys.argv[2]);"
    "first = not os.path.exists(mark); open(mark, 'a').close();"
    "sys.exit('HTTP 429 Too Many Requests' if first else 0)"
)
#: A line in loguru's own default format (``2026-12-06 17:07:58.135 | WARNING  | runner.``),
#: which no sink of runner's writes.
LOGURU_DEFAULT = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \| \w+ +\| runner\.", re.M)


@pytest.mark.slow
@pytest.mark.parametrize(
    "executor", [["executor=process"], ["executor=dask", "executor.workers=2"]], ids=str
)
def test_workers_learn_a_services_limits_without_a_word_on_the_console(
    run_cli: RunCli, tmp_path: Path, executor: list[str]
) -> None:
    """In a worker process, what its own safe call learns of the service's refusals is not
    logged: loguru's default sink there would print it, at DEBUG, in loguru's format, once
    per worker. The driver's lines tell the run (here, 429s that pause nothing)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    result = run_cli(
        "task=shell",
        "source=range",
        "source.count=12",
        "parallel=4",
        *executor,
        "retry.attempts=2",
        "retry.backoff=0.01",
        f'task.command=[{sys.executable},-S,-c,"{REFUSED_ONCE}",{marks},"{{index}}"]',
        timeout=120,
    )
    assert result.returncode == 0, result.output[-3000:]
    assert len(list(marks.iterdir())) == 12  # every item was refused once, then served
    assert [r["retries"][0]["error"]["type"] for r in result.results()] == ["RetryableError"] * 12
    assert not LOGURU_DEFAULT.search(result.output), result.output[-3000:]
    assert "Done: 12 succeeded, 0 failed of 12" in result.output
