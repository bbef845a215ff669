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

    def map(
        self, fn: Callable[[Item], Outcome], items: Iterable[Item], parallel: int
    ) -> Iterator[Outcome]:
        for item in items:
            yield fn(item)


class ThreadExecutor(Executor):
    """``parallel`` long-lived threads pull items from the source and push back outcomes.

    There is no Future per item: each worker takes a chunk of items under one lock and
    hands its outcomes back as one batch. The chunk adapts per worker: items that take
    milliseconds go one at a time (good balance at the tail of a run), no-op items go up
    to ``max_chunk`` at a time (little overhead per item). Items read from the source but
    not yet handed to the caller are bounded by ``(parallel * (queue_factor + 1) + 1) *
    max_chunk`` (a chunk per worker, full queue, the batch being yielded), whatever the
    length of the source.
    With ``parallel <= 1``, or a source of at most one item, it runs sequentially.
    """

    def __init__(self, max_chunk: int = 64, queue_factor: int = 2) -> None:
        if max_chunk < 1 or queue_factor < 1:
            raise ValueError(
                f"max_chunk={max_chunk!r} and queue_factor={queue_factor!r} must be >= 1"
            )
        self.max_chunk = max_chunk
        self.queue_factor = queue_factor

    def map(
        self, fn: Callable[[Item], Outcome], items: Iterable[Item], parallel: int
    ) -> Iterator[Outcome]:
        source = iter(items)
        head: list[Item] = []
        try:
            head.extend(itertools.islice(source, 2))
        except Exception:  # the source failed at once: what it gave still runs
            yield from SequentialExecutor().map(fn, head, 1)
            raise
        if parallel <= 1 or len(head) <= 1:
            yield from SequentialExecutor().map(fn, itertools.chain(head, source), 1)
            return
        yield from self._threaded(fn, itertools.chain(head, source), parallel)

    def _threaded(
        self, fn: Callable[[Item], Outcome], source: Iterator[Item], parallel: int
    ) -> Iterator[Outcome]:
        lock = threading.Lock()
        batches: queue.Queue[Any] = queue.Queue(maxsize=parallel * self.queue_factor)
        stop = threading.Event()
        errors: list[BaseException] = []
        max_chunk = self.max_chunk
        clock = time.perf_counter
        islice = itertools.islice

        def worker() -> None:
            chunk = 1
            try:
                while not stop.is_set():
                    todo: list[Item] = []
                    with lock:
                        try:
                            todo.extend(islice(source, chunk))
                        except Exception as exc:  # the source failed part-way: the
                            errors.append(exc)  # items read before still run
                            stop.set()
                    if not todo:
                        return
                    began = clock()
                    batches.put([fn(item) for item in todo])
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

        threads = [
            threading.Thread(target=worker, name=f"runner-worker-{n}", daemon=True)
            for n in range(parallel)
        ]
        for thread in threads:
            thread.start()
        running = parallel
        try:
            while running:
                batch = batches.get()
                if batch is _DONE:
                    running -= 1
                    continue
                yield from batch
        finally:
            # Interrupted or closed early: stop pulling new items and unblock any worker
            # waiting on the full queue; the items already running are not waited for.
            stop.set()
            while running:
                try:
                    if batches.get_nowait() is _DONE:
                        running -= 1
                except queue.Empty:
                    break
        if errors:
            raise errors[0]
