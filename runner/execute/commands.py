"""Run one external command per item: no shell, own process group, a timeout that holds.

Each command belongs to a :class:`CommandGroup` (one per run; ``use_group`` picks it for
the calling context, a group of the context's own otherwise) that can stop all of them at
once, and obeys the earliest of its own ``timeout`` and the deadline of the calling
context (``command_deadline``, e.g. an item's run-wide timeout). Every running command
is listed with this process's reaper (``runner.execute.reaper``), which ends it should this
process die, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from runner.execute import reaper

DEFAULT_GRACE = 5.0  # seconds between SIGTERM and SIGKILL when a command times out
_DRAIN = 0.2  # seconds to keep reading once the command has exited
_POLL = 0.05  # seconds between two checks whether the command has exited
_CHUNK = 65536
# As in subprocess: poll() needs no file descriptor of its own, unlike epoll.
_Selector = getattr(selectors, "PollSelector", selectors.SelectSelector)


@dataclasses.dataclass(frozen=True)
class CommandResult:
    """How a command ended; ``timed_out`` means it was stopped at its deadline, and then
    ``returncode`` is None (whether SIGTERM or SIGKILL ended it)."""

    argv: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    #: The streams' exact bytes, for files that must keep what the command printed.
    stdout_bytes: bytes = b""
    stderr_bytes: bytes = b""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


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
                _signal_group(proc, signal.SIGKILL)
        return len(procs)

    def allow(self) -> None:
        """Let commands run again after :meth:`stop`."""
        with self._state:
            self._stopped = False

    def _refuse_if_stopped(self, program: str) -> None:
        if self._stopped:
            raise CommandsStopped(f"not started, the run is being interrupted: {program}")

    def _start(
        self, program: str, popen: Callable[[], subprocess.Popen[bytes]], grace: float
    ) -> subprocess.Popen[bytes]:
        with self._state:
            self._refuse_if_stopped(program)
            self._starting += 1
        proc = None
        try:
            proc = popen()
            reaper.register(proc.pid, grace)
        except BaseException:
            if proc is not None:  # no command runs that this process's death would not end
                _discard(proc)
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
                        _signal_group(proc, signal.SIGKILL)
        return proc

    def _finish(self, proc: subprocess.Popen[bytes]) -> bool:
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


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    # The child leads its own session, so its pid is the group id: this reaches every
    # grandchild too (a judge CLI that spawns helpers must not outlive the timeout).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)


def _discard(proc: subprocess.Popen[bytes]) -> None:
    """Kill a command that must not run after all, and close its pipes."""
    _signal_group(proc, signal.SIGKILL)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            _close_quietly(stream)
    proc.wait()


def run_command(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    stdout_path: str | os.PathLike[str] | None = None,
    stderr_path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdin_text: str | None = None,
    grace: float | None = None,
) -> CommandResult:
    """Run ``argv`` (no shell) in its own process group, at most ``timeout`` seconds.

    The deadline is the earlier of ``timeout`` and the context's ``command_deadline``;
    one already past starts nothing and returns a timed-out result. At the deadline the
    whole process group gets SIGTERM, and SIGKILL once the command has exited or
    ``grace`` seconds (default: the group's) have passed. Once the command has exited,
    what it printed in the next 0.2 s is read; if its pipes are still open then (a
    descendant holds them) its process group is killed and the pipes are closed, so a
    descendant that left the group cannot hold the call. If the caller is interrupted,
    the group is killed. Streams are captured and, when paths are given, also written to
    those files. A program that cannot be started raises ``FileNotFoundError`` or
    ``PermissionError``. A command of a stopped group (``CommandGroup.stop``) raises
    ``CommandsStopped``: what it printed before the kill is no result. Should this
    process die while the command runs, the reaper sends its group SIGTERM, and SIGKILL
    after ``grace`` seconds; a command the reaper cannot be told about (it cannot be
    started) is killed at once and the ``OSError`` raised.
    """
    args = [str(a) for a in argv]
    group = current_group()
    started = time.perf_counter()
    now = time.monotonic()
    deadline = math.inf if timeout is None else now + timeout
    context_deadline = _deadline.get()
    attempt = _attempt.get()
    if attempt is not None and (attempt.claim or attempt.late is not None):
        own = now + (attempt.started + attempt.timeout - started)
        if context_deadline is None or own < context_deadline:
            context_deadline = own
    if context_deadline is not None:
        deadline = min(deadline, context_deadline)
    data = None if stdin_text is None else stdin_text.encode()
    if deadline <= now:
        group._refuse_if_stopped(args[0])
        return _result(args, None, b"", b"", 0.0, True, stdout_path, stderr_path)
    grace = group.grace if grace is None else grace
    proc = group._start(
        args[0],
        lambda: subprocess.Popen(
            args,
            cwd=cwd,
            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # marked, so that the reaper finds it even if it is not yet listed
            env={**(os.environ if env is None else env), **reaper.mark()},
            start_new_session=True,
        ),
        grace,
    )
    try:
        out, err, timed_out = _communicate(proc, data, deadline, grace)
    finally:
        stopped = group._finish(proc)
    if stopped:
        raise CommandsStopped(f"killed, the run is being interrupted: {args[0]}")
    seconds = time.perf_counter() - started
    returncode = None if timed_out else proc.returncode
    return _result(args, returncode, out, err, seconds, timed_out, stdout_path, stderr_path)


def _result(
    args: list[str],
    returncode: int | None,
    out: bytes,
    err: bytes,
    seconds: float,
    timed_out: bool,
    stdout_path: str | os.PathLike[str] | None,
    stderr_path: str | os.PathLike[str] | None,
) -> CommandResult:
    # The files keep the streams' exact bytes; the text a task reads shows bytes that are
    # not UTF-8 as U+FFFD.
    if stdout_path is not None:
        Path(stdout_path).write_bytes(out)
    if stderr_path is not None:
        Path(stderr_path).write_bytes(err)
    stdout = out.decode("utf-8", errors="replace")
    stderr = err.decode("utf-8", errors="replace")
    return CommandResult(args, returncode, stdout, stderr, seconds, timed_out, out, err)


def _communicate(
    proc: subprocess.Popen[bytes], data: bytes | None, deadline: float, grace: float
) -> tuple[bytes, bytes, bool]:
    """Feed ``data``, read both streams and enforce the deadline; whether it timed out.

    ``Popen.communicate`` waits for end-of-file, which a descendant in its own session
    may hold off for ever; this stops reading shortly after the child itself has exited.
    """
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    reading = set(chunks)
    stdin = proc.stdin
    pending = memoryview(data or b"")
    timed_out = False
    kill_at = math.inf  # when the grace after SIGTERM ends
    exited_at: float | None = None
    try:
        with _Selector() as selector:
            for fd in reading:
                selector.register(fd, selectors.EVENT_READ)
            if stdin is not None and pending:
                os.set_blocking(stdin.fileno(), False)
                selector.register(stdin.fileno(), selectors.EVENT_WRITE)
            elif stdin is not None:
                stdin.close()
            while True:
                now = time.monotonic()
                if exited_at is None and proc.poll() is not None:
                    exited_at = now
                    if timed_out:  # what in its group ignored SIGTERM goes too
                        _signal_group(proc, signal.SIGKILL)
                    if stdin is not None and not stdin.closed:
                        selector.unregister(stdin.fileno())
                        _close_quietly(stdin)
                if exited_at is not None:
                    if not reading or now >= exited_at + _DRAIN:
                        break
                    wake = exited_at + _DRAIN
                else:
                    if not timed_out and now >= deadline:
                        timed_out = True
                        _signal_group(proc, signal.SIGTERM)
                        kill_at = now + grace
                    if now >= kill_at:
                        _signal_group(proc, signal.SIGKILL)
                        kill_at = math.inf
                    wake = kill_at if timed_out else deadline
                if not selector.get_map():
                    # Both streams ended: the child is exiting, or has closed them.
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(None if wake == math.inf else max(wake - now, 0.0))
                    continue
                # A descendant may hold the pipes after the child's exit: check it often.
                for key, _ in selector.select(max(min(wake, now + _POLL) - now, 0.0)):
                    if key.fd in reading:
                        chunk = os.read(key.fd, _CHUNK)
                        if chunk:
                            chunks[key.fd].append(chunk)
                        else:
                            selector.unregister(key.fd)
                            reading.discard(key.fd)
                        continue
                    assert stdin is not None
                    try:
                        pending = pending[os.write(key.fd, pending[:_CHUNK]) :]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(key.fd)
                        _close_quietly(stdin)
            if reading:
                # Descendants still hold the pipes: those left in the group go now, the
                # ones that escaped it lose their output (the pipes are closed below).
                _signal_group(proc, signal.SIGKILL)
    except BaseException:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        for stream in (proc.stdout, proc.stderr, stdin):
            if stream is not None:
                _close_quietly(stream)
    return b"".join(chunks[out_fd]), b"".join(chunks[err_fd]), timed_out


def _close_quietly(stream: IO[bytes]) -> None:
    # Closing flushes: a pipe the child closed first must not turn into an error here.
    with contextlib.suppress(OSError):
        stream.close()
