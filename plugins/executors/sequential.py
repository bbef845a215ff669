"""The ``sequential`` executor: items one after another in the calling thread."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from runner.api import Executor, Item, ItemCall, Outcome


class SequentialExecutor(Executor):
    """Runs items one after another in the calling thread."""

    def __init__(self) -> None:
        self._stopped = False

    def map(self, fn: ItemCall, items: Iterable[Item], parallel: int) -> Iterator[Outcome]:
        self._stopped = False
        run_item = fn.bind()
        for item in items:
            if self._stopped:
                return
            yield run_item(item)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        self._stopped = True
