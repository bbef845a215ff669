"""The judge plugins as installed: entry-point names, YAML configs, runs of `python -m runner`."""

from __future__ import annotations

import inspect
import shutil
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from runner_plugins.judge.plugins import JudgeConsensus, JudgeRerun, JudgeSlots
from tests.conftest import RunCli
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


CONFIGS = [
    ("source", "judge_slots", JudgeSlots),
    ("task", "judge_rerun", JudgeRerun),
    ("task", "judge_rerun_claude", JudgeRerun),
    ("postprocessor", "judge_consensus", JudgeConsensus),
]


@pytest.mark.parametrize(("group", "option", "cls"), CONFIGS)
def test_yaml_keys_are_the_constructor_parameters(group: str, option: str, cls: type) -> None:
    """Each YAML sets exactly the plugin's parameters, and the plugin accepts them."""
    node = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / group / f"{option}.yaml"))
    assert isinstance(node, dict)
    params = {str(k): v for k, v in node.items() if k not in ("name", "defaults")}
    init = cls.__init__  # type: ignore[misc]
    accepted = (
        set() if init is object.__init__ else set(inspect.signature(init).parameters) - {"self"}
    )
    assert set(params) == accepted
    cls(**params)


def test_claude_option_runs_the_claude_cli_on_the_prompt_file() -> None:
    """judge_rerun_claude runs `claude --model {model} --print` with the prompt file."""
    node = OmegaConf.load(REPO / "conf" / "task" / "judge_rerun_claude.yaml")
    command = list(node.command)
    assert command[:4] == ["claude", "--model", "{model}", "--print"]
    assert "{prompt_file}" in command and node.name == "judge_rerun"


@pytest.mark.parametrize("option", ["judge_rerun", "judge_rerun_claude"])
def test_task_options_pick_their_source_and_postprocessor(tmp_path: Path, option: str) -> None:
    """Selecting a judge task selects judge_slots and judge_consensus; explicit choices win."""
    for group, name, _ in CONFIGS:
        (tmp_path / group).mkdir(exist_ok=True)
        shutil.copy(REPO / "conf" / group / f"{name}.yaml", tmp_path / group)
    for group, name in (("source", "range"), ("task", "sleep"), ("postprocessor", "summary")):
        (tmp_path / group / f"{name}.yaml").write_text(f"name: {name}\n")
    # Hydra applies a config's overrides only to groups listed before it: task goes last.
    (tmp_path / "config.yaml").write_text(
        "defaults:\n  - _self_\n  - source: range\n  - postprocessor: summary\n  - task: sleep\n"
    )
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        cfg = compose("config", overrides=[f"task={option}"])
        assert (cfg.source.name, cfg.task.name, cfg.postprocessor.name) == (
            "judge_slots",
            "judge_rerun",
            "judge_consensus",
        )
        cfg = compose("config", overrides=[f"task={option}", "postprocessor=summary"])
        assert cfg.postprocessor.name == "summary"


def test_dry_run_describes_and_leaves_the_experiment_identical(
    run_cli: RunCli, experiment: Path
) -> None:
    """`python -m runner task=judge_rerun dry_run=true` logs the table and writes nothing."""
    remove_slot(experiment)
    before = tree(experiment)
    result = run_cli("task=judge_rerun", f"source.experiment={experiment}", "dry_run=true")
    assert result.returncode == 0, result.output
    assert "selected for rerun: 1 slot(s)" in result.output
    assert f"{T3}/judge_02" in result.output
    assert tree(experiment) == before


def test_a_full_run_repairs_the_experiment(run_cli: RunCli, experiment: Path) -> None:
    """A real run reruns the missing slots with the local judge and writes the summary."""
    slot = remove_slot(experiment)
    other = remove_slot(experiment, "T0/00/run_01", 3)
    result = run_cli(
        "task=judge_rerun", f"source.experiment={experiment}", "parallel=2", "task.latency=0"
    )
    assert result.returncode == 0, result.output
    assert status_of(slot) == status_of(other) == "complete"
    assert (experiment / "summary" / "judge_summary.md").is_file()
    assert (result.run_dir / "judge_summary.md").is_file()
    assert [r["status"] for r in result.results()] == ["ok", "ok"]


def test_a_missing_experiment_is_a_usage_error(run_cli: RunCli, tmp_path: Path) -> None:
    """A wrong experiment path ends with exit code 2 and one line naming it."""
    result = run_cli("task=judge_rerun", f"source.experiment={tmp_path / 'nope'}")
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
    run_cli: RunCli, experiment: Path, overrides: list[str], message: str
) -> None:
    """A bad latency or a source other than judge_slots is exit code 2 before any item runs."""
    remove_slot(experiment)
    before = tree(experiment)
    result = run_cli("task=judge_rerun", *(o.format(experiment=experiment) for o in overrides))
    assert result.returncode == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (result.run_dir / "results.jsonl").exists()
    assert tree(experiment) == before
