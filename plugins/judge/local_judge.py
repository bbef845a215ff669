"""A stand-in for an LLM judge: scores an agent's answer with fixed, documented rules.

This is not a language model and does not understand the answer. It exists so that
``task=judge_rerun`` runs end to end (in tests, benchmarks and demos) without network
access or API keys, and it replies in the shape a real judge does: prose, then a
```json block with ``score``, ``passed``, ``reasoning`` and ``categories``. Its scores
mean only what these rules say. Each category scores 0..1; the score is their weighted sum:

- completion (0.30): 1.0 if the answer is non-empty and reports no failure (none of
  "error", "failed", "unable", "cannot", "could not", "traceback"); 0.4 if it reports
  one; 0.0 if it is empty.
- evidence (0.25): 1.0 if the answer names at least one file of ``workspace/`` (hidden
  files skipped); 0.5 if the workspace has files but none is named; 0.0 if it has none.
- relevance (0.25): the share of the task's content words (4+ letters, minus common
  words) that the answer uses, scaled so that 40% or more scores 1.0. The task is the
  prompt's "## Task Given to Agent" section when present, else the whole prompt.
- length (0.20): answer length in characters: < 20 -> 0.0, < 80 -> 0.5, <= 4000 -> 1.0,
  <= 16000 -> 0.7, longer -> 0.4.

The model name then shifts the score by a fixed amount in [-0.03, +0.03] (from the
CRC-32 of the name), so the judges of one run disagree slightly but reproducibly. The
score is clamped to [0, 1] and rounded to 4 places; passed = score >= 0.5. The answer is
``<run-dir>/agent/output.txt``, or its ``result`` field when it is Claude CLI JSON output.

Before replying it sleeps ``--latency`` seconds (default: ``$RUNNER_LOCAL_JUDGE_LATENCY``,
else 0.5) so that runs behave like calls to a remote judge.

Usage::

    python -m runner_plugins.judge.local_judge --model M --prompt-file P --run-dir R [--latency S]

Exit status: 0 when a reply was printed; 2 for bad arguments or an unreadable prompt file.
Standard library only and nothing from ``runner``, so it adds only a few ms to the
interpreter's own start-up.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
import zlib
from pathlib import Path
from typing import Any

LATENCY_ENV = "RUNNER_LOCAL_JUDGE_LATENCY"
DEFAULT_LATENCY = 0.5
WEIGHTS = {"completion": 0.30, "evidence": 0.25, "relevance": 0.25, "length": 0.20}
FAILURE_WORDS = ("error", "failed", "unable", "cannot", "could not", "traceback")
STOP_WORDS = frozenset(
    "that this with from have will should must when what which your their there then than "
    "into only also each more most such very just been were does done make made using used "
    "file files task agent output following".split()
)
_TASK_SECTION = re.compile(
    r"^## Task Given to Agent\s*$(.*?)(?=^## Agent's Output\s*$|\Z)", re.MULTILINE | re.DOTALL
)


def read_answer(run_dir: Path) -> str:
    """The agent's answer: output.txt, or its ``result`` field if it is CLI JSON output."""
    try:
        text = (run_dir / "agent" / "output.txt").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json reads
        return text.strip()
    if isinstance(data, dict) and isinstance(data.get("result"), str):
        return str(data["result"]).strip()
    return text.strip()


def workspace_files(workspace: Path, limit: int = 200) -> list[str]:
    """Names of the non-hidden files under ``workspace`` (at most ``limit``)."""
    names: list[str] = []
    for _folder, dirs, files in os.walk(workspace):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        names += sorted(f for f in files if not f.startswith("."))
        if len(names) >= limit:
            break
    return names[:limit]


def content_words(text: str) -> set[str]:
    """Lower-case words of 4+ letters that are not common words."""
    return {w for w in re.findall(r"[a-z]{4,}", text.lower()) if w not in STOP_WORDS}


def _length_score(n: int) -> float:
    for limit, score in ((20, 0.0), (80, 0.5)):
        if n < limit:
            return score
    return 1.0 if n <= 4000 else 0.7 if n <= 16000 else 0.4


def model_shift(model: str) -> float:
    """A fixed offset in [-0.03, +0.03] derived from the model name."""
    return (zlib.crc32(model.encode("utf-8")) % 601 - 300) / 10000


def judge(prompt: str, answer: str, files: list[str], model: str) -> dict[str, Any]:
    """Score ``answer`` by the module's rules; return the reply's JSON object."""
    lowered = answer.lower()
    failures = [w for w in FAILURE_WORDS if w in lowered]
    completion = 0.0 if not answer else 0.4 if failures else 1.0
    named = [f for f in files if f.lower() in lowered]
    evidence = 1.0 if named else 0.5 if files else 0.0
    section = _TASK_SECTION.search(prompt)
    task_words = content_words(section.group(1) if section else prompt)
    shared = task_words & content_words(answer)
    relevance = min(1.0, len(shared) / (0.4 * len(task_words))) if task_words else 0.0
    length = _length_score(len(answer))
    scores = {
        "completion": completion,
        "evidence": evidence,
        "relevance": relevance,
        "length": length,
    }
    reasons = {
        "completion": "no answer"
        if not answer
        else f"answer reports a failure ({', '.join(failures)})"
        if failures
        else "answer present, reports no failure",
        "evidence": f"names {', '.join(named[:3])}"
        if named
        else "names no workspace file"
        if files
        else "workspace is empty",
        "relevance": f"{len(shared)} of {len(task_words)} task words used",
        "length": f"{len(answer)} characters",
    }
    raw = sum(WEIGHTS[k] * v for k, v in scores.items()) + model_shift(model)
    score = round(min(1.0, max(0.0, raw)), 4)
    reasoning = (
        "Rule-based local judge (not an LLM). "
        + "; ".join(f"{k} {scores[k]:.2f}: {reasons[k]}" for k in WEIGHTS)
        + "."
    )
    categories = {
        k: {
            "achieved": round(WEIGHTS[k] * v, 4),
            "max": WEIGHTS[k],
            "score": round(v, 4),
            "reason": reasons[k],
        }
        for k, v in scores.items()
    }
    return {
        "score": score,
        "passed": score >= 0.5,
        "reasoning": reasoning,
        "categories": categories,
    }


def render_reply(model: str, verdict: dict[str, Any]) -> str:
    """Prose, then the verdict in a ```json fence: the shape of a real judge's reply."""
    return (
        f"Local rule-based judge, standing in for {model}. I read the task, the agent's "
        "answer and the workspace listing, and scored them by fixed rules.\n\n"
        f"```json\n{json.dumps(verdict, indent=2)}\n```\n"
    )


def _latency(value: str | None) -> float:
    text = value if value is not None else os.environ.get(LATENCY_ENV, "")
    if not text.strip():
        return DEFAULT_LATENCY
    seconds = float(text)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"latency must be a number of seconds >= 0, got {text!r}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m runner_plugins.judge.local_judge",
        description="Rule-based stand-in for an LLM judge (see the module docstring).",
    )
    parser.add_argument("--model", required=True, help="judge model name (shifts the score)")
    parser.add_argument("--prompt-file", required=True, type=Path, help="the judge prompt")
    parser.add_argument("--run-dir", required=True, type=Path, help="the run folder")
    parser.add_argument(
        "--latency",
        default=None,
        help=f"seconds to sleep first (default ${LATENCY_ENV}, else {DEFAULT_LATENCY})",
    )
    args = parser.parse_args(argv)
    try:
        latency = _latency(args.latency)
    except ValueError as exc:
        print(f"local_judge: {exc}", file=sys.stderr)
        return 2
    try:
        prompt = args.prompt_file.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        print(
            f"local_judge: cannot read prompt file {str(args.prompt_file)!r}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    verdict = judge(
        prompt, read_answer(args.run_dir), workspace_files(args.run_dir / "workspace"), args.model
    )
    time.sleep(latency)
    sys.stdout.write(render_reply(args.model, verdict))
    return 0


if __name__ == "__main__":
    sys.exit(main())
