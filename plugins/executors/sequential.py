"""The ``sequential`` executor: items one after another, in order, in one worker thread."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from runner.api import Item, ItemCall, Outcome

from .thread import ThreadExecutor


class SequentialExecutor(ThreadExecutor):
    """Runs items one after another, in order, whatever ``parallel`` says.

    They run in one worker thread, not the calling one, which stays free to hand
    outcomes on, to enforce the run's ``timeout`` and to end the run within
    ``timeout_grace`` of a signal, as the ``thread`` executor does (its one-worker case).
    """

    def __init__(self) -> None:
        super().__init__()

    def map(self, fn: ItemCall, items: Iterable[Item], parallel: int) -> Iterator[Outcome]:
        return super().map(fn, items, 1)
