"""The ``dask`` executor's cluster: Dask found (or how to install it), a LocalCluster's
shape, and the client to the scheduler the run uses. Dask is imported only when called."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from typing import Any

INSTALL_HINT = (
    'Dask is not installed: pip install "itemrunner[dask]" '
    '(or pip install ".[dask]" in a clone of runner)'
)
#: What a scheduler at an address that does not say (an old one) does: Dask's default.
DASK_ALLOWED_FAILURES = 3


def distributed_module() -> Any:
    """The ``distributed`` module, or one line saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise RuntimeError(INSTALL_HINT) from None
    return distributed


def dumps(thing: Any) -> bytes:
    """``thing`` pickled for the workers, with cloudpickle as Dask sends functions."""
    import cloudpickle

    try:
        return bytes(cloudpickle.dumps(thing))
    except Exception as exc:
        raise TypeError(f"the task cannot be sent to Dask workers: {exc}") from None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def shape(
    parallel: int, workers: int | None, threads_per_worker: int | None, processes: bool
) -> dict[str, int]:
    """A LocalCluster's workers and threads: ``parallel`` threads by default."""
    if workers is None:
        if not processes:
            workers = 1  # threads of one process: more workers would only add overhead
        elif threads_per_worker is not None:
            workers = math.ceil(parallel / threads_per_worker)
        else:
            workers = min(_cores(), parallel)
    return {
        "n_workers": workers,
        "threads_per_worker": threads_per_worker or math.ceil(parallel / workers),
    }


def _allowed_failures(dask_scheduler: Any) -> int:
    """Run on the scheduler: how often it runs a task again after its worker died."""
    return int(dask_scheduler.allowed_failures)


#: Dask's settings for the LocalCluster runner starts (its public config, for this cluster):
#:
#: * Dask's developers' logs (recent messages to each worker, the scheduler's transitions
#:   and events) keep 1000 entries each by default: with a message per task, each holding
#:   its items, a long run's driver grew by some 7 MB until they were full; 50 here.
#: * Each worker's statistical profiler (the dashboard's profile page) calls
#:   ``sys._current_frames()`` every 10 ms. On Python 3.11 before 3.11.9 that call can
#:   deadlock the worker's process (CPython gh-116969, dask/distributed#8616): a 10,000-
#:   item run here hung with 62 items left, every thread waiting for the GIL. Off here.
#: * The scheduler and each nanny or in-process worker (in the driver) sample the CPU,
#:   memory and I/O twice a second for the dashboard, and keep 7200 samples (an hour, some
#:   3 MB each); one minute here, so that the driver does not grow with a run's length.
LOCAL_CLUSTER_CONFIG = {
    "distributed.admin.low-level-log-length": 50,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.log-length": 120,
}


def _without_spans(extensions: dict[str, Any]) -> dict[str, Any]:
    """Dask's default scheduler or worker extensions but its spans.

    Spans group tasks for the dashboard's fine performance metrics, which runner does not
    use. The scheduler's default span keeps a record of every ``client.map`` for good
    (``Span.add_metadata``): runner calls it each time it sends batches, so a 100,000-
    item run's driver, where a LocalCluster's scheduler runs, grew by some 10 MB. Both sides
    go without it: a worker's extension reports to the scheduler's on each heartbeat.
    """
    return {name: extension for name, extension in extensions.items() if name != "spans"}


def connect(address: str | None, sizes: dict[str, int], processes: bool) -> tuple[Any, Any, int]:
    """A client of the scheduler at ``address``, or of a LocalCluster of ``sizes``
    started for the run; that cluster (None at an address); and how often the scheduler
    runs a task again after its worker died."""
    import dask.config  # here: dask is imported when a run uses it

    distributed = distributed_module()
    cluster = None
    try:
        if address is None:
            from distributed.scheduler import DEFAULT_EXTENSIONS as SCHEDULER_EXTENSIONS
            from distributed.worker import DEFAULT_EXTENSIONS as WORKER_EXTENSIONS

            scheduler_extensions = _without_spans(SCHEDULER_EXTENSIONS)
            if not dask.config.get("distributed.scheduler.work-stealing"):
                scheduler_extensions.pop("stealing", None)  # as Dask's scheduler does by default
            with dask.config.set(LOCAL_CLUSTER_CONFIG):
                cluster = distributed.LocalCluster(
                    **sizes,
                    processes=processes,
                    dashboard_address=":0",  # any free port: runs side by side do not clash
                    # Worker processes' logs: a heartbeat meeting the closing scheduler at
                    # the end would print a traceback; outcomes carry the errors that count.
                    silence_logs=logging.CRITICAL,
                    # A task whose worker died fails at once (Dask would run it on 3 more
                    # workers): whether its items run again is counted against
                    # retry.attempts by the executor, item by item.
                    scheduler_kwargs={
                        "allowed_failures": 0,
                        "extensions": scheduler_extensions,
                    },
                    extensions=_without_spans(WORKER_EXTENSIONS),  # each worker's
                )
                return distributed.Client(cluster), cluster, 0
        client = distributed.Client(address)
    except BaseException:
        if cluster is not None:
            cluster.close()
        raise
    try:
        return client, None, int(client.run_on_scheduler(_allowed_failures))
    except Exception:  # a scheduler that does not say
        return client, None, DASK_ALLOWED_FAILURES


#: Seconds a worker of the run's LocalCluster is given to close when items were left
#: running (``abandon``): then its process is killed.
ABANDON_SECONDS = 0.25


def close(client: Any, cluster: Any, abandon: bool = False) -> None:
    """Close the client, then the cluster started for the run (None: there was none).

    ``abandon``: items were left running on it (the run stopped and its grace is over),
    so its workers are not waited for: each worker process gets ``ABANDON_SECONDS`` to
    close, all at once (Dask's Nanny then kills it), a worker thread closes without
    waiting for the threads running items (they run on to their end, as daemons).
    Otherwise closing waits for them, up to Dask's own timeouts (seconds).
    """
    if client is not None:
        with contextlib.suppress(Exception):  # a scheduler already gone
            client.close()
    if cluster is None:
        return
    if abandon:
        with contextlib.suppress(Exception):  # they have gone already
            cluster.sync(_close_workers, list(cluster.workers.values()))
    with contextlib.suppress(Exception):
        cluster.close()


async def _close_workers(workers: list[Any]) -> None:
    """Close the workers of a LocalCluster at once, waiting for no item (see ``close``)."""
    nanny = distributed_module().Nanny
    await asyncio.gather(
        *(
            worker.close(timeout=ABANDON_SECONDS)
            if isinstance(worker, nanny)
            else worker.close(timeout=ABANDON_SECONDS, executor_wait=False)
            for worker in workers
        ),
        return_exceptions=True,
    )
