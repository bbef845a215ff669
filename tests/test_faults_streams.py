"""``python -m runner.streams RUN -- ID``: after ``--`` an id is an id, even ``--version``."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.record.streams import STREAMS_FILE, StreamLog, main


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder whose items ``--version``, ``-x`` and ``a`` printed."""
    log = StreamLog(tmp_path / STREAMS_FILE)
    log.add("--version", "v-out\n", "v-err\n")
    log.add("-x", "x-out\n", "")
    log.add("a", "a-out\n", "")
    log.close()
    return tmp_path


@pytest.mark.parametrize("item_id", ["--version", "-x", "a"])
def test_an_id_after_double_dash_is_read_as_an_id(
    run_dir: Path, item_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every id after ``--``, one that looks like an option too, prints its streams."""
    assert main([str(run_dir), "--", item_id]) == 0
    out, err = capsys.readouterr()
    expected = {"--version": "v-out\n", "-x": "x-out\n", "a": "a-out\n"}
    assert out == expected[item_id]
    assert err == ("v-err\n" if item_id == "--version" else "")


def test_an_option_it_does_not_have_is_one_line_and_exit_2(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ``--``, ``--version`` is an option it does not have: exit 2 and one line
    naming it and the usage, with ``--`` in it."""
    with pytest.raises(SystemExit) as stopped:
        main([str(run_dir), "--version"])
    assert stopped.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1 and "--version" in err and "RUN_DIR -- ITEM_ID" in err


def test_ids_are_listed_without_an_id(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without an id, the ids that printed, in order."""
    assert main([str(run_dir)]) == 0
    assert capsys.readouterr().out == "--version\n-x\na\n"
