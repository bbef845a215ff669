"""Retry-After (RFC 9110, section 10.2.3) and ``retry.max_wait``: both forms of the header
are honoured, an invalid value asks nothing (the usual backoff applies), no single wait is
longer than ``retry.max_wait``, and settings no wait could hold end the run before its
first item (exit 2)."""

from __future__ import annotations

import calendar
import email.utils
import time

import pytest

from runner.api import Item, RetryableError
from runner.execute.policies import RetryPolicy
from runner.toolkit import detect_rate_limit, retry_after_seconds
from runner_plugins.http import HttpTask
from tests.conftest import RunCli
from tests.http_service import serve

#: 1994-11-06 08:49:37 UTC, the date of RFC 9110's examples.
EXAMPLE = calendar.timegm((1994, 11, 6, 8, 49, 37, 0, 0, 0))


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("2.5", 2.5),  # not RFC's form, but services send it
        ("99999999999", 99999999999.0),  # as asked: retry.max_wait cuts it
        ("Sun, 06 Nov 1994 08:49:37 GMT", 10.0),  # IMF-fixdate, 10 s after "now"
        ("Sunday, 06-Nov-94 08:49:37 GMT", 10.0),  # RFC 850, which recipients must read
        ("Sun Nov  6 08:49:37 1994", 10.0),  # asctime, which recipients must read
        ("Sun, 06 Nov 1994 08:49:37 -0000", 10.0),
    ],
)
def test_both_forms_give_the_seconds_asked(value: str, seconds: float) -> None:
    """delta-seconds as they are; an HTTP-date in any of RFC 9110's three formats, counted
    from ``now``."""
    assert retry_after_seconds(value, now=EXAMPLE - 10) == seconds


def test_a_date_in_minus_0000_is_read_on_python_3_10_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """runner supports Python 3.10, whose datetime has no UTC constant (3.11 added it):
    a date naming no zone ("-0000") is still read as UTC there."""
    import datetime

    monkeypatch.delattr(datetime, "UTC", raising=False)
    value = "Sun, 06 Nov 1994 08:49:37 -0000"
    assert retry_after_seconds(value, now=EXAMPLE - 10) == 10.0


def test_a_date_already_past_asks_no_wait_and_now_defaults_to_the_clock() -> None:
    """A date in the past: 0 s. Without ``now``, the date is counted from time.time()."""
    assert retry_after_seconds("Sun, 06 Nov 1994 08:49:37 GMT") == 0.0
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (retry_after_seconds(soon) or 0) <= 30


@pytest.mark.parametrize(
    "value",
    [None, "", "-5", "+5", "-0.5", "1e3", "1_000", "inf", "nan", "soon", "5 s", "\u0663",
     "9" * 400,
     "Sun, 31 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:00:00 GMT"],
)  # fmt: skip
def test_an_invalid_value_asks_nothing(value: str | None) -> None:
    """Negative, signed, exponent, underscores, non-finite, not ASCII digits ("٣"), too
    large for a float, not a date: None."""
    assert retry_after_seconds(value, now=EXAMPLE) is None


@pytest.mark.parametrize(
    ("text", "wait"),
    [
        ("HTTP 429. Retry-After: 12", 12.0),
        ("HTTP 429. Retry-After: -5", None),
        ("HTTP 429. Retry-After: Sun, 06 Nov 1994 08:49:37 GMT", 0.0),
        ('{"error": "rate_limit", "retry_after": 2.5}', 2.5),
        ("overloaded, try again in 3s", 3.0),
    ],
)
def test_text_that_names_a_wait_reads_it_the_same_way(text: str, wait: float | None) -> None:
    """In a message (a CLI's stderr), "Retry-After: -5" asks no wait, not 5 s."""
    assert detect_rate_limit(text) == (True, wait)


def test_no_single_wait_passes_max_wait() -> None:
    """A Retry-After above retry.max_wait is cut to it; below, it is kept; one no service
    could mean (negative, NaN) gets the usual backoff (1 s times 0.5 .. 1); the backoff
    stays capped however many attempts (2.0 ** 2000 would overflow)."""
    policy = RetryPolicy(attempts=5000, backoff=1.0, max_wait=30.0)
    assert policy.wait_for(1, RetryableError("429", wait=99999999999.0)) == 30.0
    assert policy.wait_for(1, RetryableError("429", wait=float("inf"))) == 30.0
    assert policy.wait_for(1, RetryableError("429", wait=10**400)) == 30.0
    assert policy.wait_for(1, RetryableError("429", wait=20.0)) == 20.0
    for asked in (-5.0, float("nan")):
        assert 0.5 <= policy.wait_for(1, RetryableError("429", wait=asked)) <= 1.0
    assert 15.0 <= policy.wait_for(2000, RetryableError("busy")) <= 30.0


def test_default_max_wait_is_documented() -> None:
    """retry.max_wait defaults to 300 s (README, "Retries, rate limits, timeouts")."""
    assert RetryPolicy().max_wait == 300.0


def test_the_http_task_honours_an_http_date() -> None:
    """A 429 whose Retry-After is a date 3 s ahead asks about 3 s (the date has whole
    seconds), not a fraction of one."""
    ahead = email.utils.formatdate(time.time() + 3, usegmt=True)
    with serve(latency=0, capacity=0, retry_after=ahead) as service:
        with pytest.raises(RetryableError) as caught:
            HttpTask(url=service.url + "/{id}").run(Item("1"))
    assert caught.value.rate_limited
    assert caught.value.wait is not None and 1.5 <= caught.value.wait <= 3.0


def test_the_http_task_ignores_a_negative_retry_after() -> None:
    """Retry-After: -5 is no wait: the rate limit stands, the backoff applies."""
    with serve(latency=0, capacity=0, retry_after="-5") as service:
        with pytest.raises(RetryableError) as caught:
            HttpTask(url=service.url + "/{id}").run(Item("1"))
    assert caught.value.rate_limited and caught.value.wait is None


def test_a_huge_retry_after_waits_max_wait_and_the_item_fails_as_rate_limited(
    run_app: RunCli,
) -> None:
    """Retry-After: 99999999999 with retry.max_wait=0.5: the retry follows 0.5 s later and
    the item fails with the service's 429, not an OverflowError."""
    with serve(latency=0, capacity=0, retry_after="99999999999") as service:
        result = run_app(
            "task=http", f"task.url='{service.url}/{{id}}'", "source.count=1",
            "retry.attempts=2", "retry.max_wait=0.5",
        )  # fmt: skip
        asked = service.count(429)
    assert result.returncode == 1, result.output
    [record] = result.results()
    assert record["error"]["type"] == "RetryableError", record["error"]
    assert [retry["wait"] for retry in record["retries"]] == [0.5]
    assert asked == 2


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("rate_limit.per_second=1e-300", "rate_limit.per_second=1e-300 is invalid"),
        ("rate_limit.per_second=0", "rate_limit.per_second=0.0 is invalid"),
        ("retry.max_wait=0", "retry.max_wait=0.0 is invalid"),
        ("timeout=-1", "timeout=-1.0 is invalid"),
        ("timeout=1e300", "timeout=1e+300 is invalid"),
    ],
)
def test_absurd_settings_end_the_run_before_its_first_item(
    run_app: RunCli, override: str, named: str
) -> None:
    """Exit 2, one line naming the key, its value and what is valid; no item ran."""
    result = run_app("task=sleep", "task.seconds=0", "source.count=2", override)
    assert result.returncode == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "it must be a number" in lines[0]
    assert not (result.run_dir / "results.jsonl").exists()


def test_a_whole_number_too_large_for_a_float_is_read_not_a_crash(run_app: RunCli) -> None:
    """retry.attempts of 400 digits is a valid count of attempts (math.isfinite raised
    OverflowError on it: "unexpected error", exit 1); the run runs as usual."""
    result = run_app(
        "task=sleep", "task.seconds=0", "source.count=2", "retry.attempts=1" + "0" * 400
    )
    assert "unexpected error" not in result.output, result.output
    assert result.returncode == 0, result.output
    assert [r["status"] for r in result.results()] == ["ok", "ok"]
