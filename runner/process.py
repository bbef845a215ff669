"""Run one external command per item: no shell, own process group, hard timeout."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class CommandResult:
    """How a command ended; ``timed_out`` means it was killed after ``timeout`` seconds."""

    argv: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def fill_template(template: Sequence[str], values: Mapping[str, Any]) -> list[str]:
    """Fill ``{field}`` placeholders in each argv element; the result is never a shell line.

    Values are substituted once with ``str.format_map``, so text inside a value (``;``,
    ``$(...)``, ``{other}``) reaches the program literally and is never re-expanded.
    A placeholder with no value raises ``KeyError`` naming it.
    """
    return [str(part).format_map(values) for part in template]


_live: set[subprocess.Popen[bytes]] = set()
_state = threading.Condition()  # guards _live, _starting and _killing
_starting = 0  # commands between "allowed to start" and "registered in _live"
_killing = False  # set by kill_all(): no command may start until allow_commands()
# Commands kill_all() killed: what they printed is no result. Weak, so that it needs no
# clearing and a later run's commands are never mistaken for them.
_killed: weakref.WeakSet[subprocess.Popen[bytes]] = weakref.WeakSet()


class CommandsStopped(RuntimeError):
    """A command was not started because the run is being interrupted."""


def kill_all(wait: float = 5.0) -> int:
    """Kill the process group of every running command; returns how many.

    Called when a run is interrupted: worker threads are not waited for, and children
    in their own sessions would otherwise outlive the run. Commands a worker is starting
    at this very moment are waited for (at most ``wait`` seconds) and killed too, and no
    new command starts until ``allow_commands()``: the process may exit right after.
    """
    global _killing
    with _state:
        _killing = True
        _state.wait_for(lambda: _starting == 0, timeout=wait)
        procs = list(_live)
    for proc in procs:
        with _state:
            _killed.add(proc)
        _kill_group(proc)
    return len(procs)


def allow_commands() -> None:
    """Let commands run again (a new run in the same process, after an interrupted one)."""
    global _killing
    with _state:
        _killing = False


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # The child leads its own session, so its pid is the group id: this reaches every
    # grandchild too (a judge CLI that spawns helpers must not outlive the timeout).
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_command(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    stdout_path: str | os.PathLike[str] | None = None,
    stderr_path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdin_text: str | None = None,
) -> CommandResult:
    """Run ``argv`` (no shell) in its own process group and wait, at most ``timeout`` s.

    On timeout, or if the caller is interrupted, the whole process group is killed.
    Streams are captured and, when paths are given, also written to those files.
    A program that cannot be started raises ``FileNotFoundError``/``PermissionError``.
    A command killed because the run is being interrupted raises ``CommandsStopped``:
    what it printed before the kill is no result, and must not be recorded as one.
    """
    global _starting
    args = [str(a) for a in argv]
    started = time.perf_counter()
    with _state:
        if _killing:
            raise CommandsStopped(f"not started, the run is being interrupted: {args[0]}")
        _starting += 1
    try:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
        with _state:
            _live.add(proc)
    finally:
        with _state:
            _starting -= 1
            _state.notify_all()
    timed_out = False
    try:
        out, err = proc.communicate(
            None if stdin_text is None else stdin_text.encode(), timeout=timeout
        )
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        out, err = proc.communicate()
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    finally:
        with _state:
            _live.discard(proc)
            stopped = proc in _killed
    if stopped:
        raise CommandsStopped(f"killed, the run is being interrupted: {args[0]}")
    seconds = time.perf_counter() - started
    stdout = out.decode("utf-8", errors="replace")
    stderr = err.decode("utf-8", errors="replace")
    if stdout_path is not None:
        Path(stdout_path).write_text(stdout, encoding="utf-8")
    if stderr_path is not None:
        Path(stderr_path).write_text(stderr, encoding="utf-8")
    return CommandResult(
        argv=args,
        returncode=None if timed_out else proc.returncode,
        stdout=stdout,
        stderr=stderr,
        seconds=seconds,
        timed_out=timed_out,
    )
