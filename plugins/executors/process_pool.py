"""The ``process`` executor's driver: one ``map``'s worker processes and the loop that
feeds them items and reads their outcomes back (the executor is in
:mod:`~runner_plugins.executors.process`, the workers' side in
:mod:`~runner_plugins.executors.process_worker`).

A small shared array per worker tells the driver which item it is running and since
when: a worker that dies fails exactly that item, one stuck past the run's timeout is
stopped, and one still running when a stopped run's grace ends is killed and its item
recorded as interrupted.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import math
import multiprocessing
import pickle
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, cast

from runner.api import Item, ItemCall, Outcome, PortableCall, TaskFailure
from runner.toolkit import TimedOut

from .plumbing import (
    PICKLE,
    Feed,
    Interrupted,
    NotPicklable,
    WorkerDied,
    failed,
    interrupted,
    item_row,
    next_chunk,
    unpicklable,
)
from .process_worker import (
    ATTEMPT,
    GRACEFUL,
    SEQ,
    STARTED,
    STOP,
    work,
)

TICK = 0.1  # seconds between looks at stop requests, overdue attempts, kills and exits


@dataclasses.dataclass(eq=False)
class _Worker:
    """The driver's side of one worker process."""

    proc: BaseProcess
    results: Connection
    tasks: Connection
    shm: Any
    held: deque[Item] = dataclasses.field(default_factory=deque)  # sent, no outcome yet
    done: int = 0  # outcomes received; its items are numbered from 1 as it starts them
    chunk: int = 1
    spoke: bool = False
    killed_for: int = 0  # the item the watchdog stopped it for
    kill_at: float = math.inf  # SIGKILL then (SIGTERM has had its grace)


class Pool:
    """One ``map``: the workers, the items to run again, and the loop that drives them."""

    def __init__(
        self,
        start_method: str,
        max_chunk: int,
        fn: ItemCall,
        portable: PortableCall,
        source: Iterator[Item],
        n: int,
    ) -> None:
        self.ctx: Any = multiprocessing.get_context(start_method)
        self.max_chunk = max_chunk
        self.portable = pickle.dumps(portable, PICKLE)
        self.admit, self.receive, self.limit = fn.admit, fn.receive, fn.limit
        # per_second: one item at a time per worker, none queued, so it starts as admitted.
        self.paced = fn.paced
        self.timeout, self.grace = portable.timeout, portable.grace
        self.feed, self.parallel = Feed(source), n
        self.stopping = self.killed = self.closed = False
        self.backlog: deque[Item] = deque()  # items to run again, before new ones
        self.workers: dict[Connection, _Worker] = {}
        self.lock = threading.Lock()  # the workers, against kill() from another thread
        self.out: list[Outcome] = []
        self.drain_until = math.inf
        self.failed_starts = 0
        self.interrupted: str | None = None

    def outcomes(self) -> Iterator[Outcome]:
        atexit.register(self.close, 0.0)  # a map never closed must not outlive the program
        watched = time.monotonic()
        try:
            while not self.closed:
                if self.stopping:
                    for worker in list(self.workers.values()):
                        _tell_stop(worker)
                    if self.killed and time.monotonic() >= self.drain_until:
                        self._end_killed()  # what still runs is killed and recorded
                    if not self.workers or time.monotonic() >= self.drain_until:
                        if self.out:
                            out, self.out = self.out, []
                            yield from out
                        break
                else:
                    self._dispatch()
                    if self.feed.exhausted and not self.backlog and not self.out:
                        if not any(worker.held for worker in self.workers.values()):
                            break  # every item has its outcome
                for conn in _ready(list(self.workers), TICK):
                    self._read(self.workers[conn])
                if time.monotonic() - watched >= TICK:
                    watched = time.monotonic()
                    self._watch(watched)
                    # A process the task forked may hold a dead worker's pipe open: its
                    # end of file may never come, so its exit is looked for too.
                    for worker in [w for w in self.workers.values() if not w.proc.is_alive()]:
                        while worker.results in self.workers and worker.results.poll():
                            self._read(worker)
                        if worker.results in self.workers:
                            self._bury(worker)
                if self.out:
                    out, self.out = self.out, []
                    yield from out
                if self.interrupted is not None:
                    raise KeyboardInterrupt(f"raised by item {self.interrupted!r} in a worker")
            self.close(0.0 if self.stopping else TICK * 10)  # idle ones exit when told
        finally:
            self.close(0.0)
        if self.feed.error is not None:
            raise self.feed.error

    def _take(self, count: int) -> list[Item]:
        """Up to ``count`` admitted items: the ones to run again first, then the source's."""
        todo = [self.backlog.popleft() for _ in range(min(count, len(self.backlog)))]
        if len(todo) < count:
            todo.extend(self.feed.take(count - len(todo)))
        for index in range(len(todo)):
            if not self.admit():
                self.stopping = True  # the run stops: nothing more starts
                return todo[:index]
        return todo

    def _dispatch(self) -> None:
        # parallel=auto: at most the limit's current number of workers have items.
        cap = self.parallel if self.limit is None else min(self.parallel, self.limit.current)
        busy = sum(1 for worker in self.workers.values() if worker.held)
        for worker in list(self.workers.values()):
            # The chunk it runs and the next, so that it never waits for the driver; no
            # next while items are slow, so that one worker does not hold two.
            chunk = 1 if self.paced else worker.chunk
            if len(worker.held) <= (chunk if chunk > 1 else 0) and (worker.spoke or not self.paced):
                if not self.stopping and not worker.killed_for:
                    if not worker.held:
                        if busy >= cap:
                            continue
                        busy += 1
                    elif busy > cap:
                        busy -= 1  # the limit went down: this one drains, gets no more
                        continue
                    self._send(worker, self._take(chunk))
        while len(self.workers) < cap and busy < cap and not self.stopping:
            busy += 1
            if self.paced:  # its item is admitted once it is ready: a start takes a while
                starting = sum(1 for worker in self.workers.values() if not worker.spoke)
                if len(self.backlog) <= starting:
                    self.backlog.extend(self.feed.take(starting + 1 - len(self.backlog)))
                if len(self.backlog) <= starting:
                    return  # a worker starts for an item, never for none
                self._start()
                continue
            first = self._take(1)  # a worker starts for an item, never for none
            if not first:
                return
            self._send(self._start(), first)

    def _start(self) -> _Worker:
        tasks_out, tasks_in = self.ctx.Pipe(duplex=False)
        results_out, results_in = self.ctx.Pipe(duplex=False)
        shm = self.ctx.RawArray("d", 4)
        args = (self.portable, tasks_out, results_in, shm)
        proc = self.ctx.Process(target=work, args=args, name="runner-worker")
        proc.start()
        tasks_out.close()  # the worker's ends: copies here would hide its exit
        results_in.close()
        worker = _Worker(proc, results_out, tasks_in, shm)
        with self.lock:
            self.workers[results_out] = worker
            if self.killed:  # kill() came while it started
                proc.terminate()
        return worker

    def _send(self, worker: _Worker, items: list[Item]) -> None:
        try:
            data = pickle.dumps([item_row(item) for item in items], PICKLE)
        except Exception:
            sendable = []
            for item in items:
                problem = unpicklable(item_row(item))
                if problem is None:
                    sendable.append(item)
                else:
                    error = NotPicklable(f"item {item.id!r} cannot be sent to a worker: {problem}")
                    self.out.append(failed(item, error))
            items = sendable
            data = pickle.dumps([item_row(item) for item in items], PICKLE)
        if items:
            worker.held.extend(items)
            # A worker that is gone cannot take them: its end of file comes next, and
            # then they run again.
            with contextlib.suppress(OSError):
                worker.tasks.send_bytes(data)

    def _read(self, worker: _Worker) -> None:
        try:
            kind, payload = pickle.loads(worker.results.recv_bytes())
        except (EOFError, OSError):
            self._bury(worker)
            return
        worker.spoke, self.failed_starts = True, 0
        if kind == "ready":
            return
        if kind == "interrupt":
            self.interrupted = payload
        elif kind == "error":
            raise RuntimeError(payload)
        else:
            took = 0.0
            for fields in payload:
                outcome = Outcome(*fields)
                item = worker.held.popleft()
                assert item.id == outcome.id, (item.id, outcome.id)
                took += outcome.seconds
                self.out.append(self.receive(outcome))
            worker.done += len(payload)
            work = took / max(len(payload), 1) * worker.chunk  # what a whole chunk takes
            worker.chunk = next_chunk(worker.chunk, work, self.max_chunk)

    def _bury(self, worker: _Worker) -> None:
        """A worker ended and all it sent was read: account for the items it held.

        The items it started may have run (all their attempts, for all the driver knows):
        they fail rather than start again. Those it had not started run elsewhere."""
        why = _how(self._reap(worker))
        held = list(worker.held)
        running = int(worker.shm[SEQ]) - worker.done  # its place in held, from 1
        if running > 0:  # it ended while running this item (or before sending it back)
            started, held = held[:running], held[running:]
            *finished, item = started
            began = time.perf_counter() - (time.monotonic() - worker.shm[STARTED])
            lost = f"it may have run: its outcome was lost with its worker process ({why})"
            if self.killed:  # still running when the grace after kill() ran out
                how = f"its worker process was killed ({why})"
                self.out.append(failed(item, Interrupted(interrupted(self.grace, how)), began))
            elif worker.killed_for == worker.shm[SEQ]:
                stopped = "its worker process was stopped"
                error: TaskFailure = TimedOut(f"timed out after {self.timeout:g} s ({stopped})")
                self.out.append(failed(item, error, began))
            elif worker.killed_for:  # the watchdog was a moment late, yet it had started
                stopped = "its worker process was stopped for an earlier item's timeout"
                error = WorkerDied(f"it may have run: {stopped} ({why})")
                self.out.append(failed(item, error, began))
            else:
                error = WorkerDied(f"the worker process running item {item.id!r} died ({why})")
                self.out.append(failed(item, error, began))
            # These ran to their end, their outcomes still batched.
            self.out.extend(failed(done, WorkerDied(lost)) for done in finished)
        elif not worker.shm[SEQ] and not worker.spoke and not self.stopping:
            self.failed_starts += 1
            if self.failed_starts >= 3:
                raise RuntimeError(f"worker processes end before any item ({why}); see stderr")
        if not self.stopping:
            self.backlog.extendleft(reversed(held))

    def _reap(self, worker: _Worker) -> int | None:
        """Forget an ending worker; its exit code."""
        with self.lock:
            del self.workers[worker.results]
        # It ended, or its end of file came so it is ending; one that lingers (a task
        # closed the pipe) is killed.
        worker.proc.join(self.grace)
        if worker.proc.exitcode is None:
            worker.proc.kill()
            worker.proc.join()
        exitcode = worker.proc.exitcode
        worker.proc.close()
        worker.results.close()
        worker.tasks.close()
        return exitcode

    def _watch(self, now: float) -> None:
        """SIGKILL what had its grace; SIGTERM a worker whose attempt is past the timeout."""
        patience = math.inf if self.timeout is None else self.timeout + self.grace + 0.5
        for worker in list(self.workers.values()):
            if now >= worker.kill_at:
                worker.proc.kill()
                worker.kill_at = math.inf
            elif not worker.killed_for and worker.kill_at == math.inf:
                seq, attempt = worker.shm[SEQ], worker.shm[ATTEMPT]
                if attempt and now - attempt > patience and worker.shm[SEQ] == seq:
                    worker.killed_for = int(seq)
                    worker.proc.terminate()
                    worker.kill_at = now + self.grace

    def _end_killed(self) -> None:
        """After kill() and the drain time: SIGKILL every worker still running, and
        record the items they ran as interrupted."""
        for worker in list(self.workers.values()):
            worker.proc.kill()
            worker.proc.join(self.grace)  # SIGKILL: at once, unless the machine crawls
            while worker.results in self.workers and worker.results.poll():
                self._read(worker)  # what it sent before its end is its outcomes
            if worker.results in self.workers:
                self._bury(worker)

    def kill(self) -> int:
        """SIGTERM every worker, which stops its commands and starts nothing more, and
        SIGKILL after the grace; how many were running an item."""
        self.stopping = self.killed = True
        running = 0
        with self.lock:
            for worker in self.workers.values():
                running += int(worker.shm[SEQ]) > worker.done
                worker.shm[STOP] = GRACEFUL  # its Python task may still end by itself
                with contextlib.suppress(OSError):
                    worker.tasks.send_bytes(b"")  # an idle one ends now
                worker.proc.terminate()
                worker.kill_at = min(worker.kill_at, time.monotonic() + self.grace)
        return running

    def close(self, patience: float | None) -> None:
        """End every worker: ``patience`` s to finish its item and exit (what it sends
        now is dropped), then SIGTERM, then SIGKILL after the grace."""
        if self.closed:
            return
        self.stopping = True
        deadline = math.inf if patience is None else time.monotonic() + patience
        while self.workers:
            now = time.monotonic()
            for worker in list(self.workers.values()):
                _tell_stop(worker)
                if now >= deadline:
                    worker.proc.terminate()
                    worker.kill_at = min(worker.kill_at, now + self.grace)
            deadline = math.inf if now >= deadline else deadline
            self._watch(now)
            for conn in _ready(list(self.workers), TICK / 2):
                worker = self.workers[conn]
                try:
                    worker.results.recv_bytes()  # dropped
                except (EOFError, OSError):
                    self._reap(worker)
            for worker in [w for w in self.workers.values() if not w.proc.is_alive()]:
                self._reap(worker)
        self.closed = True
        atexit.unregister(self.close)


def _tell_stop(worker: _Worker) -> None:
    if not worker.shm[STOP]:
        worker.shm[STOP] = 1.0  # it starts no item any more...
        with contextlib.suppress(OSError):
            worker.tasks.send_bytes(b"")  # ...and ends when it is idle


def _ready(conns: list[Connection], timeout: float) -> list[Connection]:
    """The connections with something to read (or at their end), within ``timeout``."""
    return cast("list[Connection]", wait(conns, timeout))  # it returns what it was given


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"
