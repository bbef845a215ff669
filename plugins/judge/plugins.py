"""The judge plugins, under the names their entry points use.

Together they repair a judge experiment: :class:`JudgeSlots` (source) lists the slots
that never ran or failed, :class:`JudgeRerun` (task) re-runs the judge command for one
slot and swaps the slot's files in whole (:class:`JudgeRerunApi` asks an HTTP API
instead), and :class:`JudgeConsensus` (post-processor), once every slot has finished,
regenerates every run whose consensus no longer matches its slots and the experiment
summary. :class:`JudgeRuns` (source) and :class:`JudgeRegenerate` (task) regenerate
every run's consensus without a judge.
"""

from runner_plugins.judge.api_task import JudgeRerunApi
from runner_plugins.judge.postprocessor import JudgeConsensus
from runner_plugins.judge.regenerate import JudgeRegenerate
from runner_plugins.judge.runsource import JudgeRuns
from runner_plugins.judge.slotsource import JudgeSlots
from runner_plugins.judge.task import JudgeRerun

__all__ = [
    "JudgeConsensus",
    "JudgeRegenerate",
    "JudgeRerun",
    "JudgeRerunApi",
    "JudgeRuns",
    "JudgeSlots",
]
