"""A placeholder the first item lacks (``{nosuch}``) stops the run before any item runs,
with exit 2 and one line, instead of failing every item; one that only later items lack
fails those, on every executor (each worker process once decided from its own items, so
a field of item 0 that item 1 lacked stopped a process or Dask run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.http_service import serve

COUNT = 200


def _error(output: str) -> str:
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if "runner: error:" in line]
    assert len(errors) == 1, output
    return errors[0]


def _marker_command(tmp_path: Path, *extra: str) -> str:
    """A shell command that leaves a file per item it ran, and ``extra`` arguments."""
    marks = tmp_path / "ran"
    marks.mkdir()
    script = f"import sys; open({str(marks)!r} + '/' + sys.argv[1], 'w').close()"
    argv = [sys.executable, "-S", "-c", script, "{id}", *extra]
    return f"task.command=[{','.join(json.dumps(part) for part in argv)}]"


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_an_unknown_placeholder_stops_the_run_with_exit_2(
    run_app: RunCli, tmp_path: Path, executor: str
) -> None:
    """``{nosuch}`` in a command: exit 2, one line naming it and the first item's fields;
    no command ran and no item was journaled."""
    done = run_app(
        "task=shell",
        f"source.count={COUNT}",
        f"executor={executor}",
        "parallel=2",
        _marker_command(tmp_path, "{nosuch}"),
    )
    assert done.returncode == 2, done.output
    line = _error(done.output)
    assert (
        "command placeholder {nosuch} has no value in the first item ('0', which has id, index)"
        in line
    )
    assert list((tmp_path / "ran").iterdir()) == []
    journal = done.run_dir / "results.jsonl"
    assert not journal.exists() or journal.read_text() == ""


@pytest.mark.parametrize("executor", ["thread", "process", "dask"])
def test_a_placeholder_only_some_items_lack_fails_those_items(
    run_app: RunCli, tmp_path: Path, executor: str
) -> None:
    """Records that have the field run; a later one without it fails alone (bad input,
    exit 1), on every executor: with two workers, the record without it may be the first
    its worker sees."""
    records = tmp_path / "records.jsonl"
    lines = [{"id": "a", "name": "x"}, {"id": "b"}, {"id": "c", "name": "z"}]
    records.write_text("".join(json.dumps(record) + "\n" for record in lines))
    done = run_app(
        "task=shell",
        "source=jsonl",
        f"source.path={records}",
        "source.id_field=id",
        _marker_command(tmp_path, "{name}"),
        f"executor={executor}",
        "parallel=2",
        *(["executor.workers=2"] if executor == "dask" else []),
    )
    assert done.returncode == 1, done.output
    assert {r["id"]: r["status"] for r in done.results()} == {"a": "ok", "b": "failed", "c": "ok"}
    assert sorted(p.name for p in (tmp_path / "ran").iterdir()) == ["a", "c"]


def test_an_unknown_placeholder_in_an_http_url_stops_the_run(run_app: RunCli) -> None:
    """The http task's url, body and headers: ``{nosuch}`` stops the run with exit 2 and
    no request reaches the service."""
    with serve(latency=0) as service:
        done = run_app(
            "task=http", f"task.url='{service.url}/{{id}}/{{nosuch}}'",
            f"source.count={COUNT}", "parallel=2",
        )  # fmt: skip
        answered = len(service.answers)
    assert done.returncode == 2, done.output
    assert "placeholder {nosuch} has no value in the first item" in _error(done.output)
    assert answered == 0
