"""Telling a rate-limited or overloaded service from other failures, by what it says."""

from __future__ import annotations

import datetime
import email.utils
import math
import re
import time

# Only what says a rate limit: a 429 next to a word of HTTP status ("HTTP/1.1 429",
# "status: 429", "error 429", "429 Too Many Requests"), never a bare number ("parsed 429
# lines"); the phrases providers use; a Retry-After value.
_RATE_LIMIT = re.compile(
    r"too many requests|rate[ _-]?limit|overloaded|retry[ _-]?after"
    r"|\b(?:http(?:/\d(?:\.\d)?)?|status(?:[ _-]?code)?|error|code)[\s\"':=#]{0,4}429\b"
    r"|\b429[\s:,-]{1,3}(?:too many|rate|overloaded|quota)",
    re.IGNORECASE,
)
# A Retry-After value in text: its name, at most 4 separators (": ", '": "', "=") but no
# minus sign ("Retry-After: -5" asks no wait), then delta-seconds or an HTTP-date
# ("Wed, 21 Oct 2015 07:28:00 GMT", RFC 9110's preferred IMF-fixdate).
_RETRY_AFTER = re.compile(
    r"retry[ _-]?after[^\w-]{0,4}"
    r"(\d+(?:\.\d+)?(?![\w.])|[a-z]{3}, \d{2} [a-z]{3} \d{4} \d{2}:\d{2}:\d{2} gmt)"
    r"|try again in (\d+(?:\.\d+)?)\s*s",
    re.IGNORECASE | re.ASCII,
)
# delta-seconds: digits only (RFC 9110 section 10.2.3); a decimal part is taken too, as
# services send them. No sign, exponent, "inf" or "nan": those are no wait a service asks.
_DELTA_SECONDS = re.compile(r"\d+(?:\.\d+)?", re.ASCII)  # "٣" is no wait either


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """The seconds a ``Retry-After`` header's ``value`` asks to wait, or None if it asks
    nothing valid (then the run's usual backoff applies).

    Both forms of RFC 9110 (section 10.2.3): delta-seconds (``"120"``; a decimal such as
    ``"2.5"`` is taken too) and an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``, read
    by :func:`email.utils.parsedate_to_datetime`), counted from ``now`` (``time.time()``
    seconds; a date already past asks 0). A negative, signed or malformed value is None,
    and so is one too large for a float. The value may be huge: the run holds no single
    wait longer than ``retry.max_wait``.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, as RFC 5322 reads it (no datetime.UTC in 3.10)
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def detect_rate_limit(text: str) -> tuple[bool, float | None]:
    """Whether ``text`` says a service is rate limited or overloaded, and any wait it asks.

    Only what says so counts: HTTP status 429 (next to a word of status), "Too Many
    Requests", "rate limit", "overloaded", a Retry-After value; "parsed 429 lines" does
    not. The wait comes from "Retry-After: N" (or an HTTP-date there, as
    :func:`retry_after_seconds` reads it) or "try again in N s"; a negative one is none.
    """
    if not _RATE_LIMIT.search(text):
        return False, None
    hint = _RETRY_AFTER.search(text)
    if hint is None:
        return True, None
    return True, retry_after_seconds(hint.group(1) or hint.group(2))
