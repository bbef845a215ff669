"""The journal: one JSON line per outcome, read back lazily and safely."""

from __future__ import annotations

from pathlib import Path

from runner.api import Outcome
from runner.journal import Journal, JournalOutcomes


def test_round_trip(tmp_path: Path) -> None:
    """Written outcomes read back with id, status, seconds, result and error."""
    journal = Journal(tmp_path / "results.jsonl")
    journal.write(Outcome("a", "ok", 0.5, {"x": [1, 2]}))
    journal.write(
        Outcome("b", "failed", 0.25, None, {"type": "E", "message": "m", "traceback": ""})
    )
    journal.close()
    outcomes = list(JournalOutcomes(tmp_path / "results.jsonl"))
    assert [(o.id, o.status, o.seconds) for o in outcomes] == [
        ("a", "ok", 0.5),
        ("b", "failed", 0.25),
    ]
    assert outcomes[0].result == {"x": [1, 2]}
    assert outcomes[1].error == {"type": "E", "message": "m", "traceback": ""}
    assert list(JournalOutcomes(tmp_path / "results.jsonl")) == outcomes  # re-iterable


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    """A line cut short by a killed run is not mistaken for a result."""
    path = tmp_path / "results.jsonl"
    path.write_text('{"id": "a", "status": "ok", "seconds": 1, "result": null}\n{"id": "b", "st')
    assert [o.id for o in JournalOutcomes(path)] == ["a"]


def test_unserialisable_result_is_kept_as_text(tmp_path: Path) -> None:
    """A result JSON cannot hold is journaled as its text rather than lost."""
    journal = Journal(tmp_path / "results.jsonl")
    journal.write(Outcome("a", "ok", 0.1, {"when": object, "tags": {"x"}}))
    journal.close()
    [outcome] = JournalOutcomes(tmp_path / "results.jsonl")
    assert outcome.result["tags"] == ["x"] and "object" in outcome.result["when"]
