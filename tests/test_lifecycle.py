"""runner.execute.lifecycle: a plugin's optional hooks, with and without its contract's base
class (subclassing is optional), in-process."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runner import api
from runner.api import Item, ItemCall, Outcome, RunContext
from runner.errors import EXIT_IO, UsageError
from runner.execute import lifecycle


def context(tmp_path: Path) -> RunContext:
    return RunContext(output_dir=tmp_path, config={}, parallel=1)


class DuckExecutor:
    """An executor that does not subclass api.Executor, with every optional hook."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def map(self, fn: ItemCall, items: Iterable[Item], parallel: int) -> Iterator[Outcome]:
        return iter(())

    def setup(self, context: RunContext) -> None:
        self.calls.append(("setup", context.parallel))

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        self.calls.append(("shutdown", (wait, timeout)))

    def kill(self) -> int:
        self.calls.append(("kill", None))
        return 3

    def close(self) -> None:
        self.calls.append(("close", None))


class BareSource:
    """A source with the one required method, and attributes named like hooks that are
    not methods (config values a plugin keeps)."""

    describe = "not a method"
    close = 7
    shutdown = None

    def __iter__(self) -> Iterator[Item]:
        return iter([Item("a"), Item("b")])


class QuietExecutor(api.Executor):
    """A subclass whose kill() says nothing: the contract's default shutdown stays."""

    def map(self, fn: ItemCall, items: Iterable[Item], parallel: int) -> Iterator[Outcome]:
        return iter(())

    def kill(self) -> Any:
        return None


class RecordingTask(api.Task):
    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail
        self.closed = 0

    def setup(self, context: RunContext) -> None:
        if self.fail is not None:
            raise self.fail

    def run(self, item: Item) -> None:
        return None

    def close(self) -> None:
        self.closed += 1


def test_every_hook_of_a_plugin_without_its_base_class_is_called(tmp_path: Path) -> None:
    """A class with the right methods is a plugin: its setup, shutdown, kill and close run,
    with the arguments the contract gives, and kill's count is added up."""
    executor = DuckExecutor()
    lifecycle.setup("executor", "duck", executor, context(tmp_path))
    lifecycle.shutdown(executor, False, 2.5)
    assert lifecycle.kill(executor) == 3
    lifecycle.close(executor)
    assert executor.calls == [
        ("setup", 1),
        ("shutdown", (False, 2.5)),
        ("kill", None),
        ("close", None),
    ]


def test_a_plugin_needs_no_optional_hook(tmp_path: Path, log_lines: list[str]) -> None:
    """Without the hooks (or with attributes of their names that are not methods) nothing
    is called, kill stopped nothing, and a dry run lists the first items itself."""
    source = BareSource()
    lifecycle.setup("source", "bare", source, context(tmp_path))
    lifecycle.shutdown(source, True, None)
    assert lifecycle.kill(source) == 0
    lifecycle.close(source)
    assert lifecycle.dry_run(source) == 0
    assert log_lines[0].startswith("Dry run: 2 item(s) would run")
    assert [line.split()[0] for line in log_lines[1:]] == ["a", "b"]


def test_a_dry_run_shows_what_the_source_describes(log_lines: list[str]) -> None:
    """A source's describe() replaces the listing of its first items."""

    class Described:
        def __iter__(self) -> Iterator[Item]:
            return iter([Item("a"), Item("b")])

        def describe(self) -> str:
            return "3 slots\nall complete"

    assert lifecycle.dry_run(Described()) == 0
    assert log_lines == [
        "3 slots",
        "all complete",
        "Dry run: 2 item(s) would run; nothing was run, no results written.",
    ]


def test_the_contract_s_hooks_are_called_on_a_subclass(tmp_path: Path) -> None:
    """A subclass gets the contract's defaults (a shutdown that does nothing); a kill()
    that returns None stopped nothing; its own close runs once per call."""
    executor = QuietExecutor()
    lifecycle.setup("executor", "quiet", executor, context(tmp_path))
    lifecycle.shutdown(executor, True, 1.0)
    assert lifecycle.kill(executor) == 0
    task = RecordingTask()
    lifecycle.setup("task", "recording", task, context(tmp_path))
    lifecycle.close(task)
    assert task.closed == 1


def test_a_failing_setup_is_one_line_and_a_stop_run_keeps_its_exit_code(tmp_path: Path) -> None:
    """setup's exception becomes a UsageError naming the plugin; StopRun exits 74."""
    broken = RecordingTask(fail=ValueError("no key file"))
    with pytest.raises(UsageError, match=r"^task 'recording' could not start: no key file$"):
        lifecycle.setup("task", "recording", broken, context(tmp_path))
    full = RecordingTask(fail=api.StopRun("disk full"))
    with pytest.raises(UsageError, match=r"^disk full$") as caught:
        lifecycle.setup("task", "recording", full, context(tmp_path))
    assert caught.value.exit_code == EXIT_IO


def test_closing_the_outcomes_ends_their_generator() -> None:
    """close() on what an executor's map returned ends a generator (its cleanup runs)."""
    ended: list[bool] = []

    def outcomes() -> Iterator[int]:
        try:
            yield 1
            yield 2
        finally:
            ended.append(True)

    running = outcomes()
    assert next(running) == 1
    lifecycle.close(running)
    assert ended == [True]
    assert list(running) == []
