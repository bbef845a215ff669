"""The commands of one run, and what the calling context adds to each command it starts.

A :class:`CommandGroup` (one per run; ``use_group`` picks it for the calling context, a
group of the context's own otherwise) stops all of its commands at once. The calling
context may also set a deadline every command in it obeys (``command_deadline``, or the
thread's :class:`AttemptSlot` under a run ``timeout``): :func:`context_deadline` reads
it. :mod:`runner.execute.commands` runs each command under these.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from runner.execute import reaper

DEFAULT_GRACE = 5.0  # seconds between SIGTERM and SIGKILL when a command times out


class CommandsStopped(RuntimeError):
    """A command was not started, or was killed, because its group was stopped."""


class CommandGroup:
    """The commands of one run: :meth:`stop` kills them all and refuses new ones.

    ``grace`` is the default, for its commands, of the seconds between SIGTERM and
    SIGKILL on timeout. Groups are independent: stopping one leaves the others' commands
    running.
    """

    def __init__(self, grace: float = DEFAULT_GRACE) -> None:
        self.grace = grace
        self._state = threading.Condition()  # guards the four attributes below
        self._live: set[subprocess.Popen[bytes]] = set()
        # Commands stop() killed: what they printed is no result.
        self._killed: set[subprocess.Popen[bytes]] = set()
        self._starting = 0  # commands between "allowed to start" and "in _live"
        self._stopped = False

    @property
    def stopped(self) -> bool:
        """Whether the group refuses new commands."""
        return self._stopped

    def stop(self, wait: float = 5.0) -> int:
        """Kill the process group of every running command; returns how many.

        Called when a run is interrupted: worker threads are not waited for, and children
        in their own sessions would otherwise outlive the run. Commands a worker is
        starting at this very moment are waited for (at most ``wait`` seconds) and killed
        too, and no new command starts until :meth:`allow`: the process may exit right
        after. Each killed command raises ``CommandsStopped`` in its caller.
        """
        with self._state:
            self._stopped = True
            self._state.wait_for(lambda: self._starting == 0, timeout=wait)
            procs = list(self._live)
            for proc in procs:
                self._killed.add(proc)
                signal_group(proc, signal.SIGKILL)
        return len(procs)

    def allow(self) -> None:
        """Let commands run again after :meth:`stop`."""
        with self._state:
            self._stopped = False

    def refuse_if_stopped(self, program: str) -> None:
        """Raise ``CommandsStopped`` for ``program`` once the group is stopped."""
        if self._stopped:
            raise CommandsStopped(f"not started, the run is being interrupted: {program}")

    def start(
        self, program: str, popen: Callable[[], subprocess.Popen[bytes]], grace: float
    ) -> subprocess.Popen[bytes]:
        """Start a command with ``popen``, listed in the group and with the reaper."""
        with self._state:
            self.refuse_if_stopped(program)
            self._starting += 1
        proc = None
        try:
            proc = popen()
            reaper.register(proc.pid, grace)
        except BaseException:
            if proc is not None:  # no command runs that this process's death would not end
                discard(proc)
                proc = None
            raise
        finally:
            with self._state:
                self._starting -= 1
                self._state.notify_all()
                if proc is not None:
                    self._live.add(proc)
                    if self._stopped:  # stop() gave up waiting for this start
                        self._killed.add(proc)
                        signal_group(proc, signal.SIGKILL)
        return proc

    def finish(self, proc: subprocess.Popen[bytes]) -> bool:
        """Forget ``proc``; whether stop() killed it."""
        reaper.unregister(proc.pid)
        with self._state:
            self._live.discard(proc)
            killed = proc in self._killed
            self._killed.discard(proc)
        return killed


# Context variables, as decimal keeps its context: each thread or task has its own
# value, set by the code that runs it, and nothing of one run is left for the next.
_group: contextvars.ContextVar[CommandGroup | None] = contextvars.ContextVar(
    "runner_command_group", default=None
)
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "runner_command_deadline", default=None
)


def current_group() -> CommandGroup:
    """The group that commands started in this context join: a new one, from now on
    this context's, when none was joined."""
    group = _group.get()
    if group is None:
        group = CommandGroup()
        _group.set(group)
    return group


@contextlib.contextmanager
def use_group(group: CommandGroup) -> Iterator[CommandGroup]:
    """Make commands run in this block (this thread or task only) join ``group``."""
    token = _group.set(group)
    try:
        yield group
    finally:
        _group.reset(token)


@dataclasses.dataclass(slots=True, eq=False)
class AttemptSlot:
    """One thread's attempt under a run ``timeout``, which the safe call fills in around
    every attempt (assignments and an append cost less than ``command_deadline``): while
    ``claim`` holds the running item, or ``late`` one the watchdog recorded as timed out
    that still runs, this thread's commands stop at ``started + timeout``."""

    #: When the attempt started (``time.perf_counter()``); ``inf`` between attempts.
    started: float = 0.0
    timeout: float = math.inf
    #: The running item, while it runs: the attempt pops it when it ends, the watchdog
    #: removes it at the deadline (both atomic), so exactly one of them records it.
    claim: list[Any] = dataclasses.field(default_factory=list)
    #: The item the watchdog recorded as timed out while its attempt still runs.
    late: Any = None


_attempt: contextvars.ContextVar[AttemptSlot | None] = contextvars.ContextVar(
    "runner_attempt", default=None
)


def thread_attempt() -> AttemptSlot:
    """This thread's :class:`AttemptSlot`."""
    attempt = _attempt.get()
    if attempt is None:
        attempt = AttemptSlot()
        _attempt.set(attempt)
    return attempt


#: The context variable behind ``current_group``, for the wrapper's per-item check.
group_var = _group


def join_group(group: CommandGroup) -> None:
    """Make every later command of this thread join ``group``, until another is joined.

    For a worker thread that serves one run: cheaper than ``use_group`` per item.
    """
    if _group.get() is not group:
        _group.set(group)


@contextlib.contextmanager
def command_deadline(deadline: float | None) -> Iterator[None]:
    """Stop every command run in this block at ``deadline`` (a ``time.monotonic()`` value).

    A nested block never extends an outer deadline; ``None`` adds none. Like
    ``use_group``, it holds for the calling thread or task only.
    """
    outer = _deadline.get()
    if outer is not None and (deadline is None or outer < deadline):
        deadline = outer
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    # The child leads its own session, so its pid is the group id: this reaches every
    # grandchild too (a judge CLI that spawns helpers must not outlive the timeout).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)


def discard(proc: subprocess.Popen[bytes]) -> None:
    """Kill a command that must not run after all, and close its pipes."""
    signal_group(proc, signal.SIGKILL)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            close_quietly(stream)
    proc.wait()


def context_deadline(started: float, now: float) -> float | None:
    """The deadline (``time.monotonic()``) the calling context sets a command started at
    ``started`` (``time.perf_counter()``) and ``now`` (monotonic): the earlier of its
    ``command_deadline`` and its thread's attempt under a run ``timeout``; None: none."""
    deadline = _deadline.get()
    attempt = _attempt.get()
    if attempt is not None and (attempt.claim or attempt.late is not None):
        own = now + (attempt.started + attempt.timeout - started)
        if deadline is None or own < deadline:
            deadline = own
    return deadline


def close_quietly(stream: IO[bytes]) -> None:
    """Close a command's pipe, whatever state the command left it in."""
    # Closing flushes: a pipe the child closed first must not turn into an error here.
    with contextlib.suppress(OSError):
        stream.close()


def attempt_deadline() -> float | None:
    """When (``time.monotonic()``) the calling context's attempt must end: the run's
    ``timeout`` for the item this thread runs, or a ``command_deadline``; None: never.

    For a task that waits on something other than a command (a socket, a queue), so
    that its own waits end when the attempt's time is up.
    """
    return context_deadline(time.perf_counter(), time.monotonic())
