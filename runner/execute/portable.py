"""The portable call: the run's safe call, sent to worker processes and machines."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

from runner.api import Item, ItemCall, Outcome
from runner.execute.commands import CommandGroup
from runner.execute.policies import Gate, RetryPolicy

#: How a process builds its own safe call (``SafeCall``): given as an argument, so that
#: this module needs nothing of the safe call's and the imports point one way.
MakeCall = Callable[
    [Callable[[Item], Any], RetryPolicy, Gate, CommandGroup, float | None], ItemCall
]


class Portable:
    """The run's safe call, for executors that run items in other processes (it fulfils
    :class:`runner.api.PortableCall`).

    Picklable when the task is (with ``spawn``, over a network): it carries the task's
    ``run``, the retry policy, the timeout and the commands' grace, and each process
    builds its own safe call from them with ``make`` on first use (its own command group
    and rate-limit gate; ``per_second`` and pauses for new items are kept by the driver:
    ``SafeCall.admit``). Called with a batch of items, it returns their outcomes with
    ``started``/``finished`` as ``time.time()`` seconds, which ``SafeCall.receive`` turns
    back into the driver's clock (machines' clocks differ; wall clocks agree).

    A process other than the driver's that builds its safe call logs nothing of runner's
    own (loguru's ``disable("runner")``, its way for a library to keep quiet): what that
    process learns of a service's limits (:mod:`runner.execute.admission`) is its own,
    and would reach the console in loguru's default format at DEBUG level from every
    worker; the driver logs the run's limits, pauses and outcomes. The task's and the
    plugins' lines are not runner's and are left as they are.
    """

    def __init__(
        self,
        make: MakeCall,
        run: Callable[[Item], Any],
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        grace: float = 5.0,
    ) -> None:
        self.make = make  # a class or module-level function: pickled by its name
        self.run = run
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.grace = grace
        #: The name its outcomes carry as their ``worker``: this process's id unless the
        #: process that unpickled it names itself (a Dask worker, its address).
        self.worker = ""
        self._call: ItemCall | None = None
        self._driver = os.getpid()  # the process whose console tells the run

    @property
    def attempts(self) -> int:
        """How many times an item may start (``retry.attempts``)."""
        return self.retry.attempts

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_call": None}

    def build(self) -> ItemCall:
        """This process's safe call (built once)."""
        if self._call is None:
            if os.getpid() != self._driver:
                logger.disable("runner")
            self._call = self.make(
                self.run, self.retry, Gate(), CommandGroup(grace=self.grace), self.timeout
            )
        return self._call

    def overdue(self) -> list[Outcome]:
        """This process's timed-out outcomes (``SafeCall.overdue``), in ``time.time()``."""
        return self._stamped(self.build().overdue())

    def __call__(self, items: list[Item]) -> list[Outcome]:
        # A batch runs in one thread: the call bound to it (Dask's workers call from several).
        decide = self.build().bind()
        offset = time.time() - time.perf_counter()
        return self._stamped([decide(item) for item in items], offset)

    def _stamped(self, outcomes: list[Outcome], offset: float | None = None) -> list[Outcome]:
        """``outcomes`` in ``time.time()`` seconds (``offset`` from the safe call's clock,
        ``time.perf_counter``; read now if None), each naming this worker."""
        if offset is None:
            offset = time.time() - time.perf_counter()
        worker = self.worker or f"pid {os.getpid()}"
        for outcome in outcomes:
            outcome.started += offset
            outcome.finished += offset
            outcome.worker = worker
        return outcomes
