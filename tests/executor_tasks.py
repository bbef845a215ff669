"""Tasks for the executor contract suite: module-level, so that every executor can run
them (a process pool pickles them by reference; Dask workers import this module).

What a task observes goes into real files, since an item may run in another process.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from runner.api import Item
from runner.toolkit import run_command


def fail_every_seventh(item: Item) -> int:
    if item["index"] % 7 == 0:
        raise RuntimeError(f"bad {item.id}")
    return int(item["index"])


def square_after_a_while(item: Item) -> int:
    time.sleep(0.001 * (item["index"] % 5))
    return int(item["index"]) ** 2


def nothing(item: Item) -> None:
    return None


def one(item: Item) -> int:
    return 1


def interrupt_at_five(item: Item) -> None:
    if item["index"] == 5:
        raise KeyboardInterrupt


def note_call(item: Item) -> None:
    """Append the item's id to the file ``item["calls"]`` (one line, O_APPEND)."""
    fd = os.open(item["calls"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{item.id}\n".encode())
    finally:
        os.close(fd)
    if item["index"] % 10 == 3:
        raise ValueError("planned")


def meet(item: Item) -> None:
    """The first ``parties`` items wait until all of them have started (a file each)."""
    folder = Path(item["folder"])
    if item["index"] < item["parties"]:
        (folder / item.id).touch()
        deadline = time.monotonic() + 30
        while len(list(folder.iterdir())) < item["parties"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(list(folder.iterdir()))} items ran at once")
            time.sleep(0.01)


def command(item: Item) -> int | None:
    """Run ``item["argv"]`` as a command; a failed or timed-out command fails the item."""
    result = run_command(item["argv"])
    if result.timed_out:
        raise RuntimeError(f"timed out after {result.seconds:.1f} s")
    if result.returncode != 0:
        raise RuntimeError(f"exit code {result.returncode}")
    return result.returncode


PYTHON = sys.executable


def halting_failure(item: Item) -> None:
    """Each item marks that it started (a file in ``item["folder"]``). Item 0 fails once
    ``parties`` items have started; the others of the first ``parties`` wait for the file
    ``item["release"]``; later items end at once."""
    folder, index, parties = Path(item["folder"]), item["index"], item["parties"]
    (folder / item.id).touch()
    deadline = time.monotonic() + 30
    if index == 0:
        while len(list(folder.iterdir())) < parties and time.monotonic() < deadline:
            time.sleep(0.01)
        raise RuntimeError("the halting failure")
    if index < parties:
        while not Path(item["release"]).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
