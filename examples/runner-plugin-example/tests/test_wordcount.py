"""Tests of the wordcount task, alone and run by runner once the plugin is installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from runner_wordcount.tasks import WordCount

from runner.api import Item


def test_counts_the_words_of_the_field() -> None:
    """run() counts the words of the configured field and skips the short ones."""
    task = WordCount(field="text", min_length=2)
    assert task.run(Item("1", {"text": "a bb ccc"})) == {"words": 2}


def test_runs_under_runner(tmp_path: Path) -> None:
    """`python -m runner task=wordcount` finds the installed plugin and its YAML."""
    lines = tmp_path / "lines.txt"
    lines.write_text("one two three\nfour\n", encoding="utf-8")
    args = ["task=wordcount", "source=lines", f"source.path={lines}", "progress=off"]
    args.append(f"hydra.run.dir={tmp_path / 'run'}")
    subprocess.run([sys.executable, "-m", "runner", *args], check=True, cwd=tmp_path, timeout=60)
    results = (tmp_path / "run" / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["result"] for line in results] == [{"words": 3}, {"words": 1}]
