"""The HTTP judge against a hostile service and a careless environment: the key stays out
of every file even where a reply hides it behind JSON escapes or the environment holds
more than a key, and an answer nested deeper than JSON can be read fails its slot like any
unusable answer; a judge's reply text or a CLI's output nested that deep is no verdict."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner_plugins.judge.api_judge import HttpJudge
from runner_plugins.judge.costs import LEDGER_FILE
from runner_plugins.judge.local_judge import read_answer
from runner_plugins.judge.providers import load_provider
from runner_plugins.judge.reply import find_verdict, read_envelope
from runner_plugins.judge.slotstatus import slot_status
from tests.conftest import RunCli
from tests.fake_llm_api import FakeLlmApi
from tests.judge_support import T3, remove_slot, tree

OPUS = "claude-opus-4-5-20251101"
KEY_ENV = "RUNNER_TEST_HOSTILE_KEY"
KEY = "sk-test-hostile-key-0123456789"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLlmApi]:
    """The fake APIs, taking any key, with KEY in KEY_ENV."""
    with FakeLlmApi(key=None) as fake:
        monkeypatch.setenv(KEY_ENV, KEY)
        yield fake


def _judge(run_app: RunCli, experiment: Path, api: FakeLlmApi) -> Any:
    return run_app(
        "task=judge_rerun_anthropic",
        f"source.experiment={experiment}",
        f"task.base_url={api.url}",
        f"task.api_key_env={KEY_ENV}",
    )


def _unescaped(data: bytes) -> str:
    """A file's text with its JSON \\uXXXX escapes decoded, as any reader of it can."""
    text = data.decode("utf-8", "replace")
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), text)


def test_a_key_hidden_by_json_escapes_is_in_no_file(
    run_app: RunCli, experiment: Path, api: FakeLlmApi
) -> None:
    """A reply that quotes the key as JSON escapes (\\u0073k-...): stdout.log, which keeps
    the answer, holds it blanked too, not merely escaped."""
    slot = remove_slot(experiment, T3, 1)
    api.script[OPUS] = ["escaped_key"]
    result = _judge(run_app, experiment, api)
    assert result.returncode == 0, result.output
    assert "[api key]" in (slot / "stdout.log").read_text()
    for root in (experiment, result.run_dir):
        for name, data in tree(root).items():
            assert KEY not in _unescaped(data), f"the key is in {root / name}"


def test_a_variable_holding_more_than_a_key_stops_the_run_without_showing_it(
    run_app: RunCli, experiment: Path, api: FakeLlmApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key with a second line (a file's whole text exported): no header can carry it, and
    httpx's refusal would quote it escaped, past the blanking. Exit 2 before any call, one
    line naming the variable, the key nowhere."""
    monkeypatch.setenv(KEY_ENV, KEY + "\nsecond line")
    remove_slot(experiment, T3, 1)
    before = tree(experiment)
    result = _judge(run_app, experiment, api)
    assert result.returncode == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert f"the environment variable {KEY_ENV!r} (task.api_key_env) holds more" in line
    assert KEY not in result.output
    assert api.requests == []
    assert tree(experiment) == before


def test_a_redirect_is_not_followed_so_the_key_goes_nowhere_else(
    run_app: RunCli, experiment: Path, api: FakeLlmApi
) -> None:
    """A 307 to another server: no request reaches it (the key would go with it); the
    slot fails at once with the status, not retried, nothing paid."""
    slot = remove_slot(experiment, T3, 1)
    with FakeLlmApi(key=None) as elsewhere:
        api.script[OPUS] = [f"redirect:{elsewhere.url}"]
        result = _judge(run_app, experiment, api)
        assert elsewhere.requests == []
    assert result.returncode == 1, result.output
    assert len(api.of(OPUS)) == 1
    timing = json.loads((slot / "timing.json").read_text())
    assert (timing["failure_kind"], timing["http_status"]) == ("api_error", 307), timing
    ledger = result.run_dir / LEDGER_FILE
    assert not ledger.exists() or not ledger.read_text().strip()


def test_an_answer_nested_too_deep_to_read_fails_the_slot_and_is_counted(
    run_app: RunCli, experiment: Path, api: FakeLlmApi
) -> None:
    """A 200 whose JSON is nested 100,000 deep: the slot is failed with an unusable reply
    (timing.json says so), and the call, which the service may bill, is in the ledger."""
    slot = remove_slot(experiment, T3, 1)
    api.script[OPUS] = ["nested"]
    result = _judge(run_app, experiment, api)
    assert result.returncode == 1, result.output
    timing = json.loads((slot / "timing.json").read_text())
    assert timing["failure_kind"] == "unusable_reply", timing
    assert "nested too deep" in timing["reason"]
    ledger = (result.run_dir / LEDGER_FILE).read_text().splitlines()
    [record] = [json.loads(x) for x in ledger]
    assert (record["slot"], record["ok"], record["estimated"]) == (f"{T3}/judge_01", False, True)


def test_a_server_trickling_its_headers_is_cut_off_near_the_timeout() -> None:
    """httpx bounds each wait, not the answer: a server that sends a header line every
    0.2 s for 30 s held the call all that time, whatever task.timeout said. The call now
    ends as a timeout within twice task.timeout (1 s here; 3 s of slack), and the
    worker's next call gets a working client."""
    listener = socket.create_server(("127.0.0.1", 0))
    served = threading.Event()

    def trickle() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\n")
            for _ in range(150):
                if served.wait(0.2):
                    break
                try:
                    connection.sendall(b"x-slow: 1\r\n")
                except OSError:
                    break

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    judge = HttpJudge(load_provider("anthropic"), f"http://127.0.0.1:{port}", None, 100, 1.0)
    try:
        began = time.monotonic()
        call = judge.ask(OPUS, "Judge this.")
        took = time.monotonic() - began
    finally:
        served.set()
        thread.join(10)
        listener.close()
    assert call.kind == "timeout" and call.retry and call.billed, call
    assert took < 2 * 1.0 + 3, took
    with FakeLlmApi(key=None) as api:  # the same thread's next call, on a new client
        judge.url = api.url + "/v1/messages"
        assert judge.ask(OPUS, "Judge this.").status == 200
    judge.clients.close()


def test_a_gzip_bomb_is_not_unpacked() -> None:
    """An answer of 256 MiB of zeros gzipped to a quarter MiB: identity is asked for and
    the answer read as it comes, so the call fails as unreadable holding about the
    compressed size; httpx unpacked a whole 64 KiB chunk at once (over 100 MiB held
    for a 16 MiB cap)."""
    with FakeLlmApi(key=None) as api:
        api.script[OPUS] = ["gzipbomb:256"]
        judge = HttpJudge(load_provider("anthropic"), api.url, None, 100, 30.0)
        tracemalloc.start()
        try:
            call = judge.ask(OPUS, "Judge this.")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            judge.clients.close()
        assert api.encodings == ["identity"]
    assert call.status == 200 and call.reply is None, call
    assert peak < 32 << 20, f"{peak / 2**20:.0f} MiB held for one answer"


def test_reply_text_nested_too_deep_is_no_verdict() -> None:
    """A fenced block or a CLI's stdout nested deeper than JSON can be read is skipped as
    any unreadable block is: a later verdict is still found."""
    deep = "[" * 100_000 + "]" * 100_000
    verdict = find_verdict(f"```json\n{deep}\n```\n```json\n" + '{"score": 0.5}\n```')
    assert verdict == {"score": 0.5}
    assert find_verdict("{" + deep + "}") is None
    assert read_envelope(deep) is None
    assert read_envelope(deep + '\n{"type": "result", "result": "ok"}') is not None


def test_an_integer_too_large_for_a_float_is_no_score_and_no_count() -> None:
    """A reply's score or token count of 400 digits (a model can be talked into writing
    one): no verdict, no count, where OverflowError escaped the judge before."""
    huge = "1" + "0" * 400
    assert find_verdict(f'```json\n{{"score": {huge}}}\n```\n{{"score": 0.5}}') == {"score": 0.5}
    answer = json.loads(
        '{"content": [{"type": "text", "text": "ok"}], '
        f'"usage": {{"input_tokens": {huge}, "output_tokens": 5}}}}'
    )
    reply = load_provider("anthropic").reply(answer)
    assert (reply.input_tokens, reply.output_tokens) == (None, 5)


def test_an_experiment_whose_judgment_has_a_score_too_large_for_a_float_is_read(
    run_app: RunCli, experiment: Path
) -> None:
    """The experiment is the agent's: a judgment.json whose score is an integer of 400
    digits makes its slot failed (to judge again); the dry run ended in OverflowError."""
    slot = experiment / T3 / "judge" / "judge_01"
    judgment = json.loads((slot / "judgment.json").read_text())
    (slot / "judgment.json").write_text(json.dumps(judgment | {"score": 10**400}))
    result = run_app("dry_run=true", "task=judge_rerun", f"source.experiment={experiment}")
    assert result.returncode == 0, result.output
    assert "unexpected error" not in result.output
    assert slot_status(slot) == "failed"


def test_experiment_files_nested_too_deep_to_read_are_unreadable_files(
    run_app: RunCli, experiment: Path
) -> None:
    """A judgment.json and an experiment.json nested 100,000 deep (the dry run ended in
    RecursionError, exit 1): the slot is failed, as with any unreadable judgment, and the
    experiment's config is refused in one line, exit 2; the agent's output.txt so nested
    is judged as text."""
    deep = "[" * 100_000 + "]" * 100_000
    slot = experiment / T3 / "judge" / "judge_01"
    (slot / "judgment.json").write_text(deep)
    (experiment / T3 / "agent" / "output.txt").write_text(deep)
    result = run_app("dry_run=true", "task=judge_rerun", f"source.experiment={experiment}")
    assert result.returncode == 0, result.output
    assert slot_status(slot) == "failed"
    assert read_answer(experiment / T3) == deep
    (experiment / "config" / "experiment.json").write_text(deep)
    result = run_app("dry_run=true", "task=judge_rerun", f"source.experiment={experiment}")
    assert result.returncode == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert "experiment.json' is not valid JSON: maximum recursion depth" in line, line
