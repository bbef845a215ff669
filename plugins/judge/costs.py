"""What judge calls cost: one call's cost record, totals per model, and a run's ledger.

A judge that reports its cost (Claude Code's JSON result envelope, read with
``reply_format=claude_json``) gives each call a cost record (:func:`cost_record`). The
record is kept twice, for two readers: in the attempt's ``timing.json`` under ``cost``
(the experiment's own account, which the summary totals), and as one line of the run's
ledger, ``judge_costs.jsonl`` in the run folder (:class:`CostLedger`), which every
worker of the run reads to know what the run has spent and whether its budget is reached.

A call that reported no cost (killed at its timeout or by a signal, or ended without an
envelope) still cost something: the ledger counts it at a bound
(:func:`estimated_record`, ``"estimated": true``), so that the budget is not undercounted.
"""

from __future__ import annotations

import fcntl
import json
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runner.toolkit import CommandsStopped
from runner_plugins.judge.reply import is_number

#: The run folder's ledger: one JSON line per judge call that reported what it cost.
LEDGER_FILE = "judge_costs.jsonl"
#: The token counts of a call, as the envelope's ``usage`` names them.
TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)
#: Where an envelope gives the call's cost in US dollars, newest name first.
_COST_KEYS = ("total_cost_usd", "total_cost", "cost_usd")


class BudgetExhausted(CommandsStopped):
    """The run's judge calls have cost its ``budget_usd``: no further judge starts.

    Not a failure of the slot but the run's cap, so it is what a stopping run raises for
    an item it does not start: the item is skipped (neither journaled nor given a line
    of its own), and the judge post-processor says in one line how many slots were left
    and how to judge them (a budget reached with 30 slots to go used to print 30 lines),
    and makes the run end 1, its work not done (``RunContext.unfinished``).
    """


def _count(value: Any) -> int | float | None:
    return value if is_number(value) and value >= 0 else None


def cost_record(fields: Mapping[str, Any], model: str) -> dict[str, Any]:
    """One call's cost record from its envelope; what the envelope does not say is null.

    ``model`` is the judge model the slot asked for; ``models_used`` maps each model
    Claude Code called (its ``modelUsage``: the judge, and helpers such as haiku) to
    its cost in US dollars.
    """
    usage = fields.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    cost = next((fields[k] for k in _COST_KEYS if _count(fields.get(k)) is not None), None)
    used = fields.get("modelUsage")
    session = fields.get("session_id")
    return {
        "model": model,
        "total_cost_usd": cost,
        **{key: _count(usage.get(key)) for key in TOKENS},
        "duration_ms": _count(fields.get("duration_ms")),
        "duration_api_ms": _count(fields.get("duration_api_ms")),
        "num_turns": _count(fields.get("num_turns")),
        "session_id": session if isinstance(session, str) else None,
        "models_used": {
            str(name): _count(entry.get("costUSD"))
            for name, entry in (used.items() if isinstance(used, dict) else ())
            if isinstance(entry, dict)
        },
    }


def estimated_record(
    model: str, cost: float, reported: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ledger's record of a call that reported no cost, counted at ``cost``: what it
    did report (``reported``, a :func:`cost_record`), if anything, and ``estimated``."""
    record = dict(reported) if reported is not None else cost_record({}, model)
    return record | {"total_cost_usd": cost, "estimated": True}


def new_total() -> dict[str, Any]:
    """The totals of no call (see :func:`add_cost`)."""
    return {"calls": 0, "calls_without_cost": 0, "total_cost_usd": 0.0} | dict.fromkeys(
        (*TOKENS, "duration_ms"), 0
    )


def add_cost(totals: dict[str, dict[str, Any]], record: Mapping[str, Any]) -> None:
    """Add one cost record to ``totals``, a dict of model -> :func:`new_total`.

    Unknown values count as 0; a call that reported no cost at all is counted in
    ``calls_without_cost`` too, so that a total never looks complete when it is not. An
    estimated record (:func:`estimated_record`) counts at its bound, and in
    ``estimated_calls`` and ``estimated_cost_usd``; a call that reported no duration, in
    ``calls_without_duration`` (each present only once there is one).
    """
    total = totals.setdefault(str(record.get("model")), new_total())
    total["calls"] += 1
    cost = record.get("total_cost_usd")
    if is_number(cost):  # rounded, so that 0.1 + 0.2 reads 0.3
        total["total_cost_usd"] = round(total["total_cost_usd"] + cost, 9)
        if record.get("estimated") is True:
            total["estimated_calls"] = total.get("estimated_calls", 0) + 1
            total["estimated_cost_usd"] = round(total.get("estimated_cost_usd", 0.0) + cost, 9)
    else:
        total["calls_without_cost"] += 1
    for key in (*TOKENS, "duration_ms"):
        value = record.get(key)
        total[key] += value if is_number(value) else 0
    if not is_number(record.get("duration_ms")):  # so that a summary shows '-', not 0.0 s
        total["calls_without_duration"] = total.get("calls_without_duration", 0) + 1


def grand_total(totals: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The totals of every model together."""
    whole = new_total()
    for total in totals.values():
        for key, value in total.items():
            whole[key] = whole.get(key, 0) + value
    for key in ("total_cost_usd", "estimated_cost_usd"):
        if key in whole:
            whole[key] = round(whole[key], 9)
    return whole


def totals_of(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Model -> totals of ``records``, models in the order they first appear."""
    totals: dict[str, dict[str, Any]] = {}
    for record in records:
        add_cost(totals, record)
    return totals


def in_order(
    totals: Mapping[str, dict[str, Any]], models: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """``totals`` with ``models`` first, in their order (the experiment's judge models)."""
    rank = {model: i for i, model in enumerate(models)}
    return dict(sorted(totals.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def usd(amount: float) -> str:
    """A dollar amount as the summaries and the terminal show it: $5.00, $0.1351."""
    return f"${amount:,.2f}" if round(amount, 2) == round(amount, 9) else f"${amount:,.4f}"


class CostLedger:
    """What this run's judge calls cost, shared by every worker of the run.

    Each call's record is appended to ``path`` as one line under an exclusive ``flock``,
    so workers in other processes (the process executor pickles the task) add to the
    same ledger; each instance reads the lines added since it last looked, under a
    shared lock, and keeps the totals (threads of one process share an instance, a lock
    guards its totals). Lines already in the file when the ledger is made belong to an
    earlier run in the same folder and are not counted.
    """

    def __init__(self, path: Path, start: int | None = None) -> None:
        self.path = Path(path)
        if start is None:
            try:
                start = self.path.stat().st_size
            except FileNotFoundError:
                start = 0
        self.start = start
        self._lock = threading.Lock()
        self._offset = start
        self._totals: dict[str, dict[str, Any]] = {}
        self._largest: dict[str, float] = {}

    def __reduce__(self) -> tuple[type[CostLedger], tuple[Path, int]]:
        # A copy in another process is made anew, and reads the file from this run's
        # start, not from where this one has read to.
        return type(self), (self.path, self.start)

    def add(self, record: Mapping[str, Any]) -> None:
        """Append one call's record (a :func:`cost_record`, plus anything to keep with it)."""
        line = (json.dumps(dict(record), default=str) + "\n").encode("utf-8")
        with open(self.path, "ab") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            fh.write(line)
            fh.flush()  # before close releases the lock: a reader never sees half a line

    def totals(self) -> dict[str, dict[str, Any]]:
        """Model -> totals of every call this run recorded so far, by any worker."""
        with self._lock:
            try:
                fh = open(self.path, "rb")
            except FileNotFoundError:
                return {model: dict(total) for model, total in self._totals.items()}
            with fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
                fh.seek(self._offset)
                data = fh.read()
            end = data.rfind(b"\n") + 1
            self._offset += end
            for line in data[:end].splitlines():
                try:
                    record = json.loads(line)
                except ValueError:  # a line cut by kill -9: its call is not counted
                    continue
                if isinstance(record, dict):
                    add_cost(self._totals, record)
                    self._note_largest(record)
            return {model: dict(total) for model, total in self._totals.items()}

    def _note_largest(self, record: Mapping[str, Any]) -> None:
        cost = record.get("total_cost_usd")
        if is_number(cost) and record.get("estimated") is not True:
            model = str(record.get("model"))
            self._largest[model] = max(self._largest.get(model, 0.0), float(cost))

    def largest(self, model: str) -> float:
        """The most one call of ``model`` reported it cost in this run so far (0: none)."""
        self.totals()
        with self._lock:
            return self._largest.get(model, 0.0)

    def spent(self) -> float:
        """US dollars this run's judge calls have cost so far."""
        return float(grand_total(self.totals())["total_cost_usd"])
