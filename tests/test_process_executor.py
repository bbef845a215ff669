"""The process executor, on real worker processes and real signals.

Task functions are module-level classes, so that they pickle under ``spawn``: in
``tests/worker_tasks.py``, which workers import by name.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.api import Item, Outcome, RunContext, Task
from runner.execute.commands import CommandGroup
from runner.execute.policies import RetryPolicy
from runner.execute.safecall import SafeCall
from runner_plugins.executors.process import ProcessExecutor
from tests.conftest import RunCli, process_running, start_runner
from tests.worker_tasks import Command, Flaky, Hang, Logged


def items(count: int) -> Iterator[Item]:
    for index in range(count):
        yield Item(str(index), {"index": index})


def _children() -> set[int]:
    """Live children of this process, from /proc (zombies are not alive), but not
    multiprocessing's resource tracker, which ``spawn`` starts once per process."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
            tracker = b"resource_tracker" in (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(ppid) == os.getpid() and state not in ("Z", "X") and not tracker:
            found.add(int(stat.parent.name))
    return found


@pytest.fixture(autouse=True)
def _no_process_left() -> Iterator[None]:
    """Every test leaves no worker process behind, whichever way its map ended."""
    before = _children()
    yield
    assert multiprocessing.active_children() == []
    assert _children() - before == set()


def _by_id(outcomes: list[Outcome]) -> dict[str, Outcome]:
    assert len({o.id for o in outcomes}) == len(outcomes), "an item yielded twice"
    return {o.id: o for o in outcomes}


@pytest.mark.parametrize("start_method", ["spawn", "fork"])
@pytest.mark.parametrize(
    ("how", "said"),
    [("SIGKILL", "killed by SIGKILL"), ("SIGSEGV", "killed by SIGSEGV"), ("exit", "exit code 3")],
    ids=["SIGKILL", "SIGSEGV", "os._exit"],
)
def test_a_dying_worker_fails_only_its_item(
    tmp_path: Path, start_method: str, how: str, said: str
) -> None:
    """A worker that dies fails the item it ran, naming how it died; another takes its
    place, every other item succeeds once, and none of these items (3 ms each, so each
    outcome went back at once) ran twice."""
    task = Logged(tmp_path / "calls", seconds=0.003, how=how, at=7)
    executor = ProcessExecutor(start_method=start_method)
    outcomes = _by_id(list(executor.map(SafeCall(task), items(40), 2)))
    assert set(outcomes) == {str(i) for i in range(40)}
    dead = outcomes.pop("7")
    assert dead.status == "failed" and dead.error is not None
    assert dead.error["type"] == "WorkerDied"
    assert dead.error["message"] == f"the worker process running item '7' died ({said})"
    assert dead.finished >= dead.started > 0
    assert {o.status for o in outcomes.values()} == {"ok"}
    assert task.calls() == {str(i): 1 for i in range(40)}


def test_a_slow_item_among_cheap_ones_never_runs_twice(tmp_path: Path) -> None:
    """In a chunk of cheap items, the slow item's outcome went back at once: when the
    worker dies on the next item, no item runs again, and each item still has exactly
    one outcome."""
    task = Logged(tmp_path / "calls", how="SIGKILL", at=1510, slow=1509)
    outcomes = _by_id(list(ProcessExecutor().map(SafeCall(task), items(3000), 2)))
    assert len(outcomes) == 3000
    assert outcomes["1509"].ok and outcomes["1510"].status == "failed"
    calls = task.calls()
    assert set(calls) == set(outcomes) and max(calls.values()) == 1


@pytest.mark.parametrize("attempts", [1, 3])
def test_items_whose_outcomes_die_with_their_worker_do_not_run_again(
    tmp_path: Path, attempts: int
) -> None:
    """Cheap items' outcomes wait in the worker's batch: when it dies on item 5, the
    items that had finished there may have used all their attempts, so they fail as
    WorkerDied, saying they may have run, and none starts again (it did, before); the
    items it had not started run elsewhere, once."""
    task = Logged(tmp_path / "calls", how="exit", at=5)
    call = SafeCall(task, RetryPolicy(attempts, backoff=0.01))
    outcomes = _by_id(list(ProcessExecutor(start_method="fork").map(call, items(40), 1)))
    assert set(outcomes) == {str(i) for i in range(40)}
    assert task.calls() == {str(i): 1 for i in range(40)}
    dead = outcomes.pop("5")
    assert dead.error is not None and dead.error["type"] == "WorkerDied"
    for outcome in outcomes.values():
        if not outcome.ok:
            assert outcome.error is not None and outcome.error["type"] == "WorkerDied"
            assert outcome.error["message"] == (
                "it may have run: its outcome was lost with its worker process (exit code 3)"
            )
            assert int(outcome.id) < 5


def test_a_worker_is_known_dead_while_a_process_it_forked_holds_its_pipes(
    tmp_path: Path,
) -> None:
    """The driver looks for a worker's exit itself, not only for the end of its pipe,
    which a process the task forked keeps open."""
    task = Logged(tmp_path / "calls", how="orphan", at=3)
    outcomes: list[Outcome] = []
    executor = ProcessExecutor()
    consumer = threading.Thread(
        target=lambda: outcomes.extend(executor.map(SafeCall(task), items(10), 2))
    )
    consumer.start()
    consumer.join(60)
    try:
        assert not consumer.is_alive(), "map waited for the orphan"
    finally:
        [orphan] = _wait_for(tmp_path / "orphan")
        os.kill(orphan, signal.SIGKILL)
        consumer.join()
    dead = _by_id(outcomes).pop("3")
    assert dead.error is not None and dead.error["type"] == "WorkerDied"
    assert len(outcomes) == 10


@pytest.mark.parametrize("deaf", [False, True], ids=["sigterm", "sigkill"])
def test_a_python_task_past_the_timeout_is_stopped(tmp_path: Path, deaf: bool) -> None:
    """A hanging Python task is recorded as timed out, its worker is gone (SIGTERM, or
    SIGKILL after the grace when it ignores SIGTERM) and the other items run."""
    fn = SafeCall(Hang(tmp_path, deaf), timeout=0.3, group=CommandGroup(grace=0.3))
    outcomes = _by_id(list(ProcessExecutor().map(fn, items(6), 2)))
    hung = outcomes.pop("2")
    assert hung.status == "failed" and hung.error is not None
    assert hung.error["type"] == "TimedOut"
    assert "timed out after 0.3 s" in hung.error["message"]
    assert hung.seconds >= 0.3
    assert {o.status for o in outcomes.values()} == {"ok"} and len(outcomes) == 5
    assert not process_running(int((tmp_path / "pid").read_text()), grace=0.5)


def test_the_timeout_holds_per_attempt_not_per_item() -> None:
    """Retries whose attempts each stay within the timeout are not stopped, although the
    item as a whole runs longer than the watchdog's patience."""
    fn = SafeCall(
        Flaky(), RetryPolicy(attempts=4, backoff=0.05), timeout=0.4, group=CommandGroup(grace=0.05)
    )
    outcomes = list(ProcessExecutor().map(fn, items(2), 2))
    assert [(o.status, o.result, len(o.retries)) for o in outcomes] == [("ok", 4, 3)] * 2
    # The watchdog's patience is 0.4 + 0.05 + 0.5 s from an attempt's start.
    assert min(o.seconds for o in outcomes) > 1.4


class Locked(Task):
    """A task holding a lock: it cannot be pickled."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def run(self, item: Item) -> None:
        return None


def test_a_task_that_does_not_pickle_is_refused_in_setup(tmp_path: Path) -> None:
    """setup names the task class and the pickling error in one line."""
    context = RunContext(output_dir=tmp_path, config={}, parallel=2, task=Locked())
    with pytest.raises(TypeError) as info:
        ProcessExecutor().setup(context)
    message = str(info.value)
    assert "\n" not in message
    assert "task Locked cannot be sent to worker processes" in message
    assert "cannot pickle '_thread.lock' object" in message
    ProcessExecutor().setup(RunContext(output_dir=tmp_path, config={}, parallel=2, task=None))


def test_map_refuses_a_task_function_that_does_not_pickle() -> None:
    """A task that cannot reach the workers (a lambda) is refused before any starts."""
    with pytest.raises(TypeError) as info:
        ProcessExecutor().map(SafeCall(lambda item: None), items(3), 2)
    message = str(info.value)
    assert message.startswith("task test_map_refuses_a_task_function_that_does_not_pickle.")
    assert "cannot be sent to worker processes: it does not pickle" in message
    assert "\n" not in message


def test_an_item_that_does_not_pickle_fails_alone(tmp_path: Path) -> None:
    """An item whose data cannot be pickled fails naming it; the others run."""

    def source() -> Iterator[Item]:
        yield from items(5)
        yield Item("bad", {"index": -1, "lock": threading.Lock()})
        yield from (Item(str(i), {"index": i}) for i in range(5, 10))

    task = Logged(tmp_path / "calls")
    outcomes = _by_id(list(ProcessExecutor().map(SafeCall(task), source(), 2)))
    bad = outcomes.pop("bad")
    assert bad.status == "failed" and bad.error is not None
    assert bad.error["type"] == "NotPicklable"
    assert bad.error["message"].startswith("item 'bad' cannot be sent to a worker: ")
    assert {o.status for o in outcomes.values()} == {"ok"} and len(outcomes) == 10


def test_a_result_that_does_not_pickle_fails_its_item_and_the_pool_goes_on(
    tmp_path: Path,
) -> None:
    """The item fails in its worker with a clear message; no worker is replaced."""
    task = Logged(tmp_path / "calls", how="unpicklable", at=3)
    outcomes = _by_id(list(ProcessExecutor().map(SafeCall(task), items(30), 2)))
    bad = outcomes.pop("3")
    assert bad.status == "failed" and bad.error is not None
    assert bad.error["type"] == "NotPicklable"
    assert bad.error["message"].startswith(
        "the result of item '3' cannot be sent back from its worker: TypeError: "
    )
    assert {o.status for o in outcomes.values()} == {"ok"}
    assert len({o.result for o in outcomes.values()}) <= 2  # the same two workers


@pytest.mark.parametrize("start_method", ["spawn", "fork"])
def test_keyboard_interrupt_in_a_task_reaches_the_caller(tmp_path: Path, start_method: str) -> None:
    """Ctrl-C raised inside a task stops the map and no worker is left."""
    task = Logged(tmp_path / "calls", how="interrupt", at=5)
    executor = ProcessExecutor(start_method=start_method)
    with pytest.raises(KeyboardInterrupt):
        list(executor.map(SafeCall(task), items(1000), 2))


def _wait_for(path: Path, words: int = 1) -> list[int]:
    """The numbers in ``path`` once it holds ``words`` of them."""
    deadline = time.monotonic() + 30
    while not path.exists() or len(path.read_text().split()) < words:
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    return [int(word) for word in path.read_text().split()]


def test_kill_stops_a_running_command_and_its_grandchild(tmp_path: Path) -> None:
    """kill() from another thread, after shutdown(wait=False): the worker's command and
    its grandchild die, the item comes back skipped (it did not finish: the run records
    nothing for it) and map ends."""
    executor = ProcessExecutor()
    fn = SafeCall(Command(tmp_path), group=CommandGroup(grace=1.0))
    outcomes: list[Outcome] = []
    consumer = threading.Thread(target=lambda: outcomes.extend(executor.map(fn, items(3), 1)))
    consumer.start()
    [child], [grandchild] = _wait_for(tmp_path / "child"), _wait_for(tmp_path / "grandchild")
    executor.shutdown(wait=False, timeout=5.0)
    assert executor.kill() == 1
    consumer.join(15)
    assert not consumer.is_alive()
    assert [(o.id, o.status) for o in outcomes] == [("0", "skipped")]
    assert not process_running(child, grace=2) and not process_running(grandchild, grace=2)


def test_shutdown_lets_running_items_finish_and_starts_nothing_more(tmp_path: Path) -> None:
    """After shutdown(wait=False) map yields what was running, then ends."""
    task = Logged(tmp_path / "calls", seconds=0.2)
    executor = ProcessExecutor()
    outcomes = executor.map(SafeCall(task), items(20), 2)
    first = next(outcomes)
    executor.shutdown(wait=False)
    rest = list(outcomes)
    assert {o.status for o in [first, *rest]} == {"ok"}
    assert len(rest) <= 2
    assert sum(task.calls().values()) == 1 + len(rest)


def test_a_map_closed_early_leaves_no_worker(tmp_path: Path) -> None:
    """Closing the generator part-way stops the workers at once."""
    task = Logged(tmp_path / "calls", seconds=0.05)
    outcomes = ProcessExecutor().map(SafeCall(task), items(50), 2)
    assert [next(outcomes).status for _ in range(3)] == ["ok"] * 3
    workers = [child.pid for child in multiprocessing.active_children()]
    assert workers
    outcomes.close()  # type: ignore[attr-defined]
    assert [pid for pid in workers if pid is not None and process_running(pid)] == []
    assert multiprocessing.active_children() == []


def test_no_more_workers_than_items_and_none_for_no_items(tmp_path: Path) -> None:
    """parallel=8 over two items starts two workers; over no items, none."""
    executor = ProcessExecutor()
    fn = SafeCall(Logged(tmp_path / "calls", seconds=0.1))
    assert list(executor.map(fn, items(0), 8)) == []
    outcomes = executor.map(fn, items(2), 8)
    next(outcomes)
    assert len(multiprocessing.active_children()) <= 2
    assert len(list(outcomes)) == 1


def test_items_in_flight_stay_bounded(tmp_path: Path) -> None:
    """Items pulled but not yet yielded stay within two chunks per worker."""
    pulled = 0

    def source() -> Iterator[Item]:
        nonlocal pulled
        for index in range(20_000):
            pulled += 1
            yield Item(str(index), {"index": index})

    executor = ProcessExecutor(max_chunk=8)
    consumed = widest = 0
    for _ in executor.map(SafeCall(Logged(Path(os.devnull))), source(), 2):
        consumed += 1
        widest = max(widest, pulled - consumed)
    assert consumed == 20_000
    assert 0 < widest <= 2 * 2 * executor.max_chunk


def test_constructor_refuses_bad_settings() -> None:
    """A start method that does not exist is named with the valid choices, in one line."""
    with pytest.raises(ValueError) as info:
        ProcessExecutor(start_method="threads")
    valid = ", ".join(multiprocessing.get_all_start_methods())
    assert str(info.value) == f"start_method='threads' is invalid. Valid choices: {valid}."
    with pytest.raises(ValueError, match="max_chunk=0"):
        ProcessExecutor(max_chunk=0)


def _ids(records: list[dict[str, Any]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"ok": set(), "failed": set()}
    for record in records:
        found[record["status"]].add(record["id"])
    return found


# Items 1, 6, 11, ... fail: their command exits 1.
FAILING = "import sys; sys.exit(int(sys.argv[1]) % 5 == 1)"


def test_cli_process_run_agrees_with_the_thread_run(run_cli: RunCli) -> None:
    """python -m runner executor=process succeeds and fails the same items as thread."""
    args = [
        "task=shell",
        "source.count=24",
        "parallel=3",
        f"task.command=[{sys.executable},-c,'{FAILING}','{{index}}']",
    ]
    thread = run_cli(*args, "executor=thread")
    process = run_cli(*args, "executor=process")
    assert thread.returncode == process.returncode == 1, process.output
    expected = {str(i) for i in range(24) if i % 5 == 1}
    assert _ids(process.results()) == _ids(thread.results())
    assert _ids(process.results())["failed"] == expected
    summary = process.summary()
    assert summary["executor"] == "process"
    assert (summary["total"], summary["failed"]) == (24, len(expected))
    assert "start_method: spawn" in (process.run_dir / ".hydra" / "config.yaml").read_text()


# A command that writes its pid and its parent's (the worker's), then sleeps.
SLEEPER = (
    "import os, sys, time, pathlib; "
    "pids = str(os.getpid()) + chr(32) + str(os.getppid()); "
    "pathlib.Path(sys.argv[1], sys.argv[2]).write_text(pids); "
    "time.sleep(60)"
)


def test_cli_sigterm_stops_workers_and_their_commands(tmp_path: Path) -> None:
    """SIGTERM to python -m runner executor=process: exit 143, the run recorded as
    interrupted, and the workers and the commands they ran are gone."""
    pids = tmp_path / "pids"
    pids.mkdir()
    command = f"task.command=[{sys.executable},-c,'{SLEEPER}',{pids},'{{index}}']"
    run_dir = tmp_path / "run"
    args = ("executor=process", "task=shell", "source.count=4", "parallel=2", command)
    proc = start_runner(*args, cwd=tmp_path, run_dir=run_dir)
    try:
        started = [_wait_for(pids / str(index), words=2) for index in range(2)]
    finally:
        proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["total"] == 0
    for pid in itertools.chain.from_iterable(started):
        assert not process_running(pid, grace=2)


def test_cli_bad_start_method_is_a_one_line_usage_error(run_cli: RunCli) -> None:
    """An unknown start method ends the run with exit 2 and one line naming it."""
    result = run_cli("executor=process", "executor.start_method=threads", "source.count=2")
    assert result.returncode == 2, result.output
    assert "start_method='threads' is invalid. Valid choices: " in result.output
    assert "Traceback" not in result.output
