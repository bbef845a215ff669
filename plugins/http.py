"""Built-in task ``http``: one HTTP request per item (an API call per record)."""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from runner.api import Item, RetryableError, Task, TaskFailure
from runner.toolkit import retry_after_seconds
from runner_plugins.tasks import Placeholders

#: Answers that mean "too many requests" or "overloaded": retryable, holding every start.
RATE_LIMITED = (429, 503)
#: Characters of an answer's body kept in the result and in error messages.
BODY_CHARS = 1000


class HttpTask(Task):
    """Sends ``method`` to ``url`` per item; placeholders (``{id}``, ``{field}``) are filled
    from the item in ``url``, ``body`` and ``headers`` values, as the shell task's argv.

    A 2xx answer succeeds with ``{"status", "bytes", "body"}`` (the body's first 1000
    characters). 429 and 503 are rate limits: retryable (``retry.attempts``), with the
    Retry-After header (seconds or an HTTP-date) as the wait, and every worker holds its
    next start meanwhile (``rate_limit``). Any other status fails the item with the status
    and the start of the body; so does a connection that cannot be made or a ``timeout``
    (seconds per request). Values are put in as they are: quote what a URL cannot hold in
    the source.
    """

    def __init__(
        self,
        url: str,
        method: str = "GET",
        body: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        if not url:
            raise ValueError("url is empty: give one, e.g. url='http://localhost:8000/{id}'")
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout={timeout!r} is invalid: give seconds, a number > 0")
        self.url = url
        self.method = method.upper()
        self.body = body
        self.headers = dict(headers or {})
        self.timeout = float(timeout)
        self.placeholders = Placeholders([url, body or "", *self.headers.values()], "placeholder")

    def run(self, item: Item) -> dict[str, Any]:
        url, body, *header_values = self.placeholders.fill(item)
        headers = dict(zip(self.headers, header_values, strict=True))
        data = body.encode("utf-8") if self.body is not None else None
        request = urllib.request.Request(url, data=data, headers=headers, method=self.method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                content = answer.read()
                return {
                    "status": answer.status,
                    "bytes": len(content),
                    "body": content[:BODY_CHARS].decode("utf-8", "replace"),
                }
        except urllib.error.HTTPError as exc:
            text = exc.read()[:BODY_CHARS].decode("utf-8", "replace")
            message = f"HTTP {exc.code} {exc.reason}" + (
                f": {text.strip()}" if text.strip() else ""
            )
            if exc.code in RATE_LIMITED:
                # Seconds or an HTTP-date; an invalid value (negative, say) asks nothing,
                # and the run's backoff applies.
                wait = retry_after_seconds(exc.headers.get("Retry-After"))
                raise RetryableError(f"rate limited: {message}", wait, rate_limited=True) from None
            raise TaskFailure(message) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TaskFailure(f"cannot reach {url}: {reason}") from None
