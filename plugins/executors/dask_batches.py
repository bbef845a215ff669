"""The ``dask`` executor's batches: sized to the items' times, sent as Dask tasks, and
their outcomes read back (the cluster and the run on it are ``dask``'s)."""

from __future__ import annotations

import math
import pickle
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from loguru import logger

from runner.api import Item, ItemCall, Outcome

from .dask_cluster import distributed_module
from .dask_losses import Losses
from .plumbing import PICKLE, Feed, item_row, lost_error

#: Dask remembers the group name of every task key it meets in ``dask.utils.key_split``'s
#: cache (``functools.lru_cache``, up to 100,000 keys). Every task of a run has a key of
#: its own, so with the LocalCluster's scheduler in this process the driver grew by some
#: 2.6 MB per 10,000 tasks until 100,000 (a 100k-item run sends about 33,000). The cache
#: is emptied (its public ``cache_clear``) after every KEY_CACHE_TASKS tasks sent: it
#: then holds the names of the last few thousand keys, which is all it saves work on.
KEY_CACHE_TASKS = 5000


@dataclass
class Shared:
    """What the batches share with the executor, whose ``shutdown`` and ``kill`` read and
    set them from other threads."""

    out: dict[Any, list[Item]]  # the batches out: future -> its items
    given_up: set[Any]  # futures cancelled: their items never finish
    lock: threading.Lock  # guards out and given_up
    stop: threading.Event  # nothing more goes out
    #: Stop the run on every worker (with True, its commands too).
    tell_workers: Callable[[bool], int]
    #: The items of a batch given up that were running on a worker, as Interrupted.
    interrupted: Callable[[list[Item]], list[Outcome]]


class Batches:
    """One ``map``'s items on the cluster: taken from the source in batches (one item
    while their times are unknown or the starts are paced, then about ``batch_seconds``
    of them, at most ``max_batch``), sent as Dask tasks, at most ``slots`` out, and the
    outcomes read back; a lost batch's items go out again one per task (``Losses``).

    ``shared``: what the executor's ``shutdown`` and ``kill`` read and set meanwhile.
    """

    def __init__(
        self,
        fn: ItemCall,
        feed: Feed,
        ahead: deque[Item],
        client: Any,
        worker_side: ModuleType,
        run: Any,
        token: str,
        blob: bytes,
        losses: Losses,
        slots: int,
        parallel: int,
        sizes: tuple[int, float],
        shared: Shared,
    ) -> None:
        self.fn, self.feed, self.ahead = fn, feed, ahead
        self.client, self.worker_side, self.run, self.blob = client, worker_side, run, blob
        self.losses, self.slots, self.parallel = losses, slots, parallel
        self.max_batch, self.batch_seconds = sizes
        self.token, self.shared = token, shared
        self.again: deque[list[Item]] = deque()  # items of a failed task, one per task
        self.ready: deque[Outcome] = deque()
        self.per_item: float | None = None  # seconds, once known
        #: A worker said the run was interrupted: map raises once the batches out are back.
        self.interrupted = False
        self._sent = 0  # tasks sent, each key's number
        self._done = distributed_module().as_completed(
            loop=client.loop, with_results=True, raise_errors=False
        )

    def take(self) -> list[Item]:
        """The next batch, each item admitted; empty when nothing more goes out."""
        per_item, paced, ahead, feed, slots = (
            self.per_item, self.fn.paced, self.ahead, self.feed, self.slots,
        )  # fmt: skip
        if per_item is None or paced or self.fn.halting:
            # Slow until shown otherwise; paced: each starts when admitted; halting: a
            # worker starts no item after a failure the run has not yet recorded.
            size = 1
        else:
            size = round(self.batch_seconds / per_item) if per_item else self.max_batch
            size = max(1, min(size, self.max_batch))
        if not feed.exhausted and len(ahead) < slots * size:
            ahead.extend(feed.take(slots * size - len(ahead)))
        if feed.exhausted:  # the last items: spread over every slot
            size = min(size, math.ceil(len(ahead) / slots))
        batch: list[Item] = []
        stop, admit, clock = self.shared.stop, self.fn.admit, time.perf_counter
        while ahead and len(batch) < size and not stop.is_set():
            began = clock()
            if not admit():
                stop.set()  # the run is stopping: nothing more goes out
                return []
            batch.append(ahead.popleft())
            if clock() - began > 0.001:
                break  # admit waited (a rate limit): what it let through goes now
        return batch

    def send(self, sent: list[list[Item]], payloads: list[bytes], budgets: list[int]) -> None:
        """``sent`` out as Dask tasks, in one graph."""
        n, token = len(sent), self.token
        before, self._sent = self._sent, self._sent + n
        keys = [f"runner-batch-{token[:8]}-{number}" for number in range(before, self._sent)]
        if before // KEY_CACHE_TASKS != self._sent // KEY_CACHE_TASKS:
            from dask.utils import key_split  # dask is imported: the run is on it

            key_split.cache_clear()
        futures = self.client.map(
            self.worker_side.run_batch,
            [self.run.name] * n,
            [self.blob] * n,
            payloads,
            budgets,
            key=keys,
        )
        with self.shared.lock:
            self.shared.out.update(zip(futures, sent, strict=True))
        self._done.update(futures)

    def fail(self, batch: list[Item], exc: BaseException, what: str) -> None:
        """A batch that could not go out: its items one per task, or the one failed."""
        if len(batch) > 1:
            logger.warning(
                f"A Dask task of {len(batch)} items failed ({type(exc).__name__}: "
                f"{exc}); its items run again, one per task"
            )
            self.again.extend([item] for item in batch)
        else:
            [item], now = batch, time.perf_counter()
            error = lost_error(exc, what)
            self.ready.append(Outcome(item.id, "failed", 0.0, None, error, item.label, now, now))

    def lost(self, batch: list[Item], exc: BaseException, what: str) -> None:
        """A batch lost with its task: its items out again while their starts allow."""
        died = isinstance(exc, distributed_module().KilledWorker)
        rerun, failed = self.losses.lost(batch, exc, what, died)
        self.again.extend([item] for item in rerun)
        self.ready.extend(failed)
        if rerun:
            logger.warning(
                f"A Dask task of {len(batch)} item(s) was lost ({type(exc).__name__}: "
                f"{exc}); {len(rerun)} of them run again, one per task (retry.attempts="
                f"{self.losses.attempts})"
            )

    def outcomes(self) -> Iterator[Outcome]:
        """Every item's outcome, as batches come back, until the end or a stop."""
        shared, ready, again, paced = self.shared, self.ready, self.again, self.fn.paced
        auto, out, stop, halting = self.fn.limit, shared.out, shared.stop, self.fn.halting
        while True:
            if halting and any(outcome.status == "failed" for outcome in ready):
                # A failure may halt the run: the run records it before anything more
                # goes out (a halt stops ``take``'s admits), not after.
                while ready:
                    yield ready.popleft()
            # Until items' times are known, one item per slot and none queued.
            room = self.slots if self.per_item is not None or paced else max(self.parallel, 1)
            if auto is not None:  # parallel=auto: a batch runs its items one by one
                room = min(room, auto.current)
            sent: list[list[Item]] = []
            payloads: list[bytes] = []
            budgets: list[int] = []
            while not stop.is_set() and len(out) + len(sent) < room:
                batch = again.popleft() if again else self.take()
                if not batch:
                    break
                try:
                    payloads.append(pickle.dumps(list(map(item_row, batch)), PICKLE))
                    sent.append(batch)
                    budgets.append(self.losses.budget(batch))
                except Exception as exc:
                    self.fail(batch, exc, "it cannot be sent to a Dask worker")
                if paced and sent:  # out now: it starts when admitted, not with the next
                    self.send(sent, payloads, budgets)
                    sent, payloads, budgets = [], [], []
            if sent:  # one graph: the scheduler takes them in one step
                self.send(sent, payloads, budgets)
            while ready:
                yield ready.popleft()
            if not out:
                if again and not stop.is_set():
                    continue
                break
            # Outcomes are handed on once the next batches are out: workers first.
            for future, result in self._done.next_batch(block=True):
                self._collect(future, result)

    def _collect(self, future: Any, result: Any) -> None:
        """A batch back from Dask: its outcomes ready, or its items lost or given up."""
        shared = self.shared
        with shared.lock:
            batch = shared.out.pop(future)
            given_up = future in shared.given_up
            shared.given_up.discard(future)
        if given_up and future.status != "finished":
            # Cancelled here: its items never finished; those running are recorded as
            # such, the others never started.
            self.ready.extend(shared.interrupted(batch))
            return
        if future.status != "finished":
            error = result[1] if isinstance(result, tuple) else result
            self.lost(batch, error, "the Dask task running it failed")
            return
        try:
            rows, stopped = pickle.loads(result)
            outcomes = [Outcome(*row) for row in rows]
        except Exception as exc:
            self.lost(batch, exc, "its outcome cannot be read back from Dask")
            return
        self.losses.returned(outcomes)
        if stopped and not self.interrupted:
            self.interrupted = True  # raised once the batches still out are back
            shared.stop.set()
            shared.tell_workers(False)
        if outcomes:
            seconds = sum(o.seconds for o in outcomes) / len(outcomes)
            per_item = self.per_item
            self.per_item = seconds if per_item is None else (per_item + seconds) / 2
        self.ready.extend(map(self.fn.receive, outcomes))
