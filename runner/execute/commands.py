"""Run one external command per item: no shell, own process group, a timeout that holds.

Each command belongs to a :class:`CommandGroup` (one per run; ``use_group`` picks it for
the calling context, a group of the context's own otherwise) that can stop all of them at
once, and obeys the earliest of its own ``timeout`` and the deadline of the calling
context (``command_deadline``, e.g. an item's run-wide timeout). Every running command
is listed with this process's reaper (``runner.execute.reaper``), which ends it should this
process die, even by SIGKILL. The group and the context's deadlines live in
:mod:`runner.execute.command_group` (their names are re-exported here).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from runner.execute import reaper
from runner.execute.command_group import (
    DEFAULT_GRACE,
    AttemptSlot,
    CommandGroup,
    CommandsStopped,
    close_quietly,
    command_deadline,
    context_deadline,
    current_group,
    group_var,
    join_group,
    signal_group,
    thread_attempt,
    use_group,
)

__all__ = [
    "DEFAULT_GRACE",
    "AttemptSlot",
    "CommandGroup",
    "CommandResult",
    "CommandsStopped",
    "command_deadline",
    "current_group",
    "group_var",
    "join_group",
    "run_command",
    "thread_attempt",
    "use_group",
]
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
    outer = context_deadline(started, now)
    if outer is not None:
        deadline = min(deadline, outer)
    data = None if stdin_text is None else stdin_text.encode()
    if deadline <= now:
        group.refuse_if_stopped(args[0])
        return _result(args, None, b"", b"", 0.0, True, stdout_path, stderr_path)
    grace = group.grace if grace is None else grace
    proc = group.start(
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
        stopped = group.finish(proc)
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
                        signal_group(proc, signal.SIGKILL)
                    if stdin is not None and not stdin.closed:
                        selector.unregister(stdin.fileno())
                        close_quietly(stdin)
                if exited_at is not None:
                    if not reading or now >= exited_at + _DRAIN:
                        break
                    wake = exited_at + _DRAIN
                else:
                    if not timed_out and now >= deadline:
                        timed_out = True
                        signal_group(proc, signal.SIGTERM)
                        kill_at = now + grace
                    if now >= kill_at:
                        signal_group(proc, signal.SIGKILL)
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
                        close_quietly(stdin)
            if reading:
                # Descendants still hold the pipes: those left in the group go now, the
                # ones that escaped it lose their output (the pipes are closed below).
                signal_group(proc, signal.SIGKILL)
    except BaseException:
        signal_group(proc, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        for stream in (proc.stdout, proc.stderr, stdin):
            if stream is not None:
                close_quietly(stream)
    return b"".join(chunks[out_fd]), b"".join(chunks[err_fd]), timed_out
