"""The run's plugins: built from their config, set up, read, shut down and closed.

Only ``map`` (executors), ``run`` (tasks) and iteration (sources) are required of a
plugin; ``setup``, ``describe``, ``shutdown`` and ``close`` are optional, so they are looked
up here, in one place.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from loguru import logger

from runner import api
from runner.api import Item, RunContext
from runner.config import registry
from runner.config.settings import Settings
from runner.errors import EXIT_OK, PluginError, UsageError
from runner.show.labels import printable

DRY_RUN_SHOWN = 10


def build(group: str, settings: Settings) -> Any:
    """Construct the selected plugin of ``group`` from its config parameters."""
    name = settings.name(group)
    cls = registry.load_plugin(group, name)
    # Unknown keys never get here: the config node is typed from the constructor.
    try:
        return cls(**settings.params(group))
    except (TypeError, ValueError, OSError) as exc:
        raise PluginError(
            f"{group} {name!r} rejected its config: {exc}", group=group, name=name
        ) from exc


def setup(group: str, name: str, plugin: Any, context: RunContext) -> None:
    """Call the plugin's ``setup(context)``, if it has one; its failure is one line."""
    hook = getattr(plugin, "setup", None)
    if hook is None:
        return
    try:
        hook(context)
    except (UsageError, KeyboardInterrupt):
        raise
    except api.StopRun as exc:  # e.g. a source copying its input onto a full disk
        raise stopped({"message": str(exc)}, exc.exit_code) from exc
    except Exception as exc:
        raise UsageError(f"{group} {name!r} could not start: {exc}") from exc


def length(source: Any) -> int | None:
    """How many items the source has, or None when it cannot say."""
    try:
        return len(source)
    except TypeError:
        return None
    except api.StopRun as exc:  # a source that prepares its input first and cannot write it
        raise stopped({"message": str(exc)}, exc.exit_code) from exc


def dry_run(source: Any) -> int:
    """List what would run (``dry_run=true``); nothing runs."""
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
        logger.info(f"  {printable(item.label)}  {printable(str(item.data), 110)}")
    if shown and count > len(shown):
        logger.info(f"  ... and {count - len(shown)} more")
    return EXIT_OK


def stopped(error: dict[str, Any], code: int) -> UsageError:
    """The one-line error a task's (or post-processor's) ``StopRun`` ends the run with."""
    stopped = UsageError(error.get("message") or "the task stopped the run")
    stopped.exit_code = code
    return stopped


class SourceError(Exception):
    """The source raised while being read; the cause is its exception."""


def read_source(source: Any) -> Iterator[Item]:
    """The source's items; whatever it raises arrives as SourceError (not a task's bug)."""
    iterator = iter(source)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            raise SourceError(str(exc)) from exc
        yield item


def shutdown(executor: Any, wait: bool, timeout: float | None) -> None:
    """Call the executor's ``shutdown``, if it has one."""
    # ``shutdown`` is part of the contract, but an executor written against the first
    # version of it (``map`` alone) still runs.
    shutdown = getattr(executor, "shutdown", None)
    if callable(shutdown):
        shutdown(wait=wait, timeout=timeout)


def close(plugin: Any) -> None:
    """Call the plugin's ``close()``, if it has one."""
    close = getattr(plugin, "close", None)
    if callable(close):
        close()
