"""Telling a rate-limited or overloaded service from other failures, by what it says."""

from __future__ import annotations

import re

# Only what says a rate limit: a 429 next to a word of HTTP status ("HTTP/1.1 429",
# "status: 429", "error 429", "429 Too Many Requests"), never a bare number ("parsed 429
# lines"); the phrases providers use; a Retry-After value.
_RATE_LIMIT = re.compile(
    r"too many requests|rate[ _-]?limit|overloaded|retry[ _-]?after"
    r"|\b(?:http(?:/\d(?:\.\d)?)?|status(?:[ _-]?code)?|error|code)[\s\"':=#]{0,4}429\b"
    r"|\b429[\s:,-]{1,3}(?:too many|rate|overloaded|quota)",
    re.IGNORECASE,
)
_RETRY_AFTER = re.compile(
    r"retry[ _-]?after\W{0,4}(\d+(?:\.\d+)?)|try again in (\d+(?:\.\d+)?)\s*s", re.IGNORECASE
)


def detect_rate_limit(text: str) -> tuple[bool, float | None]:
    """Whether ``text`` says a service is rate limited or overloaded, and any wait it asks.

    Only what says so counts: HTTP status 429 (next to a word of status), "Too Many
    Requests", "rate limit", "overloaded", a Retry-After value; "parsed 429 lines" does
    not. The wait comes from "Retry-After: N" or "try again in N s".
    """
    if not _RATE_LIMIT.search(text):
        return False, None
    hint = _RETRY_AFTER.search(text)
    return True, (float(hint.group(1) or hint.group(2)) if hint else None)
