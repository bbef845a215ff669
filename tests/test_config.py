"""Config composition (Hydra compose API) and the errors a user can cause."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hydra import compose, initialize
from omegaconf import DictConfig

from runner.cli import _register_hydra_plugins
from runner.errors import UsageError
from runner.settings import MAX_PARALLEL, settings_from
from tests.conftest import RunCli


@pytest.fixture
def composer() -> Iterator[None]:
    _register_hydra_plugins()
    with initialize(version_base="1.3", config_path=None):
        yield


def make(overrides: list[str]) -> DictConfig:
    return compose("config", overrides=overrides)


def test_defaults_select_one_plugin_per_group(composer: None) -> None:
    """The default config selects range, sleep, thread and summary with parallel=1."""
    settings = settings_from(make([]))
    assert settings.parallel == 1 and settings.dry_run is False
    assert {g: settings.name(g) for g in settings.plugins} == {
        "source": "range",
        "task": "sleep",
        "executor": "thread",
        "postprocessor": "summary",
    }
    assert settings.params("task") == {"seconds": 0.1, "fail_rate": 0.0, "seed": 0}


def test_overrides_are_typed(composer: None) -> None:
    """Overrides are converted to the parameter's annotated type."""
    settings = settings_from(make(["task.seconds=2", "source.count=7", "parallel=3"]))
    assert settings.params("task")["seconds"] == 2.0
    assert isinstance(settings.params("task")["seconds"], float)
    assert settings.params("source")["count"] == 7 and settings.parallel == 3


def test_shell_command_list_override(composer: None) -> None:
    """A list override reaches the task as a plain list of strings."""
    settings = settings_from(make(["task=shell", "task.command=[echo,'{id}']"]))
    assert settings.params("task")["command"] == ["echo", "{id}"]


def test_missing_mandatory_value_is_a_usage_error(composer: None) -> None:
    """A ??? parameter left unset stops the run with the key's name."""
    with pytest.raises(UsageError, match=r"task\.command"):
        settings_from(make(["task=shell"]))


def test_parallel_zero_is_refused(composer: None) -> None:
    """parallel must be >= 1."""
    with pytest.raises(UsageError, match="parallel=0"):
        settings_from(make(["parallel=0"]))


def test_parallel_has_a_maximum(composer: None) -> None:
    """parallel up to MAX_PARALLEL is accepted; one more is refused naming both numbers."""
    assert settings_from(make([f"parallel={MAX_PARALLEL}"])).parallel == MAX_PARALLEL
    with pytest.raises(
        UsageError, match=f"parallel={MAX_PARALLEL + 1} .* maximum is {MAX_PARALLEL}"
    ):
        settings_from(make([f"parallel={MAX_PARALLEL + 1}"]))


def test_text_list_elements_are_not_retyped(composer: None) -> None:
    """Unquoted true, null and numbers in a list of text arrive as Hydra read them, not as
    text they never were ("True", "1000.0"), so the shell task can refuse them."""
    overrides = ["task=shell", 'task.command=[echo,true,null,1e3,1_000,"1e3"]']
    command = settings_from(make(overrides)).params("task")["command"]
    assert command == ["echo", True, None, 1000.0, 1000, "1e3"]
    assert [type(part) for part in command] == [str, bool, type(None), float, int, str]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("parallel=abc", "'abc'"),
        ("parallel=0", "parallel=0"),
        (
            "executor=thrad",
            "Unknown executor 'thrad'. Valid executors: dask, process, sequential, thread",
        ),
        ("task=nope", "Unknown task 'nope'. Valid tasks:"),
        ("task.typo=1", "Unknown key 'task.typo'"),
        ("task.seconds=abc", "'abc' for 'task.seconds'"),
        ("progress=fancy", "progress='fancy'"),
        ("parallel=${oops}", "parallel='${oops}' cannot be resolved: Interpolation key 'oops'"),
        (
            "task.fail_rate=${oc.env:RUNNER_TEST_UNSET}",
            "task.fail_rate='${oc.env:RUNNER_TEST_UNSET}' cannot be resolved: Environment "
            "variable 'RUNNER_TEST_UNSET' not found",
        ),
        ("parallel=1000000000", f"parallel=1000000000 is too large: the maximum is {MAX_PARALLEL}"),
    ],
)
def test_config_errors_stop_before_any_item(run_cli: RunCli, override: str, expected: str) -> None:
    """Each bad override ends with one line naming it, exit code 2 and no results."""
    result = run_cli(override, "source.count=3", "task.seconds=0")
    assert result.returncode == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if "error" in line.lower()]
    assert len(error_lines) == 1, result.output
    assert not (result.run_dir / "results.jsonl").exists()


def test_valid_choices_listed_for_unknown_task(run_cli: RunCli) -> None:
    """The unknown-task message lists every installed task."""
    result = run_cli("task=nope")
    assert result.returncode == 2, result.output
    (line,) = [line for line in result.output.splitlines() if "Valid tasks:" in line]
    valid = line.split("Valid tasks:")[1].rstrip(".").split(", ")
    assert {"shell", "sleep", "judge_rerun", "judge_rerun_claude"} <= {v.strip() for v in valid}
