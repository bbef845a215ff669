"""The journal: one JSON line per outcome, read back lazily and safely."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner.api import Outcome
from runner.record import journal as journal_module
from runner.record.journal import Journal, JournalOutcomes


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


@pytest.mark.parametrize(
    "result",
    [None, "", "x\n\"é\u2028\x00", 5, -3, 2**70, True, False, 1.5, float("nan"), float("inf"),
     [1, {"a": None}], {"k": (1, 2)}, {3, 4}, Path("/p"), object()],
)  # fmt: skip
@pytest.mark.parametrize("seconds", [0.0, 1.2e-6, 1.23456789e-3, 12345.6789])
def test_a_success_line_has_the_bytes_of_the_generic_encoder(result: Any, seconds: float) -> None:
    """The fast success line is byte for byte what the generic path gives (the shared
    head, the result's JSON encoding), and reads back as the record: times as seconds
    from the journal's origin, to the millisecond."""
    origin = 1000.0
    outcome = Outcome('id "\x01é', "ok", seconds, result, started=origin + 0.0014,
                      finished=origin + seconds + 0.0014, worker='w "1"')  # fmt: skip
    encode = json.JSONEncoder(ensure_ascii=False, default=journal_module._fallback).encode
    line = journal_module.success_line(outcome, origin)
    assert line == journal_module._head(outcome, origin) + f'"result": {encode(result)}}}\n'
    record = {"id": outcome.id, "status": "ok", "seconds": round(seconds, 6), "started": 0.001,
              "finished": round(seconds + 0.0014, 3), "worker": 'w "1"', "attempts": 1,
              "result": result}  # fmt: skip
    assert encode(json.loads(line)) == encode(record)


def test_a_result_json_cannot_hold_is_journaled_as_its_text(tmp_path: Path) -> None:
    """A result with non-text keys takes the record's path and is kept as its repr."""
    j = Journal(tmp_path / "results.jsonl")
    j.write(Outcome("a", "ok", 0.1, {(1, 2): "tuple key"}))
    j.close()
    [record] = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert record["result"] == repr({(1, 2): "tuple key"}) and record["status"] == "ok"


def test_an_id_utf8_cannot_hold_is_journaled_escaped_and_reads_back(tmp_path: Path) -> None:
    """A lone surrogate (a file name that is not UTF-8, via glob) costs no line: the
    journal stays UTF-8 and the id reads back exactly."""
    j = Journal(tmp_path / "results.jsonl")
    j.write(Outcome("bad-\udcff.csv", "ok", 0.1, None))
    j.write(Outcome("good", "ok", 0.1, "é"))
    j.close()
    text = (tmp_path / "results.jsonl").read_bytes().decode("utf-8")
    assert "\\udcff" in text and "é" in text
    assert [o.id for o in JournalOutcomes(tmp_path / "results.jsonl")] == ["bad-\udcff.csv", "good"]


@pytest.mark.parametrize("chunk", [65536, 7])
def test_a_journal_opened_on_a_torn_line_appends_after_the_last_whole_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """A run killed mid-line left a fragment: it is cut before the next line is written,
    which would otherwise be glued to it and lost."""
    monkeypatch.setattr(journal_module, "_TAIL_CHUNK", chunk)  # the fragment spans chunks
    path = tmp_path / "results.jsonl"
    whole = '{"id": "a", "status": "ok", "seconds": 1, "result": null}\n'
    path.write_text(whole + '{"id": "b", "status": "ok", "seconds": 1, "res')
    j = Journal(path)
    j.write(Outcome("c", "ok", 0.1, None))
    j.close()
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "c"]
    path.write_text('{"id": "only a fragment')
    Journal(path).close()
    assert path.read_text() == ""


def test_a_journal_that_starts_from_earlier_lines_holds_them_and_nothing_else(
    tmp_path: Path,
) -> None:
    """A resumed run's journal: the earlier successes replace what the file held."""
    path = tmp_path / "results.jsonl"
    path.write_text('{"id": "x", "status": "failed", "seconds": 1, "error": {}}\n{"id": "y')
    earlier = ['{"id": "a", "status": "ok", "seconds": 1, "result": null}\n']
    j = Journal(path, earlier)
    j.write(Outcome("x", "ok", 0.1, None))
    j.close()
    assert [o.id for o in JournalOutcomes(path)] == ["a", "x"]


def test_lines_keep_the_order_outcomes_came_in_and_each_result_as_it_was(tmp_path: Path) -> None:
    """Successes with a None, str or int result get their lines at the flush, in one go;
    mixed with failures, retried items and other results (and flushes), every line is
    still in the order written, the same text, and a result changed after it was written
    is journaled as it was then."""
    error = {"type": "E", "message": "m", "traceback": ""}
    changing: dict[str, Any] = {"n": 1}
    outcomes = [
        Outcome("a", "ok", 0.1),
        Outcome("b", "ok", 0.2, "text"),
        Outcome("c", "failed", 0.3, None, error),
        Outcome("d", "ok", 0.4, 7),
        Outcome("e", "ok", 0.5, changing),
        Outcome("f", "ok", 0.6, None, retries=({"error": error, "seconds": 0.1, "wait": 0},)),
        Outcome("g", "ok", 0.7, 2**70),
        Outcome("h", "ok", 0.8, [1]),
        Outcome("i", "ok", 0.9),
    ]
    journal = Journal(tmp_path / "results.jsonl")
    for number, outcome in enumerate(outcomes):
        journal.write(outcome)
        if outcome is outcomes[4]:
            changing["n"] = 2  # once written: the journal keeps what the item returned
        if number == 6:
            journal.flush()
    journal.close()
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == list("abcdefghi")
    encode = json.JSONEncoder(ensure_ascii=False, default=journal_module._fallback).encode
    for line, outcome in zip(lines, outcomes, strict=True):
        record: dict[str, Any] = {"id": outcome.id, "status": outcome.status}
        record["seconds"] = outcome.seconds
        # Outcomes made without times (not by the safe call): none is recorded.
        record |= {"started": None, "finished": None, "worker": "", "attempts": 1}
        record["attempts"] += len(outcome.retries)
        if outcome.status == "ok":
            record["result"] = {"n": 1} if outcome.id == "e" else outcome.result
        else:
            record["error"] = outcome.error
        if outcome.retries:
            record["retries"] = list(outcome.retries)
        assert encode(json.loads(line)) == encode(record)  # the same fields, in order
    assert journal.saved == [8, 1]
