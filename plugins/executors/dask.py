"""The ``dask`` executor: items in adaptive batches, one Dask task per batch.

Dask is imported only when this executor runs: listing plugins imports this module. The
cluster and its client are in ``dask_cluster``; the batches sent and read back in
``dask_batches``; what runs on a worker in ``dask_worker``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any

from loguru import logger

from runner.api import Executor, Item, ItemCall, Outcome, RunContext

from .dask_batches import Batches, Shared
from .dask_cluster import close, connect, distributed_module, dumps, shape
from .dask_losses import Losses
from .plumbing import (
    Feed,
    Interrupted,
    failed,
    interrupted,
)

_DASK_LOG = logging.getLogger("distributed")


#: Seconds a stop waits for the workers' answers to what it asks them (``Client.run`` and
#: ``unregister_worker_plugin`` wait for every worker, with no bound of their own: a
#: worker whose event loop hangs would hold a signal's stop for good). Healthy workers
#: answer in milliseconds; once a question went unanswered, none is asked again.
ASK_WORKERS = 2.0


def _within(seconds: float, call: Callable[[], Any]) -> tuple[bool, Any]:
    """``call()`` on a thread of its own, waited for at most ``seconds``: (whether it
    ended, what it returned: None after an exception, a cluster that is gone)."""
    result: list[Any] = [None]

    def run() -> None:
        with contextlib.suppress(Exception):  # the cluster is gone: nothing runs there
            result[0] = call()

    thread = threading.Thread(target=run, name="runner-dask-ask", daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive(), result[0]


def _worker_side() -> ModuleType:
    """The worker side (it imports ``distributed``): once the executor runs."""
    return importlib.import_module("runner_plugins.executors.dask_worker")


class DaskExecutor(Executor):
    """Runs items on a Dask cluster: a ``LocalCluster`` for the run, or the one at ``address``.

    Items go out in batches, one Dask task each, run one after another by the run's safe
    wrapper on a worker: one item per batch while items take ``batch_seconds`` or more,
    more for faster ones (at most ``max_batch``), and once the source is read to its end,
    batches that spread the last items over every slot. At most ``parallel`` items run at
    once: the LocalCluster has ``parallel`` threads by default (and a batch queued for
    each, so that no thread waits for the driver); on a cluster at ``address``, at most
    ``parallel`` batches are out. Items read but not yet handed on stay under ``3 * slots
    * max_batch`` (slots: the batches out, ``parallel`` or twice that), whatever the source.
    With ``rate_limit.per_second``, an item goes out alone, as soon as the run's gate
    admits it, and only while a thread is free to start it: so the cap holds for the
    starts on the workers too (a retry, which runs on the worker after its wait, is not
    held by the gate).

    A task lost as a whole (its worker died, its outcome cannot be read back) may have
    started each of its items once, and as often again as the worker recorded retries
    of it (``dask_worker``: a retry starts only once the scheduler holds its record):
    that many starts are counted, and an item runs again, alone in a task and with only
    the attempts left, while the count stays below ``retry.attempts``; otherwise it
    fails (``WorkerDied`` for a worker's death) saying how often it may have started.
    So an item starts at most ``retry.attempts`` times. The LocalCluster's scheduler
    never runs a task again by itself (``allowed_failures=0``); a scheduler at
    ``address`` may (its ``distributed.scheduler.allowed-failures``, read at the start):
    each of its lost tasks counts as that many first starts plus one, and as each of
    those runs may retry, an item may start up to ``allowed-failures + 1`` times
    ``retry.attempts``, which a line says. Items of a batch that could not be sent run
    again one per task. ``shutdown``: no new item starts anywhere;
    ``kill``: the commands of running items are stopped on every worker and the batches
    still out cancelled (a Python task runs on to its end; its outcome is dropped). A
    cluster it started is closed at the end of ``map``, whatever the way out.

    Parameters (``executor.*``):

    * ``address``: the scheduler to use, e.g. ``tcp://scheduler:8786``; null starts a
      LocalCluster for the run.
    * ``workers``: LocalCluster worker processes (null: the cores, at most ``parallel``).
    * ``threads_per_worker``: LocalCluster threads per worker (null: ``parallel`` over
      the workers).
    * ``processes``: LocalCluster workers in processes of their own (false: threads of
      the run's process, which start at once but share its GIL).
    * ``max_batch``: the most items in one Dask task.
    * ``batch_seconds``: about how long a batch runs, once items' times are known.
    """

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        threads_per_worker: int | None = None,
        processes: bool = True,
        max_batch: int = 256,
        batch_seconds: float = 0.3,
    ) -> None:
        for key, value in (("workers", workers), ("threads_per_worker", threads_per_worker)):
            if value is not None and value < 1:
                raise ValueError(f"{key}={value!r} must be >= 1, or null")
        if max_batch < 1 or not batch_seconds > 0:
            raise ValueError(
                f"max_batch={max_batch!r} must be >= 1 and batch_seconds={batch_seconds!r} > 0"
            )
        self.address = address
        self.workers = workers
        self.threads_per_worker = threads_per_worker
        self.processes = processes
        self.max_batch = max_batch
        self.batch_seconds = batch_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards the client, the cluster and _out
        self._client: Any = None
        self._cluster: Any = None
        #: Times the scheduler runs a task again after its worker died (Dask's
        #: ``allowed-failures``): 0 on the LocalCluster started here.
        self._allowed_failures = 0
        self._log_level = logging.NOTSET
        self._run: str | None = None  # the name of the run map serves, while it does
        self._out: dict[Any, list[Item]] = {}  # future -> its batch
        self._given_up: set[Any] = set()  # futures cancelled here: their items never finish
        #: When the batches were given up: the items running on the workers then, each
        #: with its start (``time.time()``), recorded as Interrupted.
        self._left_running: dict[str, float] = {}
        #: A question to the workers went unanswered: none is asked again, and the items
        #: of the batches given up are all recorded as Interrupted (which ran is unknown).
        self._deaf = False
        self._grace = 0.0  # the drain's length, for their message
        self._timer: threading.Timer | None = None

    def setup(self, context: RunContext) -> None:
        # What would stop the run stops it before any item: no Dask, a task that cannot
        # be sent, a scheduler that does not answer.
        distributed_module()
        if context.task is not None:
            dumps(context.task)
        if not context.dry_run:
            self._open(context.parallel)

    def _open(self, parallel: int) -> Any:
        """The client, started (with its LocalCluster) if need be."""
        if self._client is not None:
            return self._client
        # Dask's INFO lines (workers registered, connections) would drown the run's own.
        self._log_level = _DASK_LOG.level
        _DASK_LOG.setLevel(max(self._log_level, logging.WARNING))
        sizes = shape(parallel, self.workers, self.threads_per_worker, self.processes)
        try:
            client, cluster, self._allowed_failures = connect(self.address, sizes, self.processes)
        except BaseException:
            _DASK_LOG.setLevel(self._log_level)
            raise
        with self._lock:
            self._client, self._cluster = client, cluster
        threads = client.nthreads()
        where = "a local Dask cluster" if cluster is not None else f"Dask at {self.address}"
        logger.info(
            f"Running on {where}: {len(threads)} worker(s), {sum(threads.values())} "
            f"thread(s); dashboard: {client.dashboard_link}"
        )
        return client

    def _close(self) -> None:
        with self._lock:
            client, cluster = self._client, self._cluster
            self._client = self._cluster = None
        close(client, cluster, abandon=bool(self._left_running) or self._deaf)
        if client is not None:
            _DASK_LOG.setLevel(self._log_level)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        self._stop.set()
        self._tell_workers(kill=False)
        if not wait:
            if timeout is not None and self._run is not None and self._timer is None:
                # Outcomes of running items are still yielded, for at most ``timeout`` s.
                self._grace = timeout
                self._timer = threading.Timer(timeout, self._give_up)
                self._timer.daemon = True
                self._timer.start()
        elif self._run is None:
            self._close()  # map never ran (a dry run, an error before it) or has ended
        else:
            with self._lock:
                out = list(self._out)
            with contextlib.suppress(Exception):  # a TimeoutError: the time is up
                distributed_module().wait(out, timeout=timeout)

    def kill(self) -> int:
        """Stop the commands running on the workers; the batches they were in come back
        with what finished (``shutdown``'s drain time still applies, then ``_give_up``)."""
        self._stop.set()
        killed = self._tell_workers(kill=True)
        if self._timer is None:
            self._give_up()  # no drain time was given: nothing more is waited for
        return killed

    def _tell_workers(self, kill: bool) -> int:
        """Stop the current run on every worker (with ``kill``, its commands too)."""
        client, name = self._client, self._run
        if client is None or name is None:
            return 0
        done = self._ask(client, _worker_side().stop_run, name, kill) or {}
        return sum(n for n in done.values() if isinstance(n, int))

    def _ask(self, client: Any, function: Any, *args: Any) -> dict[str, Any] | None:
        """``function(*args)`` on every worker (``Client.run``), its answers by worker;
        {} from a cluster that is gone, None when the workers did not answer within
        ASK_WORKERS (or an earlier question went unanswered)."""
        if self._deaf:
            return None
        ended, answers = _within(
            ASK_WORKERS, lambda: client.run(function, *args, on_error="ignore")
        )
        if not ended:
            self._deaf = True
            logger.warning(
                f"The Dask workers did not answer within {ASK_WORKERS:g} s while the run "
                "stopped: the items they run are recorded as Interrupted"
            )
            return None
        return answers if isinstance(answers, dict) else {}

    def _give_up(self) -> None:
        """Cancel every batch still out: map records the items running on the workers as
        Interrupted and drops the others (they never started)."""
        with self._lock:
            out = list(self._out)
            client, name = self._client, self._run
        if out and client is not None and name is not None:
            found = self._ask(client, _worker_side().running_items, name)
            for running in (found or {}).values():
                if isinstance(running, dict):
                    self._left_running.update(running)
        with self._lock:
            self._given_up.update(out)
        if out and client is not None:
            with contextlib.suppress(Exception):
                client.cancel(out, reason="the run stopped")

    def _interrupted(self, batch: list[Item]) -> list[Outcome]:
        """The items of a batch given up that were running on a worker, as Interrupted;
        every item of it when the workers did not say which were running."""
        if self._deaf:
            how = "its Dask worker did not answer when the run stopped: it may have started"
            error = Interrupted(interrupted(self._grace, how))
            return [failed(item, error) for item in batch]
        how = "its Dask task was cancelled (a Python task runs on to its end on the worker)"
        error = Interrupted(interrupted(self._grace, how))
        now, wall = time.perf_counter(), time.time()
        return [
            failed(item, error, now - (wall - self._left_running[item.id]))
            for item in batch
            if item.id in self._left_running
        ]

    def map(self, fn: ItemCall, items: Iterable[Item], parallel: int) -> Iterator[Outcome]:
        self._stop.clear()
        blob = dumps(fn.portable)
        attempts = fn.portable.attempts
        feed = Feed(iter(items))
        ahead: deque[Item] = deque(feed.take(1))
        if not ahead:
            self._close()  # nothing to run, not even a cluster to start
            if feed.error is not None:
                raise feed.error
            return
        client = self._open(parallel)
        token = uuid.uuid4().hex
        worker_side = _worker_side()
        # The run's state on every worker (and any that joins), from before its first
        # batch until its end: a plugin, so that nothing of it stays on a worker after.
        run = worker_side.WorkerRun(token, blob)
        # First starts a lost task may have cost (the scheduler's own reruns included).
        per_loss = self._allowed_failures + 1
        if per_loss > 1:
            logger.warning(
                f"Dask at {self.address} runs a task again on another worker up to "
                f"{per_loss - 1} time(s) when its worker dies (its scheduler's "
                "distributed.scheduler.allowed-failures): an item that kills its worker may "
                f"start up to {per_loss * attempts} times, more than retry.attempts="
                f"{attempts}; set allowed-failures to 0 on the scheduler to bound it by "
                "retry.attempts"
            )
        retries = None  # the run's queue of retries started, on the scheduler

        def recorded() -> list[str]:
            assert retries is not None
            return [worker_side.decode_id(data) for data in retries.get(batch=True)]

        def out() -> set[str]:
            with self._lock:
                return {item.id for batch in self._out.values() for item in batch}

        losses = Losses(attempts, per_loss, recorded, out)
        batches: Batches | None = None
        try:
            retries = worker_side.retries_queue(token, client)
            client.register_plugin(run)
            self._run = run.name
            threads = sum(client.nthreads().values())
            # A LocalCluster of at most ``parallel`` threads runs no more than that: a
            # batch queued for each thread hides the round trip through the driver.
            own = self._cluster is not None and threads <= parallel
            slots = max(parallel, 1) + (threads if own else 0)
            if fn.paced:
                # per_second: an item goes out only when a thread can start it at once, so
                # that it starts when admit() let it through; queued ones would start as
                # others end, as many at once as ended (10 in 0.2 s at 5 per second).
                slots = max(1, min(parallel, threads))
            shared = Shared(
                self._out, self._given_up, self._lock, self._stop,
                lambda kill: self._tell_workers(kill=kill), self._interrupted,
            )  # fmt: skip
            batches = Batches(
                fn, feed, ahead, client, worker_side, run, token, blob, losses, slots,
                parallel, (self.max_batch, self.batch_seconds), shared,
            )  # fmt: skip
            yield from batches.outcomes()
        finally:
            # Interrupted, failed or closed early: no batch still out may outlive the run
            # (commands started on workers are in sessions of their own).
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._out:
                self._tell_workers(kill=True)
                self._give_up()
            if not self._deaf:  # workers that did not answer are asked nothing more
                _within(ASK_WORKERS, lambda: client.unregister_worker_plugin(run.name))
            if retries is not None:
                with contextlib.suppress(Exception):
                    retries.close()
            with self._lock:
                self._out.clear()
                self._given_up.clear()
            self._run = None
            self._close()
            self._left_running.clear()
            self._deaf = False
        if batches is not None and batches.interrupted:
            raise KeyboardInterrupt
        if feed.error is not None:
            raise feed.error
