"""The summary's figures, gathered as outcomes arrive: no second pass over the journal."""

from __future__ import annotations

import heapq
from typing import Any

from runner.api import Outcome
from runner.show.labels import printable

#: Items listed in ``summary.json``'s ``slowest`` (a post-processor may show fewer).
SLOWEST = 10
#: Characters of an error type's example (``id: message``).
EXAMPLE_CHARS = 200
#: Failed items kept by name, in the order they failed, for the end of the run's console
#: lines (which show as many as fit the terminal; results.jsonl has them all).
FIRST_FAILED = 50


class Tally:
    """The slowest items and the failures by error type; fed by the run loop's thread.

    ``floor`` is the time an item must beat to enter the slowest list: the run loop
    compares against it before calling :meth:`slow`, so most items cost one comparison.
    """

    def __init__(self, size: int = SLOWEST) -> None:
        self.size = size
        self.floor = -1.0 if size else float("inf")
        self._slowest: list[tuple[float, str]] = []
        self._failures: dict[str, list[Any]] = {}  # type -> [count, example]
        #: The first FIRST_FAILED failed items: (id, "Type: message"), both escaped.
        self.first_failed: list[tuple[str, str]] = []

    def slow(self, outcome: Outcome) -> None:
        entry = (outcome.seconds, outcome.id)
        if len(self._slowest) < self.size:
            heapq.heappush(self._slowest, entry)
        else:
            heapq.heappushpop(self._slowest, entry)
        if len(self._slowest) == self.size:
            self.floor = self._slowest[0][0]

    def failure(self, outcome: Outcome) -> None:
        error = outcome.error or {}
        kind = str(error.get("type", "Error"))
        entry = self._failures.get(kind)
        if entry is None:
            example = printable(f"{outcome.id}: {error.get('message', '')}", EXAMPLE_CHARS)
            self._failures[kind] = [1, example]
        else:
            entry[0] += 1
        if len(self.first_failed) < FIRST_FAILED:
            reason = printable(f"{kind}: {error.get('message', '')}", EXAMPLE_CHARS)
            self.first_failed.append((printable(outcome.id), reason))

    def figures(self) -> dict[str, Any]:
        """``slowest`` (slowest first) and ``failures_by_type`` (most frequent first)."""
        return {
            "slowest": [
                {"id": item_id, "seconds": round(seconds, 6)}
                for seconds, item_id in sorted(self._slowest, reverse=True)
            ],
            "failures_by_type": {
                kind: {"count": count, "example": example}
                for kind, (count, example) in sorted(
                    self._failures.items(), key=lambda entry: -entry[1][0]
                )
            },
        }
