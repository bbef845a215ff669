"""The ``thread`` executor: long-lived worker threads of the run's process."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import queue
import threading
import time
from collections.abc import Generator, Iterable, Iterator
from typing import Any

from runner.api import Executor, Item, ItemCall, Outcome

from .plumbing import (
    Feed,
    Interrupted,
    drain_deadline,
    failed,
    interrupted,
    next_chunk,
)

_DONE = object()
_WAKE = object()
#: Seconds the collector waits for a batch at most before it looks again (see ``map``).
SIGNAL_CHECK = 0.25


@dataclasses.dataclass(slots=True)
class _Handover:
    """A batch that ends with a failure: its worker starts nothing more until the
    collector has handed it on (``handed``), so that a halt it causes stops it first."""

    outcomes: list[Outcome]
    handed: threading.Event


class _Flag:
    """A stop flag workers read before every item: an attribute read costs less than
    ``threading.Event.is_set()``, and nothing ever waits on it."""

    __slots__ = ("up",)

    def __init__(self) -> None:
        self.up = False


class ThreadExecutor(Executor):
    """Up to ``parallel`` long-lived threads pull items from the source and push back outcomes.

    There is no Future per item: each worker takes a chunk of items under one lock and
    hands its outcomes back as one batch. The chunk adapts per worker: items that take
    milliseconds go one at a time (good balance at the tail of a run), no-op items go up
    to ``max_chunk`` at a time (little overhead per item). Workers start as items are
    found, so a source of two items starts at most three threads whatever ``parallel``
    says. Items read from the source but not yet handed to the caller are bounded by
    ``(parallel * (queue_factor + 1) + 1) * max_chunk`` (a chunk per worker, full queue,
    the batch being yielded), whatever the length of the source.

    The calling thread runs no item, even at ``parallel=1``: it hands outcomes on, and
    enforces the run's ``timeout`` (a worker takes a stuck one's place) and the drain
    after ``shutdown(wait=False, timeout)``: an item still running then is handed on as
    failed (``Interrupted``) and its thread, which nothing can stop, is left to end by
    itself (a daemon: the process does not wait for it). When a failure may halt the
    run (``fn.halting``), a worker whose item fails hands its batch on and waits until
    it has been taken before it starts another, so that nothing starts between the
    halting failure and the halt.
    """

    def __init__(self, max_chunk: int = 64, queue_factor: int = 2) -> None:
        if max_chunk < 1 or queue_factor < 1:
            raise ValueError(
                f"max_chunk={max_chunk!r} and queue_factor={queue_factor!r} must be >= 1"
            )
        self.max_chunk = max_chunk
        self.queue_factor = queue_factor
        self._stop = _Flag()
        self._threads: list[threading.Thread] = []
        self._batches: queue.Queue[Any] = queue.Queue()
        self._drain_until: float | None = None
        self._grace = 0.0  # the drain's length, for the message of an item left running

    def map(self, fn: ItemCall, items: Iterable[Item], parallel: int) -> Iterator[Outcome]:
        self._stop.up = False
        # The outcomes of each batch in turn, with no generator frame resumed per item.
        batches = self._threaded(fn, iter(items), max(parallel, 1))
        try:
            yield from itertools.chain.from_iterable(batches)
        finally:
            batches.close()  # stops the workers now, not when the generator is collected

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        if not wait and timeout is not None:
            # Outcomes of running items are still yielded, for at most ``timeout`` s.
            self._drain_until = drain_deadline(timeout)
            self._grace = timeout
        self._stop.up = True
        with contextlib.suppress(queue.Full):
            self._batches.put_nowait(_WAKE)  # a collector waiting for a batch looks again
        if wait:
            # Called once the caller stopped reading: drain what workers hand over, so a
            # worker blocked on the full queue can see the stop and end.
            deadline = None if timeout is None else time.monotonic() + timeout
            while any(thread.is_alive() for thread in self._threads):
                with contextlib.suppress(queue.Empty):
                    while True:
                        self._batches.get_nowait()
                if deadline is not None and time.monotonic() >= deadline:
                    break
                alive = [thread for thread in self._threads if thread.is_alive()]
                if alive:
                    alive[0].join(0.05)

    def _threaded(
        self, fn: ItemCall, source: Iterator[Item], parallel: int
    ) -> Generator[list[Outcome], None, None]:
        """The outcomes, a batch at a time."""
        feed = Feed(source)
        lock = threading.Lock()  # the feed's, and the count of workers
        batches: queue.Queue[Any] = queue.Queue(maxsize=parallel * self.queue_factor)
        self._batches, self._drain_until = batches, None
        stop = self._stop
        errors: list[BaseException] = []
        max_chunk = self.max_chunk
        clock = time.perf_counter
        threads = self._threads = []
        # The wrapper's watchdog (with a run ``timeout``): outcomes of attempts past their
        # deadline are handed out at the deadline, and a worker replaces the stuck one.
        tick = fn.tick
        limit = [parallel]
        late_ids: set[str] = set()
        auto = fn.limit
        holders: dict[str, list[bool]] = {}  # parallel=auto: item id -> its worker's place
        # Each worker's chunk while it runs it, for the drain's end: (items, outcomes so
        # far, when it began). Set before the chunk runs, removed once it is handed on.
        running: dict[int, tuple[list[Item], list[Outcome], float]] = {}

        def give_back(place: list[bool] | None) -> None:
            if place is not None and auto is not None:
                try:
                    place.pop()
                except IndexError:
                    return  # given back already
                auto.release()

        def start_worker() -> None:
            # Called with the lock held, so the count and the list stay consistent.
            thread = threading.Thread(
                target=worker,
                args=(f"thread {len(threads)}",),
                name=f"runner-worker-{len(threads)}",
                daemon=True,
            )
            threads.append(thread)
            thread.start()

        halting = fn.halting

        def worker(name: str) -> None:
            # ``name``: what the journal records as the worker of each item it runs.
            chunk = 1
            run_item = fn.bind()
            key = threading.get_ident()
            left: list[Item] = []  # the rest of a chunk cut short by a failure
            try:
                while not stop.up:
                    # parallel=auto: run only while holding one of its places.
                    if auto is not None and not auto.acquire():
                        return
                    if left:
                        todo, left = left, []
                    else:
                        with lock:
                            todo = feed.take(chunk)
                            wanted = limit[0] if auto is None else min(limit[0], auto.current)
                            if feed.error is not None:
                                stop.up = True
                            elif len(todo) == chunk and len(threads) < wanted:
                                # The source may hold more: another worker, which ends at
                                # once if it finds none (so at most one more than items).
                                start_worker()
                    if not todo:
                        if auto is not None:
                            auto.release()
                        return
                    began = clock()
                    done: list[Outcome] = []
                    running[key] = (todo, done, began)
                    if auto is None and not halting:
                        add = done.append
                        for item in todo:
                            if stop.up and feed.error is None:
                                break  # shut down: items taken but not started never start
                            outcome = run_item(item)
                            outcome.worker = name
                            add(outcome)
                    elif auto is None:
                        add = done.append
                        for item in todo:
                            if stop.up and feed.error is None:
                                break
                            outcome = run_item(item)
                            outcome.worker = name
                            add(outcome)
                            if outcome.status == "failed":
                                break  # handed on before the next starts (see _Handover)
                    else:
                        # The place is given back once: here, or by the collector when it
                        # records one of these items as timed out (list.pop is atomic).
                        place = [True]
                        for item in todo:
                            if stop.up and feed.error is None:
                                break
                            holders[item.id] = place
                            outcome = run_item(item)
                            outcome.worker = name
                            done.append(outcome)
                            holders.pop(item.id, None)
                            if halting and outcome.status == "failed":
                                break
                        give_back(place)
                    if halting and done and done[-1].status == "failed":
                        left = todo[len(done) :]
                        handover = _Handover(done, threading.Event())
                        batches.put(handover)
                        del running[key]
                        while not handover.handed.wait(0.05) and not stop.up:
                            pass
                    else:
                        batches.put(done)
                        del running[key]
                    chunk = next_chunk(chunk, clock() - began, max_chunk)
            except BaseException as exc:  # fn never raises; this is a bug or an exit
                errors.append(exc)
                stop.up = True
            finally:
                batches.put(_DONE)

        with lock:
            start_worker()
        finished = 0
        last_check = clock()
        try:
            # Workers stuck in a timed-out attempt are not waited for.
            while finished < len(threads) - len(late_ids):
                if stop.up and self._drain_until is not None:
                    try:
                        batch = batches.get(timeout=max(self._drain_until - time.monotonic(), 0))
                    except queue.Empty:
                        # Items still running past the drain time are not waited for.
                        yield self._left_running(batches, running, late_ids)
                        break
                else:
                    # Woken now and then, at least: a signal the kernel gave to a worker
                    # thread has its handler run by this (the main) thread only once it wakes.
                    try:
                        batch = batches.get(timeout=SIGNAL_CHECK if tick is None else tick)
                    except queue.Empty:
                        batch = _WAKE
                if tick is not None and clock() - last_check >= tick:
                    last_check = clock()
                    late = fn.overdue()
                    if late:
                        late_ids.update(outcome.id for outcome in late)
                        for outcome in late if auto is not None else ():
                            give_back(holders.get(outcome.id))  # another item may run
                        with lock:
                            limit[0] += len(late)
                            if not stop.up:
                                for _ in late:
                                    start_worker()
                        yield late
                if batch is _DONE:
                    finished += 1
                    continue
                if batch is _WAKE:
                    continue
                handover = batch if type(batch) is _Handover else None
                if handover is not None:
                    batch = handover.outcomes
                if late_ids:  # a stuck attempt came back: its worker counts again
                    for outcome in batch:
                        if outcome.status == "skipped" and outcome.id in late_ids:
                            late_ids.discard(outcome.id)
                yield batch
                if handover is not None:
                    handover.handed.set()  # taken: its worker may start the next item
        finally:
            # Interrupted or closed early: stop pulling new items and unblock any worker
            # waiting on the full queue; shutdown(wait=True) waits for running items.
            stop.up = True
            while finished < len(threads):
                try:
                    if batches.get_nowait() is _DONE:
                        finished += 1
                except queue.Empty:
                    break
        if feed.error is not None:
            raise feed.error
        if errors:
            raise errors[0]

    def _left_running(
        self,
        batches: queue.Queue[Any],
        running: dict[int, tuple[list[Item], list[Outcome], float]],
        late_ids: set[str],
    ) -> list[Outcome]:
        """At the drain's end: the outcomes handed over but not taken yet, those of the
        chunks still running, and each item still running as ``Interrupted``; once each.

        A worker hands its batch over before it leaves ``running``: so the chunks are
        read first and what was handed over then overrides them (it finished after all).
        """
        how = "its thread runs on, and what it returns is dropped"
        error = Interrupted(interrupted(self._grace, how))
        outcomes: dict[str, Outcome] = {}
        for todo, done, began in list(running.values()):
            finished = list(done)
            outcomes.update((outcome.id, outcome) for outcome in finished)
            if len(finished) < len(todo):
                item = todo[len(finished)]
                if item.id not in late_ids:  # one the watchdog recorded is not again
                    started = began + sum(outcome.seconds for outcome in finished)
                    outcomes[item.id] = failed(item, error, started)
        with contextlib.suppress(queue.Empty):
            while True:
                batch = batches.get_nowait()
                if type(batch) is _Handover:
                    batch.handed.set()
                    batch = batch.outcomes
                if isinstance(batch, list):
                    outcomes.update((outcome.id, outcome) for outcome in batch)
        return list(outcomes.values())
