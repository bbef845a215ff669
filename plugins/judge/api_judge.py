"""A judge call over HTTP: one request per slot, sent through a kept-alive client.

:class:`HttpJudge` sends a provider's request (``providers``) and sorts what comes
back into a :class:`Call`: a reply with its token counts, or why there is none and
whether another attempt is worth it. 429, 503 and 529 are rate limits (with the wait
the service asked for); another 4xx is the provider's refusal, final; a 5xx, a timeout
or a dropped connection is worth a retry. The key is read from the environment variable
the config names, never from the config, and is blanked out of anything the call keeps.

Each worker thread has its own ``httpx.Client`` (:class:`Clients`), kept until the task
closes, so consecutive calls reuse a connection; a reply is read in chunks up to
MAX_REPLY_BYTES and within ``timeout`` seconds in all, so a call holds no more than its
request and its reply.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx

from runner.api import TaskFailure
from runner_plugins.judge.providers import RATE_LIMITED, Provider, Reply, wait_for
from runner_plugins.judge.reply import ReplyError

#: The most bytes of a reply read: a judge's answer is a few KiB.
MAX_REPLY_BYTES = 16 * 1024 * 1024
#: Bytes kept of an answer longer than MAX_REPLY_BYTES (in the slot's stdout.log).
KEPT_BYTES = 64 * 1024
#: Characters of an error answer kept in a failure message.
MESSAGE_CHARS = 300
#: The ``prices`` entry of every model without one of its own.
ANY_MODEL = "*"
#: What the key is replaced with wherever a call's text is kept.
BLANKED = "[api key]"
#: A key a header can carry: visible ASCII. Any other character makes httpx refuse the
#: header with an error that quotes it escaped (b'sk-...\\n...'), which blanking misses.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
#: The JSON escapes a key's characters can hide behind (\u0073, \/).
_ESCAPE = re.compile(rb"\\(?:u([0-9a-fA-F]{4})|/)")


@dataclasses.dataclass(frozen=True)
class Price:
    """US dollars per million input and output tokens."""

    input: float
    output: float

    def cost(self, reply: Reply) -> float | None:
        """What ``reply`` cost, or None when it did not say how many tokens it used; a
        count is not needed at a price of 0 (a local server's answer without usage is
        free, not a call of unknown cost counted at task.unreported_cost_usd)."""
        cached = (reply.cache_creation_input_tokens or 0) + (reply.cache_read_input_tokens or 0)
        # runner asks for no caching: cached tokens at the full input price
        tokens_in = None if reply.input_tokens is None else reply.input_tokens + cached
        tokens_out = reply.output_tokens
        if (tokens_in is None and self.input) or (tokens_out is None and self.output):
            return None
        return round(((tokens_in or 0) * self.input + (tokens_out or 0) * self.output) / 1e6, 9)


def read_prices(value: Mapping[str, Any] | None) -> dict[str, Price]:
    """The ``prices`` parameter: model -> {input, output} dollars per million tokens."""
    prices = {}
    for model, entry in (value or {}).items():
        keys = sorted(entry) if isinstance(entry, Mapping) else None
        if keys != ["input", "output"]:
            raise ValueError(
                f"prices[{model!r}] is {entry!r}; give US dollars per million tokens as "
                "{input: <number>, output: <number>}"
            )
        numbers = [entry["input"], entry["output"]]
        if not all(
            isinstance(n, int | float) and not isinstance(n, bool) and math.isfinite(n) and n >= 0
            for n in numbers
        ):
            raise ValueError(
                f"prices[{model!r}] is {dict(entry)!r}; input and output must be numbers "
                "of US dollars per million tokens >= 0"
            )
        prices[str(model)] = Price(float(numbers[0]), float(numbers[1]))
    return prices


def price_for(prices: Mapping[str, Price], model: str) -> Price | None:
    """The price of ``model``: its own entry, else the longest entry it starts with
    (``claude-opus-4-5`` prices ``claude-opus-4-5-20251101``), else the entry ``*``
    (every other model: a local server's, say), else None."""
    if model in prices:
        return prices[model]
    starts = [name for name in prices if name != ANY_MODEL and model.startswith(name)]
    return prices[max(starts, key=len)] if starts else prices.get(ANY_MODEL)


class Clients:
    """One ``httpx.Client`` per thread that calls :meth:`get`, all closed by :meth:`close`.

    Per thread because a worker's calls follow one another: its connection stays open
    between them. A copy sent to another process (the process executor pickles the
    task) starts without clients and makes its own.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[httpx.Client] = []

    def __getstate__(self) -> dict[str, Any]:
        return {"timeout": self.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def get(self) -> httpx.Client:
        """The calling thread's client."""
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            # No redirects: a key sent to base_url goes nowhere else. No compression: an
            # answer is read as it comes (iter_raw), so a small gzip body cannot unpack to
            # gigabytes past MAX_REPLY_BYTES (httpx unpacks a whole chunk at once).
            client = httpx.Client(
                timeout=self.timeout,
                follow_redirects=False,
                headers={"accept-encoding": "identity"},
            )
            self._local.client = client
            with self._lock:
                self._all.append(client)
        return client

    def discard(self, client: httpx.Client) -> None:
        """Forget ``client`` (closed at a call's deadline): the thread's next call makes
        a new one."""
        if getattr(self._local, "client", None) is client:
            self._local.client = None
        with self._lock:
            self._all = [c for c in self._all if c is not client]
        client.close()

    def close(self) -> None:
        """Close every thread's client (their connections with them)."""
        with self._lock:
            clients, self._all = self._all, []
        for client in clients:
            client.close()


@dataclasses.dataclass
class Call:
    """How one request went.

    ``reply`` is set for a 2xx answer that holds one; otherwise ``failure`` says why not,
    ``kind`` is its ``slotfiles.FAILURE_KINDS`` key, ``retry`` whether another attempt
    is worth it and ``rate_limited`` whether the service refused for load (``wait``: the
    seconds it asked for). ``billed`` says the provider may have charged for the call
    though nothing says how much (it timed out or dropped after the request was sent).
    """

    seconds: float = 0.0
    status: int | None = None
    #: The answer's bytes (key blanked), or a line saying why there are none.
    body: bytes = b""
    reply: Reply | None = None
    failure: str = ""
    kind: str = "other"
    retry: bool = False
    rate_limited: bool = False
    wait: float | None = None
    billed: bool = False


class HttpJudge:
    """Asks ``provider`` at ``base_url`` for verdicts (see the module doc)."""

    def __init__(
        self,
        provider: Provider,
        base_url: str,
        api_key_env: str | None,
        max_tokens: int,
        timeout: float,
    ) -> None:
        self.provider = provider
        self.url = base_url.rstrip("/") + provider.path
        self.api_key_env = api_key_env
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.clients = Clients(timeout)
        #: The system prompt every request carries (task.system_prompt_file), or None.
        self.system: str | None = None

    def key(self) -> str | None:
        """The key from the environment (None when ``api_key_env`` is null); TaskFailure
        naming the variable when it is unset or empty."""
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise TaskFailure(
                f"the environment variable {self.api_key_env!r} (task.api_key_env) that "
                "holds the API key is unset or empty: set it, or give another "
                "task.api_key_env (null for a server that needs no key)"
            )
        if not _HEADER_SAFE.fullmatch(key):
            raise TaskFailure(
                f"the environment variable {self.api_key_env!r} (task.api_key_env) holds "
                "more than a key: a space, a line break or a character that is not ASCII, "
                "which no header can carry; set it to the key alone (its value is not shown)"
            )
        return key

    def ask(self, model: str, prompt: str) -> Call:
        """Send one request; the :class:`Call` says how it went (never raises for the
        service's faults; TaskFailure for a missing key)."""
        key = self.key()
        headers = self.provider.headers(key)
        if self.system is None:  # as a provider without a system parameter is called
            body = self.provider.body(model, prompt, self.max_tokens)
        else:
            body = self.provider.body(model, prompt, self.max_tokens, system=self.system)
        started = time.monotonic()
        call = Call()
        client = self.clients.get()
        # httpx bounds each wait, not the answer: a server that sends its headers a line
        # at a time would hold the call for ever. At the deadline the client is closed,
        # so the next read fails (at most one more wait: the call ends within 2 x timeout).
        expired = threading.Event()
        watchdog = threading.Timer(self.timeout, lambda: (expired.set(), client.close()))
        watchdog.daemon = True
        watchdog.start()
        try:
            with client.stream("POST", self.url, json=body, headers=headers) as answer:
                call.status = answer.status_code
                call.body = self._read(answer, started)
                self._sort(call, answer.headers, key)
        except (httpx.HTTPError, httpx.StreamError) as exc:
            if not (expired.is_set() or isinstance(exc, httpx.TransportError)):
                raise
            self._failed(call, exc, expired.is_set(), key)
        finally:
            watchdog.cancel()
        if expired.is_set():
            self.clients.discard(client)
        call.seconds = time.monotonic() - started
        if not call.body:
            call.body = (call.failure + "\n").encode("utf-8")
        return call

    def _failed(self, call: Call, exc: Exception, expired: bool, key: str | None) -> None:
        """Fill ``call`` for a request that got no whole answer: a timeout (httpx's, or
        the deadline's) or a transport error."""
        if expired or isinstance(exc, httpx.TimeoutException):
            call.failure = f"no answer from {self.url} within {self.timeout:g} s (task.timeout)"
            call.kind, call.retry = "timeout", True
            # Connecting or waiting for a connection sent nothing; any later wait may have
            # been charged for.
            call.billed = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
        else:
            call.failure = f"cannot get an answer from {self.url}: {_blank(str(exc), key)}"
            call.kind, call.retry = "api_unavailable", True
            call.billed = not isinstance(exc, httpx.ConnectError)

    def _read(self, answer: httpx.Response, started: float) -> bytes:
        """The answer's body, cut at MAX_REPLY_BYTES, within ``timeout`` of ``started``
        in all (httpx's timeout bounds each wait, not a server that trickles)."""
        chunks, size = [], 0
        # Raw bytes: identity was asked for; a service that compresses anyway gives an
        # unreadable answer (the slot fails), never one unpacked past the cap.
        for chunk in answer.iter_raw():
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_REPLY_BYTES:
                break
            if time.monotonic() - started > self.timeout:
                raise httpx.ReadTimeout("the answer took longer than the timeout")
        return b"".join(chunks)[: MAX_REPLY_BYTES + 1]

    def _sort(self, call: Call, headers: Mapping[str, str], key: str | None) -> None:
        """Fill ``call`` from its status and body: a reply, or why not."""
        assert call.status is not None
        if key:
            call.body = call.body.replace(key.encode("utf-8"), BLANKED.encode("utf-8"))
        status = call.status
        whole = len(call.body) <= MAX_REPLY_BYTES
        deep = False
        try:
            data: Any = json.loads(call.body) if whole else None
        except ValueError:
            data = None
        except RecursionError:  # nested deeper than Python's json reads: no answer either
            data, deep = None, True
        if not whole:  # the slot keeps the start of it, not 16 MiB
            kept = _blank_escaped(call.body[:KEPT_BYTES], key, always=True)
            call.body = _cut(kept, key) + b"\n... (cut: longer than %d bytes)\n" % (MAX_REPLY_BYTES)
        else:
            call.body = _blank_escaped(call.body, key)
        if 200 <= status < 300:
            call.billed = True
            if data is None:
                call.failure, call.kind = _unreadable(call.body, whole, deep), "unusable_reply"
                return
            try:
                reply = self.provider.reply(data)
            except ReplyError as exc:
                call.failure, call.kind = _blank(str(exc), key), exc.kind
                return
            # Again once decoded: a JSON escape (\u0073k-...) hides the key from the bytes.
            call.reply = dataclasses.replace(
                reply,
                text=_blank(reply.text, key),
                id=_blank(reply.id, key) if reply.id else reply.id,
                model=_blank(reply.model, key) if reply.model else reply.model,
            )
            return
        message = self.provider.error_message(data) if data is not None else None
        if message is None:
            message = call.body.decode("utf-8", "replace").strip()
        message = _blank(message, key)
        said = f"HTTP {status}" + (f": {_one_line(message)}" if message else "")
        if status in RATE_LIMITED:
            call.rate_limited, call.retry, call.kind = True, True, "rate_limited"
            call.wait = wait_for(self.provider, headers)
            call.failure = f"rate limited or overloaded: {said}"
        elif status >= 500:
            call.failure, call.kind, call.retry = f"the API failed: {said}", "api_unavailable", True
        else:
            call.failure, call.kind = f"the API refused the request: {said}", "api_error"


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MESSAGE_CHARS else line[:MESSAGE_CHARS] + "..."


def _unreadable(body: bytes, whole: bool, deep: bool = False) -> str:
    if not whole:
        return f"the API's answer is longer than {MAX_REPLY_BYTES} bytes: not read"
    if deep:
        return "the API's answer is JSON nested too deep to read"
    start = _one_line(body[:200].decode("utf-8", "replace"))
    return f"the API's answer is not JSON: {start!r}"


def _cut(body: bytes, key: str | None) -> bytes:
    """The first KEPT_BYTES of ``body``, without a start of the key at the cut."""
    kept = body[:KEPT_BYTES]
    secret = (key or "").encode("utf-8")
    for size in range(min(len(secret), len(kept)), 0, -1):
        if kept.endswith(secret[:size]):
            return kept[:-size]
    return kept


def _blank(text: str, key: str | None) -> str:
    return text.replace(key, BLANKED) if key else text


def _blank_escaped(body: bytes, key: str | None, always: bool = False) -> bytes:
    """``body`` without the key where JSON escapes (``\\u0073k-...``) hide it from the
    bytes: then, or ``always``, kept with those escapes decoded (the log of an answer)."""
    if not key:
        return body
    decoded = _ESCAPE.sub(
        lambda m: chr(int(m[1], 16)).encode("utf-8", "replace") if m[1] else b"/", body
    )
    secret = key.encode("utf-8")
    if secret not in decoded and not always:
        return body
    return decoded.replace(secret, BLANKED.encode("utf-8"))
