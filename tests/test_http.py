"""The http task against a real service on the loopback address."""

from __future__ import annotations

import concurrent.futures
import pickle
import threading

import pytest

from runner.api import Item, RetryableError, TaskFailure
from runner_plugins.http import HttpTask
from tests.conftest import RunCli
from tests.http_service import serve


def test_a_request_per_item_with_placeholders_filled() -> None:
    """The item's fields fill the URL; a 200 answer is the item's result."""
    with serve(latency=0) as service:
        task = HttpTask(url=service.url + "/records/{id}?kind={kind}")
        result = task.run(Item("r7", {"kind": "a"}))
    assert result == {
        "status": 200,
        "bytes": len("ok /records/r7?kind=a\n"),
        "body": "ok /records/r7?kind=a\n",
    }


def test_429_is_a_retryable_rate_limit_with_its_retry_after() -> None:
    """A service past its capacity answers 429: a rate limit with the wait it asked for."""
    with serve(latency=0, capacity=0, retry_after=2.5) as service:
        with pytest.raises(RetryableError) as caught:
            HttpTask(url=service.url + "/{id}").run(Item("1"))
    assert caught.value.rate_limited and caught.value.wait == 2.5
    assert "HTTP 429" in str(caught.value)


def test_other_errors_fail_the_item() -> None:
    """No service listening: the item fails naming the URL; bad settings are refused."""
    with serve(latency=0) as service:
        url = service.url
    with pytest.raises(TaskFailure, match="cannot reach"):
        HttpTask(url=url + "/{id}", timeout=2).run(Item("1"))
    with pytest.raises(TaskFailure, match=r"\{missing\} has no value"):
        HttpTask(url=url + "/{missing}").run(Item("1"))
    with pytest.raises(ValueError, match="timeout=0"):
        HttpTask(url=url, timeout=0)


def test_one_thread_watches_every_requests_deadline() -> None:
    """Many requests, from several threads, are watched by one thread of the task's (not
    a timer thread each), and a copy sent to another process watches with its own."""
    with serve(latency=0.01) as service:
        task = HttpTask(url=service.url + "/{id}", timeout=5)
        before = set(threading.enumerate())
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = list(pool.map(task.run, (Item(str(n)) for n in range(40))))
        watchers = [t for t in set(threading.enumerate()) - before if t.name == "http-deadlines"]
        copy = pickle.loads(pickle.dumps(task))
        assert copy.run(Item("x"))["status"] == 200
    assert [r["status"] for r in results] == [200] * 40
    assert len(watchers) == 1


def test_a_run_retries_rate_limited_requests(run_app: RunCli) -> None:
    """`python -m runner task=http` with retries: every item ends ok, 429s were retried."""
    with serve(latency=0.05, capacity=2, retry_after=0.1) as service:
        result = run_app(
            "task=http", f"task.url='{service.url}/{{id}}'", "source.count=20", "parallel=6",
            "retry.attempts=20", "retry.backoff=0.05",
        )  # fmt: skip
        rejected = service.count(429)
    assert result.returncode == 0, result.output
    assert result.summary()["succeeded"] == 20
    retried = [r for r in result.results() if r.get("retries")]
    assert rejected > 0 and sum(len(r["retries"]) for r in retried) == rejected
