"""A judgment: what ``judgment.json`` (and a consensus) holds, its grade, and how a
judge's reply becomes one (the reply's text is read in ``reply``)."""

from __future__ import annotations

from typing import Any

from runner_plugins.judge.reply import (
    NO_REASONING,
    ReplyError,
    clamp_score,
    find_verdict,
    passed_value,
)


def grade_for(score: float, *, rounded: bool = True) -> str:
    """Letter grade of a score: S = 1.0, A >= 0.8, B >= 0.6, C >= 0.4, D >= 0.2, else F.

    The score is rounded to 9 places first, so float noise in a mean (0.7999999999999999)
    never costs a grade; ``rounded=False`` grades it as the original does.
    """
    if rounded:
        score = round(score, 9)
    if score >= 1.0:
        return "S"
    for grade, floor in (("A", 0.8), ("B", 0.6), ("C", 0.4), ("D", 0.2)):
        if score >= floor:
            return grade
    return "F"


def make_judgment(
    score: float, passed: bool, reasoning: str, is_valid: bool, criteria_scores: Any
) -> dict[str, Any]:
    """A judgment.json, or a consensus in judge/result.json: same fields, grade from the score."""
    return {
        "score": score,
        "passed": passed,
        "grade": grade_for(score),
        "reasoning": reasoning,
        "is_valid": is_valid,
        "criteria_scores": criteria_scores,
    }


def parse_reply(text: str) -> dict[str, Any]:
    """Turn a judge's reply into ``judgment.json`` content; raise ReplyError if it has none.

    As the original parses it: ``passed`` false when absent, ``reasoning`` "No reasoning
    provided" when absent or empty, ``criteria_scores`` from ``categories`` (else
    ``criteria_scores``), null when absent. Unlike it, a non-numeric score is no score
    and a reply's own ``"is_valid": false`` is kept (the slot then stays failed).
    """
    verdict = find_verdict(text)
    if verdict is None:
        raise ReplyError("reply has no JSON object with a numeric score")
    is_valid = verdict.get("is_valid")
    return make_judgment(
        clamp_score(verdict["score"]),
        passed_value(verdict.get("passed")),
        str(verdict.get("reasoning") or NO_REASONING),
        is_valid if isinstance(is_valid, bool) else True,
        verdict.get("categories") or verdict.get("criteria_scores") or None,
    )
