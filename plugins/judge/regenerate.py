"""``task=judge_regenerate``: every run's consensus rewritten from its slots, no judge called."""

from __future__ import annotations

from typing import Any

from runner.api import Item, RunContext, Task, TaskFailure
from runner_plugins.judge.consensus import regenerate_run
from runner_plugins.judge.experiment import ExperimentConfig, RunRef
from runner_plugins.judge.runsource import JudgeRuns
from runner_plugins.judge.writes import refused, stop_repair


class JudgeRegenerate(Task):
    """Regenerate one run's consensus from its slots; no judge is called.

    The original's ``--regenerate-only``: ``judge/result.json`` and the judge fields of
    ``run_result.json`` are rewritten from the run's valid judgments (needs the
    ``judge_runs`` source).
    """

    def __init__(self) -> None:
        self._config: ExperimentConfig | None = None

    def setup(self, context: RunContext) -> None:
        """Take the experiment from the judge source; refuse any other source."""
        if not isinstance(context.source, JudgeRuns):
            raise ValueError(
                "judge_regenerate needs the judge_runs source (one item per run); got "
                f"source {type(context.source).__name__!r}"
            )
        self._config = experiment_of(context, "judge_regenerate")

    def run(self, item: Item) -> dict[str, Any]:
        """Rewrite the run's consensus; return it and whether it was stale."""
        if self._config is None:
            raise RuntimeError("JudgeRegenerate.setup(context) must be called first")
        run = RunRef.of(self._config.root, item.data)
        try:
            result, recorded = regenerate_run(self._config, run)
        except OSError as exc:
            if not refused(exc):
                raise
            raise stop_repair(
                run.dir,
                exc,
                "no run's consensus is rewritten any more; each run's judge/result.json and "
                "run_result.json are whole (a run left stale is rewritten by the next "
                "judge_regenerate): make room and run the same command again",
            ) from exc
        if result is None:
            raise TaskFailure(f"{run.id} has no valid judgment left; its consensus is as it was")
        return {k: item[k] for k in ("tier", "subtest", "run")} | {
            "score": result["score"],
            "passed": result["passed"],
            "grade": result["grade"],
            "was_stale": item.get("stale"),
            "run_result_updated": recorded,
        }


def experiment_of(context: RunContext, who: str) -> ExperimentConfig:
    """The experiment of the run's judge source, checked before any item runs."""
    config = getattr(context.source, "config", None)
    if not isinstance(config, ExperimentConfig):
        raise ValueError(
            f"{who} needs the judge_slots or judge_runs source (after setup); "
            f"got source {type(context.source).__name__!r}"
        )
    return config
