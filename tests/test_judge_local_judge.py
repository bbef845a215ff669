"""The local rule-based judge: deterministic, parseable replies, cheap to start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner_plugins.judge import local_judge
from runner_plugins.judge.judgment import parse_reply
from runner_plugins.judge.local_judge import LATENCY_ENV, judge, model_shift, read_answer
from runner_plugins.judge.sample import make_sample_experiment
from tests.judge_support import FIXTURE

SCRIPT = Path(local_judge.__file__)
TASK = (
    "## Task Given to Agent\n\nCreate `wordcount.py` that counts words in a text file.\n\n"
    "## Agent's Output\n\nzebra quokka mango\n"
)


def run_judge(
    *args: str, latency: str | None = "0", module: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the local judge as a separate process, as judge_rerun does."""
    env = {k: v for k, v in os.environ.items() if k != LATENCY_ENV}
    if latency is not None:
        env[LATENCY_ENV] = latency
    head = ["-m", "runner_plugins.judge.local_judge"] if module else [str(SCRIPT)]
    return subprocess.run(
        [sys.executable, *head, *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A judged run of the sample experiment."""
    root = make_sample_experiment(tmp_path_factory.mktemp("lj") / "exp", seed=0)
    return root / "T0" / "00" / "run_04"


def _args(run_dir: Path, model: str = "claude-haiku-4-5") -> list[str]:
    return [
        "--model",
        model,
        "--prompt-file",
        str(run_dir / "judge_prompt.md"),
        "--run-dir",
        str(run_dir),
    ]


def test_standalone_reply_parses_and_is_deterministic(run_dir: Path) -> None:
    """Run as a script, it prints prose and a fenced JSON verdict, the same every time."""
    first, second = run_judge(*_args(run_dir)), run_judge(*_args(run_dir))
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert first.stdout.index("```json") > 0  # prose comes first
    judgment = parse_reply(first.stdout)
    assert 0.0 <= judgment["score"] <= 1.0
    assert set(judgment["criteria_scores"]) == {"completion", "evidence", "relevance", "length"}
    assert "not an LLM" in judgment["reasoning"]


def test_runs_as_a_module_of_the_installed_package(run_dir: Path) -> None:
    """``python -m runner_plugins.judge.local_judge`` gives the same reply as the script."""
    assert run_judge(*_args(run_dir), module=True).stdout == run_judge(*_args(run_dir)).stdout


def test_judges_of_one_run_differ_slightly(run_dir: Path) -> None:
    """The model name shifts the score by at most 0.03, reproducibly."""
    scores = {
        m: parse_reply(run_judge(*_args(run_dir, m)).stdout)["score"]
        for m in ("judge-a", "judge-b", "judge-c")
    }
    assert len(set(scores.values())) > 1
    assert max(scores.values()) - min(scores.values()) <= 0.06 + 1e-9
    assert all(abs(model_shift(m)) <= 0.03 for m in ("a", "judge-b", "claude-haiku-4-5", ""))


def test_rules_rank_a_good_answer_above_a_poor_one() -> None:
    """A relevant answer naming a workspace file beats a terse one, which beats none."""
    good = judge(
        TASK, "I created wordcount.py; it counts the words in a text file.", ["wordcount.py"], "m"
    )
    terse = judge(TASK, "Done.", ["wordcount.py"], "m")
    failing = judge(
        TASK, "I was unable to create wordcount.py: an error occurred.", ["wordcount.py"], "m"
    )
    empty = judge(TASK, "", [], "m")
    assert good["score"] > failing["score"] > terse["score"] > empty["score"]
    assert good["passed"] and not terse["passed"] and not empty["passed"]
    assert empty["categories"]["completion"]["score"] == 0.0


def test_only_the_task_section_of_the_prompt_counts() -> None:
    """Words after "## Agent's Output" in the prompt do not count as task words."""
    verdict = judge(TASK, "zebra quokka mango", [], "m")
    assert verdict["categories"]["relevance"]["score"] == 0.0


def test_claude_cli_json_output_is_unwrapped(tmp_path: Path) -> None:
    """When output.txt is Claude CLI JSON, its result text is the answer."""
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "output.txt").write_text(
        json.dumps({"type": "result", "result": "Made hello.py"})
    )
    assert read_answer(tmp_path) == "Made hello.py"
    (tmp_path / "agent" / "output.txt").write_text("plain text\n")
    assert read_answer(tmp_path) == "plain text"


def test_latency_comes_from_the_flag_or_the_environment(run_dir: Path) -> None:
    """The judge sleeps $RUNNER_LOCAL_JUDGE_LATENCY seconds; --latency overrides it."""
    started = time.perf_counter()
    # Well above the 0.5 s default plus start-up, so a judge that ignored the variable
    # would finish too soon (a sleep makes this lower bound exact).
    assert run_judge(*_args(run_dir), latency="1.5").returncode == 0
    assert time.perf_counter() - started >= 1.5
    # The flag wins: the variable, unreadable here, is not even looked at.
    assert run_judge(*_args(run_dir), "--latency", "0", latency="not-a-number").returncode == 0
    assert run_judge(*_args(run_dir), latency="not-a-number").returncode == 2


def test_bad_input_exits_2_with_a_message(run_dir: Path, tmp_path: Path) -> None:
    """A missing prompt file or a bad latency is reported on stderr with exit status 2."""
    missing = run_judge(
        "--model", "m", "--prompt-file", str(tmp_path / "nope.md"), "--run-dir", str(run_dir)
    )
    assert missing.returncode == 2 and "nope.md" in missing.stderr and missing.stdout == ""
    bad = run_judge(*_args(run_dir), "--latency", "-1")
    assert bad.returncode == 2 and "latency" in bad.stderr


def test_import_stays_light() -> None:
    """Importing the judge pulls in neither runner, hydra, omegaconf nor loguru."""
    code = (
        "import sys, runner_plugins.judge.local_judge; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'runner', 'hydra', 'omegaconf', 'loguru'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_scores_the_real_experiment(tmp_path: Path) -> None:
    """On a real run it finds hello.py in the agent's answer and passes it."""
    run = FIXTURE / "T2" / "01" / "run_01"
    verdict = parse_reply(run_judge(*_args(run)).stdout)
    assert verdict["passed"]
    assert "hello.py" in verdict["criteria_scores"]["evidence"]["reason"]
