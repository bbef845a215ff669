"""JudgeRerun: one slot's rerun, its files, and every way a judge can fail."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from runner.api import TaskFailure
from runner_plugins.judge.judgecall import JudgeRateLimited
from runner_plugins.judge.plugins import JudgeRerun
from tests.judge_support import (
    T3,
    context_for,
    one_item,
    remove_slot,
    slots_for,
    status_of,
    tree,
)


def test_a_good_judge_completes_a_missing_slot(experiment: Path, out: Path, judge_cmd: Any) -> None:
    """A successful rerun writes every slot file, runs in workspace/ and returns the score."""
    slot = remove_slot(experiment)
    item = one_item(experiment, out)
    task = JudgeRerun(command=judge_cmd("good", 0.4))
    task.setup(context_for(out))
    result = task.run(item)
    assert result == {
        "tier": "T3",
        "subtest": "01",
        "run": 1,
        "slot": 2,
        "model": "claude-sonnet-4-5-20250929",
        "score": 0.4,
        "passed": False,
        "grade": "C",
        "change": "judged (was missing)",
    }
    assert sorted(p.name for p in slot.iterdir()) == [
        "MODEL.md",
        "judgment.json",
        "response.txt",
        "stderr.log",
        "stdout.log",
        "timing.json",
    ]
    judgment = json.loads((slot / "judgment.json").read_text())
    assert judgment["reasoning"] == (
        f"claude-sonnet-4-5-20250929 cwd={experiment / T3 / 'workspace'} latency=None"
    )
    assert judgment["criteria_scores"] == {"functional": {"score": 0.4}}
    timing = json.loads((slot / "timing.json").read_text())
    assert timing["rerun"] is True and "failed" not in timing
    assert timing["judge_duration_seconds"] > 0 and timing["measured_at"].startswith("20")
    assert (slot / "response.txt").read_text() == (slot / "stdout.log").read_text()
    assert "claude-sonnet-4-5-20250929" in (slot / "MODEL.md").read_text()
    assert status_of(slot) == "complete"


def test_the_slots_stream_logs_keep_the_judges_exact_bytes(experiment: Path, out: Path) -> None:
    """A judge that prints bytes that are not UTF-8: stdout.log and stderr.log hold them
    as printed (the verdict is still read from the text)."""
    slot = remove_slot(experiment)
    script = out.parent / "bytes_judge.py"
    script.write_text(
        "import sys\n"
        "sys.stderr.buffer.write(b'warn \\xfe\\n')\n"
        "sys.stdout.buffer.write(b'note \\xff\\n```json\\n{\"score\": 0.9}\\n```\\n')\n"
    )
    task = JudgeRerun(command=[sys.executable, str(script)])
    task.setup(context_for(out))
    assert task.run(one_item(experiment, out))["score"] == 0.9
    assert (slot / "stdout.log").read_bytes() == b'note \xff\n```json\n{"score": 0.9}\n```\n'
    assert (slot / "stderr.log").read_bytes() == b"warn \xfe\n"


def test_latency_reaches_the_judge_through_its_variable(
    experiment: Path, out: Path, judge_cmd: Any
) -> None:
    """latency is passed as RUNNER_LOCAL_JUDGE_LATENCY, so only the local judge sees it."""
    slot = remove_slot(experiment)
    JudgeRerun(command=judge_cmd(), latency=0).run(one_item(experiment, out))
    assert json.loads((slot / "judgment.json").read_text())["reasoning"].endswith("latency=0.0")


@pytest.mark.parametrize("latency", [-1, "abc", float("inf"), True])
def test_a_bad_latency_is_refused_before_any_slot_runs(out: Path, latency: Any) -> None:
    """A latency that is not seconds >= 0 fails construction, naming latency and the value."""
    message = f"latency must be a number of seconds >= 0 or null, got {latency!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        JudgeRerun(latency=latency)


def test_latency_may_be_a_number_string_or_null() -> None:
    """A numeric string (as an override may give) is read as seconds; null keeps the default."""
    assert JudgeRerun(latency="1.5").latency == 1.5  # type: ignore[arg-type]
    assert JudgeRerun(latency=None).latency is None


def _assert_failed(slot: Path) -> dict[str, Any]:
    assert status_of(slot) == "failed"
    assert sorted(p.name for p in slot.iterdir()) == ["stderr.log", "stdout.log", "timing.json"]
    timing: dict[str, Any] = json.loads((slot / "timing.json").read_text())
    assert timing["failed"] is True and timing["rerun"] is True and timing["reason"]
    return timing


def test_non_zero_exit_fails_the_slot_and_a_later_run_repairs_it(
    experiment: Path, out: Path, judge_cmd: Any
) -> None:
    """Exit code 3 leaves only a failed timing.json; a good judge later completes the slot."""
    slot = remove_slot(experiment)
    item = one_item(experiment, out)
    with pytest.raises(
        TaskFailure, match=r"judge exited with code 3: loading rubric \| boom: judge crashed"
    ):
        JudgeRerun(command=judge_cmd("exit3")).run(item)
    _assert_failed(slot)
    assert (slot / "stdout.log").read_text() == "partial reply\n"
    retry = one_item(experiment, out)
    assert retry.id == item.id and retry["status"] == "failed"
    JudgeRerun(command=judge_cmd("good", 0.9)).run(retry)
    assert status_of(slot) == "complete"
    assert "failed" not in json.loads((slot / "timing.json").read_text())


def test_a_hanging_judge_is_killed_at_the_timeout(
    experiment: Path, out: Path, judge_cmd: Any
) -> None:
    """A judge that hangs is killed after the timeout and the slot is failed, then repaired."""
    slot = remove_slot(experiment)
    item = one_item(experiment, out)
    task = JudgeRerun(command=[sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    started = time.perf_counter()
    with pytest.raises(TaskFailure, match=r"timed out after 0.5 s"):
        task.run(item)
    assert time.perf_counter() - started < 5
    assert _assert_failed(slot)["reason"] == "timed out after 0.5 s"
    JudgeRerun(command=judge_cmd()).run(one_item(experiment, out))
    assert status_of(slot) == "complete"


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("garbage", "reply has no JSON object with a numeric score"),
        ("invalid", r"judge marked its reply invalid \(is_valid: false\)"),
    ],
)
def test_an_unusable_reply_fails_the_slot_and_a_later_run_repairs_it(
    experiment: Path, out: Path, judge_cmd: Any, mode: str, message: str
) -> None:
    """A reply without a usable verdict fails the slot; a good judge later completes it."""
    slot = remove_slot(experiment)
    with pytest.raises(TaskFailure, match=message):
        JudgeRerun(command=judge_cmd(mode)).run(one_item(experiment, out))
    _assert_failed(slot)
    JudgeRerun(command=judge_cmd()).run(one_item(experiment, out))
    assert status_of(slot) == "complete"


def test_a_failed_rerun_removes_a_stale_judgment(
    experiment: Path, out: Path, judge_cmd: Any
) -> None:
    """A failed slot holding an is_valid: false judgment ends with that judgment removed."""
    slot = experiment / T3 / "judge" / "judge_01"
    data = json.loads((slot / "judgment.json").read_text())
    (slot / "judgment.json").write_text(json.dumps(data | {"is_valid": False}))
    item = one_item(experiment, out)
    assert item["status"] == "failed"
    with pytest.raises(TaskFailure):
        JudgeRerun(command=judge_cmd("exit3")).run(item)
    assert not (slot / "judgment.json").exists() and not (slot / "response.txt").exists()
    assert status_of(slot) == "failed"


def test_rate_limits_raise_a_retryable_failure(experiment: Path, out: Path, judge_cmd: Any) -> None:
    """A 429 with Retry-After raises JudgeRateLimited (a TaskFailure) carrying the wait."""
    slot = remove_slot(experiment)
    with pytest.raises(
        JudgeRateLimited, match=r"rate limited or overloaded \(retry after 12 s\)"
    ) as info:
        JudgeRerun(command=judge_cmd("ratelimit")).run(one_item(experiment, out))
    assert isinstance(info.value, TaskFailure) and info.value.retry_after == 12.0
    timing = _assert_failed(slot)
    assert timing["rate_limited"] is True and timing["retry_after"] == 12.0


def test_a_judge_that_cannot_start_fails_the_slot(experiment: Path, out: Path) -> None:
    """A command not on PATH is a TaskFailure naming it, and the slot is failed."""
    slot = remove_slot(experiment)
    with pytest.raises(TaskFailure, match="cannot start 'no-such-judge-cli'"):
        JudgeRerun(command=["no-such-judge-cli", "{model}"]).run(one_item(experiment, out))
    assert status_of(slot) == "failed"
    assert json.loads((slot / "timing.json").read_text())["failed"] is True


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"command": ["judge", "{modle}"]},
            r"unknown placeholder \{modle\}; valid placeholders: "
            r"\['python', 'local_judge', 'model'",
        ),
        ({"command": ["judge", "{"]}, r"is not a template: .*write \{\{ or \}\} for a brace"),
        ({"command": ["judge", True]}, r"command element 2 is True \(a boolean\), not text"),
        ({"timeout": 0}, "timeout must be a number of seconds > 0, got 0.0"),
    ],
)
def test_setup_refuses_a_bad_command_or_timeout(
    out: Path, params: dict[str, Any], message: str
) -> None:
    """A bad placeholder or a non-positive timeout stops setup, saying what is valid."""
    with pytest.raises(ValueError, match=message):
        JudgeRerun(**params).setup(context_for(out))


def test_the_default_command_runs_the_local_judge(experiment: Path, out: Path) -> None:
    """With no command, the local judge scores the slot."""
    slot = remove_slot(experiment)
    result = JudgeRerun(latency=0).run(one_item(experiment, out))
    assert 0 <= result["score"] <= 1 and status_of(slot) == "complete"
    assert "Rule-based local judge" in json.loads((slot / "judgment.json").read_text())["reasoning"]


def test_a_failed_rejudge_of_a_complete_slot_keeps_its_judgment(
    experiment: Path, out: Path, judge_cmd: Any
) -> None:
    """Re-judging a complete slot with a failing judge keeps its files; attempts/ keeps both."""
    [item, *_] = slots_for(experiment, out, status=["complete"], tiers=["T3"])
    slot = Path(item["slot_dir"])
    before = tree(slot)
    with pytest.raises(TaskFailure, match=r"keeps its judgment; this attempt is in attempts/1"):
        JudgeRerun(command=judge_cmd("exit3")).run(item)
    after = tree(slot)
    assert {k: v for k, v in after.items() if not k.startswith("attempts/")} == before
    assert json.loads(after["attempts/1/timing.json"])["failed"] is True
    assert b"judge crashed" in after["attempts/1/stderr.log"] and status_of(slot) == "complete"
    JudgeRerun(command=judge_cmd("good", 0.25)).run(item)
    assert json.loads((slot / "judgment.json").read_text())["score"] == 0.25
    # The judgment it replaced is attempt 2, after the failed attempt 1.
    assert tree(slot / "attempts" / "2") == before
    assert sorted(p.name for p in (slot / "attempts").iterdir()) == ["1", "2"]


def test_a_rate_limited_rejudge_of_a_complete_slot_is_retryable_and_keeps_it(
    experiment: Path, out: Path, judge_cmd: Any
) -> None:
    """A 429 while re-judging a complete slot raises JudgeRateLimited; the slot is untouched."""
    [item, *_] = slots_for(experiment, out, status=["complete"], tiers=["T3"])
    slot = Path(item["slot_dir"])
    before = tree(slot)
    with pytest.raises(JudgeRateLimited, match=r"\(retry after 12 s\).*keeps its judgment") as info:
        JudgeRerun(command=judge_cmd("ratelimit")).run(item)
    assert info.value.retry_after == 12.0
    after = {k: v for k, v in tree(slot).items() if not k.startswith("attempts/")}
    assert after == before and status_of(slot) == "complete"
