"""Config composition (Hydra compose API) and the errors a user can cause, end to end.

settings_from's own checks are in tests/test_settings.py, the config source's in
tests/test_configsource.py.
"""

from __future__ import annotations

import pytest

from runner.config.settings import MAX_PARALLEL, settings_from
from tests.conftest import Compose, RunCli


def test_defaults_select_one_plugin_per_group(compose_config: Compose) -> None:
    """The default config selects range, sleep, thread and summary with parallel=1."""
    settings = settings_from(compose_config())
    assert settings.parallel == 1 and settings.dry_run is False
    assert {g: settings.name(g) for g in settings.plugins} == {
        "source": "range",
        "task": "sleep",
        "executor": "thread",
        "postprocessor": "summary",
    }
    assert settings.params("task") == {"seconds": 0.1, "fail_rate": 0.0, "seed": 0}


def test_overrides_are_typed(compose_config: Compose) -> None:
    """Overrides are converted to the parameter's annotated type."""
    settings = settings_from(compose_config("task.seconds=2", "source.count=7", "parallel=3"))
    assert settings.params("task")["seconds"] == 2.0
    assert isinstance(settings.params("task")["seconds"], float)
    assert settings.params("source")["count"] == 7 and settings.parallel == 3


def test_shell_command_list_override(compose_config: Compose) -> None:
    """A list override reaches the task as a plain list of strings."""
    settings = settings_from(compose_config("task=shell", "task.command=[echo,'{id}']"))
    assert settings.params("task")["command"] == ["echo", "{id}"]


def test_text_list_elements_are_not_retyped(compose_config: Compose) -> None:
    """Unquoted true, null and numbers in a list of text arrive as Hydra read them, not as
    text they never were ("True", "1000.0"), so the shell task can refuse them."""
    overrides = ["task=shell", 'task.command=[echo,true,null,1e3,1_000,"1e3"]']
    command = settings_from(compose_config(*overrides)).params("task")["command"]
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
def test_config_errors_stop_before_any_item(run_app: RunCli, override: str, expected: str) -> None:
    """Each bad override ends with one line naming it, exit code 2 and no results."""
    result = run_app(override, "source.count=3", "task.seconds=0")
    assert result.returncode == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if "error" in line.lower()]
    assert len(error_lines) == 1, result.output
    assert not (result.run_dir / "results.jsonl").exists()


def test_valid_choices_listed_for_unknown_task(run_app: RunCli) -> None:
    """The unknown-task message lists every installed task."""
    result = run_app("task=nope")
    assert result.returncode == 2, result.output
    (line,) = [line for line in result.output.splitlines() if "Valid tasks:" in line]
    valid = line.split("Valid tasks:")[1].rstrip(".").split(", ")
    assert {"shell", "sleep", "judge_rerun", "judge_rerun_claude"} <= {v.strip() for v in valid}
