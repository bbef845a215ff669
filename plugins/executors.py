"""Built-in executors: ``sequential`` and ``thread``."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from runner.api import Executor, Item, Outcome

_DONE = object()


class SequentialExecutor(Executor):
    """Runs items one after another in the calling thread."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def map(
        self, fn: Callable[[Item], Outcome], items: Iterable[Item], parallel: int
    ) -> Iterator[Outcome]:
        self._stop.clear()
        for item in items:
            if self._stop.is_set():
                return
            yield fn(item)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        self._stop.set()


class _Feed:
    """The source, read under one lock, with one item of look-ahead.

    The look-ahead tells a worker whether another item exists, so the executor starts a
    worker only for an item that is there: never more workers than items.
    """

    def __init__(self, source: Iterator[Item]) -> None:
        self.lock = threading.Lock()
        self._source = source
        self._ahead: list[Item] = []
        self.error: BaseException | None = None

    def take(self, count: int) -> list[Item]:
        """Up to ``count`` items (call with the lock held); a failing source ends the feed."""
        todo, self._ahead = self._ahead, []
        if self.error is None:
            try:
                todo.extend(itertools.islice(self._source, count - len(todo)))
            except Exception as exc:  # the source failed part-way: what it gave still runs
                self.error = exc
        return todo

    def more(self) -> bool:
        """Whether another item is there (call with the lock held)."""
        if not self._ahead and self.error is None:
            try:
                self._ahead.extend(itertools.islice(self._source, 1))
            except Exception as exc:
                self.error = exc
        return bool(self._ahead)


class ThreadExecutor(Executor):
    """Up to ``parallel`` long-lived threads pull items from the source and push back outcomes.

    There is no Future per item: each worker takes a chunk of items under one lock and
    hands its outcomes back as one batch. The chunk adapts per worker: items that take
    milliseconds go one at a time (good balance at the tail of a run), no-op items go up
    to ``max_chunk`` at a time (little overhead per item). A worker starts only when an
    item is waiting for it, so two items never start more than two threads whatever
    ``parallel`` says. Items read from the source but not yet handed to the caller are
    bounded by ``(parallel * (queue_factor + 1) + 1) * max_chunk + 1`` (a chunk per
    worker, full queue, the batch being yielded, the look-ahead), whatever the length
    of the source. With ``parallel <= 1``, or a source of at most one item, it runs
    sequentially.
    """

    def __init__(self, max_chunk: int = 64, queue_factor: int = 2) -> None:
        if max_chunk < 1 or queue_factor < 1:
            raise ValueError(
                f"max_chunk={max_chunk!r} and queue_factor={queue_factor!r} must be >= 1"
            )
        self.max_chunk = max_chunk
        self.queue_factor = queue_factor
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sequential = SequentialExecutor()

    def map(
        self, fn: Callable[[Item], Outcome], items: Iterable[Item], parallel: int
    ) -> Iterator[Outcome]:
        self._stop.clear()
        source = iter(items)
        head: list[Item] = []
        try:
            head.extend(itertools.islice(source, 2))
        except Exception:  # the source failed at once: what it gave still runs
            yield from self._sequential.map(fn, head, 1)
            raise
        if parallel <= 1 or len(head) <= 1:
            yield from self._sequential.map(fn, itertools.chain(head, source), 1)
            return
        yield from self._threaded(fn, itertools.chain(head, source), parallel)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        self._stop.set()
        self._sequential.shutdown(wait, timeout)
        if wait:
            deadline = None if timeout is None else time.monotonic() + timeout
            for thread in list(self._threads):
                left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                thread.join(left)

    def _threaded(
        self, fn: Callable[[Item], Outcome], source: Iterator[Item], parallel: int
    ) -> Iterator[Outcome]:
        feed = _Feed(source)
        batches: queue.Queue[Any] = queue.Queue(maxsize=parallel * self.queue_factor)
        stop = self._stop
        errors: list[BaseException] = []
        max_chunk = self.max_chunk
        clock = time.perf_counter
        threads = self._threads = []

        def start_worker() -> None:
            # Called with feed.lock held, so the count and the list stay consistent.
            thread = threading.Thread(
                target=worker, name=f"runner-worker-{len(threads)}", daemon=True
            )
            threads.append(thread)
            thread.start()

        def worker() -> None:
            chunk = 1
            try:
                while not stop.is_set():
                    with feed.lock:
                        todo = feed.take(chunk)
                        if feed.error is not None:
                            stop.set()
                        elif todo and len(threads) < parallel and feed.more():
                            start_worker()
                    if not todo:
                        return
                    began = clock()
                    done = []
                    for item in todo:
                        if stop.is_set() and feed.error is None:
                            break  # shut down: items taken but not started never start
                        done.append(fn(item))
                    batches.put(done)
                    took = clock() - began
                    if took < 0.002 and chunk < max_chunk:
                        chunk *= 2
                    elif took > 0.02 and chunk > 1:
                        chunk //= 2
            except BaseException as exc:  # fn never raises; this is a bug or an exit
                errors.append(exc)
                stop.set()
            finally:
                batches.put(_DONE)

        with feed.lock:
            start_worker()
        finished = 0
        try:
            while finished < len(threads):
                batch = batches.get()
                if batch is _DONE:
                    finished += 1
                    continue
                yield from batch
        finally:
            # Interrupted or closed early: stop pulling new items and unblock any worker
            # waiting on the full queue; shutdown(wait=True) waits for running items.
            stop.set()
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
