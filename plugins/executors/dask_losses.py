"""The ``dask`` executor's count of starts lost with tasks: what bounds an item's starts
by ``retry.attempts`` when its worker dies.

A lost task (its worker died, its outcome cannot be read back) may have started each of
its items once, and once more for each retry its worker recorded on the scheduler
before starting it (:mod:`~runner_plugins.executors.dask_worker`). An item goes out
again, alone and with only the attempts left, while that count stays below
``retry.attempts``; otherwise it fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from runner.api import Item, Outcome

from .plumbing import lost_error

#: The start of the worker's message when it refuses a retry beyond an item's budget.
REFUSED = "its earlier starts were lost with their Dask worker"


class Losses:
    """The starts each item of the run lost with its tasks, and the retries the workers
    recorded of items still out. ``per_loss``: the first starts a task lost with its
    worker may have cost (the scheduler's own reruns included)."""

    def __init__(
        self,
        attempts: int,
        per_loss: int,
        recorded: Callable[[], list[str]],
        out: Callable[[], set[str]],
    ) -> None:
        self.attempts = attempts
        self.per_loss = per_loss
        self._recorded = recorded  # the retries recorded since the last call (item ids)
        self._out = out  # the ids of the items still out
        self._seen: dict[str, list[dict[str, Any]]] = {}  # id -> an error per lost start
        self._retried: dict[str, int] = {}  # id -> retries recorded, items still out

    def budget(self, batch: list[Item]) -> int:
        """The attempts ``batch`` may make: what its losses left (one item sent again)."""
        if not self._seen:
            return self.attempts
        return self.attempts - len(self._seen.get(batch[0].id, ()))

    def _retries(self, batch: list[Item]) -> dict[str, int] | None:
        """The retries recorded of ``batch``'s items (None: the scheduler cannot say)."""
        try:
            ids = self._recorded()
        except Exception:
            return None
        if ids:
            keep = self._out() | {item.id for item in batch}  # the others came back
            for item_id in ids:
                if item_id in keep:
                    self._retried[item_id] = self._retried.get(item_id, 0) + 1
        return {item.id: self._retried.pop(item.id, 0) for item in batch}

    def lost(
        self, batch: list[Item], exc: BaseException, what: str, died: bool
    ) -> tuple[list[Item], list[Outcome]]:
        """A task that went out and came back without its outcomes (``died``: with its
        worker): its items to send again, and the failed outcomes of the others."""
        error = lost_error(exc, what)
        if died:
            error["type"] = "WorkerDied"
            error["message"] = f"the Dask worker running it died ({exc})"
        first = self.per_loss if died else 1
        counts = self._retries(batch)
        again: list[Item] = []
        failed: list[Outcome] = []
        for item in batch:
            seen = self._seen.setdefault(item.id, [])
            # Unknown retries: each run of the task may have made all the attempts it had.
            given = self.attempts - len(seen)
            seen.extend([error] * (first * given if counts is None else first + counts[item.id]))
            if len(seen) < self.attempts:
                again.append(item)
                continue
            del self._seen[item.id]
            final = {
                **error,
                "message": f"{error['message']}; it may have started {len(seen)} time(s), "
                f"retry.attempts={self.attempts}: not run again",
            }
            now = time.perf_counter()
            earlier = tuple({"error": e, "seconds": 0.0, "wait": 0.0} for e in seen[:-1])
            failed.append(
                Outcome(item.id, "failed", 0.0, None, final, item.label, now, now, earlier)
            )
        return again, failed

    def returned(self, outcomes: list[Outcome]) -> None:
        """Outcomes that came back: the starts lost before come first in their records.
        A retry the worker refused (the item's attempts were used up) is no start: the
        attempt before it is the item's last, failed for the reason it gives."""
        if self._retried:
            for outcome in outcomes:
                self._retried.pop(outcome.id, None)
        if not self._seen:
            return
        for outcome in outcomes:
            seen = self._seen.pop(outcome.id, None)
            if seen is None:
                continue
            retries: tuple[dict[str, Any], ...] = tuple(
                {"error": e, "seconds": 0.0, "wait": 0.0} for e in seen
            )
            retries += tuple(outcome.retries)
            refused = outcome.error or {}
            if str(refused.get("message", "")).startswith(REFUSED) and outcome.retries:
                last: dict[str, Any] = retries[-1]["error"]
                outcome.error = {**last, "message": f"{last['message']}; {refused['message']}"}
                retries = retries[:-1]
            outcome.retries = retries
