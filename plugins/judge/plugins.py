"""The judge_rerun plugins, under the names their entry points use.

Together they repair a judge experiment: :class:`JudgeSlots` (source) lists the slots
that never ran or failed, :class:`JudgeRerun` (task) re-runs the judge command for one
slot and writes its files, and :class:`JudgeConsensus` (post-processor), once every slot
has finished, regenerates each touched run's consensus and the experiment summary.
"""

from runner_plugins.judge.postprocessor import JudgeConsensus
from runner_plugins.judge.source import JudgeSlots
from runner_plugins.judge.task import JudgeRerun

__all__ = ["JudgeConsensus", "JudgeRerun", "JudgeSlots"]
