"""Judges over HTTP: task=judge_rerun_anthropic and task=judge_rerun_openai (JudgeRerunApi)
run in-process on a copy of the real experiment against a loopback fake of both APIs
(``tests/fake_llm_api.py``): the files each slot gets, costs from usage, the key kept out
of every file, and what each fault the services answer with becomes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.execute.command_group import use_group
from runner.toolkit import CommandGroup, CommandsStopped
from runner_plugins.judge.api_judge import BLANKED
from runner_plugins.judge.costs import LEDGER_FILE
from runner_plugins.judge.plugins import JudgeRerunApi
from runner_plugins.judge.system_prompt import MAX_SYSTEM_PROMPT_BYTES
from tests.conftest import RunCli
from tests.fake_llm_api import ANTHROPIC_PATH, OPENAI_PATH, PREFIX, FakeLlmApi
from tests.judge_support import T3, context_for, one_item, remove_slot, tree
from tests.plugin_support import write_distribution

OPUS, SONNET, HAIKU = "claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929", "claude-haiku-4-5"
KEY_ENV = "RUNNER_TEST_JUDGE_KEY"
#: A judge's system prompt (task.system_prompt_file), not all ASCII.
SYSTEM_PROMPT = "You are a strict judge.\n\n## Rubric\n\n- functional: does it run? \u2713\n"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLlmApi]:
    """The fake APIs, started, with their key in KEY_ENV."""
    with FakeLlmApi() as fake:
        assert fake.key is not None
        monkeypatch.setenv(KEY_ENV, fake.key)
        yield fake


def _read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _judge(
    run_app: RunCli, experiment: Path, api: FakeLlmApi, *args: str, task: str = "anthropic"
) -> Any:
    return run_app(
        f"task=judge_rerun_{task}",
        f"source.experiment={experiment}",
        f"task.base_url={api.url}",
        f"task.api_key_env={KEY_ENV}",
        *args,
    )


def _slot(experiment: Path, slot: int = 2, run: str = T3) -> Path:
    return experiment / run / "judge" / f"judge_{slot:02d}"


def _no_key_anywhere(api: FakeLlmApi, *roots: Path) -> None:
    assert api.key is not None
    for root in roots:
        for name, data in tree(root).items():
            assert api.key.encode() not in data, f"the key is in {root / name}"


# --- good replies ------------------------------------------------------------------


def test_an_anthropic_judge_writes_the_slot_its_cost_and_never_the_key(
    run_app: RunCli, experiment: Path, api: FakeLlmApi
) -> None:
    """Each slot is one Messages API call with the key in x-api-key: judgment.json,
    response.txt, MODEL.md and timing.json with tokens and cost (usage at the model's
    price) become the slot, the ledger and the summary total the cost per model, and
    the key is in no file of the run folder or the experiment."""
    for slot in (1, 2, 3):
        remove_slot(experiment, T3, slot)
    api.scores = {OPUS: 0.9, SONNET: 0.8, HAIKU: 0.2}
    result = _judge(run_app, experiment, api, "parallel=2")
    assert result.returncode == 0, result.output

    requests = api.requests
    assert sorted(r.model for r in requests) == sorted([OPUS, SONNET, HAIKU])
    prompt = (experiment / T3 / "judge_prompt.md").read_text()
    for request in requests:
        assert request.path == ANTHROPIC_PATH
        assert request.headers["x-api-key"] == api.key
        assert request.headers["anthropic-version"] == "2023-06-01"
        assert request.body["max_tokens"] == 8192
        assert request.body["messages"] == [{"role": "user", "content": prompt}]

    slot = _slot(experiment, 1)
    assert _read(slot / "judgment.json")["score"] == 0.9
    assert (slot / "response.txt").read_text().startswith(PREFIX)
    model_md = (slot / "MODEL.md").read_text()
    assert f"**Model**: {OPUS}" in model_md and f"POST {api.url}{ANTHROPIC_PATH}" in model_md
    cost = _read(slot / "timing.json")["cost"]
    # 1000 input and 200 output tokens at $5 and $25 per million (claude-opus-4-5).
    assert (cost["input_tokens"], cost["output_tokens"], cost["total_cost_usd"]) == (
        1000,
        200,
        0.01,
    )
    assert _read(_slot(experiment, 3) / "timing.json")["cost"]["total_cost_usd"] == 0.002

    ledger = [json.loads(x) for x in (result.run_dir / LEDGER_FILE).read_text().splitlines()]
    assert sorted((x["slot"], x["total_cost_usd"], x["ok"]) for x in ledger) == [
        (f"{T3}/judge_01", 0.01, True),
        (f"{T3}/judge_02", 0.006, True),
        (f"{T3}/judge_03", 0.002, True),
    ]
    summary = _read(experiment / "summary" / "judge_summary.json")
    repair = summary["repair"]["cost"]
    assert repair["total"]["total_cost_usd"] == 0.018
    assert repair["per_model"][OPUS]["input_tokens"] == 1000
    _no_key_anywhere(api, experiment, result.run_dir)


def test_an_openai_judge_sends_a_bearer_key_and_prices_what_it_is_told(
    run_app: RunCli, experiment: Path, api: FakeLlmApi
) -> None:
    """task=judge_rerun_openai asks chat completions with a bearer key and
    max_completion_tokens; a price given on the command line is used, and a model
    without one has an unknown cost, counted against the budget at its bound."""
    remove_slot(experiment, T3, 1)
    remove_slot(experiment, T3, 2)
    result = _judge(
        run_app,
        experiment,
        api,
        f"+task.prices.{OPUS}={{input:2,output:8}}",
        "task.max_tokens=1000",
        task="openai",
    )
    assert result.returncode == 0, result.output
    for request in api.requests:
        assert request.path == OPENAI_PATH
        assert request.headers["authorization"] == f"Bearer {api.key}"
        assert request.body["max_completion_tokens"] == 1000 and "max_tokens" not in request.body
    # 1000 prompt and 200 completion tokens at $2 and $8 per million.
    assert _read(_slot(experiment, 1) / "timing.json")["cost"]["total_cost_usd"] == 0.0036
    unpriced = _read(_slot(experiment, 2) / "timing.json")["cost"]
    assert (unpriced["total_cost_usd"], unpriced["output_tokens"]) == (None, 200)
    ledger = [json.loads(x) for x in (result.run_dir / LEDGER_FILE).read_text().splitlines()]
    estimated = [x for x in ledger if x["model"] == SONNET]
    assert [(x["total_cost_usd"], x["estimated"]) for x in estimated] == [(1.0, True)]
    assert f"no price for judge model {SONNET!r}" in result.output


def test_a_local_openai_compatible_server_needs_no_key(
    run_app: RunCli, experiment: Path, api: FakeLlmApi
) -> None:
    """openai_compatible sends max_tokens, as local servers read it; api_key_env=null
    sends no key at all."""
    api.key = None
    remove_slot(experiment)
    result = run_app(
        "task=judge_rerun_openai",
        f"source.experiment={experiment}",
        "task.provider=openai_compatible",
        f"task.base_url={api.url}",
        "task.api_key_env=null",
    )
    assert result.returncode == 0, result.output
    [request] = api.requests
    assert "authorization" not in request.headers
    assert request.body["max_tokens"] == 8192 and "max_completion_tokens" not in request.body


def test_each_worker_keeps_one_connection_alive(
    run_app: RunCli, experiment: Path, api: FakeLlmApi
) -> None:
    """One client per worker thread, its connection reused from call to call."""
    for run in ("T0/00/run_01", "T1/01/run_01"):
        for slot in (1, 2, 3):
            remove_slot(experiment, run, slot)
    result = _judge(run_app, experiment, api, "parallel=1")
    assert result.returncode == 0, result.output
    assert len(api.requests) == 6
    assert len({r.port for r in api.requests}) == 1


@pytest.mark.parametrize("executor", ["process", "dask"])
def test_worker_processes_make_their_own_clients(
    run_app: RunCli, experiment: Path, api: FakeLlmApi, executor: str, tmp_path: Path
) -> None:
    """The process and Dask executors send the task to their workers without clients or
    key; each makes its own clients and reads the key from its environment, and their
    calls count in the one ledger. The system prompt read at setup travels with the task."""
    for slot in (1, 2, 3):
        remove_slot(experiment, T3, slot)
    system = tmp_path / "system_prompt.md"
    system.write_text(SYSTEM_PROMPT, encoding="utf-8")
    result = _judge(
        run_app,
        experiment,
        api,
        f"executor={executor}",
        "parallel=2",
        f"task.system_prompt_file={system}",
    )
    assert result.returncode == 0, result.output
    assert len(api.requests) == 3
    assert [r.body["system"] for r in api.requests] == [SYSTEM_PROMPT] * 3
    assert len((result.run_dir / LEDGER_FILE).read_text().splitlines()) == 3


# --- the system prompt -------------------------------------------------------------


@pytest.mark.parametrize("task", ["anthropic", "openai"])
def test_the_system_prompt_goes_with_every_request(
    run_app: RunCli, experiment: Path, api: FakeLlmApi, tmp_path: Path, task: str
) -> None:
    """task.system_prompt_file is read once and sent with each request where the provider
    takes it: Anthropic's ``system``, OpenAI's first message (role ``system``); the judge
    prompt stays the one user message."""
    for slot in (1, 2):
        remove_slot(experiment, T3, slot)
    path = tmp_path / "system_prompt.md"
    path.write_text(SYSTEM_PROMPT, encoding="utf-8")
    result = _judge(
        run_app, experiment, api, f"task.system_prompt_file={path}", "parallel=2", task=task
    )
    assert result.returncode == 0, result.output
    assert sorted(api.last) == sorted([OPUS, SONNET])
    prompt = (experiment / T3 / "judge_prompt.md").read_text("utf-8")
    for body in api.last.values():
        if task == "anthropic":
            assert body["system"] == SYSTEM_PROMPT
            assert body["messages"] == [{"role": "user", "content": prompt}]
        else:
            assert "system" not in body
            assert body["messages"] == [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": prompt},
            ]


def test_without_a_system_prompt_none_is_sent(
    run_app: RunCli, experiment: Path, api: FakeLlmApi
) -> None:
    """task.system_prompt_file defaults to null: the request is the user message alone."""
    remove_slot(experiment)
    result = _judge(run_app, experiment, api, task="openai")
    assert result.returncode == 0, result.output
    [body] = api.last.values()
    assert [m["role"] for m in body["messages"]] == ["user"]


def _bad_system_prompts(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Files no system prompt is read from, and what the one line says of each."""
    good = tmp_path / "good.md"
    good.write_text(SYSTEM_PROMPT)
    link = tmp_path / "link.md"
    link.symlink_to(good)
    latin1 = tmp_path / "latin1.md"
    latin1.write_bytes("Rubrik f\u00fcr den Richter".encode("latin-1"))
    empty = tmp_path / "empty.md"
    empty.write_text("\n  \n")
    return {
        "missing": (tmp_path / "nowhere.md", "does not exist"),
        "symlink": (link, "is a symlink; give the file it leads to"),
        "folder": (tmp_path, "is not a regular file"),
        "not utf-8": (latin1, "is not UTF-8 text (byte 8)"),
        "empty": (empty, "is empty; give null for none"),
    }


@pytest.mark.parametrize("case", ["missing", "symlink", "folder", "not utf-8", "empty"])
def test_a_system_prompt_that_cannot_be_read_stops_the_run_before_any_call(
    run_app: RunCli, experiment: Path, api: FakeLlmApi, tmp_path: Path, case: str
) -> None:
    """A system prompt file that is missing, a symlink, no regular file, not UTF-8 or
    empty is one line naming it and exit 2; no request is made, no slot touched."""
    path, why = _bad_system_prompts(tmp_path)[case]
    remove_slot(experiment)
    before = tree(experiment)
    result = _judge(run_app, experiment, api, f"task.system_prompt_file={path}")
    assert result.returncode == 2, result.output
    assert f"task.system_prompt_file {str(path)!r} {why}" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert api.requests == []
    assert tree(experiment) == before


def test_a_system_prompt_over_the_cap_is_refused(
    run_app: RunCli, experiment: Path, api: FakeLlmApi, tmp_path: Path
) -> None:
    """A system prompt is read up to the cap a run's prompt has (4 MiB), no further."""
    path = tmp_path / "huge.md"
    path.write_bytes(b"x" * (MAX_SYSTEM_PROMPT_BYTES + 1))
    remove_slot(experiment)
    result = _judge(run_app, experiment, api, f"task.system_prompt_file={path}")
    assert result.returncode == 2, result.output
    assert f"is larger than {MAX_SYSTEM_PROMPT_BYTES} bytes" in result.stderr
    assert api.requests == []


# --- faults ------------------------------------------------------------------------


def test_a_429_pauses_for_its_retry_after_and_the_retry_judges(
    run_app: RunCli, experiment: Path, api: FakeLlmApi
) -> None:
    """429 with retry-after: the attempt is kept as rate limited, the retry waits at
    least what was asked for, and judges the slot."""
    remove_slot(experiment)
    api.script[SONNET] = ["429:1.5"]
    result = _judge(run_app, experiment, api, "retry.attempts=2", "retry.backoff=0.01")
    assert result.returncode == 0, result.output
    first, second = api.of(SONNET)
    assert second.at - first.at >= 1.5
    [record] = result.results()
    assert record["status"] == "ok" and len(record["retries"]) == 1
    assert record["retries"][0]["error"]["type"] == "JudgeRateLimited"
    assert record["retries"][0]["wait"] >= 1.5
    [kept] = (_slot(experiment) / "attempts").iterdir()
    timing = _read(kept / "timing.json")
    assert (timing["failure_kind"], timing["retry_after"], timing["http_status"]) == (
        "rate_limited",
        1.5,
        429,
    )


@pytest.mark.parametrize("task", ["anthropic", "openai"])
def test_a_429_without_retry_after_waits_for_the_limit_to_reset(
    run_app: RunCli, experiment: Path, api: FakeLlmApi, task: str
) -> None:
    """Without retry-after, the provider's reset headers of the exhausted limit say how
    long to wait (anthropic-ratelimit-*: a time; x-ratelimit-*: a duration)."""
    remove_slot(experiment)
    api.script[SONNET] = ["429@reset:2"]
    result = _judge(run_app, experiment, api, "retry.attempts=2", "retry.backoff=0.01", task=task)
    assert result.returncode == 0, result.output
    first, second = api.of(SONNET)
    assert second.at - first.at >= 1.0  # a reset time is whole seconds: at least 1 s of 2
    wait = result.results()[0]["retries"][0]["wait"]
    assert 1.0 <= wait <= 3.0  # the 2 s asked for (runner may stretch a wait by a quarter)


def test_a_rate_limit_is_a_signal_to_parallel_auto(
    run_app: RunCli, experiment: Path, api: FakeLlmApi
) -> None:
    """With parallel=auto, a 529 is a rate-limit signal (which cuts the number of judges
    running at once, down to auto.min: when, depends on how far the climb got)."""
    for run in ("T0/00/run_01", "T1/01/run_01", "T2/01/run_01"):
        for slot in (1, 2, 3):
            remove_slot(experiment, run, slot)
    api.script[OPUS] = ["529:0.2"]
    result = _judge(
        run_app,
        experiment,
        api,
        "parallel=auto",
        "auto.min=1",
        "auto.max=8",
        "retry.attempts=2",
        "retry.backoff=0.01",
        "executor=thread",
    )
    assert result.returncode == 0, result.output
    assert result.summary()["concurrency"]["rate_limit_signals"] == 1


@pytest.mark.parametrize("status", ["529", "503"])
def test_an_overloaded_service_fails_the_slot_as_rate_limited(
    run_app: RunCli, experiment: Path, api: FakeLlmApi, status: str
) -> None:
    """529 (Anthropic's overloaded) and 503 are rate limits: without retries the slot
    is failed and its timing.json says rate_limited."""
    remove_slot(experiment)
    api.script[SONNET] = [status]
    result = _judge(run_app, experiment, api)
    assert result.returncode == 1
    [record] = result.results()
    assert record["error"]["type"] == "JudgeRateLimited"
    assert f"HTTP {status}: overloaded_error" in record["error"]["message"]
    timing = _read(_slot(experiment) / "timing.json")
    assert (timing["failed"], timing["failure_kind"]) == (True, "rate_limited")
    assert not (result.run_dir / LEDGER_FILE).exists()  # a refusal costs nothing


@pytest.mark.parametrize("step", ["500", "drop", "slow:30", "trickle:0.1"])
def test_server_errors_timeouts_and_dropped_connections_are_retried(
    run_app: RunCli, experiment: Path, api: FakeLlmApi, step: str
) -> None:
    """A 500, a connection closed without an answer and an answer slower than
    task.timeout (late, or trickling in) fail the attempt, and retry.attempts tries
    again."""
    remove_slot(experiment)
    api.script[SONNET] = [step]
    result = _judge(
        run_app, experiment, api, "retry.attempts=2", "retry.backoff=0.01", "task.timeout=1"
    )
    assert result.returncode == 0, result.output
    [record] = result.results()
    assert record["status"] == "ok" and len(record["retries"]) == 1
    error = record["retries"][0]["error"]
    assert error["type"] == "RetryableError"
    assert error["message"].startswith("the judge's API failed or did not answer, worth a retry")
    assert len(api.of(SONNET)) == 2
    [kept] = (_slot(experiment) / "attempts").iterdir()
    kind = _read(kept / "timing.json")["failure_kind"]
    assert kind == {"500": "api_unavailable", "drop": "api_unavailable"}.get(step, "timeout")
    if step != "500":  # ended at the timeout, not when the answer came (a trickle: 70 s)
        assert _read(kept / "timing.json")["judge_duration_seconds"] < 30


def test_a_refused_request_fails_the_slot_with_the_providers_message(
    run_app: RunCli, experiment: Path, api: FakeLlmApi
) -> None:
    """Another 4xx is final: no retry, the provider's message in the failure."""
    remove_slot(experiment)
    api.script[SONNET] = ["400"]
    result = _judge(run_app, experiment, api, "retry.attempts=3", "retry.backoff=0.01")
    assert result.returncode == 1
    [record] = result.results()
    assert "retries" not in record and record["error"]["type"] == "TaskFailure"
    assert (
        "the API refused the request: HTTP 400: invalid_request_error: max_tokens: must be "
        "at most 64000"
    ) in record["error"]["message"]
    assert len(api.of(SONNET)) == 1
    assert _read(_slot(experiment) / "timing.json")["failure_kind"] == "api_error"


@pytest.mark.parametrize("step", ["malformed", "no_verdict"])
def test_a_reply_without_a_verdict_leaves_the_slot_failed(
    run_app: RunCli, experiment: Path, api: FakeLlmApi, step: str
) -> None:
    """A 200 whose body is not JSON, or whose text holds no verdict, fails the slot
    (unusable_reply); the call was paid for, so the ledger counts it."""
    remove_slot(experiment)
    api.script[SONNET] = [step]
    result = _judge(run_app, experiment, api)
    assert result.returncode == 1
    slot = _slot(experiment)
    timing = _read(slot / "timing.json")
    assert (timing["failed"], timing["failure_kind"]) == (True, "unusable_reply")
    assert not (slot / "judgment.json").exists()
    [line] = (result.run_dir / LEDGER_FILE).read_text().splitlines()
    record = json.loads(line)
    assert record["ok"] is False
    if step == "malformed":
        assert (slot / "stdout.log").read_bytes() == b"<html>502 Bad Gateway</html>"
        assert record["estimated"] is True
    else:
        assert record["total_cost_usd"] == 0.006 and "estimated" not in record


def test_an_answer_too_long_to_hold_is_not_read(
    run_app: RunCli, experiment: Path, api: FakeLlmApi
) -> None:
    """A reply over 16 MiB is read no further: the slot fails and keeps its first 64 KiB."""
    remove_slot(experiment)
    api.script[SONNET] = ["huge"]
    result = _judge(run_app, experiment, api)
    assert result.returncode == 1
    slot = _slot(experiment)
    assert (
        "the API's answer is longer than 16777216 bytes: not read"
        in (_read(slot / "timing.json")["reason"])
    )
    assert (slot / "stdout.log").stat().st_size < 65 * 1024


def test_no_call_starts_once_the_run_is_interrupted(
    experiment: Path, api: FakeLlmApi, out: Path
) -> None:
    """Once the run's command group is stopped (Ctrl-C), a slot's call is refused as its
    command would be: no request, the slot as it was."""
    slot = remove_slot(experiment)
    task = JudgeRerunApi("anthropic", api.url, KEY_ENV)
    task.setup(context_for(out))
    group = CommandGroup()
    group.stop()
    with use_group(group), pytest.raises(CommandsStopped, match="not started"):
        task.run(one_item(experiment, out))
    task.close()
    assert api.requests == []
    assert not slot.exists() and not list(slot.parent.glob(".judge_02.*"))


def test_a_missing_key_stops_the_run_before_the_first_call(
    run_app: RunCli, experiment: Path, api: FakeLlmApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No key in the environment: exit 2, one line naming the variable, no request,
    the experiment untouched."""
    monkeypatch.delenv(KEY_ENV)
    remove_slot(experiment)
    before = tree(experiment)
    result = _judge(run_app, experiment, api)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert f"the environment variable {KEY_ENV!r} (task.api_key_env)" in line, line
    assert api.requests == []
    assert tree(experiment) == before


def test_a_key_the_service_quotes_back_is_blanked(
    run_app: RunCli, experiment: Path, api: FakeLlmApi
) -> None:
    """A service that quotes the key in its error, or in a reply as JSON escapes: the
    failure, the slot's files and the journal hold it blanked."""
    remove_slot(experiment, T3, 1)
    remove_slot(experiment, T3, 2)
    api.script[SONNET] = ["echo_key"]
    api.script[OPUS] = ["escaped_key"]
    result = _judge(run_app, experiment, api)
    assert result.returncode == 1
    [failed] = [r for r in result.results() if r["status"] == "failed"]
    assert f"key {BLANKED} may not use" in failed["error"]["message"]
    reasoning = _read(_slot(experiment, 1) / "judgment.json")["reasoning"]
    assert reasoning == f"{OPUS} judged it (your key: {BLANKED})"
    _no_key_anywhere(api, experiment, result.run_dir)


def test_a_prompt_that_leads_outside_the_experiment_is_not_sent(
    run_app: RunCli, experiment: Path, api: FakeLlmApi, tmp_path: Path
) -> None:
    """judge_prompt.md is the agent's experiment's: a symlink to a file outside is not
    read, nothing is sent and the slot stays as it was."""
    secret = tmp_path / "secret.txt"
    secret.write_text("the evaluator's secret")
    prompt = experiment / T3 / "judge_prompt.md"
    prompt.unlink()
    prompt.symlink_to(secret)
    slot = remove_slot(experiment)
    result = _judge(run_app, experiment, api)
    assert result.returncode == 1
    assert (
        "judge_prompt.md is a symlink or leads outside" in result.results()[0]["error"]["message"]
    )
    assert api.requests == []
    assert not slot.exists() and not list(slot.parent.glob(".judge_02.*"))
    for root in (experiment, result.run_dir):
        files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
        assert not [p for p in files if b"evaluator's secret" in p.read_bytes()]


def test_the_budget_counts_each_calls_cost(
    run_app: RunCli, experiment: Path, api: FakeLlmApi
) -> None:
    """One judge at a time, $0.01 an opus call, a $0.015 budget: two calls, then the
    slot left is not judged (BudgetExhausted) and no further request is made."""
    runs = ("T0/00/run_01", "T1/01/run_01", "T2/01/run_01")
    for run in runs:
        remove_slot(experiment, run, 1)
    result = _judge(run_app, experiment, api, "task.budget_usd=0.015", "source.slots=[judge_01]")
    assert result.returncode == 1, result.output  # a slot left unjudged: not done
    assert [r["status"] for r in result.results()] == ["ok", "ok"]
    assert len(api.requests) == 2
    assert not _slot(experiment, 1, runs[2]).exists()
    repair = _read(result.run_dir / "judge_summary.json")["repair"]
    assert (repair["budget_reached"], repair["budget_stopped"]) == (True, 1)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("task.provider=mistral", "judge provider 'mistral' is not installed; installed: ["),
        ("task.base_url=api.anthropic.com", "base_url 'api.anthropic.com' is not an http"),
        ("task.base_url=http://", "base_url 'http://' is not an http:// or https:// URL"),
        ("task.base_url=http://localhost:99999", "base_url 'http://localhost:99999' is not"),
        ("task.base_url='http://[::1'", "base_url 'http://[::1' is not an http:// or"),
        ("task.base_url='https://h/v1?k=v'", "base_url 'https://h/v1?k=v' is not an http"),
        ("task.base_url='https://u:sk-ant-pw@h'", "base_url holds a user name or password"),
        ("+task.prices.x={input:1}", "prices['x'] is {'input': 1}"),
        ("task.max_tokens=0", "max_tokens must be a whole number of tokens > 0, got 0"),
        ("task.base_url=null", "task.base_url is not set; give task.provider (installed: ["),
        ("task.api_key_env=sk-ant-api03-xyz", "api_key_env must be the name of an environment"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(
    run_app: RunCli, experiment: Path, api: FakeLlmApi, override: str, named: str
) -> None:
    """Each bad setting stops the run before any call with one line naming it."""
    result = _judge(run_app, experiment, api, override)
    assert result.returncode == 2, result.output
    assert named in result.stderr, result.stderr
    assert "sk-ant" not in result.output  # a key given in the variable's place is not shown
    assert api.requests == []


# --- a provider from another package -----------------------------------------------

ECHO_PROVIDER = """
    from runner_plugins.judge.providers import Provider, Reply


    class Echo(Provider):
        path = "/v1/chat/completions"

        def headers(self, key):
            return {"authorization": f"Bearer {key}"}

        def body(self, model, prompt, max_tokens):
            return {"model": model, "max_tokens": max_tokens,
                    "messages": [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": prompt}]}

        def reply(self, data):
            usage = data["usage"]
            return Reply(data["choices"][0]["message"]["content"],
                         usage["prompt_tokens"], usage["completion_tokens"])
"""


def test_a_package_adds_a_provider_through_its_entry_point(
    run_app: RunCli,
    experiment: Path,
    api: FakeLlmApi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A provider registered under runner.judge_providers by an installed distribution
    is selected with task.provider and judges like the built-in ones."""
    site = tmp_path / "site"
    write_distribution(
        site,
        "runner-judge-echo",
        {"runner.judge_providers": {"echo": "echo_provider:Echo"}},
        {"echo_provider.py": ECHO_PROVIDER},
    )
    monkeypatch.syspath_prepend(str(site))
    remove_slot(experiment)
    result = run_app(
        "task=judge_rerun_api",
        f"source.experiment={experiment}",
        "task.provider=echo",
        f"task.base_url={api.url}",
        f"task.api_key_env={KEY_ENV}",
    )
    assert result.returncode == 0, result.output
    [request] = api.requests
    assert request.body["messages"][0] == {"role": "system", "content": "Be brief."}
    timing = _read(_slot(experiment) / "timing.json")
    assert timing["cost"]["input_tokens"] == 1000 and timing["cost"]["total_cost_usd"] is None


def test_a_provider_that_takes_no_system_prompt_refuses_one(
    run_app: RunCli,
    experiment: Path,
    api: FakeLlmApi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A provider written before the system prompt (its body() has no ``system``) still
    judges without one, but a run that gives one stops before any call: exit 2, one line
    naming the provider."""
    site = tmp_path / "site"
    write_distribution(
        site,
        "runner-judge-echo",
        {"runner.judge_providers": {"echo": "echo_provider:Echo"}},
        {"echo_provider.py": ECHO_PROVIDER},
    )
    monkeypatch.syspath_prepend(str(site))
    system = tmp_path / "system_prompt.md"
    system.write_text(SYSTEM_PROMPT)
    remove_slot(experiment)
    result = run_app(
        "task=judge_rerun_api",
        f"source.experiment={experiment}",
        "task.provider=echo",
        f"task.base_url={api.url}",
        f"task.api_key_env={KEY_ENV}",
        f"task.system_prompt_file={system}",
    )
    assert result.returncode == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert "judge provider 'echo' takes no system prompt (its body() has no 'system'" in line
    assert api.requests == []
