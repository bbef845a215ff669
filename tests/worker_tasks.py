"""Tasks the tests send to worker processes (the process executor's, Dask's).

A worker unpickles a task by importing the module that defines it: here, a module that
imports no more than the tasks need (a test module imports pytest and half of runner:
0.1 to 0.15 s more in each worker process started).
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

from runner.api import Item, RetryableError
from runner.toolkit import run_command


class Logged:
    """Appends each call's item id to ``log`` (one write per call, so the count is exact),
    sleeps ``seconds`` (item ``slow``: 50 ms), returns the worker's pid; item ``at`` dies
    (or misbehaves) as ``how`` says."""

    def __init__(
        self, log: Path, seconds: float = 0.0, how: str = "", at: int = -1, slow: int = -1
    ) -> None:
        self.log, self.seconds, self.how, self.at, self.slow = log, seconds, how, at, slow

    def __call__(self, item: Item) -> int:
        with open(self.log, "a") as fh:
            fh.write(f"{item.id}\n")
        time.sleep(0.05 if item["index"] == self.slow else self.seconds)
        if item["index"] == self.at:
            if self.how == "SIGKILL":
                os.kill(os.getpid(), signal.SIGKILL)
            elif self.how == "SIGSEGV":
                faulthandler.disable()  # fork copies pytest's: its dump is noise here
                ctypes.string_at(0)  # a real segmentation fault
            elif self.how == "exit":
                os._exit(3)
            elif self.how == "orphan":  # leaves a process holding the worker's pipes
                if os.fork() == 0:
                    (self.log.parent / "orphan").write_text(str(os.getpid()))
                    time.sleep(300)
                    os._exit(0)
                os.kill(os.getpid(), signal.SIGKILL)
            elif self.how == "interrupt":
                raise KeyboardInterrupt
            elif self.how == "unpicklable":
                return threading.Lock()  # type: ignore[return-value]
        return os.getpid()

    def calls(self) -> Counter[str]:
        return Counter(self.log.read_text().split())


class Hang:
    """Item 2 writes its worker's pid, then hangs (optionally deaf to SIGTERM)."""

    def __init__(self, folder: Path, deaf: bool) -> None:
        self.folder, self.deaf = folder, deaf

    def __call__(self, item: Item) -> None:
        if item["index"] == 2:
            (self.folder / "pid").write_text(str(os.getpid()))
            if self.deaf:
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            time.sleep(60)


class Flaky:
    """Each attempt takes 0.35 s; the first three of each item fail with RetryableError."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()

    def __call__(self, item: Item) -> int:
        self.attempts[item.id] += 1
        time.sleep(0.35)
        if self.attempts[item.id] < 4:
            raise RetryableError("busy", wait=0.05)
        return self.attempts[item.id]


class Command:
    """Runs a shell whose background grandchild sleeps; both write their pids."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, item: Item) -> None:
        script = (
            f"sleep 60 & echo $! > {self.folder}/grandchild; echo $$ > {self.folder}/child; wait"
        )
        run_command(["sh", "-c", script])


def note_start(item: Item) -> None:
    """Append this attempt's start (``time.time()``) to ``item["starts"]``, one line."""
    line = f"{time.time():.6f}\n".encode()
    fd = os.open(item["starts"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    time.sleep(0.01)  # short against the spacing (0.2 s): a batch could run many at once
