"""``python -m runner.plugins``, and the example plugin distribution installed with pip."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runner.config import listing, registry
from tests.conftest import REPO, RunCli
from tests.plugin_support import write_distribution

EXAMPLE = REPO / "examples" / "runner-plugin-example"


def list_plugins(pythonpath: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m runner.plugins`` with ``pythonpath`` added to the installed plugins."""
    return subprocess.run(
        [sys.executable, "-m", "runner.plugins", *args],
        cwd=pythonpath,
        env={**os.environ, "PYTHONPATH": str(pythonpath)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_table_lists_every_plugin_and_whether_it_loads(plugin_path: Path) -> None:
    """The table has a row per registration, broken ones included, and exits 0."""
    proc = list_plugins(plugin_path)
    assert proc.returncode == 0, proc.stderr
    header, *lines = proc.stdout.splitlines()
    assert header.split() == ["GROUP", "NAME", "DISTRIBUTION", "ENTRY", "POINT", "STATUS"]
    rows = {tuple(line.split()[:2]): line for line in lines if line.strip()}
    good = rows[("task", "tmp_repeat")]
    assert good.split()[2:] == ["tmp-repeat", "0.1", "tmp_repeat_pkg:Repeat", "ok"]
    assert good.index("tmp_repeat_pkg:Repeat") == header.index("ENTRY POINT")
    assert good.index("ok") == header.index("STATUS")
    assert rows[("task", "sleep")].endswith("ok")
    for group in ("source", "task", "executor", "postprocessor"):
        assert rows[(group, "bad_import")].endswith(
            "broken: ModuleNotFoundError: No module named 'missing_dependency_xyz'"
        )
    assert "broken: class NoRun is abstract" in rows[("task", "bad_contract")]
    twins = [line for line in lines if line.startswith("task") and line.split()[1] == "twin"]
    assert len(twins) == 2
    assert "twin-a 0.1" in twins[0] and "also registered by twin-b 0.1" in twins[0]
    assert "twin-b 0.1" in twins[1] and "also registered by twin-a 0.1" in twins[1]
    assert lines[-1].endswith("5 broken, 2 with a duplicate name.")


def test_json_gives_the_same_rows_to_machines(plugin_path: Path) -> None:
    """--json prints one object per registration with its origin and load result."""
    proc = list_plugins(plugin_path, "--json")
    assert proc.returncode == 0, proc.stderr
    records: list[dict[str, Any]] = json.loads(proc.stdout)
    by_key = {(r["group"], r["name"], r["distribution"]): r for r in records}
    good = by_key[("task", "tmp_repeat", "tmp-repeat")]
    assert good == {
        "group": "task",
        "name": "tmp_repeat",
        "distribution": "tmp-repeat",
        "version": "0.1",
        "value": "tmp_repeat_pkg:Repeat",
        "error": None,
        "also_registered_by": [],
        "variant_of": None,
        "loads": True,
        "status": "ok",
    }
    broken = by_key[("executor", "bad_import", "bad-plugins")]
    assert not broken["loads"] and broken["error"].startswith("ModuleNotFoundError")
    assert by_key[("task", "twin", "twin-a")]["also_registered_by"] == ["twin-b 0.1"]
    assert {r["group"] for r in records} == {"source", "task", "executor", "postprocessor"}


def test_option_files_under_other_names_are_listed_as_variants(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An option file a plugin package ships under a name no entry point has (such as
    judge_rerun_claude) is a row of its own: its file, the plugin it configures, and
    whether it composes (a key the plugin does not take is its error)."""
    write_distribution(
        site,
        "variant-plugins",
        {"runner.tasks": {"tmp_echo": "tmp_echo_pkg:Echo"}},
        {
            "tmp_echo_pkg/__init__.py": """
                from runner.api import Item, Task


                class Echo(Task):
                    def __init__(self, word: str = "hi") -> None:
                        self.word = word

                    def run(self, item: Item) -> str:
                        return self.word
            """,
            "tmp_echo_pkg/conf/task/tmp_echo_loud.yaml": "name: tmp_echo\nword: HI\n",
            "tmp_echo_pkg/conf/task/tmp_echo_typo.yaml": "name: tmp_echo\nwrod: hi\n",
        },
        version="0.2",
    )
    registry.refresh()
    assert listing.main(["--json"]) == 0
    records = {(r["group"], r["name"]): r for r in json.loads(capsys.readouterr().out)}
    loud = records[("task", "tmp_echo_loud")]
    assert loud == {
        "group": "task",
        "name": "tmp_echo_loud",
        "distribution": "variant-plugins",
        "version": "0.2",
        "value": "tmp_echo_pkg/conf/task/tmp_echo_loud.yaml",
        "error": None,
        "also_registered_by": [],
        "variant_of": "tmp_echo",
        "loads": True,
        "status": "ok (variant of task tmp_echo)",
    }
    typo = records[("task", "tmp_echo_typo")]
    assert not typo["loads"] and "wrod" in typo["error"] and typo["variant_of"] == "tmp_echo"
    claude = records[("task", "judge_rerun_claude")]
    assert claude["variant_of"] == "judge_rerun" and claude["loads"]
    assert claude["distribution"] == "itemrunner"
    assert listing.main([]) == 0
    table = capsys.readouterr().out.splitlines()
    [row] = [line for line in table if line.split()[:2] == ["task", "judge_rerun_claude"]]
    assert row.endswith("ok (variant of task judge_rerun)")


@pytest.mark.slow
def test_the_example_plugin_installs_and_runs(tmp_path: Path, run_cli: RunCli) -> None:
    """`pip install --target` of the example makes task=wordcount run with its shipped YAML."""
    source = shutil.copytree(
        EXAMPLE,
        tmp_path / "example",
        ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".*cache"),
    )
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site)]
    pip.append("--no-build-isolation")  # hatchling: the dev extra's
    subprocess.run([*pip, str(source)], check=True, cwd=tmp_path, timeout=300)
    assert (site / "runner_wordcount" / "conf" / "task" / "wordcount.yaml").is_file()

    lines = tmp_path / "lines.txt"
    lines.write_text("one two three\nfour\n", encoding="utf-8")
    # `field` has no default in the class: the run works only if the YAML was found.
    result = run_cli(
        "task=wordcount", "source=lines", f"source.path={lines}", "progress=off",
        env={"PYTHONPATH": str(site)},
    )  # fmt: skip
    assert result.returncode == 0, result.output
    outcomes = sorted(result.results(), key=lambda r: int(r["id"]))
    assert [r["result"] for r in outcomes] == [{"words": 3}, {"words": 1}]

    listed = json.loads(list_plugins(site, "--json").stdout)
    (row,) = [r for r in listed if r["name"] == "wordcount"]
    assert (row["distribution"], row["version"]) == ("runner-plugin-example", "0.1.0")
    assert (row["value"], row["loads"]) == ("runner_wordcount.tasks:WordCount", True)

    own_tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--basetemp={tmp_path / 'basetemp'}", "tests"],
        cwd=source, env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert own_tests.returncode == 0, own_tests.stdout + own_tests.stderr
