"""Which judge disagrees: each model against the consensus and each pair of models
(``plugins/judge/agreement.py``), in the summary a repair or a regeneration writes, and the
consensus changes that fewer than all judges decided (provisional)."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from sklearn.metrics import cohen_kappa_score

from runner_plugins.judge.agreement import cohen_kappa
from tests.conftest import RunCli
from tests.judge_support import T3, judge_command, remove_slot
from tests.test_judge_summary import MODELS, build, ok

A, B, C = MODELS
PASS, FAIL = ok(0.8, True), ok(0.2, False)


def _sklearn(first: list[Any], second: list[Any]) -> float:
    with warnings.catch_warnings():  # one label on both sides: 0/0, which it returns as nan
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score(first, second))


@pytest.mark.parametrize("labels", [(True, False), ("S", "A", "B", "C", "D", "F")])
def test_kappa_is_scikit_learns_on_random_verdicts(labels: tuple[Any, ...]) -> None:
    """Seeded random verdicts (pass/fail, and grades), from 1 to 40 runs, some with a
    skewed mix so that one label often stands alone: the same kappa as scikit-learn's
    cohen_kappa_score, and None exactly where it has none (nan)."""
    rng = random.Random(23)
    undefined = 0
    for _ in range(400):
        runs = rng.randint(1, 40)
        skew = rng.choice([0.5, 0.9, 1.0])
        pick = [labels[0]] * int(10 * skew) + list(labels) * int(10 * (1 - skew))
        first = [rng.choice(pick) for _ in range(runs)]
        second = [rng.choice(pick) if rng.random() < 0.5 else x for x in first]
        ours, theirs = cohen_kappa(first, second), _sklearn(first, second)
        if math.isnan(theirs):
            undefined += 1
            assert ours is None, (first, second)
        else:
            assert ours == pytest.approx(theirs, abs=1e-12), (first, second)
    assert undefined > 10  # the undefined case was met, not only assumed


def test_kappa_of_labels_for_different_runs_is_refused() -> None:
    with pytest.raises(ValueError, match="same cases: 2 != 1"):
        cohen_kappa([True, False], [True])


def _summary(run_app: RunCli, root: Path) -> tuple[dict[str, Any], str]:
    """Regenerate ``root``'s consensus and summary in this process; the summary's JSON
    and Markdown."""
    result = run_app("task=judge_regenerate", f"source.experiment={root}")
    assert result.returncode == 0, result.output
    summary = json.loads((root / "summary" / "judge_summary.json").read_text())
    return summary, (root / "summary" / "judge_summary.md").read_text()


def test_each_models_agreement_with_the_consensus_shows_the_outlier(
    run_app: RunCli, tmp_path: Path
) -> None:
    """Judge C contradicts A and B on three runs of six: it agrees with the consensus
    on 3 of 6 (kappa 0), A on 5 of 6 (its pass on run 6 is outvoted by the 1-1 tie),
    B, missing on run 6, on 5 of 5; pairs are compared where both judged; a run whose
    agent failed is no evidence."""
    root = tmp_path / "exp"
    build(
        root,
        {
            "T0/00/run_01": [PASS, PASS, FAIL],
            "T0/00/run_02": [PASS, PASS, FAIL],
            "T0/00/run_03": [FAIL, FAIL, PASS],
            "T0/00/run_04": [FAIL, FAIL, FAIL],
            "T0/00/run_05": [PASS, PASS, PASS],
            "T0/00/run_06": [PASS, "missing", FAIL],
            "T0/00/run_07": None,
        },
    )
    summary, text = _summary(run_app, root)
    agreement = summary["judge_agreement"]
    assert agreement["verdict"] == "passed"
    judges = agreement["judges"]
    assert [(judges[m]["runs_compared"], judges[m]["agreed"]) for m in MODELS] == [
        (6, 5),
        (5, 5),
        (6, 3),
    ]
    # By hand: A (4 pass, 2 fail) against the consensus (3, 3) agree 5 of 6:
    # p_o = 5/6, p_e = (4*3 + 2*3)/36 = 1/2, kappa = (5/6 - 1/2) / (1/2) = 2/3.
    assert judges[A]["kappa"] == pytest.approx(2 / 3)
    assert judges[B]["kappa"] == 1.0
    assert judges[C]["kappa"] == 0.0
    # Scores 0.8 (pass) and 0.2 (fail): C is furthest from the consensus's mean.
    gaps = [judges[m]["mean_score_gap"] for m in MODELS]
    assert gaps == pytest.approx([0.9 / 6, 0.6 / 5, 1.5 / 6])
    pairs = {tuple(p["judges"]): p for p in agreement["pairs"]}
    assert list(pairs) == [(A, B), (A, C), (B, C)]
    assert [(p["runs_compared"], p["agreed"]) for p in pairs.values()] == [(5, 5), (6, 2), (5, 2)]
    verdicts = {  # each model's pass/fail on runs 1-6 (None: no valid judgment)
        A: [True, True, False, False, True, True],
        B: [True, True, False, False, True, None],
        C: [False, False, True, False, True, False],
    }
    for (first, second), pair in pairs.items():
        pairs_of = zip(verdicts[first], verdicts[second], strict=True)
        both = [(x, y) for x, y in pairs_of if x is not None and y is not None]
        expected = _sklearn([x for x, _ in both], [y for _, y in both])
        assert pair["kappa"] == pytest.approx(expected)
    assert pairs[(A, C)]["kappa"] == pytest.approx(-0.2)

    assert "- **agreement** between judges means the same pass/fail verdict" in text
    section = text.split("## Which judge disagrees")[1].split("\n## ")[0]
    assert "Agreement here means **the same pass/fail verdict**" in section
    assert f"| `{A}` | 6 | 83% | 0.67 | 0.150 |" in section
    assert f"| `{B}` | 5 | 100% | 1.00 | 0.120 |" in section
    assert f"| `{C}` | 6 | 50% | 0.00 | 0.250 |" in section
    assert f"| `{A}` and `{C}` | 6 | 33% | -0.20 |" in section
    assert f"| `{B}` and `{C}` | 5 | 40% | -0.15 |" in section
    assert "`-` for kappa" not in section  # every kappa here is defined


def test_an_undefined_kappa_is_a_dash_with_its_reason(run_app: RunCli, experiment: Path) -> None:
    """The real experiment: every judge passed every run, so agreement is 100% and kappa
    (chance agreement 100%) undefined: null in the JSON, '-' and a footnote in the
    Markdown, never 0.0 or 1.0."""
    summary, text = _summary(run_app, experiment)
    agreement = summary["judge_agreement"]
    figures = [*agreement["judges"].values(), *agreement["pairs"]]
    assert len(figures) == 6
    assert {(f["runs_compared"], f["agreed"], f["kappa"]) for f in figures} == {(7, 7, None)}
    section = text.split("## Which judge disagrees")[1].split("\n## ")[0]
    assert "| `claude-haiku-4-5` | 7 | 100% | - |" in section
    assert "`-` for kappa: undefined, because both sides gave every compared run" in section


def test_a_flip_fewer_than_all_judges_decided_is_provisional(
    run_app: RunCli, experiment: Path, tmp_path: Path
) -> None:
    """Only judge_01 and judge_02 are rerun, both failing the agent (0.1): T3 flips to
    fail with its third judgment still there (decided by 3 of 3), T0, whose third slot
    stays missing, flips on 2 of 3 judges: provisional, in the JSON, the Markdown and on
    the terminal."""
    remove_slot(experiment, T3, 1)
    remove_slot(experiment, T3, 2)
    for slot in (1, 2, 3):
        remove_slot(experiment, "T0/00/run_01", slot)
    # Each element quoted for Hydra's override grammar ("0.1" stays text).
    command = ",".join(f'"{arg}"' for arg in judge_command(tmp_path, "good", 0.1))
    result = run_app(
        "task=judge_rerun",
        f"source.experiment={experiment}",
        "source.slots=[judge_01,judge_02]",
        f"task.command=[{command}]",
    )
    assert result.returncode == 0, result.output
    changes = json.loads((result.run_dir / "judge_summary.json").read_text())["repair"][
        "consensus_changes"
    ]
    assert changes == {
        "count": 2,
        "provisional": 1,
        "runs": [
            {
                "run": "T0/00/run_01",
                "passed_before": True,
                "passed_after": False,
                "valid_judges": 2,
                "judges": 3,
                "provisional": True,
            },
            {
                "run": T3,
                "passed_before": True,
                "passed_after": False,
                "valid_judges": 3,
                "judges": 3,
                "provisional": False,
            },
        ],
    }
    text = (result.run_dir / "judge_summary.md").read_text()
    assert "its pass/fail changed in **2** run(s), 1 of them provisional" in text
    assert "| `T0/00/run_01` | pass | **fail** (provisional: 2 of 3 judges) |" in text
    assert f"| `{T3}` | pass | **fail** |" in text
    assert (
        f"pass/fail changed: T0/00/run_01 pass -> fail (provisional: 2 of 3 judges), "
        f"{T3} pass -> fail\n"
    ) in result.output
    assert "its pass/fail changed for 2 (1 provisional: not every judge decided it)" in (
        result.output
    )


def test_runner_does_not_import_scikit_learn() -> None:
    """scikit-learn is a dev dependency for these tests only: the summary's modules
    compute kappa themselves."""
    code = (
        "import sys, runner_plugins.judge.postprocessor, runner_plugins.judge.summary;"
        "print('sklearn' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "False"
