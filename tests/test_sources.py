"""Built-in sources: what they yield and how they refuse bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner_plugins.sources import GlobSource, JsonlSource, LinesSource, RangeSource


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


def test_jsonl_malformed_line_named(tmp_path: Path) -> None:
    """A malformed line is reported with its line number."""
    path = tmp_path / "items.jsonl"
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        list(JsonlSource(str(path)))


def test_jsonl_missing_id_field_named(tmp_path: Path) -> None:
    """An id_field absent from a line is reported with the fields it has."""
    path = tmp_path / "items.jsonl"
    path.write_text('{"a": 1}\n')
    with pytest.raises(ValueError, match="no 'key' field"):
        list(JsonlSource(str(path), id_field="key"))


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
