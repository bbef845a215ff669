"""A real HTTP service on the loopback address for tests and benchmarks: each request is
answered after ``latency`` seconds, or at once with 429 + Retry-After while more than
``capacity`` requests are in progress (a rate-limited API). With ``keep_alive``, it speaks
HTTP/1.1 and keeps each connection open for the client's next request; ``backlog`` is its
listen queue (a few dozen clients connecting at once need more than socketserver's 5).

A service limited by rate instead: ``per_second`` answers 429 to a request that finds no
token in its bucket (``per_second`` tokens a second, at most ``burst`` kept, by default
a tenth of a second's worth; a refused request takes none). ``retry_after=None`` sends
no Retry-After header."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Service(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        latency: float,
        capacity: int | None,
        retry_after: float | str | None,
        keep_alive: bool = False,
        backlog: int = 5,
        per_second: float | None = None,
        burst: float | None = None,
    ) -> None:
        self.request_queue_size = backlog  # read by listen() in the constructor
        super().__init__(("127.0.0.1", 0), KeepAliveHandler if keep_alive else Handler)
        self.latency = latency
        self.capacity = capacity
        self.retry_after = retry_after
        self.per_second = per_second
        self.burst = burst if burst is not None else max(1.0, (per_second or 0) / 10)
        self.tokens, self.filled = self.burst, time.monotonic()
        self.lock = threading.Lock()
        self.in_progress = 0
        self.most = 0
        #: (time.monotonic(), status) of every answer, in order.
        self.answers: list[tuple[float, int]] = []
        #: path -> how many times it was answered 200 (served, not refused).
        self.served: dict[str, int] = {}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def take(self) -> bool:
        """A token of the rate limit, if there is one (call with the lock held)."""
        if self.per_second is None:
            return True
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.filled) * self.per_second)
        self.filled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def count(self, status: int) -> int:
        with self.lock:
            return sum(1 for _, s in self.answers if s == status)


class Handler(BaseHTTPRequestHandler):
    server: Service

    def do_GET(self) -> None:
        service = self.server
        with service.lock:
            service.in_progress += 1
            busy = service.capacity is not None and service.in_progress > service.capacity
            busy = busy or not service.take()
            service.most = max(service.most, service.in_progress)
        status = 500
        try:
            if busy:
                status, body = 429, b"too many requests\n"
                wait = service.retry_after  # text goes as it is: an HTTP-date, "-5"
                headers = {} if wait is None else {"Retry-After": str(wait)}
                if isinstance(wait, float | int):
                    headers["Retry-After"] = f"{wait:g}"
            else:
                time.sleep(service.latency)
                status, body, headers = 200, f"ok {self.path}\n".encode(), {}
        finally:
            # Done once its answer is ready: the client may send its next request as
            # soon as it reads this one, before this thread would get to count it.
            with service.lock:
                service.in_progress -= 1
                service.answers.append((time.monotonic(), status))
                if status == 200:
                    service.served[self.path] = service.served.get(self.path, 0) + 1
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return None


class KeepAliveHandler(Handler):
    protocol_version = "HTTP/1.1"  # every answer has a Content-Length: the connection stays
    # The body goes in a write after the headers': with Nagle's algorithm it would wait
    # for the client's delayed ACK of them (40 ms) on a connection that stays open.
    disable_nagle_algorithm = True


@contextmanager
def serve(
    latency: float = 0.1,
    capacity: int | None = None,
    retry_after: float | str | None = 1.0,
    keep_alive: bool = False,
    backlog: int = 5,
    per_second: float | None = None,
    burst: float | None = None,
) -> Iterator[Service]:
    """Run the service in a thread for the block."""
    service = Service(latency, capacity, retry_after, keep_alive, backlog, per_second, burst)
    # shutdown() waits for the serving loop's next poll: 0.5 s by default, per test.
    thread = threading.Thread(target=service.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield service
    finally:
        service.shutdown()
        service.server_close()
        thread.join(10)
