"""The ``dask`` executor: batches on a LocalCluster, on a cluster of ``dask`` CLI processes,
and through ``python -m runner``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.api import Item, Outcome, RetryableError
from runner.config.settings import settings_from
from runner.execute.policies import Gate, RetryPolicy
from runner.execute.safecall import SafeCall
from runner_plugins.executors.dask import DaskExecutor
from runner_plugins.tasks import ShellTask
from tests.conftest import REPO, Compose, RunCli, process_running, start_runner

distributed = pytest.importorskip("distributed")


def items(count: int) -> Iterator[Item]:
    for index in range(count):
        yield Item(str(index), {"index": index})


# Tasks are pickled for the workers: module level, so that workers import them by name.


def task_pid(item: Item) -> int:
    return os.getpid()


def task_exit_at_40(item: Item) -> None:
    if item["index"] == 40:
        os._exit(1)  # the worker process dies with the item


def task_fail_every_7th(item: Item) -> int:
    if item["index"] % 7 == 0:
        raise RuntimeError(f"bad {item.id}")
    return int(item["index"]) * 2


def task_key_of_dask_task(item: Item) -> str:
    if item["index"] < 0:
        time.sleep(0.1)
    return str(distributed.get_worker().get_current_task())


def task_interrupt_at_5(item: Item) -> None:
    if item["index"] == 5:
        raise KeyboardInterrupt


def task_mark_started(item: Item) -> None:
    (Path(item["marks"]) / item.id).touch()
    time.sleep(0.02)


def task_lock_at_3(item: Item) -> Any:
    return threading.Lock() if item["index"] == 3 else item["index"]


def task_noop(item: Item) -> None:
    return None


def task_mark_then_sleep(item: Item) -> None:
    Path(item["mark"]).touch()
    time.sleep(60)


def task_rate_limited_at_0(item: Item) -> None:
    if item["index"] == 0:
        raise RetryableError("429 Too Many Requests", wait=0.3, rate_limited=True)


def statuses(outcomes: list[Outcome]) -> dict[str, str]:
    """Id -> status, after checking that no id came twice."""
    counts = Counter(o.id for o in outcomes)
    assert set(counts.values()) <= {1}, counts.most_common(3)
    return {o.id: o.status for o in outcomes}


@pytest.fixture(scope="module")
def threads_cluster() -> Iterator[str]:
    """A LocalCluster of 8 threads in this process (its tasks need not be picklable)."""
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=8, processes=False, dashboard_address=":0"
    )
    yield cluster.scheduler_address
    cluster.close()


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dask scheduler`` and two ``dask worker`` processes, as on a real cluster."""
    dask_cli = str(Path(sys.executable).parent / "dask")
    # Workers import the tasks by module name: this one is ``test_dask_executor`` under
    # pytest (tests/ has no __init__.py), ``tests.test_dask_executor`` otherwise.
    paths = [str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    logs = tmp_path_factory.mktemp("dask-cluster")
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> None:
        with open(logs / f"{name}.log", "wb") as log:
            procs.append(
                subprocess.Popen(
                    [dask_cli, *args],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=logs,
                    start_new_session=True,  # a worker's nanny and its process die together
                )
            )

    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard")
        deadline = time.monotonic() + 60
        address = None
        while address is None and time.monotonic() < deadline:
            for line in (logs / "scheduler.log").read_text(errors="replace").splitlines():
                if "Scheduler at:" in line:
                    address = line.split("Scheduler at:", 1)[1].strip()
            time.sleep(0.1)
        assert address, (logs / "scheduler.log").read_text()
        for n in range(2):
            start(f"worker{n}", "worker", address, "--nthreads", "2", "--no-dashboard")
        with distributed.Client(address) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_importing_the_plugin_does_not_import_dask() -> None:
    """Listing plugins imports the module: Dask is imported only when the executor runs."""
    code = (
        "import sys, runner_plugins.executors.dask; "
        "print(sorted({'dask', 'distributed'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_dask_ends_the_run_with_how_to_install_it(tmp_path: Path) -> None:
    """Without Dask, executor=dask stops before any item with one line and exit code 2."""
    code = (
        "import sys; sys.modules['distributed'] = None; "
        "from runner.cli import main; sys.argv[0] = 'runner'; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "executor=dask", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert 'pip install "itemrunner[dask]"' in output and 'pip install ".[dask]"' in output
    assert "Traceback" not in output
    assert not (tmp_path / "run" / "results.jsonl").exists()


def test_executor_dask_composes_from_the_constructor(compose_config: Compose) -> None:
    """executor=dask needs no YAML: its keys and defaults are the constructor's."""
    settings = settings_from(compose_config("executor=dask", "executor.address=tcp://h:8786"))
    assert settings.name("executor") == "dask"
    assert settings.params("executor") == {
        "address": "tcp://h:8786",
        "workers": None,
        "threads_per_worker": None,
        "processes": True,
        "max_batch": 256,
        "batch_seconds": 0.3,
    }


def test_bad_parameters_are_refused() -> None:
    """Counts below 1 and a non-positive batch time name the bad value."""
    with pytest.raises(ValueError, match="workers=0"):
        DaskExecutor(workers=0)
    with pytest.raises(ValueError, match="max_batch=0"):
        DaskExecutor(max_batch=0)
    with pytest.raises(ValueError, match="batch_seconds=0"):
        DaskExecutor(batch_seconds=0)


def test_every_item_once_and_failures_stay_with_their_item(threads_cluster: str) -> None:
    """Items that raise fail alone; every other item succeeds with its own result."""
    call = SafeCall(task_fail_every_7th)
    outcomes = list(DaskExecutor(threads_cluster).map(call, items(500), 8))
    assert statuses(outcomes) == {str(i): "failed" if i % 7 == 0 else "ok" for i in range(500)}
    assert all(o.result == int(o.id) * 2 for o in outcomes if o.ok)
    assert all(o.error and o.error["message"] == f"bad {o.id}" for o in outcomes if not o.ok)


def test_fast_items_share_tasks_and_slow_items_go_one_by_one(threads_cluster: str) -> None:
    """No-op items are batched many to a Dask task; items slower than batch_seconds are not."""

    executor = DaskExecutor(threads_cluster, max_batch=64, batch_seconds=0.05)
    fast = list(executor.map(SafeCall(task_key_of_dask_task), items(3000), 4))
    per_task = Counter(o.result for o in fast)
    assert len(fast) == 3000 and len(per_task) <= 3000 // 10
    assert max(per_task.values()) == 64

    slow_items = (Item(str(i), {"index": -1}) for i in range(12))
    slow = list(executor.map(SafeCall(task_key_of_dask_task), slow_items, 6))
    assert len(slow) == 12 and set(Counter(o.result for o in slow).values()) == {1}


def test_a_huge_generator_is_pulled_lazily(threads_cluster: str) -> None:
    """Items read but not yet handed on stay under 3 x slots x max_batch."""
    pulled = 0

    def source() -> Iterator[Item]:
        nonlocal pulled
        for index in range(1_000_000):
            pulled += 1
            yield Item(str(index))

    consumed = widest = 0
    parallel, max_batch = 2, 32
    executor = DaskExecutor(threads_cluster, max_batch=max_batch)
    outcomes = executor.map(SafeCall(task_noop), source(), parallel)
    for _ in outcomes:
        consumed += 1
        widest = max(widest, pulled - consumed)
        if consumed == 10_000:
            break
    outcomes.close()
    assert 0 < widest <= 3 * parallel * max_batch
    assert pulled < 10_000 + 3 * parallel * max_batch


def test_dasks_cache_of_task_keys_stays_small_in_a_long_run(
    threads_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every task key is new: the scheduler in this process would remember each in
    ``dask.utils.key_split``'s cache (the driver grew with the item count); the batches
    empty it every KEY_CACHE_TASKS tasks."""
    from dask.utils import key_split

    from runner_plugins.executors import dask_batches

    monkeypatch.setattr(dask_batches, "KEY_CACHE_TASKS", 40)
    key_split.cache_clear()
    executor = DaskExecutor(threads_cluster, max_batch=1)  # one item per task
    outcomes = list(executor.map(SafeCall(task_noop), items(400), 4))
    assert len(outcomes) == 400 and {o.status for o in outcomes} == {"ok"}
    # 400 tasks sent; without the clearing the cache holds a key each.
    assert key_split.cache_info().currsize < 40 + 40, key_split.cache_info()


def test_keyboard_interrupt_in_a_task_reaches_the_caller(threads_cluster: str) -> None:
    """Ctrl-C raised inside a task on a worker is raised by map, not swallowed by Dask."""

    seen = []
    with pytest.raises(KeyboardInterrupt):
        call = SafeCall(task_interrupt_at_5)
        for outcome in DaskExecutor(threads_cluster).map(call, items(1000), 4):
            seen.append(outcome.id)
    assert "5" not in seen and len(seen) < 1000


def test_empty_source_starts_no_cluster_and_one_item_runs_once(log_lines: list[str]) -> None:
    """No items: no LocalCluster at all; one item: a cluster, its dashboard logged, one outcome."""
    executor = DaskExecutor(processes=False)
    assert list(executor.map(SafeCall(lambda item: 1), items(0), 8)) == []
    assert not [line for line in log_lines if "dashboard" in line]
    [only] = executor.map(SafeCall(lambda item: 1), items(1), 8)
    assert only.id == "0" and only.result == 1
    [line] = [line for line in log_lines if "dashboard" in line]
    assert "local Dask cluster: 1 worker(s), 8 thread(s); dashboard: http" in line


def test_shutdown_starts_nothing_new_and_loses_no_outcome(
    threads_cluster: str, tmp_path: Path
) -> None:
    """After shutdown, items not started never start; every started item's outcome arrives."""
    work = (Item(str(i), {"marks": str(tmp_path)}) for i in range(400))
    executor = DaskExecutor(threads_cluster)
    seen = []
    for outcome in executor.map(SafeCall(task_mark_started), work, 4):
        seen.append(outcome.id)
        if len(seen) == 10:
            executor.shutdown(wait=False)
    started = sorted(path.name for path in tmp_path.iterdir())
    assert 10 <= len(seen) < 400
    assert sorted(seen) == started and len(set(seen)) == len(seen)


def test_a_task_that_cannot_be_pickled_is_refused(threads_cluster: str) -> None:
    """Workers get the task pickled: one that cannot be says so before any item runs."""
    lock = threading.Lock()
    with pytest.raises(TypeError, match="cannot be sent to Dask workers"):
        list(DaskExecutor(threads_cluster).map(SafeCall(lambda i: lock), items(3), 2))


def task_runs_held(item: Item) -> list[str]:
    from runner_plugins.executors.dask_worker import runs_held

    return runs_held(distributed.get_worker())


def scheduler_worker_plugins(dask_scheduler: Any) -> list[str]:
    return list(dask_scheduler.worker_plugins)  # what a worker joining later would get


def test_a_long_lived_worker_keeps_nothing_of_a_run_that_ended(threads_cluster: str) -> None:
    """A run's state lives on the workers as long as the run: two runs on one cluster each
    find their own while they run, and after each ends neither its workers nor its
    scheduler hold anything of it (a worker serving runs for weeks does not grow)."""
    from runner_plugins.executors.dask_worker import runs_held

    names: list[str] = []
    with distributed.Client(threads_cluster) as client:
        for _ in range(2):
            call = SafeCall(task_runs_held)
            outcomes = list(DaskExecutor(threads_cluster).map(call, items(40), 4))
            assert statuses(outcomes) == {str(i): "ok" for i in range(40)}
            [name] = {name for o in outcomes for name in o.result}  # its own, no other
            names.append(name)
            held = client.run(runs_held)
            assert held and all(runs == [] for runs in held.values()), held
            assert name not in client.run_on_scheduler(scheduler_worker_plugins)
    assert names[0] != names[1]


def test_rate_limits_reach_the_drivers_gate(threads_cluster: str) -> None:
    """A rate-limited failure on a worker pauses the run's gate; a stopped gate sends nothing."""
    gate = Gate()
    call = SafeCall(task_rate_limited_at_0, gate=gate)
    outcomes = list(DaskExecutor(threads_cluster).map(call, items(20), 2))
    assert statuses(outcomes)["0"] == "failed" and gate.pauses == 1

    gate = Gate(per_second=1000)  # admit() asks the gate for every item
    seen = []
    for outcome in DaskExecutor(threads_cluster).map(
        SafeCall(task_noop, gate=gate), items(5000), 2
    ):
        seen.append(outcome.id)
        if len(seen) == 5:
            gate.stop()  # admit() now says no: nothing more is sent
    assert 5 <= len(seen) < 5000 and len(set(seen)) == len(seen)


@pytest.mark.slow
def test_the_local_cluster_closes_on_every_way_out() -> None:
    """Closed early or interrupted: the worker processes of the LocalCluster end."""
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()

    def workers() -> list[int]:
        # Not multiprocessing's resource tracker, which lives as long as this process.
        children = me.children(recursive=True)
        return [c.pid for c in children if "resource_tracker" not in " ".join(c.cmdline())]

    before = set(workers())
    executor = DaskExecutor(workers=1, threads_per_worker=1)
    outcomes = executor.map(SafeCall(task_noop), items(100), 1)
    next(outcomes)
    started = set(workers()) - before
    assert started
    outcomes.close()
    assert not [pid for pid in started if process_running(pid)]

    with pytest.raises(KeyboardInterrupt):
        list(executor.map(SafeCall(task_interrupt_at_5), items(100), 1))
    assert not set(workers()) - before


def test_an_item_that_cannot_be_sent_fails_alone(threads_cluster: str) -> None:
    """An unpicklable item fails its batch; the batch's other items run again and succeed."""

    def source() -> Iterator[Item]:
        for item in items(600):
            if item.id == "300":
                item.data["lock"] = threading.Lock()
            yield item

    outcomes = list(DaskExecutor(threads_cluster).map(SafeCall(task_noop), source(), 4))
    assert statuses(outcomes) == {str(i): "failed" if i == 300 else "ok" for i in range(600)}
    [bad] = [o for o in outcomes if not o.ok]
    assert bad.error is not None and "cannot be sent to a Dask worker" in bad.error["message"]


def test_a_result_that_cannot_be_sent_back_fails_its_item(threads_cluster: str) -> None:
    """A result that cannot be pickled fails its own item only."""

    outcomes = list(DaskExecutor(threads_cluster).map(SafeCall(task_lock_at_3), items(40), 4))
    assert statuses(outcomes) == {str(i): "failed" if i == 3 else "ok" for i in range(40)}
    [bad] = [o for o in outcomes if not o.ok]
    assert bad.error is not None and "cannot be sent back from its worker" in bad.error["message"]


@pytest.mark.slow
def task_count_then_exit_at_0(item: Item) -> None:
    with open(Path(item["starts"]) / item.id, "a") as fh:
        fh.write("started\n")
    if item["index"] == 0:
        os._exit(1)  # the worker process dies with the item
    time.sleep(0.02)


@pytest.mark.parametrize("attempts", [1, 2])
def test_an_item_that_kills_its_worker_starts_at_most_retry_attempts_times(
    tmp_path: Path, attempts: int
) -> None:
    """On the LocalCluster the executor starts, an item whose worker process dies starts
    exactly retry.attempts times (Dask alone would start it on 4 workers), then fails
    as WorkerDied saying so; no item starts more often than that."""
    batch = [Item(str(i), {"index": i, "starts": str(tmp_path)}) for i in range(6)]
    executor = DaskExecutor(workers=1, threads_per_worker=1)
    call = SafeCall(task_count_then_exit_at_0, RetryPolicy(attempts=attempts))
    outcomes = list(executor.map(call, batch, 1))
    starts = {p.name: len(p.read_text().splitlines()) for p in tmp_path.iterdir()}
    assert starts["0"] == attempts and max(starts.values()) <= attempts, starts
    by_id = {o.id: o for o in outcomes}
    assert sorted(by_id) == [str(i) for i in range(6)] and len(outcomes) == 6
    killed = by_id["0"]
    assert killed.status == "failed" and killed.error is not None
    assert killed.error["type"] == "WorkerDied"
    assert killed.error["message"].startswith("the Dask worker running it died")
    assert (
        f"it may have started {attempts} time(s), retry.attempts={attempts}"
        in (killed.error["message"])
    )
    assert len(killed.retries) == attempts - 1
    if attempts == 2:  # the others, lost with the worker at most once, ran again
        assert all(by_id[str(i)].ok for i in range(1, 6))


def task_retry_odd_starts_exit_even(item: Item) -> None:
    """Its odd starts fail with a retryable error, its even ones kill their worker."""
    with open(Path(item["starts"]) / item.id, "a") as fh:
        fh.write("started\n")
    starts = len((Path(item["starts"]) / item.id).read_text().splitlines())
    if starts % 2:
        raise RetryableError(f"start {starts}")
    os._exit(1)


@pytest.mark.parametrize(("attempts", "expected"), [(1, 1), (2, 2), (3, 3)])
def test_retries_lost_with_a_worker_count_against_retry_attempts(
    tmp_path: Path, attempts: int, expected: int
) -> None:
    """Retries a worker made before it died count: an item starts at most retry.attempts
    times in all (a lost task used to count as one start, so it got a fresh set), and
    its record says how often it started, the lost starts first."""
    batch = [Item("0", {"starts": str(tmp_path)})]
    executor = DaskExecutor(workers=1, threads_per_worker=1)
    call = SafeCall(task_retry_odd_starts_exit_even, RetryPolicy(attempts, backoff=0.01))
    [outcome] = list(executor.map(call, batch, 1))
    assert len((tmp_path / "0").read_text().splitlines()) == expected
    assert outcome.status == "failed" and outcome.error is not None
    # One record per start: the retries, then the last one.
    assert len(outcome.retries) == expected - 1
    if attempts == 1:
        assert outcome.error["type"] == "RetryableError"
    elif attempts == 2:  # its second start killed the worker
        assert outcome.error["type"] == "WorkerDied"
        assert "it may have started 2 time(s), retry.attempts=2" in outcome.error["message"]
    else:  # sent again with the one attempt left: its third start failed, no fourth
        assert outcome.error["message"].startswith("start 3; its earlier starts were lost")
        assert "it may have started 3 time(s), retry.attempts=3" in outcome.error["message"]
        assert [r["error"]["type"] for r in outcome.retries] == ["WorkerDied"] * 2


def test_a_scheduler_that_reruns_lost_tasks_is_counted_and_named(
    tmp_path: Path, log_lines: list[str]
) -> None:
    """A scheduler runner did not start keeps its allowed-failures (Dask's default 3):
    runner says so, counts each lost task as 4 starts and never sends it again, so the
    item starts at most retry.attempts + allowed-failures times."""
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0")
    try:
        executor = DaskExecutor(cluster.scheduler_address)
        batch = [Item("0", {"index": 0, "starts": str(tmp_path)})]
        call = SafeCall(task_count_then_exit_at_0, RetryPolicy(attempts=2))
        [outcome] = list(executor.map(call, batch, 1))
        # The nanny restarts the worker the item killed: closing the cluster meanwhile
        # fails in Dask ("can only join a started process"), so it is closed once back.
        cluster.wait_for_workers(1, timeout=60)
    finally:
        cluster.close()
    assert len((tmp_path / "0").read_text().splitlines()) == 4  # the scheduler's, not ours
    assert outcome.error is not None and outcome.error["type"] == "WorkerDied"
    assert "it may have started 4 time(s), retry.attempts=2" in outcome.error["message"]
    assert any("allowed-failures" in line and "retry.attempts=2" in line for line in log_lines)


def test_a_lost_worker_fails_only_the_item_that_killed_it() -> None:
    """A worker process dying mid-batch: with retry.attempts=2 the batch's other items
    run again, once each, and the item that killed it fails after its second start."""
    dask = pytest.importorskip("dask")
    # Dask gives up on a task at the first worker it kills (it would retry 3 times), and
    # one batch at a time: nothing else dies with the item.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, dashboard_address=":0"
        )
    try:
        executor = DaskExecutor(cluster.scheduler_address, max_batch=32)
        call = SafeCall(task_exit_at_40, RetryPolicy(attempts=2))
        outcomes = list(executor.map(call, items(120), 1))
    finally:
        cluster.close()
    assert statuses(outcomes) == {str(i): "failed" if i == 40 else "ok" for i in range(120)}
    [lost] = [o for o in outcomes if not o.ok]
    assert lost.error is not None and lost.error["type"] == "WorkerDied"
    assert "it may have started 2 time(s)" in lost.error["message"]


@pytest.mark.slow
def test_items_run_in_the_workers_processes(cli_cluster: str) -> None:
    """With an address, items run in the cluster's worker processes, each exactly once."""
    outcomes = list(DaskExecutor(cli_cluster).map(SafeCall(task_pid), items(300), 4))
    assert statuses(outcomes) == {str(i): "ok" for i in range(300)}
    assert os.getpid() not in {o.result for o in outcomes}


@pytest.mark.slow
def test_kill_stops_commands_on_remote_workers(cli_cluster: str, tmp_path: Path) -> None:
    """kill() stops the commands running in other processes and ends map at once."""
    code = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    task = ShellTask([sys.executable, "-c", code, "{pidfile}"], keep_streams=False)
    pidfiles = [tmp_path / f"pid{n}" for n in range(2)]
    work = [Item(str(n), {"pidfile": str(path)}) for n, path in enumerate(pidfiles)]
    executor = DaskExecutor(cli_cluster)
    seen: list[Outcome] = []
    consumer = threading.Thread(
        target=lambda: seen.extend(executor.map(SafeCall(task.run), work, 2))
    )
    consumer.start()
    deadline = time.monotonic() + 60
    while not all(path.exists() and path.read_text() for path in pidfiles):
        assert time.monotonic() < deadline, "the commands never started"
        time.sleep(0.05)
    pids = [int(path.read_text()) for path in pidfiles]
    executor.shutdown(wait=False, timeout=5)
    assert executor.kill() == 2
    consumer.join(30)
    assert not consumer.is_alive()
    assert not [o for o in seen if o.ok]
    assert not [pid for pid in pids if process_running(pid)]


@pytest.mark.slow
def test_shutdown_with_a_timeout_stops_waiting_for_running_items(
    cli_cluster: str, tmp_path: Path
) -> None:
    """shutdown(wait=False, timeout): map ends once the time is up; a Python task still
    running on a worker is handed on as Interrupted (it never finished)."""
    mark = tmp_path / "started"
    executor = DaskExecutor(cli_cluster)
    seen: list[Outcome] = []
    work = [Item("0", {"mark": str(mark)})]
    consumer = threading.Thread(
        target=lambda: seen.extend(executor.map(SafeCall(task_mark_then_sleep), work, 1))
    )
    consumer.start()
    deadline = time.monotonic() + 60
    while not mark.exists():
        assert time.monotonic() < deadline, "the item never started"
        time.sleep(0.05)
    executor.shutdown(wait=False, timeout=0.2)
    consumer.join(30)  # the task sleeps 60 s
    assert not consumer.is_alive()
    assert [(o.id, o.status, (o.error or {}).get("type")) for o in seen] == [
        ("0", "failed", "Interrupted")
    ]


async def _hold_event_loop(seconds: float, mark: str) -> None:
    """Run on a worker, in its event loop, which it blocks (once ``mark`` exists): the
    worker answers nothing meanwhile (as a worker process deadlocked in the interpreter
    does)."""
    Path(mark).touch()
    time.sleep(seconds)  # blocking the loop is the point


@pytest.mark.slow
def test_a_stop_is_not_held_by_a_worker_that_does_not_answer(tmp_path: Path) -> None:
    """A worker whose event loop hangs answers neither "stop" nor "which items run": the
    stop waits ASK_WORKERS for an answer once, not until the worker answers (120 s), map
    ends, and the item still out is recorded as Interrupted, saying it may have started."""
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, dashboard_address=":0", silence_logs=logging.CRITICAL
    )
    client = distributed.Client(cluster)
    mark = tmp_path / "started"
    executor = DaskExecutor(cluster.scheduler_address)
    seen: list[Outcome] = []
    work = [Item("0", {"mark": str(mark)})]
    consumer = threading.Thread(
        target=lambda: seen.extend(executor.map(SafeCall(task_mark_then_sleep), work, 1))
    )
    try:
        consumer.start()
        deadline = time.monotonic() + 60
        while not mark.exists():
            assert time.monotonic() < deadline, "the item never started"
            time.sleep(0.05)
        deaf = tmp_path / "deaf"
        client.run(_hold_event_loop, 120, str(deaf), wait=False, on_error="ignore")
        while not deaf.exists():  # the worker's event loop is held from then on
            assert time.monotonic() < deadline, "the worker's event loop was never held"
            time.sleep(0.05)
        began = time.monotonic()
        executor.shutdown(wait=False, timeout=0.2)
        executor.kill()
        consumer.join(60)
        stopping = time.monotonic() - began
    finally:
        client.close()
        cluster.close(timeout=5)
    assert not consumer.is_alive()
    assert stopping < 60  # without the bound: 120 s, when the worker answers again
    [outcome] = seen
    assert (outcome.id, outcome.status) == ("0", "failed") and outcome.error is not None
    assert outcome.error["type"] == "Interrupted"
    assert "did not answer when the run stopped: it may have started" in outcome.error["message"]


@pytest.mark.slow
def test_ctrl_c_stops_a_run_on_a_dask_cluster(cli_cluster: str, tmp_path: Path) -> None:
    """SIGINT to python -m runner executor=dask: exit 130, the finished items journaled
    once each, and no command left running on the workers."""
    run_dir, marker = tmp_path / "run", f"dask-signal-{os.getpid()}-{tmp_path.name}"
    script = tmp_path / "item.py"
    script.write_text("import sys, time\ntime.sleep(0.2 if int(sys.argv[1]) < 4 else 60)\n")
    proc = start_runner(
        "executor=dask",
        f"executor.address={cli_cluster}",
        "source.count=40",
        "task=shell",
        f"task.command=[{sys.executable},{script},'{{index}}',{marker}]",
        "parallel=4",
        "progress=off",
        cwd=tmp_path,
        run_dir=run_dir,
    )
    journal = run_dir / "results.jsonl"

    def commands() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                if entry.name.isdigit() and marker in (entry / "cmdline").read_text():
                    found.append(int(entry.name))
        return found

    try:
        deadline = time.monotonic() + 90
        while len(journal.read_text().splitlines() if journal.exists() else []) < 4 or not (
            commands()
        ):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the commands never started"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert {r["id"] for r in records} >= {"0", "1", "2", "3"}
    assert len(records) == len({r["id"] for r in records}) < 40
    assert json.loads((run_dir / "summary.json").read_text())["interrupted"] is True
    assert not [pid for pid in commands() if process_running(pid)]


def failed_ids(result: Any) -> set[str]:
    return {r["id"] for r in result.results() if r["status"] == "failed"}


@pytest.mark.slow
def test_cli_on_a_dask_cluster_fails_the_same_items_as_threads(
    run_cli: RunCli, cli_cluster: str
) -> None:
    """python -m runner executor=dask executor.address=...: same failures as executor=thread."""
    code = "import sys; sys.exit(int(sys.argv[1]) % 5 == 2)"
    command = f"task.command=[{sys.executable},-c,'{code}','{{index}}']"
    args = ("parallel=4", "source.count=30", "task=shell", command)
    on_dask = run_cli("executor=dask", f"executor.address={cli_cluster}", *args)
    threaded = run_cli(*args)
    assert on_dask.returncode == threaded.returncode == 1, on_dask.output
    assert failed_ids(on_dask) == failed_ids(threaded) == {str(i) for i in range(2, 30, 5)}
    assert sorted(r["id"] for r in on_dask.results()) == sorted(str(i) for i in range(30))
    summary = on_dask.summary()
    assert (summary["executor"], summary["total"], summary["failed"]) == ("dask", 30, 6)
    assert f"Dask at {cli_cluster}: 2 worker(s), 4 thread(s); dashboard:" in on_dask.output


@pytest.mark.slow
def test_cli_on_a_local_cluster_fails_the_same_items_as_threads(run_cli: RunCli) -> None:
    """executor=dask without an address starts and closes a LocalCluster for the run."""
    args = ("parallel=2", "source.count=40", "task.seconds=0", "task.fail_rate=0.3", "task.seed=3")
    on_dask = run_cli("executor=dask", "executor.workers=1", *args)
    threaded = run_cli(*args)
    assert on_dask.returncode == threaded.returncode == 1, on_dask.output
    assert failed_ids(on_dask) == failed_ids(threaded) != set()
    assert on_dask.summary()["total"] == 40
    assert "local Dask cluster: 1 worker(s), 2 thread(s); dashboard:" in on_dask.output


def test_a_dry_run_starts_no_cluster(run_app: RunCli) -> None:
    """dry_run=true lists the items without starting Dask."""
    result = run_app("executor=dask", "dry_run=true", "source.count=3")
    assert result.returncode == 0, result.output
    assert "3 item(s) would run" in result.output and "dashboard" not in result.output


def test_an_unreachable_scheduler_is_a_usage_error(run_cli: RunCli) -> None:
    """A scheduler that does not answer ends the run before any item, with one line."""
    result = run_cli(
        "executor=dask",
        "executor.address=tcp://127.0.0.1:9",
        env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"},
    )
    assert result.returncode == 2, result.output
    assert "executor 'dask' could not start" in result.output
    assert "Traceback" not in result.output


def _log_lengths(dask_scheduler: Any) -> list[int | None]:
    """Run on the scheduler: the lengths its developers' logs keep."""
    sends = [
        ws_stream.recent_message_log.maxlen for ws_stream in dask_scheduler.stream_comms.values()
    ]
    return [dask_scheduler.transition_log.maxlen, *sends]


def _profiling(dask_worker: Any) -> bool:
    """Run on a worker: whether its statistical profiler samples its threads."""
    return "profile" in dask_worker.periodic_callbacks


def _kept(dask_scheduler: Any) -> dict[str, Any]:
    """Run on the scheduler: its extensions, the samples its monitor keeps, and how many
    records of a ``client.map`` it holds (``{"type": "Future"}`` each, one per call, in
    lists: such small dicts are not tracked by the garbage collector, their list is)."""
    import gc

    record = {"type": "Future"}
    gc.collect()  # the messages that brought them, and their futures, are garbage by now
    records = sum(
        sum(1 for entry in o if entry == record)
        for o in gc.get_objects()
        if type(o) is list and o and type(o[0]) is dict and o[0] == record
    )
    return {
        "extensions": sorted(dask_scheduler.extensions),
        "samples": dask_scheduler.monitor.maxlen,
        "records": records,
    }


def _worker_extensions(dask_worker: Any) -> list[str]:
    return sorted(dask_worker.extensions)


MAPS = 200


def test_the_local_cluster_keeps_short_logs_no_profiler_and_no_record_of_each_send() -> None:
    """The LocalCluster a run starts (its scheduler lives in the driver):

    * keeps 50 entries of Dask's developers' logs (1000 by default: each message held a
      task with its items), and a minute of system-monitor samples instead of an hour;
    * its workers do not profile (``sys._current_frames()`` every 10 ms can deadlock a
      worker on Python 3.11 < 3.11.9): the setting reaches the worker processes;
    * goes without spans, on the scheduler and on its workers: Dask's default span keeps
      a record of every ``client.map`` for good, and runner makes one per send of
      batches. Its other extensions stay.
    """
    from runner_plugins.executors import dask_cluster

    sizes = {"n_workers": 1, "threads_per_worker": 1}
    client, cluster, _ = dask_cluster.connect(None, sizes, True)
    try:
        lengths = client.run_on_scheduler(_log_lengths)
        profiling = client.run(_profiling)
        before = client.run_on_scheduler(_kept)
        for number in range(MAPS):  # sends of batches: a map each, its outcome read back
            futures = client.map(abs, [-number], key=[f"runner-batch-test-{number}"])
            assert client.gather(futures) == [number]
            del futures
        after = client.run_on_scheduler(_kept)
        workers = client.run(_worker_extensions)
    finally:
        dask_cluster.close(client, cluster)
    assert len(lengths) == 2 and set(lengths) == {50}, lengths
    assert list(profiling.values()) == [False], profiling
    assert "spans" not in after["extensions"], after
    assert {"stealing", "queues", "amm"} <= set(after["extensions"]), after
    assert after["samples"] == 120, after
    # Those of the latest maps stay a while, in Dask's developers' logs (50 entries).
    assert after["records"] - before["records"] < MAPS // 2, (before, after)
    (worker_side,) = workers.values()
    assert "spans" not in worker_side and "shuffle" in worker_side, worker_side
