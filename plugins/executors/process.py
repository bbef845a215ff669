"""The ``process`` executor: items run in a pool of worker processes.

The driver (the thread consuming ``map``, :mod:`~runner_plugins.executors.process_pool`)
pulls items lazily, hands them to workers in chunks that adapt to how long items take
and reads outcomes back in batches; a worker
(:mod:`~runner_plugins.executors.process_worker`) runs ``fn.portable``, the run's safe
wrapper, so retries and command timeouts happen there.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable, Iterator
from typing import Any

from runner.api import Executor, Item, ItemCall, Outcome, RunContext

from .plumbing import drain_deadline, unpicklable
from .process_pool import Pool


class ProcessExecutor(Executor):
    """Runs items in up to ``parallel`` worker processes (never more than there are items).

    ``start_method``: ``spawn`` (the default, the safe one) or ``fork`` (starts faster,
    but copies locks other threads of the run may hold) or ``forkserver``. The task must
    pickle (``setup`` checks); an item or a result that does not fails alone
    (``NotPicklable``). Chunks grow to ``max_chunk`` cheap items, and a worker holds two
    at most, so items read but not finished stay below ``parallel * 2 * max_chunk``.
    The outcome of an item that took over 2 ms goes back at once; cheaper ones wait in a
    batch for up to 5 ms. A worker that dies fails the item it was running and those
    that finished there but whose outcomes it still held (``WorkerDied``: they ran, and
    may have used all their attempts there), so no item starts more than
    ``retry.attempts`` times; its items not started yet run elsewhere, and another
    worker takes its place. With a run ``timeout``, a Python task still running ``timeout +
    timeout_grace + 0.5`` s after its attempt started (when the thread executor records
    it) gets its worker SIGTERM, which stops its commands, and SIGKILL after
    ``timeout_grace``; it fails as ``TimedOut``. Workers ignore SIGINT and SIGHUP (the
    run decides). ``kill`` (a signal, ``halt.mode=now``): every worker gets SIGTERM,
    which stops its commands and starts nothing more while its Python task may still
    end, and SIGKILL once ``timeout_grace`` has passed (the drain ends then too); an
    item still running then fails as ``Interrupted``. ``fn.admit()`` and that watchdog
    run in the consuming thread: while the run's gate holds starts back
    (``per_second``, a rate-limit pause), outcomes that arrive wait to be read too.
    """

    def __init__(self, start_method: str = "spawn", max_chunk: int = 1024) -> None:
        methods = multiprocessing.get_all_start_methods()
        if start_method not in methods:
            raise ValueError(
                f"start_method={start_method!r} is invalid. Valid choices: {', '.join(methods)}."
            )
        if max_chunk < 1:
            raise ValueError(f"max_chunk={max_chunk!r} must be >= 1")
        self.start_method = start_method
        self.max_chunk = max_chunk
        self._pool: Pool | None = None

    def setup(self, context: RunContext) -> None:
        _refuse_unpicklable(context.task, type(context.task).__name__)

    def map(self, fn: ItemCall, items: Iterable[Item], parallel: int) -> Iterator[Outcome]:
        portable = fn.portable
        task = getattr(portable.run, "__self__", None)  # a task's bound run, or a function
        name = getattr(portable.run, "__qualname__", "?") if task is None else type(task).__name__
        _refuse_unpicklable(portable, name)
        self._pool = Pool(
            self.start_method, self.max_chunk, fn, portable, iter(items), max(parallel, 1)
        )
        return self._pool.outcomes()

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        pool = self._pool
        if pool is None:
            return
        pool.stopping = True
        if wait:  # the caller no longer reads: what workers still send is dropped
            pool.close(timeout)
        elif timeout is not None:
            pool.drain_until = drain_deadline(timeout, pool.drain_until)

    def kill(self) -> int:
        return 0 if self._pool is None else self._pool.kill()


def _refuse_unpicklable(obj: Any, task: str) -> None:
    problem = unpicklable(obj)
    if problem is not None:
        raise TypeError(
            f"task {task} cannot be sent to worker processes: it does not pickle "
            f"({problem}); use executor=thread"
        )
