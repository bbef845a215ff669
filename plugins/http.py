"""Built-in task ``http``: one HTTP request per item (an API call per record)."""

from __future__ import annotations

import contextlib
import functools
import heapq
import http.client
import itertools
import math
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from runner.api import Item, RetryableError, RunContext, Task, TaskFailure
from runner.toolkit import TimedOut, attempt_deadline, retry_after_seconds
from runner_plugins.tasks import Placeholders

#: Answers that mean "too many requests" or "overloaded": retryable, holding every start.
RATE_LIMITED = (429, 503)
#: Characters of an answer's body kept in the result and in error messages.
BODY_CHARS = 1000
_CHUNK = 65536


class HttpTask(Task):
    """Sends ``method`` to ``url`` per item; placeholders (``{id}``, ``{field}``) are filled
    from the item in ``url``, ``body`` and ``headers`` values, as the shell task's argv.

    A 2xx answer succeeds with ``{"status", "bytes", "body"}`` (the body's first 1000
    characters). 429 and 503 are rate limits: retryable (``retry.attempts``), with the
    Retry-After header (seconds or an HTTP-date) as the wait, and every worker holds its
    next start meanwhile (``rate_limit``). Any other status fails the item with the status
    and the start of the body; so does a connection that cannot be made. ``timeout``
    (seconds) bounds each request, as the run's ``timeout`` does when it is shorter: past
    it, the item fails with ``TimedOut``. Values are put in as they are: quote what a URL
    cannot hold in the source.
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

    def setup(self, context: RunContext) -> None:
        self.placeholders.check(context.first_item())

    def run(self, item: Item) -> dict[str, Any]:
        url, body, *header_values = self.placeholders.fill(item)
        headers = dict(zip(self.headers, header_values, strict=True))
        data = body.encode("utf-8") if self.body is not None else None
        request = urllib.request.Request(url, data=data, headers=headers, method=self.method)
        # The request ends by the earlier of task.timeout and the run's timeout for this
        # attempt: each wait on the socket is bounded by the time left when it starts,
        # the body is read in chunks, the deadline checked between them, and at the
        # deadline its connections are shut, so that a server that trickles its answer
        # (a header line at a time) cannot hold it longer.
        deadline = time.monotonic() + self.timeout
        outer = attempt_deadline()
        if outer is not None and outer < deadline:
            deadline = outer
        budget = deadline - time.monotonic()
        watch = _Watch()
        self._deadlines.add(deadline, watch)
        opener = urllib.request.build_opener(_HTTPHandler(watch), _HTTPSHandler(watch))
        try:
            if budget <= 0:
                raise TimeoutError("no time left for it")
            with opener.open(request, timeout=budget) as answer:
                content = _read(answer, deadline)
                if watch.expired:  # what came was cut short: its end is not the answer's
                    raise TimeoutError("the answer was still coming at the deadline")
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
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError) or watch.expired:
                reason = reason if isinstance(reason, TimeoutError) else "the deadline came"
                raise TimedOut(f"no answer from {url} within {budget:.3g} s: {reason}") from None
            raise TaskFailure(f"cannot reach {url}: {reason}") from None
        finally:
            watch.close()

    @functools.cached_property
    def _deadlines(self) -> _Deadlines:
        return _Deadlines()

    def __getstate__(self) -> dict[str, Any]:
        # The watching thread stays in this process: a worker process starts its own.
        state = dict(self.__dict__)
        state.pop("_deadlines", None)
        return state


class _Watch:
    """The connections of one request, shut down at its deadline (from another thread:
    a read blocked on one of them then ends at once)."""

    def __init__(self) -> None:
        self.expired = False
        self.closed = False  # the request ended: nothing to shut any more
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def expire(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._sockets.clear()


class _Deadlines:
    """One thread that expires each request's :class:`_Watch` at its deadline, for every
    request of a task in this process (a timer thread per request would start a thread
    per item: hundreds a second against a fast service). It starts with the first
    request and ends after ``IDLE`` seconds with none watched."""

    IDLE = 5.0

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()  # ties: first added, first expired
        self._cond = threading.Condition()
        self._running = False

    def add(self, deadline: float, watch: _Watch) -> None:
        with self._cond:
            heap = self._heap
            while heap and heap[0][2].closed:  # requests that ended, mostly at the front
                heapq.heappop(heap)
            heapq.heappush(heap, (deadline, next(self._order), watch))
            if not self._running:
                self._running = True
                threading.Thread(target=self._expire, name="http-deadlines", daemon=True).start()
            elif heap[0][2] is watch:
                self._cond.notify()  # the earliest deadline now: wake the thread sooner

    def _expire(self) -> None:
        with self._cond:
            heap = self._heap
            while True:
                now = time.monotonic()
                while heap and (heap[0][2].closed or heap[0][0] <= now):
                    heapq.heappop(heap)[2].expire()  # a closed watch ignores it
                if heap:
                    self._cond.wait(heap[0][0] - now)
                elif not self._cond.wait(self.IDLE) and not heap:
                    self._running = False
                    return


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Watched(http.client.HTTPConnection):
    """A connection that hands its socket to the request's :class:`_Watch` (over TLS
    too: HTTPSConnection's connect wraps the socket before this one hands it on)."""

    def __init__(self, *args: Any, watch: _Watch, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watch = watch

    def connect(self) -> None:
        super().connect()
        self.watch.add(self.sock)


class _WatchedHTTP(_Watched):
    """A watched connection over plain HTTP."""


class _WatchedHTTPS(_Watched, http.client.HTTPSConnection):
    """A watched connection over TLS."""


class _HTTPHandler(urllib.request.HTTPHandler):
    """urllib's handler of http: URLs, its connections watched."""

    def __init__(self, watch: _Watch) -> None:
        super().__init__()
        self.watch = watch

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_WatchedHTTP, watch=self.watch), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    """urllib's handler of https: URLs (the default certificate checks), watched."""

    def __init__(self, watch: _Watch) -> None:
        super().__init__()
        self.watch = watch

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_WatchedHTTPS, watch=self.watch), req)


def _read(answer: Any, deadline: float) -> bytes:
    """The answer's body, read by chunks until ``deadline`` (``time.monotonic()``)."""
    chunks = []
    while chunk := answer.read1(_CHUNK):
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise TimeoutError("the answer was still coming at the deadline")
    return b"".join(chunks)
