"""The judge plugins as installed: entry-point names, YAML configs, runs of `python -m runner`."""

from __future__ import annotations

import inspect
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from runner.config import registry
from runner_plugins.judge.plugins import JudgeConsensus, JudgeRerun, JudgeSlots
from tests.conftest import RunCli, run_runner
from tests.judge_support import REPO, T3, remove_slot, status_of, tree


@pytest.mark.parametrize(
    ("group", "name", "cls"),
    [
        ("runner.sources", "judge_slots", JudgeSlots),
        ("runner.tasks", "judge_rerun", JudgeRerun),
        ("runner.postprocessors", "judge_consensus", JudgeConsensus),
    ],
)
def test_entry_points_load_the_plugin_classes(group: str, name: str, cls: type) -> None:
    """Each installed entry point loads the class that runner_plugins.judge.plugins exports."""
    (entry,) = [ep for ep in entry_points(group=group) if ep.name == name]
    assert entry.load() is cls


SHIPPED = sorted((REPO / "plugins" / "conf").glob("*/*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_shipped_yaml_says_only_what_the_constructor_cannot(path: Path) -> None:
    """A shipped option file sets parameters the plugin has, never to its default value:
    defaults live in the constructor alone."""
    node = OmegaConf.to_container(OmegaConf.load(path))
    assert isinstance(node, dict)
    group = path.parent.name
    cls = registry.load_plugin(group, str(node.get("name", path.stem)))
    defaults = {
        name: param.default
        for name, param in inspect.signature(cls.__init__).parameters.items()  # type: ignore[misc]
        if name != "self"
    }
    params = {str(k): v for k, v in node.items() if k not in ("name", "defaults")}
    assert set(params) <= set(defaults)
    for key, value in params.items():
        default = defaults[key]
        same = list(value) == list(default) if isinstance(default, tuple) else value == default
        assert not same, f"{path.name} repeats the default of {key!r}"
    cls(**params)


def test_claude_option_runs_the_claude_cli_on_the_prompt_file() -> None:
    """judge_rerun_claude runs `claude --model {model} ... --print` with the prompt file,
    loading none of the workspace's own settings (hooks) or MCP servers."""
    node = OmegaConf.load(REPO / "plugins" / "conf" / "task" / "judge_rerun_claude.yaml")
    command = list(node.command)
    assert command[:3] == ["claude", "--model", "{model}"] and "--print" in command
    at = command.index("--setting-sources")
    assert command[at + 1] == "user" and "--strict-mcp-config" in command
    assert "{prompt_file}" in command and node.name == "judge_rerun"


@pytest.mark.parametrize("option", ["judge_rerun", "judge_rerun_claude", "judge_regenerate"])
def test_task_options_pick_their_source_and_postprocessor(tmp_path: Path, option: str) -> None:
    """Selecting a judge task selects its judge source and judge_consensus; explicit
    choices on the command line win."""
    source = "judge_runs" if option == "judge_regenerate" else "judge_slots"

    def composed(*overrides: str) -> dict[str, Any]:
        done = run_runner("--cfg", "job", f"task={option}", *overrides, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        node = OmegaConf.to_container(OmegaConf.create(done.stdout))
        assert isinstance(node, dict)
        return node

    cfg = composed()
    assert (cfg["source"]["name"], cfg["postprocessor"]["name"]) == (source, "judge_consensus")
    expected = "regenerate" if option == "judge_regenerate" else "rerun"
    assert cfg["task"]["name"] == f"judge_{expected}"
    assert composed("postprocessor=summary")["postprocessor"]["name"] == "summary"


def test_dry_run_describes_and_leaves_the_experiment_identical(
    run_app: RunCli, experiment: Path
) -> None:
    """`python -m runner task=judge_rerun dry_run=true` logs the table and writes nothing."""
    remove_slot(experiment)
    before = tree(experiment)
    result = run_app("task=judge_rerun", f"source.experiment={experiment}", "dry_run=true")
    assert result.returncode == 0, result.output
    assert "selected for rerun: 1 slot(s)" in result.output
    assert f"{T3}/judge_02" in result.output
    assert tree(experiment) == before


def test_a_full_run_repairs_the_experiment(run_app: RunCli, experiment: Path) -> None:
    """A real run reruns the missing slots with the local judge and writes the summary."""
    slot = remove_slot(experiment)
    other = remove_slot(experiment, "T0/00/run_01", 3)
    result = run_app(
        "task=judge_rerun", f"source.experiment={experiment}", "parallel=2", "task.latency=0"
    )
    assert result.returncode == 0, result.output
    assert status_of(slot) == status_of(other) == "complete"
    assert (experiment / "summary" / "judge_summary.md").is_file()
    assert (result.run_dir / "judge_summary.md").is_file()
    assert [r["status"] for r in result.results()] == ["ok", "ok"]


def test_a_missing_experiment_is_a_usage_error(run_app: RunCli, tmp_path: Path) -> None:
    """A wrong experiment path ends with exit code 2 and one line naming it."""
    result = run_app("task=judge_rerun", f"source.experiment={tmp_path / 'nope'}")
    assert result.returncode == 2
    assert str(tmp_path / "nope") in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["source.experiment={experiment}", "task.latency=-1"],
            "latency must be a number of seconds >= 0 or null, got -1",
        ),
        (
            ["source=range", "postprocessor=judge_consensus"],
            "postprocessor 'judge_consensus' could not start: judge_consensus needs the "
            "judge_slots or judge_runs source",
        ),
    ],
)
def test_a_bad_latency_or_source_stops_the_run_before_any_slot(
    run_app: RunCli, experiment: Path, overrides: list[str], message: str
) -> None:
    """A bad latency or a source other than judge_slots is exit code 2 before any item runs."""
    remove_slot(experiment)
    before = tree(experiment)
    result = run_app("task=judge_rerun", *(o.format(experiment=experiment) for o in overrides))
    assert result.returncode == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (result.run_dir / "results.jsonl").exists()
    assert tree(experiment) == before


def test_a_refused_run_leaves_the_experiment_as_it_was(run_app: RunCli, experiment: Path) -> None:
    """A run refused at start-up (exit 2) neither recovers leftovers nor rebuilds prompts."""
    remove_slot(experiment)
    (experiment / T3 / "judge_prompt.md").unlink()
    (experiment / T3 / "judge" / ".judge_02.attempt-1-abcd").mkdir()
    before = tree(experiment)
    result = run_app(
        "task=judge_rerun", f"source.experiment={experiment}", "task.command=[no-such-judge-x]"
    )
    assert result.returncode == 2, result.output
    assert "'no-such-judge-x' is not found on PATH" in result.output
    assert tree(experiment) == before
    assert (experiment / T3 / "judge" / ".judge_02.attempt-1-abcd").is_dir()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["task=judge_rerun", "source=judge_runs"], "judge_rerun judges slots: it needs"),
        (["task=judge_regenerate", "source=judge_slots"], "judge_regenerate needs the judge_runs"),
    ],
)
def test_a_judge_task_refuses_the_other_judge_source(
    run_app: RunCli, experiment: Path, overrides: list[str], message: str
) -> None:
    """Each judge task names the source it needs instead of failing item by item."""
    before = tree(experiment)
    result = run_app(*overrides, f"source.experiment={experiment}")
    assert result.returncode == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and tree(experiment) == before


def test_the_judge_writes_slot_dir_files_into_its_attempt(
    run_app: RunCli, experiment: Path, tmp_path: Path
) -> None:
    """{slot_dir} is the attempt folder: a judge's own files arrive with its attempt, whole."""
    script = tmp_path / "notes_judge.py"
    script.write_text(
        "import json, pathlib, sys\n"
        "pathlib.Path(sys.argv[1], 'notes.txt').write_text('mine')\n"
        "print('```json\\n' + json.dumps({'score': 0.7, 'passed': True}) + '\\n```')\n"
    )
    slot = experiment / T3 / "judge" / "judge_02"
    (slot / "judgment.json").write_text('{"score": 0.5, "is_valid": false}')
    result = run_app(
        "task=judge_rerun",
        f"source.experiment={experiment}",
        f"task.command=[{sys.executable},{script},'{{slot_dir}}']",
    )
    assert result.returncode == 0, result.output
    assert (slot / "notes.txt").read_text() == "mine"
    assert not (slot / "attempts" / "1" / "notes.txt").exists()
    assert status_of(slot) == "complete"


def test_judge_regenerate_alone_rewrites_each_run(run_app: RunCli, experiment: Path) -> None:
    """Without the post-processor, judge_regenerate's own items restore a hand-edited run."""
    import json

    result_file = experiment / T3 / "judge" / "result.json"
    stored = json.loads(result_file.read_text())
    result_file.write_text(json.dumps(stored | {"score": 0.1, "passed": False}))
    result = run_app(
        "task=judge_regenerate", f"source.experiment={experiment}", "postprocessor=none"
    )
    assert result.returncode == 0, result.output
    assert json.loads(result_file.read_text())["score"] == pytest.approx((0.96 + 1.0 + 0.99) / 3)
    records = {r["id"]: r for r in result.results()}
    assert len(records) == 7 and records[T3]["result"]["was_stale"].startswith("judge/result.json")
    assert not (experiment / "summary").exists()  # the summary is the post-processor's


def test_a_rate_limited_judge_is_retried_after_its_wait(
    run_app: RunCli, experiment: Path, tmp_path: Path
) -> None:
    """Two 429 replies then a verdict: with retry.attempts=3 the slot ends complete, the
    run paused for the Retry-After, and both failed attempts are kept and journaled."""
    script = tmp_path / "busy_judge.py"
    script.write_text(
        "import json, pathlib, sys\n"
        "count = pathlib.Path(sys.argv[1])\n"
        "n = int(count.read_text()) + 1 if count.exists() else 1\n"
        "count.write_text(str(n))\n"
        "if n < 3:\n"
        "    print('HTTP 429 Too Many Requests. Retry-After: 0.3', file=sys.stderr)\n"
        "    sys.exit(1)\n"
        "print('```json\\n' + json.dumps({'score': 0.6, 'passed': True}) + '\\n```')\n"
    )
    remove_slot(experiment)
    result = run_app(
        "task=judge_rerun",
        f"source.experiment={experiment}",
        f"task.command=[{sys.executable},{script},{tmp_path / 'count'}]",
        "retry.attempts=3",
        "retry.backoff=0.01",
    )
    assert result.returncode == 0, result.output
    [record] = result.results()
    assert record["status"] == "ok" and len(record["retries"]) == 2
    assert all(r["error"]["type"] == "JudgeRateLimited" for r in record["retries"])
    assert all(r["wait"] >= 0.3 for r in record["retries"])
    slot = experiment / T3 / "judge" / "judge_02"
    assert status_of(slot) == "complete"
    assert sorted(p.name for p in (slot / "attempts").iterdir()) == ["1", "2"]
    # The refusal taught a bound on how many run at once (it pauses nothing else).
    assert "The service refused a request with 1 in flight" in result.output
