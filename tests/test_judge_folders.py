"""folders: a folder is built beside its place and appears whole, or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner_plugins.judge.folders import build_whole


def _build(folder: Path) -> None:
    folder.mkdir()
    (folder / "a.txt").write_text("a")


def test_a_built_folder_replaces_an_empty_one_and_its_leftover_partial(tmp_path: Path) -> None:
    """The folder appears with its contents; a killed build's .partial and an empty dest go."""
    dest = tmp_path / "dest"
    dest.mkdir()
    (tmp_path / "dest.partial").mkdir()
    (tmp_path / "dest.partial" / "stale.txt").write_text("left by a killed build")
    assert build_whole(dest, _build) == dest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]
    assert [p.name for p in dest.iterdir()] == ["a.txt"]


def test_a_failed_build_leaves_nothing(tmp_path: Path) -> None:
    """A build that raises (or is interrupted) leaves neither dest nor its .partial."""

    def build_then_stop(folder: Path) -> None:
        _build(folder)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_whole(tmp_path / "dest", build_then_stop)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_with_contents_is_never_replaced(tmp_path: Path) -> None:
    """A dest that holds anything stays as it was, and the build is removed."""
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "mine.txt").write_text("mine")
    with pytest.raises(OSError):
        build_whole(dest, _build)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]
