"""One run: build the selected plugins, stream items through the executor, record."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from loguru import logger

from runner import registry
from runner.api import Item, RunContext
from runner.errors import EXIT_FAILED_ITEMS, EXIT_INTERRUPTED, EXIT_OK, PluginError, UsageError
from runner.files import atomic_write_json
from runner.journal import Journal, JournalOutcomes
from runner.logs import error_with_traceback
from runner.process import allow_commands, kill_all
from runner.progress import Progress
from runner.settings import Settings
from runner.wrapper import make_safe_call

DRY_RUN_SHOWN = 10


def build(group: str, settings: Settings) -> Any:
    """Construct the selected plugin of ``group`` from its config parameters."""
    name = settings.name(group)
    cls = registry.load_plugin(group, name)
    params = settings.params(group)
    accepted = registry.constructor_params(cls)
    unknown = sorted(set(params) - accepted) if accepted is not None else []
    if unknown and accepted is not None:
        raise PluginError(
            f"{group} {name!r} has no parameter {unknown[0]!r}. "
            f"Valid parameters: {', '.join(sorted(accepted)) or '(none)'}.",
            group=group,
            name=name,
        )
    try:
        return cls(**params)
    except (TypeError, ValueError, OSError) as exc:
        raise PluginError(
            f"{group} {name!r} rejected its config: {exc}", group=group, name=name
        ) from exc


def _setup(group: str, name: str, plugin: Any, context: RunContext) -> None:
    setup = getattr(plugin, "setup", None)
    if setup is None:
        return
    try:
        setup(context)
    except (UsageError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise UsageError(f"{group} {name!r} could not start: {exc}") from exc


def _length(source: Any) -> int | None:
    try:
        return len(source)
    except TypeError:
        return None


def _dry_run(source: Any) -> int:
    # A source that can describe its items (counts per status, examples) says it better
    # than a dump of the first items' data.
    describe = getattr(source, "describe", None)
    described = callable(describe)
    if callable(describe):
        for line in str(describe()).splitlines():
            logger.info(line)
    shown: list[Item] = []
    count = 0
    for item in source:
        if count < DRY_RUN_SHOWN and not described:
            shown.append(item)
        count += 1
    logger.info(f"Dry run: {count} item(s) would run; nothing was run, no results written.")
    for item in shown:
        logger.info(f"  {item.label}  {item.data}"[:200])
    if shown and count > len(shown):
        logger.info(f"  ... and {count - len(shown)} more")
    return EXIT_OK


def _iso(stamp: float) -> str:
    return dt.datetime.fromtimestamp(stamp, tz=dt.timezone.utc).isoformat()


def execute(settings: Settings, output_dir: Path) -> int:
    """Run everything the settings select; return the exit code (0, 1 or 130)."""
    context = RunContext(
        output_dir=output_dir,
        config=settings.as_dict(),
        parallel=settings.parallel,
        dry_run=settings.dry_run,
    )
    groups = ("source", "task", "executor", "postprocessor")
    plugins = {group: build(group, settings) for group in groups}
    source, task, executor, post = (plugins[g] for g in groups)
    context.source, context.task = source, task
    try:
        for group in groups:
            _setup(group, settings.name(group), plugins[group], context)
    except BaseException:
        _close(source)  # it may hold what its setup took (a lock, a folder)
        raise
    total = _length(source)
    if settings.dry_run:
        return _dry_run(source)

    logger.info(
        f"Running task {settings.name('task')!r} on source {settings.name('source')!r} "
        f"({'?' if total is None else total} items) with executor "
        f"{settings.name('executor')!r}, parallel={settings.parallel}; output: {output_dir}"
    )
    allow_commands()
    journal = Journal(output_dir / "results.jsonl")
    progress = Progress(total, settings.progress)
    clock_offset = time.time() - time.perf_counter()
    first_start = float("inf")
    last_finish = 0.0
    interrupted = False
    source_error: Exception | None = None
    last_flush = 0.0
    safe_call = make_safe_call(task.run)
    outcomes: Iterable[Any] = executor.map(safe_call, iter(source), settings.parallel)
    try:
        for outcome in outcomes:
            journal.write(outcome)
            if outcome.started < first_start:
                first_start = outcome.started
            if outcome.finished > last_finish:
                last_finish = outcome.finished
                # Flush a few times a second: results survive a kill -9 without a
                # syscall per item.
                if last_finish - last_flush > 0.25:
                    journal.flush()
                    last_flush = last_finish
            progress.update(outcome)
    except KeyboardInterrupt:
        interrupted = True
        # Stop the executor first (no new items), then the commands already running.
        close_outcomes = getattr(outcomes, "close", None)
        if callable(close_outcomes):
            close_outcomes()
        killed = kill_all()
        logger.warning(
            f"Interrupted: stopped after {progress.done} item(s); killed {killed} "
            "running command(s)."
        )
    except Exception as exc:  # the source failed part-way (a malformed line, a lost file)
        source_error = exc
    finally:
        journal.close()
        progress.close()
        _close(task)

    done = progress.done
    wall = max(last_finish - first_start, 0.0) if done else 0.0
    summary: dict[str, Any] = {
        "task": settings.name("task"),
        "source": settings.name("source"),
        "executor": settings.name("executor"),
        "postprocessor": settings.name("postprocessor"),
        "parallel": settings.parallel,
        "total": done,
        "succeeded": done - progress.failed,
        "failed": progress.failed,
        "interrupted": interrupted,
        "wall_seconds": round(wall, 6),
        "items_per_second": round(done / wall, 3) if wall > 0 else 0.0,
        "started_at": _iso(first_start + clock_offset) if done else None,
        "finished_at": _iso(last_finish + clock_offset) if done else None,
    }
    context.summary = summary
    atomic_write_json(output_dir / "summary.json", summary)
    logger.info(
        f"Done: {summary['succeeded']} succeeded, {summary['failed']} failed of {done} "
        f"in {wall:.2f}s ({summary['items_per_second']:.1f} items/s)."
    )
    try:
        if source_error is not None:
            # What ran is journaled and summarised; the rest of the source cannot be read.
            raise UsageError(
                f"source {settings.name('source')!r} failed after {done} item(s): {source_error}"
            ) from source_error
        if interrupted:
            return EXIT_INTERRUPTED
        code = EXIT_FAILED_ITEMS if progress.failed else EXIT_OK
        try:
            post(JournalOutcomes(journal.path), context)
        except Exception as exc:
            error_with_traceback(
                f"postprocessor {settings.name('postprocessor')!r} failed: "
                f"{type(exc).__name__}: {exc}",
                exc,
            )
            code = EXIT_FAILED_ITEMS
        _close(post)
        return code
    finally:
        # Last: the post-processor may still need what the source holds (a lock, files).
        _close(source)


def _close(plugin: Any) -> None:
    close = getattr(plugin, "close", None)
    if callable(close):
        close()
