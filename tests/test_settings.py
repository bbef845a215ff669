"""runner.config.settings: settings_from checks the composed config once and gives plain values."""

from __future__ import annotations

import pytest

from runner.config.settings import LOG_LEVELS, MAX_PARALLEL, PROGRESS_MODES, settings_from
from runner.errors import UsageError
from runner.execute.policies import HaltPolicy, RetryPolicy
from tests.conftest import Compose

TOP_LEVEL_KEYS = (
    "parallel, dry_run, progress, log_level, timeout, timeout_grace, retry, rate_limit, halt, "
    "auto, repeat, resume, source, task, executor, postprocessor"
)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+paralel=4", f"Unknown key 'paralel'. Valid keys here: {TOP_LEVEL_KEYS}."),
        ("+retry.atempts=2", "Unknown key 'retry.atempts'. Valid keys here: attempts, backoff, "
         "max_wait."),
        ("+halt.on_failure=1", "Unknown key 'halt.on_failure'. Valid keys here: on_failures, "
         "mode."),
        ("+rate_limit.cap=1", "Unknown key 'rate_limit.cap'. Valid keys here: per_second."),
        ("+task.bogus=1", "Unknown key 'task.bogus'. Valid keys here: name, seconds, fail_rate, "
         "seed."),
        ("+executor.chunk=1", "Unknown key 'executor.chunk'. Valid keys here: name, max_chunk, "
         "queue_factor."),
    ],
)  # fmt: skip
def test_a_key_added_with_plus_must_exist(
    compose_config: Compose, override: str, message: str
) -> None:
    """Hydra lets ``+key=value`` add any key; a key the schema lacks is refused with the
    valid keys of its node: the run's own, a nested policy's or the selected plugin's."""
    with pytest.raises(UsageError) as caught:
        settings_from(compose_config(override))
    assert str(caught.value) == message


def test_a_plugin_deselected_with_tilde_is_named(compose_config: Compose) -> None:
    """``~source`` leaves no source: the error says how to choose one."""
    with pytest.raises(UsageError, match=r"^No source selected: add source=NAME to the command"):
        settings_from(compose_config("~source"))


@pytest.mark.parametrize("parallel", [1, 7, MAX_PARALLEL])
def test_parallel_from_1_to_the_maximum_is_accepted(compose_config: Compose, parallel: int) -> None:
    """Any worker count from 1 to MAX_PARALLEL passes unchanged."""
    assert settings_from(compose_config(f"parallel={parallel}")).parallel == parallel


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("parallel=0", "parallel=0 is invalid: it must be an integer >= 1, or auto."),
        ("parallel=-1", "parallel=-1 is invalid: it must be an integer >= 1, or auto."),
        (
            f"parallel={MAX_PARALLEL + 1}",
            f"parallel={MAX_PARALLEL + 1} is too large: the maximum is {MAX_PARALLEL} workers.",
        ),
        # An interpolation is resolved before the check: task.seed is 0.
        ("parallel=${task.seed}", "parallel=0 is invalid: it must be an integer >= 1, or auto."),
    ],
)
def test_parallel_out_of_bounds_is_refused(
    compose_config: Compose, override: str, message: str
) -> None:
    """parallel below 1 or above MAX_PARALLEL is refused, naming the value and the bound."""
    with pytest.raises(UsageError) as caught:
        settings_from(compose_config(override))
    assert str(caught.value) == message


@pytest.mark.parametrize("mode", PROGRESS_MODES)
def test_every_progress_mode_is_accepted(compose_config: Compose, mode: str) -> None:
    """auto, bar, lines and off are the progress displays."""
    assert settings_from(compose_config(f"progress={mode}")).progress == mode


def test_log_level_is_upper_cased_and_checked(compose_config: Compose) -> None:
    """log_level=debug means DEBUG; a level loguru lacks is refused with the choices."""
    assert settings_from(compose_config("log_level=debug")).log_level == "DEBUG"
    assert [settings_from(compose_config(f"log_level={lv}")).log_level for lv in LOG_LEVELS] == [
        *LOG_LEVELS
    ]
    with pytest.raises(UsageError) as caught:
        settings_from(compose_config("log_level=loud"))
    assert str(caught.value) == (
        "log_level='loud' is invalid. Valid choices: "
        "TRACE, DEBUG, INFO, SUCCESS, WARNING, ERROR, CRITICAL."
    )


def test_an_unknown_progress_mode_lists_the_choices(compose_config: Compose) -> None:
    """progress=fancy is refused, naming the value and the four modes."""
    with pytest.raises(UsageError) as caught:
        settings_from(compose_config("progress=fancy"))
    assert str(caught.value) == "progress='fancy' is invalid. Valid choices: auto, bar, lines, off."


def test_missing_mandatory_value_is_a_usage_error(compose_config: Compose) -> None:
    """A ??? parameter left unset stops the run with the key's name."""
    with pytest.raises(UsageError) as caught:
        settings_from(compose_config("task=shell"))
    assert str(caught.value) == (
        "Missing mandatory value: task.command. Set it on the command line, "
        "e.g. task.command=VALUE."
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "parallel=${oops}",
            "parallel='${oops}' cannot be resolved: Interpolation key 'oops' not found.",
        ),
        (
            "task.seconds=${oc.env:RUNNER_TEST_UNSET}",
            "task.seconds='${oc.env:RUNNER_TEST_UNSET}' cannot be resolved: "
            "Environment variable 'RUNNER_TEST_UNSET' not found.",
        ),
        (
            "task.seconds=${oc.decode:'[1,'}",
            "task.seconds=\"${oc.decode:'[1,'}\" cannot be resolved: missing BRACKET_CLOSE "
            "at '<EOF>'.",
        ),
    ],
)
def test_an_unresolvable_interpolation_names_its_key_and_text(
    compose_config: Compose, monkeypatch: pytest.MonkeyPatch, override: str, message: str
) -> None:
    """One sentence: the key, the text as given, and why it cannot be resolved."""
    monkeypatch.delenv("RUNNER_TEST_UNSET", raising=False)
    with pytest.raises(UsageError) as caught:
        settings_from(compose_config(override))
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("overrides", "policy"),
    [
        ([], HaltPolicy()),
        (["halt.on_failures=5"], HaltPolicy(count=5)),
        (["halt.on_failures='5'"], HaltPolicy(count=5)),
        (["halt.on_failures=10%", "halt.mode=now"], HaltPolicy(fraction=0.1, mode="now")),
    ],
)
def test_halt_is_parsed_into_a_policy(
    compose_config: Compose, overrides: list[str], policy: HaltPolicy
) -> None:
    """A count (number or text) or a percentage, with its mode; nothing set: never halt."""
    halt = settings_from(compose_config(*overrides)).halt
    assert halt == policy and halt.active == bool(overrides)


@pytest.mark.parametrize(
    ("override", "start"),
    [
        ("halt.on_failures=abc", "halt.on_failures='abc' is invalid: give a count >= 1"),
        ("halt.on_failures=0", "halt.on_failures=0 is invalid: give a count >= 1"),
        ("halt.on_failures=true", "halt.on_failures=True is invalid: give a count >= 1"),
        ("halt.mode=later", "halt.mode='later' is invalid. Valid choices: soon, now."),
    ],
)
def test_a_bad_halt_value_is_a_usage_error(
    compose_config: Compose, override: str, start: str
) -> None:
    """The policy's ValueError reaches the user as a usage error (exit code 2)."""
    with pytest.raises(UsageError) as caught:
        settings_from(compose_config(override))
    assert str(caught.value).startswith(start)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("retry.attempts=0", "retry.attempts=0 is invalid: it must be an integer >= 1."),
        ("retry.backoff=-1", "retry.backoff=-1.0 is invalid: it must be a number >= 0 and "
         "<= 1e+09."),
        ("retry.backoff=1e300", "retry.backoff=1e+300 is invalid: it must be a number >= 0 and "
         "<= 1e+09."),
        ("retry.max_wait=inf", "retry.max_wait=inf is invalid: it must be a number > 0 and "
         "<= 1e+09."),
        ("retry.max_wait=0", "retry.max_wait=0.0 is invalid: it must be a number > 0 and "
         "<= 1e+09."),
        ("timeout_grace=nan", "timeout_grace=nan is invalid: it must be a number >= 0 and "
         "<= 1e+09."),
        ("timeout_grace=1e300", "timeout_grace=1e+300 is invalid: it must be a number >= 0 and "
         "<= 1e+09."),
        ("timeout=0", "timeout=0.0 is invalid: it must be a number > 0 and <= 1e+09, or null."),
        ("timeout=-5", "timeout=-5.0 is invalid: it must be a number > 0 and <= 1e+09, or null."),
        ("timeout=inf", "timeout=inf is invalid: it must be a number > 0 and <= 1e+09, or null."),
        ("timeout=1e300", "timeout=1e+300 is invalid: it must be a number > 0 and <= 1e+09, or "
         "null."),
        ("rate_limit.per_second=-2", "rate_limit.per_second=-2.0 is invalid: it must be a "
         "number > 0, or null."),
        ("rate_limit.per_second=nan", "rate_limit.per_second=nan is invalid: it must be a "
         "number > 0, or null."),
        ("rate_limit.per_second=1e-300", "rate_limit.per_second=1e-300 is invalid: it must be a "
         "number >= 0.00333 (a start at least every retry.max_wait=300 s), or null."),
        ("rate_limit.per_second=0.05", "rate_limit.per_second=0.05 is invalid: it must be a "
         "number >= 0.1 (a start at least every retry.max_wait=10 s), or null."),
    ],
)  # fmt: skip
def test_numbers_out_of_range_are_refused(
    compose_config: Compose, override: str, message: str
) -> None:
    """Counts, waits and rates must be finite and in range (no wait a sleep cannot hold,
    no start spacing above retry.max_wait); the message names the value and what is valid."""
    extra = ["retry.max_wait=10"] if "retry.max_wait=10 " in message else []
    with pytest.raises(UsageError) as caught:
        settings_from(compose_config(override, *extra))
    assert str(caught.value) == message


def test_settings_hold_plain_values(compose_config: Compose) -> None:
    """What the run reads per item: plain numbers, policies and plugin parameters."""
    settings = settings_from(
        compose_config(
            "dry_run=true",
            "timeout=3",
            "timeout_grace=0",
            "retry.attempts=3",
            "retry.backoff=0.5",
            "rate_limit.per_second=2",
            "resume=last",
            "task=shell",
            "task.command=[echo,'{id}']",
        )
    )
    assert (settings.dry_run, settings.timeout, settings.timeout_grace) == (True, 3.0, 0.0)
    assert settings.retry == RetryPolicy(attempts=3, backoff=0.5, max_wait=300.0)
    assert (settings.rate_limit, settings.resume) == (2.0, "last")
    assert settings.name("task") == "shell" and settings.plugins["task"]["name"] == "shell"
    assert settings.params("task")["command"] == ["echo", "{id}"]
    assert "name" not in settings.params("task")
    assert type(settings.plugins["task"]) is dict
    assert type(settings.params("task")["command"]) is list
    assert settings.as_dict()["task"] == settings.plugins["task"]
    assert {k: settings.as_dict()[k] for k in ("parallel", "dry_run", "progress")} == {
        "parallel": 1,
        "dry_run": True,
        "progress": "auto",
    }
