"""SIGINT, SIGTERM and SIGHUP stop a run the same way; a second signal exits at once.

The first signal raises :class:`Interrupted` in the main thread (a ``KeyboardInterrupt``,
so everything that handles Ctrl-C handles it): the run starts nothing new, stops its
running commands, flushes its journal and writes ``summary.json`` and ``job.json``, then
exits with ``128 + signal`` (130, 143, 129). A second signal while that happens runs the
emergency steps registered with :func:`on_second_signal` (kill the commands, flush the
journal) and exits at once with the same code.

Signals are delivered to a process, so what is kept (the signal received, the emergency
steps) is the process's too: it lives on the handler object that :func:`install` gives the
``signal`` module, found again with ``signal.getsignal``, not in this module. A run
registers its steps and removes them when it ends; where no handler is installed (a
library caller's process), the steps are not needed and nothing is kept.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; ``exit_code`` is 128 + its number."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def exit_code_of(exc: BaseException) -> int:
    """The exit code an interruption ends the process with (130 for a plain Ctrl-C)."""
    return exc.exit_code if isinstance(exc, Interrupted) else 128 + signal.SIGINT


class Handler:
    """The handler of :data:`HANDLED`: the first signal is recorded and raised (or handed
    to the innermost deferring block), a second runs the emergency steps and exits."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.emergency: list[Callable[[], object]] = []
        self.deferred: list[Callable[[int], object]] = []

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            for step in list(self.emergency):
                with contextlib.suppress(Exception):
                    step()
            sys.stderr.write(f"runner: {signal.Signals(signum).name} again: exiting now\n")
            sys.stderr.flush()
            os._exit(128 + self.received)
        self.received = signum
        if self.deferred:
            self.deferred[-1](signum)  # the run stops by itself and raises Interrupted after
            return
        raise Interrupted(signum)


def install() -> Handler:
    """Handle SIGINT, SIGTERM and SIGHUP (main thread only, as Python requires)."""
    handler = Handler()
    for signum in HANDLED:
        signal.signal(signum, handler)
    return handler


def installed() -> Handler | None:
    """The handler :func:`install` put in place, if it is still the one in place."""
    handler = signal.getsignal(signal.SIGTERM)
    return handler if isinstance(handler, Handler) else None


def received() -> int | None:
    """The first signal this process received since :func:`install`, if any."""
    handler = installed()
    return None if handler is None else handler.received


@contextlib.contextmanager
def deferred(on_signal: Callable[[int], object]) -> Iterator[None]:
    """While the block runs, a first signal calls ``on_signal(signum)`` instead of raising.

    For the item loop: raising there would tear down the executor's generator and lose
    the outcomes of the items still running. ``on_signal`` must only set flags (it runs
    in the signal handler); the code after the block asks :func:`received`.
    """
    handler = installed()
    if handler is None:
        yield
        return
    handler.deferred.append(on_signal)
    try:
        yield
    finally:
        handler.deferred.remove(on_signal)


@contextlib.contextmanager
def on_second_signal(*steps: Callable[[], object]) -> Iterator[None]:
    """Run ``steps`` (quick, best effort) if a second signal ends the process meanwhile."""
    handler = installed()
    if handler is None:
        yield
        return
    handler.emergency.extend(steps)
    try:
        yield
    finally:
        for step in steps:
            handler.emergency.remove(step)
