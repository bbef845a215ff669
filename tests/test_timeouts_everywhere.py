"""The run's ``timeout`` holds for every task on every executor at every count, and for
every request of the ``http`` task (docs/FAULTS.md, rows F3 and F4)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import RunCli
from tests.fault_matrix import executors

TIMEOUT = 1.0
GRACE = 1.0
#: The bound docs/FAULTS.md promises for a Python task past its timeout: it is recorded
#: as timed out once ``timeout_grace`` (and half a second) has passed after its deadline,
#: the watchdog looking every quarter of a second.
RECORDED_BY = TIMEOUT + GRACE + 0.5 + 0.25
#: On top of a bound: a busy machine's scheduling.
SLACK = 2.0
#: How long the stuck tasks would run: the run must not wait for them.
STUCK = 20


@pytest.mark.parametrize("executor", executors("F3"))
def test_timeout_holds_at_parallel_1_for_a_single_item(run_app: RunCli, executor: str) -> None:
    """parallel=1, one item of a Python task stuck for 20 s, timeout=1: it is recorded as
    TimedOut within timeout + timeout_grace + 0.75 s, and the run does not wait for it."""
    started = time.monotonic()
    result = run_app(
        f"executor={executor}",
        "parallel=1",
        "source.count=1",
        f"task.seconds={STUCK}",
        f"timeout={TIMEOUT:g}",
        f"timeout_grace={GRACE:g}",
    )
    took = time.monotonic() - started
    assert result.returncode == 1, result.output
    [record] = result.results()
    assert record["status"] == "failed" and record["error"]["type"] == "TimedOut", record
    assert record["seconds"] < RECORDED_BY + SLACK, record
    assert took < STUCK, f"the run waited {took:.1f} s for its stuck item"


@pytest.mark.parametrize("executor", [e for e in executors("F3") if e in ("sequential", "thread")])
def test_timeout_holds_for_every_item_at_parallel_1(run_app: RunCli, executor: str) -> None:
    """parallel=1 with two stuck items: each is recorded as TimedOut in turn, within its
    bound, a new worker taking the stuck one's place."""
    result = run_app(
        f"executor={executor}",
        "parallel=1",
        "source.count=2",
        f"task.seconds={STUCK}",
        f"timeout={TIMEOUT:g}",
        f"timeout_grace={GRACE:g}",
    )
    assert result.returncode == 1, result.output
    records = result.results()
    assert [r["error"]["type"] for r in records] == ["TimedOut"] * 2, records
    assert all(r["seconds"] < RECORDED_BY + SLACK for r in records), records
    summary = result.summary()
    assert summary["wall_seconds"] < 2 * (RECORDED_BY + SLACK), summary


@contextmanager
def silent_server() -> Iterator[str]:
    """A loopback server that accepts connections and never answers: its URL."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            held.append(conn)  # kept open, never read from or written to

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


@contextmanager
def trickling_server() -> Iterator[str]:
    """A loopback server that answers with a header line every 0.2 s, for a minute: each
    wait for a byte is short, the answer never ends. Its URL."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)  # the request (it fits: a GET of a few hundred bytes)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                for n in range(300):
                    if stop.wait(0.2):
                        return
                    conn.sendall(f"X-Slow-{n}: yes\r\n".encode())
            except OSError:
                return  # the client gave up

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        server.close()


@pytest.mark.parametrize(
    "bound",
    [
        pytest.param(("task.timeout=60", f"timeout={TIMEOUT:g}"), id="run-timeout"),
        pytest.param((f"task.timeout={TIMEOUT:g}",), id="task-timeout"),
    ],
)
def test_an_http_request_that_is_never_answered_ends_at_its_timeout(
    run_app: RunCli, bound: tuple[str, ...]
) -> None:
    """A server that accepts and never answers: each request ends at the earlier of
    task.timeout and the run's timeout (TimedOut), not when the server gives up."""
    with silent_server() as url:
        result = run_app(
            "task=http",
            f"task.url='{url}/{{id}}'",
            "source.count=2",
            "parallel=1",
            f"timeout_grace={GRACE:g}",
            *bound,
        )
    assert result.returncode == 1, result.output
    records = result.results()
    assert [r["error"]["type"] for r in records] == ["TimedOut", "TimedOut"], records
    # The request itself ends at the deadline: the watchdog's later bound is not needed.
    assert all(r["seconds"] < TIMEOUT + SLACK for r in records), records
    assert "no answer from" in records[0]["error"]["message"]


def test_an_http_answer_that_trickles_in_ends_at_its_timeout(run_app: RunCli) -> None:
    """A server that sends a header line every 0.2 s: each wait is short, yet the request
    ends at task.timeout (its connection shut at the deadline), as TimedOut."""
    with trickling_server() as url:
        result = run_app(
            "task=http",
            f"task.url='{url}/{{id}}'",
            "source.count=1",
            f"task.timeout={TIMEOUT:g}",
        )
    assert result.returncode == 1, result.output
    [record] = result.results()
    assert record["error"]["type"] == "TimedOut", record
    assert record["seconds"] < TIMEOUT + SLACK, record
