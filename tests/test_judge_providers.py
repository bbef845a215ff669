"""Judge providers: the waits their refusals ask for, prices, and the registry."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime

import pytest

from runner_plugins.judge.api_judge import Price, price_for, read_prices
from runner_plugins.judge.providers import (
    Reply,
    duration_wait,
    installed,
    load_provider,
    retry_after,
    wait_for,
)
from runner_plugins.judge.providers_anthropic import Anthropic
from runner_plugins.judge.providers_openai import OpenAI

NOW = datetime(2026, 12, 6, 8, 0, 0, tzinfo=timezone.utc).timestamp()


def test_retry_after_reads_seconds_milliseconds_and_http_dates() -> None:
    """retry-after in seconds or as an HTTP date, OpenAI's retry-after-ms first."""
    assert retry_after({"Retry-After": "12"}, NOW) == 12.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "1"}, NOW) == 0.25
    date = format_datetime(datetime.fromtimestamp(NOW + 30, timezone.utc), usegmt=True)
    assert retry_after({"retry-after": date}, NOW) == 30.0
    assert retry_after({"retry-after": "soon"}, NOW) is None
    assert retry_after({"retry-after": "-3"}, NOW) is None
    assert retry_after({}, NOW) is None


@pytest.mark.parametrize("value", ["\u0663\u0660\u0660\u0660", "1_000", "1e3", "+5", " inf"])
def test_retry_after_ms_is_ascii_digits_as_retry_after_is(value: str) -> None:
    """retry-after-ms reads as retry-after does: "٣٠٠٠", "1_000" or "1e3" ask nothing."""
    assert retry_after({"retry-after-ms": value}, NOW) is None
    assert retry_after({"retry-after-ms": value, "retry-after": "4"}, NOW) == 4.0


def test_reset_headers_give_the_wait_of_the_exhausted_limit() -> None:
    """Without retry-after, the latest reset among the limits with nothing remaining."""
    anthropic = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2026-12-06T08:00:20Z",
        "anthropic-ratelimit-tokens-remaining": "9000",
        "anthropic-ratelimit-tokens-reset": "2026-12-06T08:00:50Z",
    }
    assert wait_for(Anthropic(), anthropic, NOW) == 20.0
    openai = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1m30s",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "20ms",
    }
    assert wait_for(OpenAI(), openai, NOW) == 90.0
    assert wait_for(OpenAI(), openai | {"retry-after": "2"}, NOW) == 2.0
    assert wait_for(Anthropic(), {}, NOW) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m", 3720.0),
        ("1.5s", 1.5),
        ("", None),
        ("5", None),
        ("1s junk", None),
        ("\u0663s", None),  # an Arabic-Indic 3: not a duration OpenAI writes
    ],
)
def test_durations_read_as_openai_writes_them(text: str, seconds: float | None) -> None:
    assert duration_wait(text) == seconds


def test_a_free_model_costs_nothing_without_usage() -> None:
    """A local server priced at 0 that sends no usage: its calls cost $0, not an unknown
    amount (which a budget counts at task.unreported_cost_usd, $1 a call); a priced
    model without usage is still unknown, and a count a price of 0 multiplies is not needed."""
    assert Price(0.0, 0.0).cost(Reply("verdict")) == 0.0
    assert Price(3.0, 15.0).cost(Reply("verdict")) is None
    assert Price(0.0, 10.0).cost(Reply("verdict", output_tokens=100_000)) == 1.0
    assert Price(10.0, 0.0).cost(Reply("verdict", output_tokens=100_000)) is None


def test_a_model_takes_its_own_price_else_the_longest_it_starts_with() -> None:
    prices = read_prices(
        {
            "claude-opus-4": {"input": 15, "output": 75},
            "claude-opus-4-5": {"input": 5, "output": 25},
        }
    )
    assert price_for(prices, "claude-opus-4-5-20251101") == Price(5.0, 25.0)
    assert price_for(prices, "claude-opus-4-1-20250805") == Price(15.0, 75.0)
    assert price_for(prices, "gpt-5") is None
    prices |= read_prices({"*": {"input": 0, "output": 0}})
    assert price_for(prices, "llama3.1:8b") == Price(0.0, 0.0)
    assert price_for(prices, "claude-opus-4-5-20251101") == Price(5.0, 25.0)


@pytest.mark.parametrize(
    "entry",
    [
        {"input": 1},
        {"input": 1, "output": -2},
        {"input": "1", "output": 2},
        3,
        {"input": 1, "output": 2, "cached": 0},
        {"input": True, "output": 2},
    ],
)
def test_a_price_is_two_dollar_amounts(entry: object) -> None:
    with pytest.raises(ValueError, match=r"prices\['m'\] is "):
        read_prices({"m": entry})


def test_the_built_in_providers_are_registered() -> None:
    """runner's own providers come through the entry-point group a package would use."""
    assert {"anthropic", "openai", "openai_compatible"} <= set(installed())
    assert isinstance(load_provider("anthropic"), Anthropic)
    with pytest.raises(ValueError, match=r"judge provider 'nope' is not installed; installed: \["):
        load_provider("nope")
