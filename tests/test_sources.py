"""Built-in sources: what they yield and how they refuse bad input."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pytest

from runner.record.streams import read_streams
from runner_plugins.sources import GlobSource, JsonlSource, LinesSource, RangeSource
from tests.conftest import RunCli


def test_range_yields_indexes() -> None:
    """range yields count items carrying their index, and knows its length."""
    source = RangeSource(count=4)
    assert len(source) == 4
    assert [(i.id, i["index"]) for i in source] == [("0", 0), ("1", 1), ("2", 2), ("3", 3)]


def test_lines_skips_blank_lines(tmp_path: Path) -> None:
    """lines yields one item per non-empty line, stripped, with its line number."""
    path = tmp_path / "urls.txt"
    path.write_text("a\n\n  b  \n\nc")
    source = LinesSource(str(path))
    assert len(source) == 3
    assert [(i.id, i["line"]) for i in source] == [("1", "a"), ("3", "b"), ("5", "c")]


def test_lines_keeps_spaces_and_blank_lines_when_told(run_app: RunCli, tmp_path: Path) -> None:
    """source.strip=false keeps a line's spaces (not its line ending) and
    source.skip_blank=false makes a blank line an item; a run with the defaults says in
    its log that it strips and skips."""
    (tmp_path / "in.txt").write_text("a\r\n\n  b  \n   \nc")
    kept = LinesSource(str(tmp_path / "in.txt"), strip=False, skip_blank=False)
    assert len(kept) == 5
    lines = [(i.id, i["line"], i.label) for i in kept]
    assert lines == [("1", "a", "a"), ("2", "", "line 2"), ("3", "  b  ", "  b  "),
                     ("4", "   ", "line 4"), ("5", "c", "c")]  # fmt: skip
    stripped = LinesSource(str(tmp_path / "in.txt"), strip=True, skip_blank=False)
    assert [i["line"] for i in stripped] == ["a", "", "b", "", "c"]
    spaced = LinesSource(str(tmp_path / "in.txt"), strip=False)
    assert [(i.id, i["line"]) for i in spaced] == [("1", "a"), ("3", "  b  "), ("5", "c")]
    result = run_app("source=lines", "source.path=in.txt", "task.seconds=0")
    assert result.returncode == 0, result.output
    assert len(result.results()) == 3
    log = (result.run_dir / "runner.log").read_text()
    assert "surrounding whitespace stripped (strip=false keeps it)" in log
    assert "blank lines skipped (skip_blank=false makes them items)" in log
    result = run_app(
        "source=lines", "source.path=in.txt", "source.skip_blank=false", "task.seconds=0"
    )
    assert result.returncode == 0, result.output
    assert sorted(r["id"] for r in result.results()) == ["1", "2", "3", "4", "5"]
    assert "blank lines skipped" not in (result.run_dir / "runner.log").read_text()


def test_lines_missing_file_names_it(tmp_path: Path) -> None:
    """A missing file is refused with its path in the message."""
    with pytest.raises(FileNotFoundError, match=r"nope\.txt"):
        LinesSource(str(tmp_path / "nope.txt"))


def test_jsonl_ids_from_field_or_line(tmp_path: Path) -> None:
    """jsonl uses id_field when given, else the line number; keys become data."""
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(json.dumps({"key": k, "n": n}) for k, n in [("a", 1), ("b", 2)]))
    assert [(i.id, i["n"]) for i in JsonlSource(str(path))] == [("1", 1), ("2", 2)]
    assert [i.id for i in JsonlSource(str(path), id_field="key")] == ["a", "b"]


def bad_items(source: JsonlSource | LinesSource) -> dict[str, str]:
    """The id and error of every item the source marked bad."""
    return {item.id: item.error for item in source if item.error is not None}


def test_jsonl_bad_lines_fail_their_items_and_the_rest_runs(tmp_path: Path) -> None:
    """A malformed line and a non-object line become failing items naming file and line."""
    path = tmp_path / "items.jsonl"
    path.write_text('{"a": 1}\n{"a": \n[1, 2]\n\n"text"\n{"a": 5}\n')
    items = list(JsonlSource(str(path)))
    assert [i.id for i in items] == ["1", "2", "3", "5", "6"]
    assert [i.data for i in items if i.error is None] == [{"a": 1}, {"a": 5}]
    errors = bad_items(JsonlSource(str(path)))
    assert set(errors) == {"2", "3", "5"}
    assert errors["2"].startswith(f"{str(path)!r} line 2 is not valid JSON")
    assert errors["3"] == f"{str(path)!r} line 3 is a JSON array, not an object"
    assert "line 5 is a JSON string" in errors["5"]


def test_jsonl_missing_id_field_fails_that_item(tmp_path: Path) -> None:
    """A line without id_field becomes an item ``line <n>`` naming the fields it has."""
    path = tmp_path / "items.jsonl"
    path.write_text('{"key": "a"}\n{"other": 1}\n{"key": null}\n{"key": "b"}\n')
    source = JsonlSource(str(path), id_field="key")
    assert [i.id for i in source] == ["a", "line 2", "line 3", "b"]
    errors = bad_items(source)
    assert errors["line 2"] == (
        f"{str(path)!r} line 2 has no 'key' field (id_field); its fields: other"
    )
    assert "line 3 has a JSON null as 'key'" in errors["line 3"]


def test_jsonl_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    """A repeated id fails the later item naming both lines; the first runs as usual."""
    path = tmp_path / "items.jsonl"
    rows = [{"key": "a", "n": 1}, {"key": "b", "n": 2}, {"key": "a", "n": 3}, {"key": 7}]
    path.write_text("\n".join(json.dumps(r) for r in [*rows, {"key": "7"}]) + "\n")
    items = list(JsonlSource(str(path), id_field="key"))
    assert [(i.id, i.error is None) for i in items] == [
        ("a", True),
        ("b", True),
        ("line 3", False),
        ("7", True),
        ("line 5", False),
    ]
    assert items[0].data == {"key": "a", "n": 1}
    assert items[2].error == f"{str(path)!r} line 3 repeats id 'a' ('key') of line 1"
    assert "repeats id '7' ('key') of line 4" in str(items[4].error)


def test_jsonl_ids_of_bad_lines_never_collide(tmp_path: Path) -> None:
    """A bad line's ``line <n>`` id that a real item already has gets a counter."""
    path = tmp_path / "items.jsonl"
    path.write_text('{"key": "line 2"}\n{oops\n')
    items = list(JsonlSource(str(path), id_field="key"))
    assert [i.id for i in items] == ["line 2", "line 2 (2)"]
    assert items[0].error is None and "line 2 is not valid JSON" in str(items[1].error)


@pytest.mark.parametrize("kind", ["lines", "jsonl"])
def test_invalid_utf8_fails_only_its_line(tmp_path: Path, kind: str) -> None:
    """A line that is not UTF-8 fails naming its line; its neighbours are read as usual."""
    path = tmp_path / "in.txt"
    path.write_bytes(b'{"v": "\xc3\xa9"}\n{"v": "\xff"}\n{"v": 3}\n')
    source = LinesSource(str(path)) if kind == "lines" else JsonlSource(str(path))
    items = list(source)
    assert [i.id for i in items] == ["1", "2", "3"]
    assert items[1].error == f"{str(path)!r} line 2 is not valid UTF-8 (byte 0xff at column 8)"
    assert items[0].error is None and items[2].error is None
    assert "\u00e9" in str(items[0].data)


@pytest.mark.parametrize("kind", ["lines", "jsonl", "jsonl-id"])
def test_length_counts_what_iteration_yields(tmp_path: Path, kind: str) -> None:
    """len() counts bad lines as items and skips blank ones, exactly as iteration does."""
    path = tmp_path / "in.txt"
    path.write_bytes(
        b'\xef\xbb\xbf{"k": 1}\r\n\n   \n\xfe\n{oops\n[]\n{"k": 1}\n\xc2\xa0\n{"k": 2}'
    )
    source = {
        "lines": lambda: LinesSource(str(path)),
        "jsonl": lambda: JsonlSource(str(path)),
        "jsonl-id": lambda: JsonlSource(str(path), id_field="k"),
    }[kind]()
    items = list(source)
    # Blank: the empty line, the spaces, the no-break space; items: the other six.
    assert len(source) == len(items) == 6
    assert len({i.id for i in items}) == 6
    if kind != "lines":
        # The byte-order mark is not part of the first line.
        assert items[0].error is None and items[0].data == {"k": 1}


def test_jsonl_is_streamed_not_loaded(tmp_path: Path) -> None:
    """Reading a 10 MB file holds a few lines at a time, never the file."""
    path = tmp_path / "big.jsonl"
    line = json.dumps({"text": "x" * 90}) + "\n"
    with open(path, "w") as fh:
        fh.writelines(line for _ in range(100_000))
    source = JsonlSource(str(path))
    tracemalloc.start()
    try:
        count = sum(1 for item in source if item.error is None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 100_000
    assert peak < 1_000_000, peak


def test_bad_jsonl_line_fails_its_item_not_the_run(run_app: RunCli, tmp_path: Path) -> None:
    """A malformed line mid-file fails one item (exit 1); the lines after it still run."""
    rows = [json.dumps({"n": n}) for n in range(5)]
    (tmp_path / "in.jsonl").write_text("\n".join([*rows, "{oops", *rows]) + "\n")
    result = run_app("source=jsonl", "source.path=in.jsonl", "task.seconds=0", "parallel=4")
    assert result.returncode == 1, result.output
    assert "Traceback" not in result.output
    by_id = {r["id"]: r for r in result.results()}
    assert len(by_id) == 11
    assert by_id["6"]["status"] == "failed"
    assert by_id["6"]["error"]["type"] == "BadInput"
    assert by_id["6"]["error"]["message"].startswith("'in.jsonl' line 6 is not valid JSON")
    assert all(r["status"] == "ok" for k, r in by_id.items() if k != "6")
    assert (result.summary()["total"], result.summary()["failed"]) == (11, 1)


def test_glob_yields_matching_files(tmp_path: Path) -> None:
    """glob yields files under root matching the pattern with path, name and stem."""
    (tmp_path / "sub").mkdir()
    for name in ("a.csv", "b.txt", "sub/c.csv"):
        (tmp_path / name).write_text("x")
    items = list(GlobSource(str(tmp_path), "**/*.csv"))
    assert [i.id for i in items] == ["a.csv", "sub/c.csv"]
    assert items[1]["name"] == "c.csv" and items[1]["stem"] == "c"
    assert Path(items[1]["path"]).is_file()


def test_glob_missing_root(tmp_path: Path) -> None:
    """A missing root folder is refused with its path."""
    with pytest.raises(FileNotFoundError, match="absent"):
        GlobSource(str(tmp_path / "absent"))


def test_glob_paths_never_start_with_a_dash(tmp_path: Path) -> None:
    """Files named like options get absolute paths, so no command reads them as options."""
    for name in ("-n", "--version", "plain.txt"):
        (tmp_path / name).write_text(name)
    items = list(GlobSource(str(tmp_path), "*"))
    assert sorted(i.id for i in items) == ["--version", "-n", "plain.txt"]
    for item in items:
        assert Path(item["path"]).is_absolute() and Path(item["path"]).read_text() == item.id


def test_glob_option_named_file_reaches_cat_as_a_file(run_app: RunCli, tmp_path: Path) -> None:
    """``cat {path}`` on a file named ``--version`` under root ``.`` prints the file."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "--version").write_text("the file's own text\n")
    result = run_app(
        "task=shell",
        "source=glob",
        "source.root=.",
        "source.pattern=*",
        'task.command=[cat,"{path}"]',
        cwd=data,
    )
    assert result.returncode == 0, result.output
    [record] = result.results()
    assert record["id"] == "--version"
    assert record["result"]["stdout"] == "the file's own text\n"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("/etc/*", "pattern='/etc/*' is absolute"),
        ("", "pattern='' names no file"),
        ("../*", "pattern='../*' has a '..' part"),
        ("sub/../../*", "has a '..' part"),
        ("**a", "pattern='**a' is not a usable pattern"),
    ],
)
def test_glob_bad_patterns_stop_before_any_item(
    run_app: RunCli, tmp_path: Path, pattern: str, expected: str
) -> None:
    """An absolute, empty, escaping or unusable pattern ends the run with one line, exit 2."""
    result = run_app("source=glob", f"source.pattern={pattern}", "task.seconds=0")
    assert result.returncode == 2, result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output
    errors = [line for line in result.output.splitlines() if "error" in line]
    assert len(errors) == 1 and expected in errors[0], result.output
    assert not (result.run_dir / "results.jsonl").exists()


def test_a_file_name_that_is_not_utf8_is_run_recorded_shown_and_resumed(
    run_app: RunCli, tmp_path: Path
) -> None:
    """Names with bytes UTF-8 cannot hold reach the command as the same bytes, and every
    file the run leaves is UTF-8: the id is journaled and summarised as JSON escapes that
    read back as the same id, and shown backslash-escaped on the console, in runner.log,
    summary.md and report.html; a resume skips the one that succeeded."""
    data = tmp_path / "g"
    data.mkdir()
    good, bad = b"bad\xffname", b"worse\xfe\x80"
    good_id, bad_id = os.fsdecode(good), os.fsdecode(bad)  # lone surrogates: \udcff ...
    (data / good_id).write_bytes(b"ok\n")
    (data / bad_id).write_bytes(b"no\n")
    assert sorted(os.listdir(os.fsencode(data))) == [good, bad]  # the bytes themselves
    # grep exits 0 when the file says "ok", 1 when it does not, 2 when it cannot open it.
    args = ("task=shell", "source=glob", "source.root=g", 'task.command=[grep,-c,ok,"{path}"]')
    first = run_app(*args)
    assert first.returncode == 1, first.output
    assert "unexpected error" not in first.output and "Traceback" not in first.output
    outcomes = {r["id"]: r for r in first.results()}
    assert outcomes[good_id]["status"] == "ok" and outcomes[good_id]["result"]["stdout"] == "1\n"
    assert outcomes[bad_id]["error"]["message"].startswith("exit code 1")
    summary = first.summary()
    assert {e["id"] for e in summary["slowest"]} == {good_id, bad_id}
    assert "worse\\udcfe\\udc80" in summary["failures_by_type"]["TaskFailure"]["example"]
    for name in ("results.jsonl", "summary.json", "summary.md", "runner.log", "report.html"):
        (first.run_dir / name).read_bytes().decode("utf-8")  # every file is UTF-8
    assert "bad\\udcffname -> OK" in first.stderr
    assert "bad\\udcffname -> OK" in (first.run_dir / "runner.log").read_text()
    assert "- bad\\udcffname: " in (first.run_dir / "summary.md").read_text()
    assert "<td>bad\\udcffname</td>" in (first.run_dir / "report.html").read_text()
    assert [r["stdout"] for r in read_streams(first.run_dir, good_id)] == ["1\n"]

    (data / bad_id).write_bytes(b"ok now\n")
    second = run_app(*args, f"resume={first.run_dir}")
    assert second.returncode == 0, second.output
    assert second.summary()["already_succeeded"] == 1 and second.summary()["total"] == 1
    assert [r["id"] for r in read_streams(second.run_dir)] == [bad_id]  # the other not rerun
    assert {r["id"]: r["status"] for r in second.results()} == {good_id: "ok", bad_id: "ok"}
