"""The ``dask`` executor's worker side: a run's state on each Dask worker, and its tasks.

A run's state is a worker plugin (Dask's public way to give workers state): registered
when the run starts, on every worker and on any that joins later, and removed when it
ends, so a long-lived worker keeps nothing of the runs it served. The driver
(:mod:`~runner_plugins.executors.dask`) imports this module only once it runs on Dask.

A worker that dies takes its tasks' outcomes with it, and the driver cannot hear from it
afterwards: so before an item's second or later attempt (a retry, which follows a wait)
the worker records it in the run's Dask queue on the scheduler, and waits until the
scheduler has it. The driver reads that queue when a task is lost: each item of it may
have started once, plus the retries recorded. An item sent again gets only the attempts
left (``budget``).
"""

from __future__ import annotations

import contextlib
import pickle
import threading
import time
from typing import Any

from distributed import Queue, Worker, get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from runner.api import Item, Outcome, PortableCall, TaskFailure
from runner.toolkit import CommandGroup, join_group

from .dask_losses import REFUSED
from .plumbing import PICKLE, WorkerDied, outcome_row, sendable

PREFIX = "runner-run-"  # a run's plugin name: this and the run's token
RETRIES = "runner-retries-"  # a run's queue of retries started: this and the run's token


class RetryNotRecorded(TaskFailure):
    """A retry that could not be recorded on the scheduler does not start."""


def retries_queue(token: str, client: Any = None) -> Any:
    """The run's queue of retries started, each an item id as UTF-8 bytes (an id may
    hold the lone surrogates of a file name that is not UTF-8; msgpack takes bytes)."""
    queue: Any = Queue  # distributed's Queue is not annotated
    return queue(RETRIES + token, client=client)


def encode_id(item_id: str) -> bytes:
    return item_id.encode("utf-8", "surrogatepass")


def decode_id(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


class WorkerRun(WorkerPlugin):
    """One run as a worker serves it: the run's safe wrapper (``fn.portable``), unpickled
    once; the signal to start no more items; the command group of the items' commands,
    which ``stop(kill=True)`` stops. Removing the plugin (the run's end) stops it too."""

    def __init__(self, token: str, blob: bytes | None = None) -> None:
        self.name = PREFIX + token
        self.token = token
        self.blob = blob
        self.stopping = threading.Event()
        self.group = CommandGroup()
        self._wrapper: PortableCall | None = None
        self._lock = threading.Lock()
        self._queue: Any = None  # the run's queue of retries, once one is recorded
        # The item the calling thread runs: its attempts so far, and how many it may make.
        self._local = threading.local()
        #: Each thread's running item: its id and when it started (``time.time()``).
        self.running: dict[int, tuple[str, float]] = {}
        self._late: dict[str, Outcome] = {}  # timed out, for the thread that runs each
        self.address = ""  # the worker's, once known

    def __reduce__(self) -> tuple[type[WorkerRun], tuple[str, bytes | None]]:
        # Only the name and the wrapper's bytes travel: each worker makes its own event,
        # group and lock.
        return (WorkerRun, (self.token, self.blob))

    def setup(self, worker: Worker) -> None:
        # The wrapper unpickled (the task's modules imported) before the first batch, so
        # that a worker's first item starts when it arrives, as ``per_second`` admitted
        # it; a wrapper that cannot load fails the batches that need it instead.
        self.address = worker.address
        if self.blob is not None:
            with contextlib.suppress(Exception):
                self.wrapper(self.blob)

    def teardown(self, worker: Worker) -> None:
        self.stopping.set()  # a batch still running starts no further item
        if self._queue is not None:
            with contextlib.suppress(Exception):  # the scheduler is gone: so is the queue
                self._queue.close()

    def wrapper(self, blob: bytes) -> PortableCall:
        with self._lock:
            if self._wrapper is None:
                portable: PortableCall = pickle.loads(blob)
                group, run, local = self.group, portable.run, self._local
                group.grace = portable.grace
                attempts = portable.attempts

                def joined(item: Item) -> Any:
                    local.tries += 1
                    if local.tries > 1:  # a retry: the driver must be able to count it
                        if local.tries > local.budget:
                            raise WorkerDied(
                                f"{REFUSED}: it "
                                f"may have started {attempts} time(s), retry.attempts="
                                f"{attempts}: not run again"
                            )
                        self.record_retry(item.id)
                    join_group(group)  # not the wrapper's own: the one kill stops
                    return run(item)

                portable.run = joined
                if not self.address:
                    with contextlib.suppress(ValueError):  # not in a task: its pid names it
                        self.address = get_worker().address
                # Its outcomes' worker, as Dask's dashboard names it.
                portable.worker = self.address.removeprefix("tcp://")
                self._wrapper = portable
        return self._wrapper

    def record_retry(self, item_id: str) -> None:
        """Record on the scheduler that a retry of ``item_id`` starts, before it does."""
        try:
            with self._lock:
                if self._queue is None:
                    self._queue = retries_queue(self.token)
                queue = self._queue
            queue.put(encode_id(item_id))  # returns once the scheduler holds it
        except Exception as exc:
            raise RetryNotRecorded(
                f"the retry cannot be recorded on the Dask scheduler, so it does not start "
                f"({type(exc).__name__}: {exc})"
            ) from None

    def run(self, blob: bytes, payload: bytes, budget: int) -> bytes:
        """A batch, item by item, each with at most ``budget`` attempts: a stop holds
        between two items, and the outcomes of the items before a KeyboardInterrupt are
        kept. Returned pickled, so that a result that cannot be pickled fails its own
        item only."""
        outcomes: list[tuple[Any, ...]] = []
        if self.stopping.is_set():  # the run stopped before this batch started here
            return pickle.dumps((outcomes, False), PICKLE)
        wrapper = self.wrapper(blob)
        local = self._local
        local.budget = budget
        interrupted = False
        thread = threading.get_ident()
        try:
            for row in pickle.loads(payload):
                if self.stopping.is_set():
                    break  # shut down: the batch's items not started never start
                local.tries = 0
                self.running[thread] = (row[0], time.time())
                if wrapper.timeout is None:
                    outcomes.extend(map(outcome_row, wrapper([Item(*row)])))
                else:
                    outcomes.extend(map(outcome_row, self._watched(wrapper, Item(*row), budget)))
        except KeyboardInterrupt:
            interrupted = True  # Dask would lose it in the worker: the driver raises it
        finally:
            self.running.pop(thread, None)
        try:
            return pickle.dumps((outcomes, interrupted), PICKLE)
        except Exception:  # a result that does not pickle: only its item fails
            return pickle.dumps(([sendable(row) for row in outcomes], interrupted), PICKLE)

    def _watched(self, wrapper: PortableCall, item: Item, budget: int) -> list[Outcome]:
        """``wrapper([item])`` in a thread of its own, watched from this one: an attempt
        past the run's ``timeout`` is recorded as timed out when the thread executor
        would record it (``timeout + timeout_grace + 0.5`` s after it started), and its
        thread, which nothing can stop, runs on as a daemon (what it returns is dropped).
        """
        local = self._local
        box: list[Any] = []  # the attempt's outcomes, or what it raised

        def attempt() -> None:
            local.tries, local.budget = 0, budget
            try:
                box.append(wrapper([item]))
            except BaseException as exc:  # a KeyboardInterrupt the task raised
                box.append(exc)

        thread = threading.Thread(target=attempt, name="runner-dask-item", daemon=True)
        thread.start()
        tick = min(wrapper.timeout or 1.0, 1.0) / 4  # as the thread executor's watchdog
        while True:
            thread.join(tick)
            if box:
                if isinstance(box[0], BaseException):
                    raise box[0]
                outcomes: list[Outcome] = box[0]
                return outcomes
            with self._lock:  # every thread's watcher reads the one safe call's watchdog
                self._late.update((late.id, late) for late in wrapper.overdue())
                timed_out = self._late.pop(item.id, None)
            if timed_out is not None:
                return [timed_out]

    def stop(self, kill: bool) -> int:
        self.stopping.set()
        return self.group.stop(wait=1.0) if kill else 0


def _held(worker: Worker, name: str) -> WorkerRun | None:
    run = worker.plugins.get(name)
    return run if isinstance(run, WorkerRun) else None


def run_batch(name: str, blob: bytes, payload: bytes, budget: int) -> bytes:
    """One Dask task, each of its items with at most ``budget`` attempts. The run's
    wrapper (``blob``, a few hundred bytes) comes with every task: no task depends on
    data a lost worker takes with it."""
    run = _held(get_worker(), name)
    if run is None:  # the run ended: a batch cancelled too late runs nothing
        raise LookupError(f"this Dask worker serves no run {name!r}: it has ended")
    return run.run(blob, payload, budget)


def stop_run(name: str, kill: bool, dask_worker: Worker) -> int:
    """Sent to every worker with ``Client.run``: the run starts no more items there
    (with ``kill``, its commands are stopped); how many commands were."""
    run = _held(dask_worker, name)
    return 0 if run is None else run.stop(kill)


def running_items(name: str, dask_worker: Worker) -> dict[str, float]:
    """Sent to every worker with ``Client.run``: the run's items running there now, each
    with when it started (``time.time()``)."""
    run = _held(dask_worker, name)
    return {} if run is None else dict(run.running.values())


def runs_held(dask_worker: Worker) -> list[str]:
    """The runs whose state this worker holds (for ``Client.run``): none once they ended."""
    return sorted(
        name for name, plugin in dask_worker.plugins.items() if isinstance(plugin, WorkerRun)
    )
