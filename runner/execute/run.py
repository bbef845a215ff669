"""One run: build the selected plugins, set them up, run them (``steps.Run``), close them."""

from __future__ import annotations

import contextlib
from pathlib import Path

from loguru import logger

from runner.api import RunContext
from runner.config.settings import Settings
from runner.execute import lifecycle
from runner.execute.steps import GROUPS, Run
from runner.record import resume
from runner.show.progress import Progress
from runner.show.run_page import write_run_report


def execute(settings: Settings, output_dir: Path, prefix: str = "") -> int:
    """Run everything the settings select; return the exit code (0, 1, or 128 + signal).

    One lifecycle: every plugin is built, then set up in order (source, task, executor,
    post-processor); whatever was set up is closed in reverse order on every way out
    (``contextlib.ExitStack``), the executor shut down (waiting for running items)
    before the task is closed. Every run folder then gets its page, an interrupted
    run's too (the post-processor's sections only when it ran). ``prefix``: what the
    console puts before each line (``[job 3] `` in a sweep), for the progress lines that
    bypass it.
    """
    context = RunContext(
        output_dir=output_dir,
        config=settings.as_dict(),
        parallel=settings.parallel,
        dry_run=settings.dry_run,
    )
    # Before any plugin can touch the folder: refused here, it is left as it was.
    previous = resume.claim(settings, output_dir)
    context.resumed_from = previous
    plugins = {group: lifecycle.build(group, settings) for group in GROUPS}
    context.source, context.task = plugins["source"], plugins["task"]
    first = lifecycle.FirstItem(plugins["source"])
    if not settings.dry_run:  # a dry run lists the source's items as they come
        context.first_item = first
    countdown = lifecycle.Ending(settings.timeout_grace)
    with contextlib.ExitStack() as stack:
        for group in GROUPS:
            plugin = plugins[group]
            lifecycle.setup(group, settings.name(group), plugin, context)
            if group == "executor":
                # Its wait, once the run is stopped, is what is left of the one grace.
                stack.callback(countdown.shutdown, plugin)
            else:
                stack.callback(lifecycle.close, plugin)
        if settings.dry_run:
            return lifecycle.dry_run(plugins["source"])
        run = Run(settings, output_dir, context, plugins, previous, countdown, first)
        try:
            code = run.run(Progress(run.total, settings.progress, prefix))
        except BaseException:
            if context.summary:  # a run that got as far as its summary: its error stays
                refused = write_run_report(output_dir, context)
                if refused is not None:
                    logger.warning(refused.reason)
            raise
        refused = write_run_report(output_dir, context)
        if refused is not None:
            raise refused
        return code
    raise AssertionError("unreachable")  # pragma: no cover
