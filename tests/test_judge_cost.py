"""Judge cost: Claude Code's JSON envelope, each call's cost record, the run's ledger and
budget, through ``python -m runner task=judge_rerun_claude`` with a fake ``claude``.

The fake is a small Python script named ``claude``, put first on PATH, that prints the
result envelope ``claude -p --output-format json`` prints (its shape taken from a real
one: see ``test_cost_record_reads_a_real_envelope``).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from runner_plugins.judge.costs import (
    LEDGER_FILE,
    CostLedger,
    cost_record,
    usd,
)
from runner_plugins.judge.plugins import JudgeRerun
from runner_plugins.judge.reply import read_envelope
from tests.conftest import RunCli
from tests.judge_support import FIXTURE, T3, context_for, one_item, remove_slot, tree

FAKE_CLAUDE = """\
import json, os, sys, time
args = sys.argv[1:]
model = args[args.index("--model") + 1]
assert "--print" in args and args[args.index("--output-format") + 1] == "json", args
assert os.path.isfile(args[args.index("--output-format") + 2]), "no prompt file"
if os.environ.get("FAKE_CLAUDE_ARGV"):
    system = None  # what the system prompt's file held when the judge read it
    if "--system-prompt-file" in args:
        with open(args[args.index("--system-prompt-file") + 1], encoding="utf-8") as fh:
            system = fh.read()
    with open(os.environ["FAKE_CLAUDE_ARGV"], "a") as fh:
        fh.write(json.dumps({"argv": args, "cwd": os.getcwd(), "system": system}) + "\\n")
log = os.environ.get("FAKE_CLAUDE_LOG")
if log:
    with open(log, "a") as fh:
        fh.write(model + "\\n")
    # Killed by a signal, no envelope printed, once this many calls have been made.
    kill_after = os.environ.get("FAKE_CLAUDE_KILL_AFTER")
    if kill_after and len(open(log).read().splitlines()) > int(kill_after):
        os.kill(os.getpid(), 9)
time.sleep(float(os.environ.get("FAKE_CLAUDE_SLEEP", "0")))
cost = float(os.environ.get("FAKE_CLAUDE_COST", "0.25"))
score = float(os.environ.get("FAKE_CLAUDE_SCORE", "0.3"))
verdict = {"score": score, "passed": score >= 0.5, "reasoning": f"{model} judged it"}
envelope = {
    "type": "result", "subtype": "success", "is_error": False,
    "duration_ms": 29039, "duration_api_ms": 29535, "num_turns": 6,
    "result": "I read the workspace.\\n\\n```json\\n" + json.dumps(verdict) + "\\n```",
    "session_id": "dc93aac8-fe7f-4d4a-83ef-2bd2c070444e",
    "total_cost_usd": cost,
    "usage": {
        "input_tokens": 29, "cache_creation_input_tokens": 23106,
        "cache_read_input_tokens": 112686, "output_tokens": 656,
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        "service_tier": "standard",
    },
    "modelUsage": {model: {"inputTokens": 29, "outputTokens": 656, "costUSD": cost}},
    "permission_denials": [],
    "uuid": "e6cfcb90-ee51-4c2c-b73e-3c0c3e368196",
}
code = 0
if model in os.environ.get("FAKE_CLAUDE_ERROR_MODELS", "").split(","):
    envelope |= {"is_error": True, "num_turns": 1, "result": os.environ["FAKE_CLAUDE_ERROR"]}
    code = 1
if os.environ.get("FAKE_CLAUDE_TEXT"):
    print(envelope["result"])
else:
    print(json.dumps(envelope))
sys.exit(code)
"""
OPUS, SONNET, HAIKU = "claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929", "claude-haiku-4-5"
SERVER_ERROR = 'API Error: 500 {"type":"error","error":{"type":"api_error"}}'


@pytest.fixture
def claude(tmp_path: Path) -> dict[str, str]:
    """A fake ``claude`` first on PATH: the environment a run needs to find it."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "claude"
    script.write_text(f"#!{sys.executable} -S\n{FAKE_CLAUDE}")
    script.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}", "FAKE_CLAUDE_ERROR": SERVER_ERROR}


def _read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


# --- the envelope and a call's cost record ---------------------------------------------


def test_cost_record_reads_a_real_envelope() -> None:
    """The fixture's agent ran through `claude -p --output-format json`: its envelope
    gives the reply text and every figure of the cost record."""
    stdout = _read(FIXTURE / "T0" / "00" / "run_01" / "agent" / "result.json")["stdout"]
    envelope = read_envelope(stdout)
    assert envelope is not None and envelope.error is None
    assert envelope.text.startswith("Task completed successfully!")
    record = cost_record(envelope.fields, "claude-sonnet-4-5-20250929")
    assert record == {
        "model": "claude-sonnet-4-5-20250929",
        "total_cost_usd": 0.1351093,
        "input_tokens": 29,
        "output_tokens": 656,
        "cache_creation_input_tokens": 23106,
        "cache_read_input_tokens": 112686,
        "duration_ms": 29039,
        "duration_api_ms": 29535,
        "num_turns": 6,
        "session_id": "dc93aac8-fe7f-4d4a-83ef-2bd2c070444e",
        "models_used": {
            "claude-haiku-4-5-20251001": 0.004729,
            "claude-sonnet-4-5-20250929": pytest.approx(0.1303803),
        },
    }


def test_an_envelope_is_found_in_every_shape_claude_prints() -> None:
    """One object; the --verbose list of messages (result last); one message per line.
    Text, and a bare verdict object, are no envelope."""
    result = {"type": "result", "subtype": "success", "is_error": False, "result": "hi"}
    system = {"type": "system", "subtype": "init"}
    for stdout in (
        json.dumps(result),
        json.dumps([system, result]),
        json.dumps(system) + "\n" + json.dumps(result) + "\n",
    ):
        envelope = read_envelope(stdout)
        assert envelope is not None and (envelope.text, envelope.error) == ("hi", None)
    assert read_envelope("Here is my verdict: {}") is None
    assert read_envelope('{"score": 0.5, "passed": true}') is None


def test_an_error_envelope_says_what_went_wrong() -> None:
    """is_error, or an error_* subtype (no reply at all), is a failed call with its message."""
    envelope = read_envelope(json.dumps({"type": "result", "is_error": True, "result": "boom"}))
    assert envelope is not None
    assert envelope.error == "Claude Code reported an error: boom"
    envelope = read_envelope(
        json.dumps({"type": "result", "subtype": "error_max_turns", "is_error": False})
    )
    assert envelope is not None
    assert envelope.error == "Claude Code reported an error (error_max_turns): no message"


def test_dollars_read_as_people_write_them() -> None:
    """Whole cents with two decimals, smaller amounts with four."""
    assert (usd(5), usd(0.6), usd(0.1351093), usd(1234.5)) == (
        "$5.00",
        "$0.60",
        "$0.1351",
        "$1,234.50",
    )


# --- the ledger ----------------------------------------------------------------------


def test_the_ledger_adds_up_calls_from_threads_and_other_processes(tmp_path: Path) -> None:
    """Threads of this process and a copy of the ledger in another process append to one
    file; every reader sees every call, whole."""
    ledger = CostLedger(tmp_path / LEDGER_FILE)
    record = {"model": "m", "total_cost_usd": 0.01, "input_tokens": 1}

    def add_many() -> None:
        for _ in range(50):
            ledger.add(record)
            ledger.spent()

    threads = [threading.Thread(target=add_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    code = (
        "import pickle, sys\n"
        "ledger = pickle.loads(sys.stdin.buffer.read())\n"
        "for _ in range(100): ledger.add({'model': 'other', 'total_cost_usd': 0.5})\n"
        "print(ledger.spent())\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], input=pickle.dumps(ledger), capture_output=True, timeout=60
    )
    for thread in threads:
        thread.join()
    assert other.returncode == 0, other.stderr
    totals = ledger.totals()
    assert totals["m"]["calls"] == 200 and totals["m"]["input_tokens"] == 200
    assert totals["m"]["total_cost_usd"] == pytest.approx(2.0)
    assert totals["other"]["calls"] == 100
    assert ledger.spent() == pytest.approx(52.0)
    assert len((tmp_path / LEDGER_FILE).read_text().splitlines()) == 300


def test_the_ledger_counts_only_this_runs_whole_lines(tmp_path: Path) -> None:
    """Lines an earlier run left in the folder are not this run's; a line cut short by a
    kill is skipped."""
    path = tmp_path / LEDGER_FILE
    path.write_text(json.dumps({"model": "m", "total_cost_usd": 9.0}) + "\n")
    ledger = CostLedger(path)
    assert ledger.spent() == 0
    with open(path, "a") as fh:
        fh.write('{"model": "m", "total_cos\n' + json.dumps({"model": "m", "total_cost_usd": 1.5}))
    assert ledger.spent() == 0  # the last line is not whole yet
    with open(path, "a") as fh:
        fh.write("\n")
    assert ledger.spent() == 1.5
    assert pickle.loads(pickle.dumps(ledger)).spent() == 1.5


# --- the task's parameters -----------------------------------------------------------


@pytest.mark.parametrize("budget", [0, -1, "abc", float("nan"), True])
def test_a_bad_budget_is_refused(budget: Any) -> None:
    """budget_usd is dollars > 0 or null; anything else names the value."""
    with pytest.raises(ValueError, match=f"budget_usd must be .* got {budget!r}"):
        JudgeRerun(reply_format="claude_json", budget_usd=budget)


def test_a_budget_needs_a_judge_that_reports_its_cost() -> None:
    """A text judge reports no cost: a budget could never be reached, so it is refused."""
    with pytest.raises(ValueError, match="budget_usd needs a judge that reports its cost"):
        JudgeRerun(budget_usd=5)
    with pytest.raises(ValueError, match=r"reply_format 'xml' is not supported; supported: \["):
        JudgeRerun(reply_format="xml")


def test_a_claude_json_judge_that_prints_text_fails_the_attempt(
    experiment: Path, out: Path, claude: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """reply_format claude_json without an envelope on stdout: the attempt fails and
    says why; the call reported no cost, so the run's ledger counts it at the bound
    (task.unreported_cost_usd, $1 by default), marked estimated; timing.json has none."""
    slot = remove_slot(experiment)
    for key, value in claude.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FAKE_CLAUDE_TEXT", "1")
    task = JudgeRerun(
        command=["claude", "--model", "{model}", "--print", "--output-format", "json",
                 "{prompt_file}"],
        reply_format="claude_json",
    )  # fmt: skip
    task.setup(context_for(out))
    with pytest.raises(Exception, match="no JSON object of Claude Code's result"):
        task.run(one_item(experiment, out))
    timing = _read(slot / "timing.json")
    assert (timing["failure_kind"], "cost" in timing) == ("unusable_reply", False)
    [line] = (out / LEDGER_FILE).read_text().splitlines()
    record = json.loads(line)
    assert (record["total_cost_usd"], record["estimated"], record["ok"]) == (1.0, True, False)
    assert task.ledger is not None and task.ledger.spent() == 1.0
    # The task travels to other processes (the process executor) with its ledger.
    copy = pickle.loads(pickle.dumps(task))
    assert copy.ledger is not None and copy.ledger.path == out / LEDGER_FILE


# --- real runs -----------------------------------------------------------------------


def test_a_claude_run_records_each_calls_cost_and_totals_per_model(
    run_app: RunCli, experiment: Path, claude: dict[str, str]
) -> None:
    """task=judge_rerun_claude asks for JSON, judges from the envelope's result, records
    each call's cost in timing.json and judge_costs.jsonl, fails an is_error envelope
    with its message, and totals the cost per model in the summary and on the terminal."""
    for slot in (1, 2, 3):
        remove_slot(experiment, T3, slot)
    remove_slot(experiment, "T0/00/run_01", 1)
    env = claude | {"FAKE_CLAUDE_ERROR_MODELS": HAIKU, "FAKE_CLAUDE_COST": "0.25"}
    result = run_app(
        "task=judge_rerun_claude", f"source.experiment={experiment}", "parallel=2", env=env
    )
    assert result.returncode == 1, result.output  # haiku's call failed
    judged = experiment / T3 / "judge" / "judge_01"
    timing = _read(judged / "timing.json")
    assert timing["cost"]["total_cost_usd"] == 0.25 and timing["cost"]["model"] == OPUS
    assert (timing["cost"]["input_tokens"], timing["cost"]["cache_read_input_tokens"]) == (
        29,
        112686,
    )
    assert (judged / "response.txt").read_text().startswith("I read the workspace.")
    assert json.loads((judged / "stdout.log").read_text())["type"] == "result"
    assert _read(judged / "judgment.json")["reasoning"] == f"{OPUS} judged it"
    failed = _read(experiment / T3 / "judge" / "judge_03" / "timing.json")
    assert failed["failed"] is True and failed["failure_kind"] == "judge_error"
    assert failed["reason"].startswith("Claude Code reported an error: API Error: 500")
    assert failed["cost"]["total_cost_usd"] == 0.25  # a failed call costs too
    errors = [r["error"]["message"] for r in result.results() if r["status"] == "failed"]
    assert len(errors) == 1 and "API Error: 500" in errors[0]

    lines = [json.loads(x) for x in (result.run_dir / LEDGER_FILE).read_text().splitlines()]
    assert sorted((x["slot"], x["ok"]) for x in lines) == [
        ("T0/00/run_01/judge_01", True),
        (f"{T3}/judge_01", True),
        (f"{T3}/judge_02", True),
        (f"{T3}/judge_03", False),
    ]
    summary = _read(experiment / "summary" / "judge_summary.json")
    for cost in (summary["cost"], summary["repair"]["cost"]):
        assert list(cost["per_model"]) == [OPUS, SONNET, HAIKU]
        assert [m["calls"] for m in cost["per_model"].values()] == [2, 1, 1]
        assert cost["total"]["total_cost_usd"] == 1.0
    assert summary["failures"]["failed_slots"] == {"judge_error": 1}
    # T3 lost its three passing judges; the two fake verdicts (0.3) fail it now.
    assert summary["repair"]["consensus_changes"]["runs"] == [
        {"run": T3, "passed_before": True, "passed_after": False}
        | {"valid_judges": 2, "judges": 3, "provisional": True}  # haiku's judge failed
    ]
    assert f"judge cost: $1.00 for 4 call(s) ({OPUS} $0.50 in 2, {SONNET} $0.25 in 1" in (
        result.output
    )
    assert f"pass/fail changed: {T3} pass -> fail (provisional: 2 of 3 judges)" in result.output
    markdown = (result.run_dir / "judge_summary.md").read_text()
    assert "| `claude-opus-4-5-20251101` | 2 | $0.50 | 58 | 1,312 |" in markdown


def test_the_claude_judge_loads_no_settings_from_the_agents_workspace(
    run_app: RunCli, experiment: Path, claude: dict[str, str], tmp_path: Path
) -> None:
    """Claude Code runs in the agent's workspace, which can hold .claude/settings.json
    (hooks: shell commands), settings.local.json, CLAUDE.md and .mcp.json: the shipped
    command tells it to load only the user's own settings and no MCP server but those
    the command names (none)."""
    remove_slot(experiment)
    workspace = experiment / T3 / "workspace"
    (workspace / ".claude" / "settings.local.json").write_text(
        '{"hooks": {"SessionStart": [{"hooks": [{"type": "command", "command": "touch x"}]}]}}'
    )
    (workspace / ".mcp.json").write_text('{"mcpServers": {"x": {"command": "touch"}}}')
    argv_log = tmp_path / "argv.jsonl"
    env = claude | {"FAKE_CLAUDE_ARGV": str(argv_log)}
    result = run_app("task=judge_rerun_claude", f"source.experiment={experiment}", env=env)
    assert result.returncode == 0, result.output
    [call] = [json.loads(line) for line in argv_log.read_text().splitlines()]
    argv = call["argv"]
    assert Path(call["cwd"]) == workspace  # where project settings would be looked up
    assert argv[argv.index("--setting-sources") + 1] == "user"
    assert "--strict-mcp-config" in argv and "--mcp-config" not in argv
    assert "--system-prompt-file" not in argv  # none given: Claude Code keeps its own


# --- the system prompt ---------------------------------------------------------------

SYSTEM_PROMPT = "You are a strict judge.\n\n## Rubric\n\n- functional: does it run?\n"


def test_the_claude_judge_is_given_the_system_prompt_file(
    run_app: RunCli, experiment: Path, claude: dict[str, str], tmp_path: Path
) -> None:
    """task.system_prompt_file reaches Claude Code as --system-prompt-file, as the original
    passes its config/judge/system_prompt.md: the path of the run folder's copy, read once
    at setup, which holds what the file held; MODEL.md records the argv."""
    remove_slot(experiment)
    path = tmp_path / "system_prompt.md"
    path.write_text(SYSTEM_PROMPT)
    argv_log = tmp_path / "argv.jsonl"
    result = run_app(
        "task=judge_rerun_claude",
        f"source.experiment={experiment}",
        f"task.system_prompt_file={path}",
        env=claude | {"FAKE_CLAUDE_ARGV": str(argv_log)},
    )
    assert result.returncode == 0, result.output
    [call] = [json.loads(line) for line in argv_log.read_text().splitlines()]
    copy = result.run_dir.absolute() / "judge_system_prompt.md"
    assert call["argv"][:2] == ["--system-prompt-file", str(copy)]
    assert call["argv"][2:4] == ["--model", SONNET]  # the shipped command follows
    assert call["system"] == SYSTEM_PROMPT and copy.read_text() == SYSTEM_PROMPT
    assert str(copy) in (experiment / T3 / "judge" / "judge_02" / "MODEL.md").read_text()


def test_the_claude_judge_can_append_to_its_own_system_prompt(
    run_app: RunCli, experiment: Path, claude: dict[str, str], tmp_path: Path
) -> None:
    """task.system_prompt_flag picks the option: --append-system-prompt-file keeps Claude
    Code's own system prompt and adds the file's."""
    remove_slot(experiment)
    path = tmp_path / "system_prompt.md"
    path.write_text(SYSTEM_PROMPT)
    argv_log = tmp_path / "argv.jsonl"
    result = run_app(
        "task=judge_rerun_claude",
        f"source.experiment={experiment}",
        f"task.system_prompt_file={path}",
        "task.system_prompt_flag=--append-system-prompt-file",
        env=claude | {"FAKE_CLAUDE_ARGV": str(argv_log)},
    )
    assert result.returncode == 0, result.output
    [call] = [json.loads(line) for line in argv_log.read_text().splitlines()]
    copy = result.run_dir.absolute() / "judge_system_prompt.md"
    assert call["argv"][:2] == ["--append-system-prompt-file", str(copy)]
    assert "--system-prompt-file" not in call["argv"]


def test_a_missing_system_prompt_stops_the_claude_judge_before_any_call(
    run_app: RunCli, experiment: Path, claude: dict[str, str], tmp_path: Path
) -> None:
    """A system prompt file that is not there: exit 2, one line naming its path; Claude
    Code is never started and the experiment is untouched."""
    remove_slot(experiment)
    before = tree(experiment)
    missing = tmp_path / "checkout" / "config" / "judge" / "system_prompt.md"
    log = tmp_path / "calls.log"
    result = run_app(
        "task=judge_rerun_claude",
        f"source.experiment={experiment}",
        f"task.system_prompt_file={missing}",
        env=claude | {"FAKE_CLAUDE_LOG": str(log)},
    )
    assert result.returncode == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert f"task.system_prompt_file {str(missing)!r} does not exist" in line, line
    assert not log.exists()
    assert tree(experiment) == before


def test_a_judge_command_without_a_system_prompt_option_refuses_one(
    run_app: RunCli, experiment: Path, tmp_path: Path
) -> None:
    """The local judge (or a command of one's own) names no option for a system prompt:
    a run given one stops before any slot, exit 2, saying what to set."""
    path = tmp_path / "system_prompt.md"
    path.write_text(SYSTEM_PROMPT)
    remove_slot(experiment)
    before = tree(experiment)
    result = run_app(
        "task=judge_rerun", f"source.experiment={experiment}", f"task.system_prompt_file={path}"
    )
    assert result.returncode == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert "task.system_prompt_file needs a judge command that takes a system prompt" in line
    assert "task.system_prompt_flag names no option of the local judge" in line
    assert "task=judge_rerun_claude sets --system-prompt-file" in line
    assert tree(experiment) == before


def test_a_budget_stops_new_judges_and_leaves_their_slots_as_they_were(
    run_app: RunCli, experiment: Path, claude: dict[str, str]
) -> None:
    """One judge at a time, $0.25 a call, a $0.60 budget: three calls (the third crosses
    it), then no other slot is judged: each is left untouched and not journaled (a slot
    the budget left is no failure of its own), and one line says how many and what to do."""
    runs = ["T0/00/run_01", "T1/01/run_01", "T2/01/run_01"]
    for run in runs:
        remove_slot(experiment, run, 1)
        remove_slot(experiment, run, 2)
    before = tree(experiment)
    result = run_app(
        "task=judge_rerun_claude",
        f"source.experiment={experiment}",
        "task.budget_usd=0.6",
        env=claude | {"FAKE_CLAUDE_COST": "0.25"},
    )
    # Every judge that started succeeded, but slots were left unjudged: the work is not
    # done, so a script must not read success (exit 1, with the budget's line, no FAIL).
    assert result.returncode == 1, result.output
    judged = [f"{runs[0]}/judge_01", f"{runs[0]}/judge_02", f"{runs[1]}/judge_01"]
    assert [(r["id"], r["status"]) for r in result.results()] == [(j, "ok") for j in judged]
    assert result.summary()["skipped"] == 3
    for slot in (f"{runs[1]}/judge/judge_02", f"{runs[2]}/judge/judge_01"):
        assert not (experiment / slot).exists()
        assert not list((experiment / slot).parent.glob(f".{(experiment / slot).name}.*"))
    slots = f"{runs[2]}/judge/judge_"  # T2's: never judged, so exactly as they were
    assert {k: v for k, v in tree(experiment).items() if k.startswith(slots)} == {
        k: v for k, v in before.items() if k.startswith(slots)
    }
    [line] = [line for line in result.output.splitlines() if "BudgetExhausted" in line]
    assert (
        "judge budget of $0.60 reached: $0.75 spent; 3 slot(s) not judged and left as they "
        "were (BudgetExhausted); run the same command again to judge them (task.budget_usd "
        "caps what each run spends)"
    ) in line
    assert "FAIL" not in result.output
    repair = _read(result.run_dir / "judge_summary.json")["repair"]
    assert (repair["budget_usd"], repair["budget_reached"], repair["budget_stopped"]) == (
        0.6,
        True,
        3,
    )


def _remove_slots(experiment: Path, runs: tuple[str, ...]) -> None:
    """Make all three slots of each run in ``runs`` missing."""
    for run in runs:
        for slot in (1, 2, 3):
            remove_slot(experiment, run, slot)


def test_no_judge_starts_once_the_budget_is_reached_whatever_the_workers(
    run_app: RunCli, experiment: Path, claude: dict[str, str], tmp_path: Path
) -> None:
    """Three workers, nine slots, $0.10 a call, a $0.15 budget: the three first judges
    run; a worker may start one more before the second call is recorded, never more."""
    runs = ("T0/00/run_01", "T1/01/run_01", "T2/01/run_01")
    _remove_slots(experiment, runs)
    log = tmp_path / "calls.log"
    env = claude | {"FAKE_CLAUDE_COST": "0.1", "FAKE_CLAUDE_SLEEP": "0.5"}
    result = run_app(
        "task=judge_rerun_claude",
        f"source.experiment={experiment}",
        "task.budget_usd=0.15",
        "parallel=3",
        env=env | {"FAKE_CLAUDE_LOG": str(log)},
    )
    assert result.returncode == 1, result.output  # slots left unjudged
    calls = len(log.read_text().splitlines())
    statuses = [r["status"] for r in result.results()]
    assert 3 <= calls <= 4 and statuses == ["ok"] * calls
    assert result.summary()["skipped"] == 9 - calls
    judged = sum(
        (experiment / r / "judge" / f"judge_0{n}").exists() for r in runs for n in (1, 2, 3)
    )
    assert judged == calls


def _ledger(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / LEDGER_FILE).read_text().splitlines()]


def test_a_judge_killed_at_its_timeout_is_counted_at_the_bound(
    run_app: RunCli, experiment: Path, claude: dict[str, str], tmp_path: Path
) -> None:
    """Judges that sleep past task.timeout report no cost: each is counted at
    task.unreported_cost_usd ($1 by default), so a $2.50 budget stops judging after three calls,
    not after all six, and the ledger marks the three estimated."""
    runs = ("T0/00/run_01", "T1/01/run_01")
    _remove_slots(experiment, runs)
    log = tmp_path / "calls.log"
    result = run_app(
        "task=judge_rerun_claude",
        f"source.experiment={experiment}",
        "task.budget_usd=2.5",
        "task.timeout=0.5",
        env=claude | {"FAKE_CLAUDE_SLEEP": "60", "FAKE_CLAUDE_LOG": str(log)},
    )
    assert result.returncode == 1, result.output
    assert len(log.read_text().splitlines()) == 3
    records = result.results()
    assert [r["error"]["message"].split(" ")[0] for r in records] == ["timed"] * 3
    assert result.summary()["skipped"] == 3  # the budget left them: not journaled
    ledger = _ledger(result.run_dir)
    assert [(r["total_cost_usd"], r["estimated"], r["ok"]) for r in ledger] == [
        (1.0, True, False)
    ] * 3
    assert "judge budget of $2.50 reached: $3.00 spent; 3 slot(s) not judged" in result.output
    assert "3 call(s) reported none and are counted at their bound ($3.00" in result.output
    cost = _read(result.run_dir / "judge_summary.json")["repair"]["cost"]["total"]
    assert (cost["calls"], cost["estimated_calls"], cost["estimated_cost_usd"]) == (3, 3, 3.0)


def test_a_judge_killed_by_a_signal_counts_what_its_model_cost_before(
    run_app: RunCli, experiment: Path, claude: dict[str, str], tmp_path: Path
) -> None:
    """Calls at $0.25, then judges killed by SIGKILL without an envelope: each killed
    call counts as the most a call of its model cost earlier in the run ($0.25, above
    the $0.10 of task.unreported_cost_usd), so a $1.20 budget stops after five calls of
    nine (3 x $0.25 reported + 2 x $0.25 estimated)."""
    runs = ("T0/00/run_01", "T1/01/run_01", "T2/01/run_01")
    _remove_slots(experiment, runs)
    log = tmp_path / "calls.log"
    env = claude | {"FAKE_CLAUDE_COST": "0.25", "FAKE_CLAUDE_KILL_AFTER": "3"}
    result = run_app(
        "task=judge_rerun_claude",
        f"source.experiment={experiment}",
        "task.budget_usd=1.2",
        "task.unreported_cost_usd=0.1",
        env=env | {"FAKE_CLAUDE_LOG": str(log)},
    )
    assert result.returncode == 1, result.output
    calls = log.read_text().splitlines()
    assert len(calls) == 5
    ledger = _ledger(result.run_dir)
    assert [(r["model"], r["total_cost_usd"], r.get("estimated", False)) for r in ledger] == [
        (model, 0.25, i >= 3) for i, model in enumerate(calls)
    ]
    records = result.results()
    assert [r["status"] for r in records] == ["ok"] * 3 + ["failed"] * 2
    assert "judge exited with code -9" in records[3]["error"]["message"]
    assert result.summary()["skipped"] == 4  # the budget left them: not journaled
    assert "judge budget of $1.20 reached: $1.25 spent; 4 slot(s) not judged" in result.output


def test_the_unreported_cost_must_be_dollars() -> None:
    with pytest.raises(
        ValueError, match=r"unreported_cost_usd must be a number of US dollars >= 0"
    ):
        JudgeRerun(reply_format="claude_json", unreported_cost_usd=-1)
