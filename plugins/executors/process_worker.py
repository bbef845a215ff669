"""The ``process`` executor's worker side: the main of a worker process.

A worker runs the chunks of items the driver (:mod:`~runner_plugins.executors.process`)
sends, with ``fn.portable``, the run's safe wrapper, and sends outcomes back in batches.
Its shared array tells the driver which item it runs and since when.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

from runner.api import Item, PortableCall
from runner.toolkit import CommandGroup, close_reaper, current_group, join_group

from .plumbing import PICKLE, outcome_row, sendable

# Each worker's shared array: how many items it started (the last one is the running
# one until its outcome arrives), when that one and its running attempt started
# (time.monotonic(), which the processes of a machine share; 0: between attempts), and
# a flag the driver sets to say "start nothing more" (1), or "start nothing more, stop
# your commands, and finish the running item if you can before SIGKILL" (GRACEFUL).
SEQ, STARTED, ATTEMPT, STOP = range(4)
GRACEFUL = 2.0
SEND_AT_ONCE = 0.002  # the outcome of an item that took longer goes back at once...
BATCH_SECONDS = 0.005  # ...cheaper ones wait in the worker's batch at most this long


@dataclasses.dataclass(slots=True)
class _Sending:
    """Whether the worker is in the middle of sending a message, and whether SIGTERM
    came during one: half a message would be garbage, so it ends right after it."""

    now: bool = False
    terminated: bool = False


class _Terminated(BaseException):
    """SIGTERM in a worker: unwinds the running task (its commands are already stopped)."""


def work(portable: bytes, tasks: Connection, results: Connection, shm: Any) -> None:
    """A worker's main: run the chunks it receives, send outcomes back in batches."""
    sending = _Sending()

    def on_term(signum: int, frame: FrameType | None) -> None:
        current_group().stop(wait=0)  # the wrapper's group: this worker's commands
        if shm[STOP] == GRACEFUL:
            return  # the run stops: its Python task has until SIGKILL to end by itself
        if sending.now:
            sending.terminated = True
        else:
            raise _Terminated

    def send(kind: str, payload: Any) -> None:
        try:
            data = pickle.dumps((kind, payload), PICKLE)
        except Exception:  # a result that does not pickle: only its item fails
            data = pickle.dumps((kind, [sendable(fields) for fields in payload]), PICKLE)
        sending.now = True
        results.send_bytes(data)
        sending.now = False
        if sending.terminated:
            raise _Terminated

    # A thread takes chunks off the pipe as they come, so that the driver never waits
    # on a worker that is itself waiting to hand over outcomes.
    chunks: queue.SimpleQueue[bytes] = queue.SimpleQueue()

    def receive() -> None:
        try:
            while data := tasks.recv_bytes():
                chunks.put(data)
        except (EOFError, OSError):
            # The driver closes this pipe only once the worker has ended: it is gone
            # (kill -9 included), and the run with it. Ending at once has this process's
            # reaper end the commands it runs (runner.execute.reaper).
            os._exit(1)
        chunks.put(b"")

    batch: list[tuple[Any, ...]] = []  # finished outcomes not sent yet
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the driver to handle
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        join_group(CommandGroup())  # not a group of the driver's that fork copied
        signal.signal(signal.SIGTERM, on_term)
        try:
            call: PortableCall = pickle.loads(portable)
        except Exception as exc:
            send("error", f"a worker process cannot load the task: {type(exc).__name__}: {exc}")
            return
        if call.timeout is not None:
            call.run = stamped_run(call.run, shm)  # each attempt's start, for the watchdog
        send("ready", None)  # with per_second, items come only once a worker can start them
        threading.Thread(target=receive, name="runner-worker-inbox", daemon=True).start()
        while (data := chunks.get()) and not shm[STOP]:
            sent = time.time()
            for fields in pickle.loads(data):
                if shm[STOP]:
                    break
                item = Item(*fields)
                shm[STARTED] = time.monotonic()
                shm[SEQ] += 1
                try:
                    [outcome] = call([item])
                except KeyboardInterrupt:  # raised by the task: the driver raises it
                    if batch:
                        send("out", batch)
                    send("interrupt", item.id)
                    return
                batch.append(outcome_row(outcome))
                if outcome.seconds > SEND_AT_ONCE or outcome.finished - sent > BATCH_SECONDS:
                    send("out", batch)
                    batch, sent = [], outcome.finished
            if batch:  # the end of a chunk: the driver sends the one after next
                send("out", batch)
                batch = []
        close_reaper()  # an end, not a death: multiprocessing leaves by os._exit
    except _Terminated:  # end as killed by SIGTERM, which is what happened
        if batch:  # items that finished before it are results all the same
            with contextlib.suppress(Exception, _Terminated):
                sending.terminated = False
                send("out", batch)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
    except Exception:
        with contextlib.suppress(Exception, _Terminated):
            send("error", f"a worker process failed: {traceback.format_exc()}")


def stamped_run(run: Callable[[Item], Any], shm: Any) -> Callable[[Item], Any]:
    def stamped(item: Item) -> Any:
        shm[ATTEMPT] = time.monotonic()
        try:
            return run(item)
        finally:
            shm[ATTEMPT] = 0.0

    return stamped
