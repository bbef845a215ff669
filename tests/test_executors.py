"""The executor contract suite: every executor the registry knows passes the same tests.

The executors come from the entry points (sequential, thread, process, dask and any
installed third-party one), each set up and shut down as a run does. Tasks live in
``tests/executor_tasks.py`` and observe through files, since an item may run in another
process or on a Dask worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.api import Executor, Item, Outcome, RunContext
from runner.config import registry
from runner.execute.commands import CommandGroup
from runner.execute.policies import Gate
from runner.execute.safecall import SafeCall
from runner_plugins.executors.process import ProcessExecutor
from runner_plugins.executors.sequential import SequentialExecutor
from runner_plugins.executors.thread import ThreadExecutor
from tests import executor_tasks as tasks
from tests.conftest import start_runner

NAMES = registry.names("executor")


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    """One local Dask cluster (two worker processes) for the module's dask tests."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=4, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(params=NAMES)
def executor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Executor]:
    kwargs: dict[str, Any] = {}
    if request.param == "dask":
        kwargs["address"] = request.getfixturevalue("dask_address")
    executor: Executor = registry.load_plugin("executor", request.param)(**kwargs)
    setup = getattr(executor, "setup", None)
    if setup is not None:
        setup(RunContext(output_dir=tmp_path, config={}, parallel=8))
    yield executor
    executor.shutdown(wait=True, timeout=10)


def items(count: int, **data: Any) -> Iterator[Item]:
    for index in range(count):
        yield Item(str(index), {"index": index, **data})


def run(
    executor: Executor, task: Callable[[Item], Any], source: Any, parallel: int, **options: Any
) -> list[Outcome]:
    return list(executor.map(SafeCall(task, **options), source, parallel))


def test_exception_in_one_item_isolated(executor: Executor) -> None:
    """Items that raise fail alone; every other item still runs and succeeds."""
    outcomes = run(executor, tasks.fail_every_seventh, items(200), 8)
    assert len(outcomes) == 200
    failed = {o.id for o in outcomes if o.status == "failed"}
    assert failed == {str(i) for i in range(0, 200, 7)}
    assert all(o.result == int(o.id) for o in outcomes if o.status == "ok")
    assert all(
        o.error and o.error["message"] == f"bad {o.id}" for o in outcomes if o.status == "failed"
    )


def test_exact_counts_with_64_workers_and_10k_items(executor: Executor, tmp_path: Path) -> None:
    """Every one of 10k items runs once and yields exactly one outcome under 64 workers
    (16 worker processes for the process executor: each is a Python start-up, and 16
    contend for the items as 64 do)."""
    calls = tmp_path / "calls"
    workers = 16 if isinstance(executor, ProcessExecutor) else 64
    outcomes = run(executor, tasks.note_call, items(10_000, calls=str(calls)), workers)
    seen = Counter(o.id for o in outcomes)
    assert len(seen) == 10_000 and set(seen.values()) == {1}
    ran = Counter(calls.read_text().split())
    assert len(ran) == 10_000 and set(ran.values()) == {1}
    assert Counter(o.status for o in outcomes) == {"ok": 9_000, "failed": 1_000}


def test_bounded_in_flight_with_a_long_generator(executor: Executor) -> None:
    """Items are pulled lazily: the gap between pulled and finished stays bounded."""
    # 60k items: 48 times the threads' bound, five times the others' (the process
    # executor's own window is 12,288 items at parallel=6).
    count = 60_000
    pulled = 0
    parallel = 6

    def source() -> Iterator[Item]:
        nonlocal pulled
        for index in range(count):
            pulled += 1
            yield Item(str(index))

    consumed = 0
    widest = 0
    for _ in executor.map(SafeCall(tasks.nothing), source(), parallel):
        consumed += 1
        widest = max(widest, pulled - consumed)
    assert consumed == count
    if isinstance(executor, ThreadExecutor):
        # A chunk per worker, a full queue of batches, and the batch being yielded.
        queued = parallel * (executor.queue_factor + 1) + 1
        assert 0 < widest <= queued * executor.max_chunk
    elif isinstance(executor, SequentialExecutor):
        assert widest <= 1
    else:
        # Whatever the executor's batching, a bound far below the source's length.
        assert 0 < widest <= count // 4, widest


def test_order_independence(executor: Executor) -> None:
    """Outcomes may arrive in any order, yet each item's result is its own."""
    outcomes = run(executor, tasks.square_after_a_while, items(60), 6)
    assert {o.id: o.result for o in outcomes} == {str(i): i * i for i in range(60)}


def test_parallel_workers_overlap(executor: Executor, tmp_path: Path) -> None:
    """Executors with workers run items at once (the first 4 wait for each other)."""
    parties = 1 if isinstance(executor, SequentialExecutor) else 4
    outcomes = run(executor, tasks.meet, items(24, folder=str(tmp_path), parties=parties), 4)
    assert [o.status for o in outcomes] == ["ok"] * 24, [o.error for o in outcomes if o.error]


def test_nothing_starts_between_a_halting_failure_and_its_record(
    executor: Executor, tmp_path: Path
) -> None:
    """With ``halting``, the caller has a failure before any item starts after it: it
    stops the run as the caller does on a halt, and no other item ever starts (on Dask the
    driver once sent the next item before handing the failure on)."""
    parties = 1 if isinstance(executor, SequentialExecutor) else 3
    marks, release = tmp_path / "marks", tmp_path / "release"
    marks.mkdir()
    gate = Gate()
    call = SafeCall(tasks.halting_failure, gate=gate, halting=True)
    source = items(20, folder=str(marks), parties=parties, release=str(release))
    started_then = None
    statuses = []
    for outcome in executor.map(call, source, parties):
        statuses.append((outcome.id, outcome.status))
        if outcome.status == "failed" and started_then is None:
            time.sleep(0.3)  # a slow record: still, nothing more may start meanwhile
            started_then = sorted(int(mark.name) for mark in marks.iterdir())
            gate.stop()  # what a run does once the failure is recorded and halts it
            executor.shutdown(wait=False, timeout=10)
            release.touch()
    assert started_then == list(range(parties)), started_then
    assert sorted(int(mark.name) for mark in marks.iterdir()) == list(range(parties))
    assert ("0", "failed") in statuses


def test_source_error_propagates_after_running_items(executor: Executor) -> None:
    """A source that fails part-way raises its error from map, after every earlier item."""

    def source() -> Iterator[Item]:
        yield from items(50)
        raise ValueError("line 51 is not valid JSON")

    seen = []
    with pytest.raises(ValueError, match="line 51"):
        for outcome in executor.map(SafeCall(tasks.nothing), source(), 4):
            seen.append(outcome.id)
    assert sorted(seen, key=int) == [str(i) for i in range(50)]


def test_keyboard_interrupt_in_a_task_stops_the_map(executor: Executor) -> None:
    """Ctrl-C raised inside a task reaches the caller instead of being swallowed."""
    with pytest.raises(KeyboardInterrupt):
        run(executor, tasks.interrupt_at_five, items(1000), 4)


def test_empty_and_single_item_sources(executor: Executor) -> None:
    """No items yields nothing; one item runs once."""
    assert run(executor, tasks.one, items(0), 8) == []
    [only] = run(executor, tasks.one, items(1), 8)
    assert only.result == 1 and only.id == "0"


# The fault-injection cases of the reliability work, as every executor must take them.


def _processes_mentioning(text: str) -> list[int]:
    """Pids of live processes (not zombies) whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[str]:
    """A text the test's commands carry; whatever still carries it at the end is killed
    (a grandchild that escaped its group with setsid is out of runner's reach)."""
    text = f"contract-{os.getpid()}-{tmp_path.name}"  # unique across test processes too
    yield text
    for pid in _processes_mentioning(text):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_faults_each_fail_their_own_item(executor: Executor, marker: str) -> None:
    """A raising, a hanging (its grandchild escaped the group and holds the pipes), a
    self-killed (SIGKILL, SIGSEGV) and a loud command each end alone; the timeout holds:
    the item ends without waiting for the escaped grandchild's 60 s."""
    python = sys.executable
    hang = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', sys.argv[1]"
        " + '-escaped'], start_new_session=True)\n"
        "time.sleep(60)\n"
    )
    argvs = {
        "ok": [python, "-c", "pass"],
        "exit3": [python, "-c", "raise SystemExit(3)"],
        "hang": [python, "-c", hang, marker],
        "sigkill": [python, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"],
        "sigsegv": [python, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"],
        "loud": [python, "-c", "import sys; sys.stdout.write('x' * 3_000_000)"],
    }
    source = [Item(name, {"index": i, "argv": a}) for i, (name, a) in enumerate(argvs.items())]
    outcomes = run(executor, tasks.command, source, 3, timeout=2.0)
    # The grandchild holds the hanging command's pipes for its 60 s: had the item waited
    # for them, it would have taken that long. (Whether it outlives the map depends on
    # whether its worker ended or was killed: the reaper of a killed worker ends it too.)
    hung = next(o for o in outcomes if o.id == "hang")
    assert hung.seconds < 30, "the hanging command's item waited for the escaped grandchild"
    assert {o.id: o.status for o in outcomes} == {
        "ok": "ok",
        "exit3": "failed",
        "hang": "failed",
        "sigkill": "failed",
        "sigsegv": "failed",
        "loud": "ok",
    }
    errors = {o.id: (o.error or {}).get("message", "") for o in outcomes}
    assert "exit code 3" in errors["exit3"] and "exit code -9" in errors["sigkill"]
    assert "exit code -11" in errors["sigsegv"] and "timed out" in errors["hang"]


def test_kill_stops_running_commands(executor: Executor, tmp_path: Path, marker: str) -> None:
    """shutdown + kill (an interrupted run) ends the map soon, with no command left."""
    pids = tmp_path / "pids"
    script = (
        f"import os, time\nopen({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n')\ntime.sleep(60)\n"
    )
    group = CommandGroup(grace=1.0)
    source = items(8, argv=[sys.executable, "-c", script, marker])
    outcomes = executor.map(SafeCall(tasks.command, group=group), source, 4)
    got: list[Outcome] = []
    collector = threading.Thread(target=lambda: got.extend(outcomes), daemon=True)
    collector.start()
    deadline = time.monotonic() + 60
    while len(pids.read_text().split() if pids.exists() else []) < 1:
        assert time.monotonic() < deadline, "no command started"
        time.sleep(0.05)
    executor.shutdown(wait=False, timeout=5)
    group.stop()
    executor.kill()
    collector.join(30)
    assert not collector.is_alive(), "map went on after kill"
    assert all(o.status in ("skipped", "failed") for o in got)
    commands = [int(pid) for pid in pids.read_text().split()]
    deadline = time.monotonic() + 10
    while _processes_mentioning(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_mentioning(marker) == [], f"left running: {commands}"


def test_the_contract_covers_every_registered_executor() -> None:
    """The built-in executors are registered, so none escapes this suite."""
    assert {"sequential", "thread", "process", "dask"} <= set(NAMES)


# Each executor stops on one signal, each signal stops two executors: the signals take
# one way out (the run's handler), which ends each executor's items its own way.
SIGNALLED = [
    (name, (signal.SIGINT, signal.SIGTERM)[number % 2]) for number, name in enumerate(NAMES)
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "signum"), SIGNALLED)
def test_a_signal_stops_a_real_run_with_each_executor(
    name: str, signum: int, tmp_path: Path, marker: str
) -> None:
    """``python -m runner executor=NAME`` stops on Ctrl-C / SIGTERM: exit 128 + signal,
    summary.json says interrupted, every finished item is in the journal, no command left."""
    run_dir = tmp_path / "run"
    script = tmp_path / "item.py"
    script.write_text("import sys, time\ntime.sleep(0.2 if int(sys.argv[1]) < 4 else 60)\n")
    proc = start_runner(
        f"executor={name}",
        "source.count=40",
        "task=shell",
        f"task.command=[{sys.executable},{script},'{{index}}',{marker}]",
        "parallel=4",
        "postprocessor=none",
        "progress=off",
        cwd=tmp_path,
        run_dir=run_dir,
    )
    try:
        journal = run_dir / "results.jsonl"
        deadline = time.monotonic() + 90
        finished = 0
        while finished < 4 or not _processes_mentioning(marker):
            finished = len(journal.read_text().splitlines()) if journal.exists() else 0
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the commands never started"
            time.sleep(0.1)
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert {r["id"] for r in records} >= {"0", "1", "2", "3"}
    assert len(records) == len({r["id"] for r in records}) < 40
    deadline = time.monotonic() + 10
    while _processes_mentioning(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_mentioning(marker) == []
