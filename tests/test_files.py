"""runner.record.files: atomic writes keep modes, never leave half a file; leftovers are found."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.record import files
from runner.record.files import atomic_write_json, atomic_write_text, leftover_temp_files


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask for the test; the module read it at import, so it is set there too."""
    old = os.umask(0o022)
    saved = files._UMASK
    files._UMASK = 0o022
    yield
    files._UMASK = saved
    os.umask(old)


def test_a_new_file_gets_the_mode_open_would_give(tmp_path: Path, umask_022: None) -> None:
    """A new file is 0644 under umask 022, as open() makes it, not mkstemp's 0600."""
    atomic_write_text(tmp_path / "new.txt", "x")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert _mode(tmp_path / "new.txt") == _mode(plain) == 0o644


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664, 0o604])
def test_a_replaced_file_keeps_its_mode(tmp_path: Path, mode: int) -> None:
    """Rewriting a file keeps the permission bits it had."""
    path = tmp_path / "run_result.json"
    path.write_text("{}")
    path.chmod(mode)
    atomic_write_json(path, {"judge_score": 0.5})
    assert _mode(path) == mode and path.read_text() == '{\n  "judge_score": 0.5\n}\n'


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    """A value that cannot be written leaves the old content and no temporary file."""
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(path, "\ud800")  # a lone surrogate cannot be encoded
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def test_json_holding_a_name_that_is_not_utf8_is_written_escaped(tmp_path: Path) -> None:
    """A lone surrogate (os.fsdecode of a name with a \\xff byte) is written as JSON's
    escape: the file is UTF-8, other text stays as it is, and the value reads back."""
    path = tmp_path / "summary.json"
    data = {"slowest": [{"id": "bad\udcffname"}, {"id": "é"}]}
    atomic_write_json(path, data)
    text = path.read_bytes().decode("utf-8")
    assert "\\udcff" in text and json.loads(text) == data
    atomic_write_json(path, {"id": "é"})
    assert "é" in path.read_text(encoding="utf-8")  # no escapes when none are needed


def test_leftover_temp_files_finds_only_what_atomic_writes_leave(tmp_path: Path) -> None:
    """Temporary files of killed writes are listed; other dot-files and .tmp files are not."""
    left = [tmp_path / ".result.json.ab12_x9z.tmp", tmp_path / ".a.b.c.00000000.tmp"]
    others = [tmp_path / ".hidden", tmp_path / "x.tmp", tmp_path / ".x.toolong123.tmp"]
    for path in left + others:
        path.write_text("")
    assert leftover_temp_files(tmp_path) == sorted(left)
    assert leftover_temp_files(tmp_path / "absent") == []


def test_the_temporary_name_matches_what_leftovers_look_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name a write really uses is one leftover_temp_files recognises."""
    seen: list[str] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        seen.append(Path(src).name)
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", spy)
    atomic_write_text(tmp_path / "judge_summary.md", "x")
    assert len(seen) == 1 and files.TEMP_NAME.match(seen[0])
