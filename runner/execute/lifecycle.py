"""The run's plugins: built from their config, set up, read, shut down and closed.

Only ``map`` (executors), ``run`` (tasks) and iteration (sources) are required of a
plugin; ``setup``, ``describe``, ``shutdown``, ``kill`` and ``close`` are optional. A plugin
that subclasses its contract in :mod:`runner.api` has the contract's hooks, called as
typed methods; subclassing is optional, so the hooks of one that does not are looked up
by name, in one place (:func:`_hook`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from loguru import logger

from runner import api
from runner.api import Item, RunContext
from runner.config import registry
from runner.config.settings import Settings
from runner.errors import EXIT_OK, PluginError, UsageError
from runner.show.labels import printable

DRY_RUN_SHOWN = 10
#: The contracts that define ``setup(context)``.
_WITH_SETUP = (api.Source, api.Task, api.PostProcessor)


def _hook(plugin: object, name: str) -> Callable[..., Any] | None:
    """The method ``name`` of a plugin that need not have it, or None.

    The one lookup by name: a plugin need not subclass its contract (a class with the
    required methods is enough), so an optional hook is whatever it defines under the
    name, if callable.
    """
    hook = getattr(plugin, name, None)
    return hook if callable(hook) else None


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


def setup(group: str, name: str, plugin: object, context: RunContext) -> None:
    """Call the plugin's ``setup(context)``, if it has one; its failure is one line."""
    hook = plugin.setup if isinstance(plugin, _WITH_SETUP) else _hook(plugin, "setup")
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
    describe = _hook(source, "describe")
    described = describe is not None
    if describe is not None:
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


class FirstItem:
    """``RunContext.first_item``: the source's first item, read once, when a plugin first
    asks (a run whose plugins never ask reads its source as before); :meth:`items` then
    gives every item, that one first, and a source's failure on it where items are read."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self._first: Item | None = None
        self._items: Iterator[Item] | None = None

    def __call__(self) -> Item | None:
        if self._items is None:
            items = read_source(self.source)
            try:
                self._first = next(items)
            except StopIteration:
                self._items = iter(())
            except SourceError as exc:  # raised again where the run reads items
                self._items = _raising(exc)
            else:
                self._items = itertools.chain([self._first], items)
        return self._first

    def items(self) -> Iterator[Item]:
        """Every item of the source, once."""
        return read_source(self.source) if self._items is None else self._items


def _raising(exc: Exception) -> Iterator[Item]:
    raise exc
    yield  # pragma: no cover  (a generator: raises when first read)


def shutdown(executor: object, wait: bool, timeout: float | None) -> None:
    """Call the executor's ``shutdown``, if it has one."""
    # ``shutdown`` is part of the contract, but an executor written against the first
    # version of it (``map`` alone) still runs.
    if isinstance(executor, api.Executor):
        executor.shutdown(wait=wait, timeout=timeout)
    elif (hook := _hook(executor, "shutdown")) is not None:
        hook(wait=wait, timeout=timeout)


def kill(executor: object) -> int:
    """Call the executor's ``kill()``, if it has one: how many running items it stopped."""
    if isinstance(executor, api.Executor):
        return executor.kill() or 0
    hook = _hook(executor, "kill")
    return (hook() or 0) if hook is not None else 0


def close(closable: object) -> None:
    """Call ``close()`` of a plugin, or of the outcomes an executor's ``map`` returned
    (a generator's ends it, which unblocks workers waiting to hand over outcomes), if it
    has one."""
    if isinstance(closable, (api.Task, Generator)):
        closable.close()
    elif (hook := _hook(closable, "close")) is not None:
        hook()


class Ending:
    """How long the run may still wait for its running items while it ends.

    Until the run is stopped (a signal, ``halt.mode=now``, a journal it cannot write),
    each wait for running items (the executor's drain, its shutdown, the stack's) may
    take ``grace`` seconds. Once it is stopped they share one countdown of ``grace``
    seconds, so that the run ends ``timeout_grace`` after it was stopped, not once per
    wait in turn.
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.at: float | None = None  # time.monotonic() when the countdown ends

    def start(self) -> float:
        """Start the countdown (once); the seconds left."""
        if self.at is None:
            self.at = time.monotonic() + self.grace
        return self.remaining()

    def remaining(self) -> float:
        """The seconds a wait may take now."""
        return self.grace if self.at is None else max(self.at - time.monotonic(), 0.0)

    def shutdown(self, executor: object) -> None:
        """Shut the executor down, waiting for running items the seconds left."""
        shutdown(executor, True, self.remaining())
