"""Judge providers: how one HTTP API is asked for a verdict, and how its answer is read.

A provider knows a wire format and nothing else: the path under ``base_url``, the
headers that carry the key, the body for (model, prompt, max_tokens, and the system
prompt when the task has one), how a reply
gives its text and token counts, how an error reply gives its message, and which
headers say how long to wait once it refuses. Sending, timing, retries, costs and the
slot's files are the judge's (``api_judge``), the same for every provider.

Providers are registered under the entry-point group ``runner.judge_providers``,
exactly as runner's own (``anthropic``, ``openai``, ``openai_compatible``) are, so an
installed package adds one by registering a :class:`Provider` subclass there; a run
selects it with ``task.provider=<name>``.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib.metadata import entry_points
from typing import Any, ClassVar

from runner.toolkit import retry_after_seconds
from runner_plugins.judge.reply import ReplyError, is_number

#: The entry-point group of judge providers.
GROUP = "runner.judge_providers"
#: Answers that mean "too many requests" or "overloaded" (Anthropic's 529 included):
#: the run pauses every worker and retries after the wait the service asks for.
RATE_LIMITED = frozenset({429, 503, 529})


@dataclasses.dataclass(frozen=True)
class Reply:
    """What a provider's successful answer says: the reply text and what it used."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    #: The provider's id of the call, and the model that answered (as it names it).
    id: str | None = None
    model: str | None = None
    #: True when the answer stopped at ``max_tokens``: a verdict may have been cut.
    truncated: bool = False


class Provider(ABC):
    """One HTTP API's wire format (see the module doc); stateless, shared by threads."""

    #: Where requests go, under the task's ``base_url``.
    path: ClassVar[str]
    #: The prefix of the headers that say when each rate limit resets (case-insensitive).
    limit_headers: ClassVar[str] = ""

    @abstractmethod
    def headers(self, key: str | None) -> dict[str, str]:
        """The request's headers, the key among them (None: the server wants none)."""

    @abstractmethod
    def body(
        self, model: str, prompt: str, max_tokens: int, system: str | None = None
    ) -> dict[str, Any]:
        """The JSON body asking ``model`` for one answer to ``prompt``, with ``system`` as
        its system prompt (None: none). A provider whose ``body`` takes no ``system`` is
        asked without it, and refuses a task given a system prompt (see :func:`takes_system`)."""

    @abstractmethod
    def reply(self, data: Any) -> Reply:
        """The reply of a 2xx answer's JSON; ReplyError when it holds no reply text."""

    def error_message(self, data: Any) -> str | None:
        """The message of an error answer's JSON, if it has one: ``{"error": {"message":
        ...}}`` (Anthropic's and OpenAI's) or ``{"error": "..."}`` (some local servers)."""
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            message, kind = error.get("message"), error.get("type")
            if isinstance(message, str) and message:
                return f"{kind}: {message}" if isinstance(kind, str) and kind else message
        return error if isinstance(error, str) and error else None

    def reset_wait(self, headers: Mapping[str, str], now: float) -> float | None:
        """Seconds until the limit that refused resets, from ``<limit_headers>*`` headers:
        the latest reset of the limits with nothing remaining, else None. Subclasses
        read their provider's reset format in :meth:`reset_seconds`."""
        if not self.limit_headers:
            return None
        prefix = self.limit_headers.lower()
        lowered = {k.lower(): v for k, v in headers.items()}
        waits = []
        for name, value in lowered.items():
            if not (name.startswith(prefix) and "reset" in name):
                continue
            remaining = lowered.get(name.replace("reset", "remaining"))
            if remaining is not None and remaining.strip() not in ("0", "0.0"):
                continue  # not the limit that refused
            wait = self.reset_seconds(value, now)
            if wait is not None:
                waits.append(wait)
        return max(waits) if waits else None

    def reset_seconds(self, value: str, now: float) -> float | None:
        """Seconds until a reset header's ``value``, or None when it cannot be read."""
        return None


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """The wait a ``retry-after-ms`` (OpenAI's) or ``retry-after`` header asks for, in
    seconds, or None when there is none or it is unreadable."""
    lowered = {k.lower(): v.strip() for k, v in headers.items()}
    millis = _seconds(lowered.get("retry-after-ms", ""))
    if millis is not None:
        return millis / 1000
    return retry_after_seconds(lowered.get("retry-after"), now)


#: A number of milliseconds: ASCII digits, as retry-after's delta-seconds (float() would
#: take "٣", "1_000", "1e3" and "+5" too, which no service means).
_MILLIS = re.compile(r"\d+(?:\.\d+)?", re.ASCII)


def _seconds(text: str) -> float | None:
    if not _MILLIS.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def rfc3339_wait(value: str, now: float) -> float | None:
    """Seconds from ``now`` until an RFC 3339 time (``2026-12-06T08:00:30Z``)."""
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)", re.ASCII)


def duration_wait(value: str) -> float | None:
    """Seconds of a Go-style duration (``1s``, ``6m0s``, ``20ms``, ``1h2m``), as OpenAI's
    ``x-ratelimit-reset-*`` headers give them."""
    text = value.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def wait_for(
    provider: Provider, headers: Mapping[str, str], now: float | None = None
) -> float | None:
    """How long a refusal asks to wait: ``retry-after`` when sent, else the provider's
    rate-limit reset headers, else None (runner's own backoff)."""
    now = time.time() if now is None else now
    wait = retry_after(headers, now)
    return wait if wait is not None else provider.reset_wait(headers, now)


def count(value: Any) -> int | None:
    """A token count as a reply gives it, or None when it is not a count."""
    return int(value) if is_number(value) and value >= 0 else None


def unusable(what: str) -> ReplyError:
    """The error of a 2xx answer that holds no reply."""
    return ReplyError(f"the API's answer has no reply: {what}")


def takes_system(provider: Provider) -> bool:
    """Whether ``provider.body`` takes a ``system`` prompt (a provider written before
    there was one does not)."""
    try:
        return "system" in inspect.signature(provider.body).parameters
    except (TypeError, ValueError):  # no signature to read: it cannot be told one
        return False


def installed() -> dict[str, str]:
    """Every registered provider's name -> its ``module:attribute``."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def load_provider(name: str) -> Provider:
    """The provider registered as ``name``; ValueError naming the installed ones."""
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        raise ValueError(
            f"judge provider {name!r} is not installed; installed: {sorted(installed())} "
            f"(a package adds one under the entry-point group {GROUP!r})"
        )
    try:
        cls = found[0].load()
    except Exception as exc:  # a broken plugin is one line, not a traceback
        raise ValueError(
            f"judge provider {name!r} ({found[0].value}) fails to load: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ValueError(
            f"judge provider {name!r} ({found[0].value}) is not a subclass of "
            f"{Provider.__module__}.Provider"
        )
    return cls()
