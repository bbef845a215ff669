"""The ``dask`` executor's worker side: a run's state on each Dask worker, and its tasks.

A run's state is a worker plugin (Dask's public way to give workers state): registered
when the run starts, on every worker and on any that joins later, and removed when it
ends, so a long-lived worker keeps nothing of the runs it served. The driver
(:mod:`~runner_plugins.executors.dask`) imports this module only once it runs on Dask.
"""

from __future__ import annotations

import pickle
import threading
from typing import Any

from distributed import Worker, get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from runner.api import Item, PortableCall
from runner.toolkit import CommandGroup, join_group
from runner_plugins.executors.plumbing import PICKLE, outcome_row, sendable

PREFIX = "runner-run-"  # a run's plugin name: this and the run's token


class WorkerRun(WorkerPlugin):
    """One run as a worker serves it: the run's safe wrapper (``fn.portable``), unpickled
    once; the signal to start no more items; the command group of the items' commands,
    which ``stop(kill=True)`` stops. Removing the plugin (the run's end) stops it too."""

    def __init__(self, token: str) -> None:
        self.name = PREFIX + token
        self.stopping = threading.Event()
        self.group = CommandGroup()
        self._wrapper: PortableCall | None = None
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[type[WorkerRun], tuple[str]]:
        # Only the name travels: each worker makes its own event, group and lock.
        return (WorkerRun, (self.name.removeprefix(PREFIX),))

    def teardown(self, worker: Worker) -> None:
        self.stopping.set()  # a batch still running starts no further item

    def wrapper(self, blob: bytes) -> PortableCall:
        with self._lock:
            if self._wrapper is None:
                portable: PortableCall = pickle.loads(blob)
                group, run = self.group, portable.run
                group.grace = portable.grace

                def joined(item: Item) -> Any:
                    join_group(group)  # not the wrapper's own: the one kill stops
                    return run(item)

                portable.run = joined
                self._wrapper = portable
        return self._wrapper

    def run(self, blob: bytes, payload: bytes) -> bytes:
        """A batch, item by item: a stop holds between two items, and the outcomes of the
        items before a KeyboardInterrupt are kept. Returned pickled, so that a result that
        cannot be pickled fails its own item only."""
        outcomes: list[tuple[Any, ...]] = []
        if self.stopping.is_set():  # the run stopped before this batch started here
            return pickle.dumps((outcomes, False), PICKLE)
        wrapper = self.wrapper(blob)
        interrupted = False
        try:
            for row in pickle.loads(payload):
                if self.stopping.is_set():
                    break  # shut down: the batch's items not started never start
                outcomes.extend(map(outcome_row, wrapper([Item(*row)])))
        except KeyboardInterrupt:
            interrupted = True  # Dask would lose it in the worker: the driver raises it
        try:
            return pickle.dumps((outcomes, interrupted), PICKLE)
        except Exception:  # a result that does not pickle: only its item fails
            return pickle.dumps(([sendable(row) for row in outcomes], interrupted), PICKLE)

    def stop(self, kill: bool) -> int:
        self.stopping.set()
        return self.group.stop(wait=1.0) if kill else 0


def _held(worker: Worker, name: str) -> WorkerRun | None:
    run = worker.plugins.get(name)
    return run if isinstance(run, WorkerRun) else None


def run_batch(name: str, blob: bytes, payload: bytes) -> bytes:
    """One Dask task. The run's wrapper (``blob``, a few hundred bytes) comes with every
    task: no task depends on data a lost worker takes with it."""
    run = _held(get_worker(), name)
    if run is None:  # the run ended: a batch cancelled too late runs nothing
        raise LookupError(f"this Dask worker serves no run {name!r}: it has ended")
    return run.run(blob, payload)


def stop_run(name: str, kill: bool, dask_worker: Worker) -> int:
    """Sent to every worker with ``Client.run``: the run starts no more items there
    (with ``kill``, its commands are stopped); how many commands were."""
    run = _held(dask_worker, name)
    return 0 if run is None else run.stop(kill)


def runs_held(dask_worker: Worker) -> list[str]:
    """The runs whose state this worker holds (for ``Client.run``): none once they ended."""
    return sorted(
        name for name, plugin in dask_worker.plugins.items() if isinstance(plugin, WorkerRun)
    )
