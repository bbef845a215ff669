"""Which judge disagrees: each judge model against the consensus, and each pair of models.

Agreement is about the pass/fail verdict, because that is what a run's consensus decides
(a strict majority of its valid judgments, see ``consensus.py``) and what the summary's
pass rates count; a grade is only the score's band, so how far a judge's score is from
the consensus's is given as a score gap instead. Chance-corrected agreement is Cohen's
kappa (:func:`cohen_kappa`), computed here rather than with scikit-learn, which runner
does not depend on (the tests check it against scikit-learn's ``cohen_kappa_score``).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

from runner_plugins.judge.reply import clamp_score, passed_value

#: What the agreement figures of the summary's JSON mean (merged into its ``units``).
UNITS = {
    "judge_agreement.verdict": "what is compared: the pass/fail verdict (passed)",
    "judge_agreement.judges.<model>.runs_compared": "runs whose agent finished in which the "
    "model's judgment is valid (each has a consensus, the model's own verdict included)",
    "judge_agreement.judges.<model>.agreed": "how many of those runs have the model's "
    "pass/fail as their consensus",
    "judge_agreement.judges.<model>.agreement_rate": "fraction (0-1) of those runs whose "
    "consensus has the model's pass/fail",
    "judge_agreement.judges.<model>.kappa": "Cohen's kappa of the model's pass/fail against "
    "the consensus's over those runs; null when undefined (both gave every run one and "
    "the same verdict)",
    "judge_agreement.judges.<model>.mean_score_gap": "mean over those runs of the model's "
    "score minus the consensus score, as an absolute value (0-1)",
    "judge_agreement.pairs[].runs_compared": "runs whose agent finished in which both "
    "models' judgments are valid",
    "judge_agreement.pairs[].agreed": "in how many of those runs the two models give "
    "the same pass/fail",
    "judge_agreement.pairs[].agreement_rate": "fraction (0-1) of those runs in which the "
    "two models give the same pass/fail",
    "judge_agreement.pairs[].kappa": "Cohen's kappa of the two models' pass/fail over those "
    "runs; null when undefined (both gave one and the same verdict to every run)",
}


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters' labels for the same cases, or None when undefined.

    kappa = (p_o - p_e) / (1 - p_e), with p_o the share of cases they label alike and
    p_e the share expected by chance from each one's label frequencies. It is undefined
    with no case, or when p_e is 1: both gave every case one and the same label.
    Counted in integers, so that this case is found exactly, not up to float noise.
    """
    if len(first) != len(second):
        raise ValueError(f"kappa needs labels for the same cases: {len(first)} != {len(second)}")
    cases = len(first)
    alike = sum(a == b for a, b in zip(first, second, strict=True))
    counts_first, counts_second = Counter(first), Counter(second)
    # p_o and p_e both scaled by cases**2: kappa = (alike*n - chance) / (n*n - chance).
    chance = sum(count * counts_second[label] for label, count in counts_first.items())
    if cases * cases == chance:  # also when there is no case (0 == 0)
        return None
    return (alike * cases - chance) / (cases * cases - chance)


class Agreement:
    """Collects, run by run, each model's verdict and score next to the consensus's."""

    def __init__(self, models: Sequence[str]) -> None:
        self.models = list(models)
        #: Per run: each model's (passed, score), None where its judgment is not valid,
        #: and the consensus's (passed, score).
        self._runs: list[tuple[list[tuple[bool, float] | None], tuple[bool, float]]] = []

    def add(
        self, judgments: Sequence[dict[str, Any] | None], result: dict[str, Any] | None
    ) -> None:
        """One run whose agent finished: its valid judgments (None elsewhere), in model
        order, and the consensus they give (None: no valid judgment, nothing to compare)."""
        if result is None:
            return
        judged = [
            None if j is None else (passed_value(j.get("passed")), clamp_score(j["score"]))
            for j in judgments
        ]
        self._runs.append((judged, (result["passed"] is True, float(result["score"]))))

    def _judge(self, index: int) -> dict[str, Any]:
        compared = [
            (own, consensus)
            for judged, consensus in self._runs
            if (own := judged[index]) is not None
        ]
        gaps = [abs(own[1] - consensus[1]) for own, consensus in compared]
        return _figures([o[0] for o, _ in compared], [c[0] for _, c in compared]) | {
            "mean_score_gap": round(math.fsum(gaps) / len(gaps), 9) if gaps else None,
        }

    def _pair(self, first: int, second: int) -> dict[str, Any]:
        both = [
            (a[0], b[0])
            for judged, _ in self._runs
            if (a := judged[first]) is not None and (b := judged[second]) is not None
        ]
        figures = _figures([a for a, _ in both], [b for _, b in both])
        return {"judges": [self.models[first], self.models[second]], **figures}

    def as_dict(self) -> dict[str, Any]:
        """The summary's ``judge_agreement``: per model, then per pair of models."""
        indices = range(len(self.models))
        return {
            "verdict": "passed",
            "judges": {model: self._judge(i) for i, model in enumerate(self.models)},
            "pairs": [self._pair(i, j) for i, j in itertools.combinations(indices, 2)],
        }


def _figures(first: Sequence[Any], second: Sequence[Any]) -> dict[str, Any]:
    """How often two sequences of verdicts agree, plainly and by Cohen's kappa."""
    compared = len(first)
    agreed = sum(a == b for a, b in zip(first, second, strict=True))
    kappa = cohen_kappa(first, second)
    return {
        "runs_compared": compared,
        "agreed": agreed,
        "agreement_rate": agreed / compared if compared else None,
        "kappa": None if kappa is None else round(kappa, 9),
    }
