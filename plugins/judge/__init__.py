"""The judge_rerun plugins: repair the judge slots of an agent-evaluation experiment.

The plugin classes live in :mod:`runner_plugins.judge.plugins`. This package imports
nothing, so that ``python -m runner_plugins.judge.local_judge`` starts fast.
"""
