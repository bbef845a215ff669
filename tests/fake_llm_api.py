"""A local fake of Anthropic's Messages API and OpenAI's chat completions, for tests.

:class:`FakeLlmApi` serves ``POST /v1/messages`` and ``POST /v1/chat/completions`` on
127.0.0.1 (a port the system picks), over HTTP/1.1 with connections kept alive, and
answers as the real services do: a verdict in the reply text, ``usage`` with token
counts, the provider's error bodies and headers. What it answers each model is
scripted (:attr:`FakeLlmApi.script`): a list of steps taken one per request, then
``good`` for ever:

- ``good``: a verdict (the model's :attr:`FakeLlmApi.scores`, default 0.7) with usage
  :attr:`FakeLlmApi.usage`; ``no_verdict``: a reply whose text holds no verdict;
- ``429``, ``529``, ``503``, ``500``, ``400``: that status with the provider's error body;
  ``429:N`` also sends ``retry-after: N``; ``429@reset:N`` sends no retry-after, only
  the provider's rate-limit reset headers (N seconds from now, nothing remaining);
- ``malformed``: 200 with a body that is not JSON; ``huge``: 200 with 17 MiB of reply;
  ``nested``: 200 with JSON nested 100,000 deep; ``redirect:URL``: a 307 to URL's path;
  ``gzipbomb:N``: 200 with N MiB of zeros gzipped (content-encoding gzip, whatever the
  request's accept-encoding, which :attr:`FakeLlmApi.encodings` records);
  ``drop``: the connection closed without an answer; ``slow:N``: a good answer after N
  seconds; ``trickle:N``: a good answer sent a byte at a time, N seconds apart.

A request without the expected key gets the provider's 401 (any key does when
:attr:`FakeLlmApi.key` is None); ``echo_key`` is a 403 whose message quotes the key
sent, ``escaped_key`` a good answer whose verdict quotes it, JSON-escaped. Every
request is recorded (:attr:`FakeLlmApi.requests`) with when it came, its path, headers,
body and the client's port (one port per kept-alive connection); :attr:`FakeLlmApi.last`
holds the body of the last request for each model (what a test asserts arrived: the
system prompt, say).
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
import zlib
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANTHROPIC_PATH = "/v1/messages"
OPENAI_PATH = "/v1/chat/completions"
#: The text of a good reply around its verdict.
PREFIX = "I read the task, the output and the diff.\n\n```json\n"


@dataclasses.dataclass(frozen=True)
class Request:
    """One request the fake received."""

    at: float
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    port: int

    @property
    def model(self) -> str:
        return str(self.body.get("model"))


class FakeLlmApi:
    """Both APIs on a loopback port (see the module doc); a context manager."""

    def __init__(self, key: str | None = "sk-test-fake-key-0123456789") -> None:
        self.key = key
        self.script: dict[str, list[str]] = {}
        self.scores: dict[str, float] = {}
        self.usage = (1000, 200)
        self.requests: list[Request] = []
        #: The accept-encoding of each request answered with ``gzipbomb``.
        self.encodings: list[str | None] = []
        #: Model -> the body of its last request.
        self.last: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        # shutdown() waits for the serving loop's next poll: 0.5 s by default, per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeLlmApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()  # slow answers end now
        self._server.shutdown()
        self._server.server_close()

    def next_step(self, model: str) -> str:
        with self._lock:
            steps = self.script.get(model)
            return steps.pop(0) if steps else "good"

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)
            self.last[request.model] = request.body

    def of(self, model: str) -> list[Request]:
        """The requests for ``model``, in order."""
        with self._lock:
            return [r for r in self.requests if r.model == model]

    def sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (its timeout) before a slow answer: as a real server


def _handler(api: FakeLlmApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # connections kept alive, as the real services do

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            headers = {k.lower(): v for k, v in self.headers.items()}
            api.record(Request(time.time(), self.path, headers, body, self.client_address[1]))
            anthropic = self.path == ANTHROPIC_PATH
            if not anthropic and self.path != OPENAI_PATH:
                self._send(404, {"error": {"type": "not_found", "message": self.path}})
                return
            given = headers.get("x-api-key") if anthropic else headers.get("authorization")
            if api.key is not None and given != (api.key if anthropic else f"Bearer {api.key}"):
                self._error(anthropic, 401, "authentication_error", "invalid x-api-key")
                return
            model = str(body.get("model"))
            self._answer(anthropic, model, api.next_step(model), given)

        def _answer(self, anthropic: bool, model: str, step: str, given: str | None) -> None:
            name, _, arg = step.partition(":")
            if name == "echo_key":  # as a service that quotes the key it refuses
                self._error(anthropic, 403, "permission_error", f"key {given} may not use {model}")
                return
            if name == "escaped_key":  # the key in the reply text, JSON-escaped in the body
                self._reply(anthropic, model, verdict=True, extra=f" (your key: {given})")
                return
            if name == "slow":
                api.sleep(float(arg))
                name = "good"
            if name in ("good", "no_verdict", "trickle"):
                self._reply(anthropic, model, verdict=name != "no_verdict", pause=float(arg or 0))
            elif name == "huge":  # a reply of 17 MiB
                text = json.dumps({"content": [{"type": "text", "text": "x" * (17 << 20)}]})
                self._send(200, text.encode())
            elif name == "malformed":
                self._send(200, b"<html>502 Bad Gateway</html>", "text/html")
            elif name == "nested":  # JSON nested deeper than Python's json reads
                self._send(200, b"[" * 100_000 + b"]" * 100_000)
            elif name == "gzipbomb":  # ARG MiB of zeros, gzipped, whatever was asked
                packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip format
                block = bytes(1 << 20)
                data = b"".join(packer.compress(block) for _ in range(int(arg))) + packer.flush()
                # Recorded before the answer goes: the client may be done as soon as it has it.
                api.encodings.append(self.headers.get("accept-encoding"))
                self._send(200, data, headers={"content-encoding": "gzip"})
            elif name == "redirect":  # to another server, which a client must not follow
                self._send(307, b"", headers={"location": arg + self.path})
            elif name == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif name.startswith("429@reset"):
                self._error(
                    anthropic,
                    429,
                    "rate_limit_error",
                    "slow down",
                    self._resets(anthropic, float(arg)),
                )
            else:
                status = int(name)
                kinds = {
                    429: "rate_limit_error",
                    529: "overloaded_error",
                    503: "overloaded_error",
                    500: "api_error",
                    400: "invalid_request_error",
                }
                extra = {"retry-after": arg} if arg else {}
                message = {400: "max_tokens: must be at most 64000"}.get(status, kinds[status])
                self._error(anthropic, status, kinds[status], message, extra)

        def _resets(self, anthropic: bool, seconds: float) -> dict[str, str]:
            if anthropic:
                when = datetime.now(timezone.utc) + timedelta(seconds=seconds)
                stamp = when.isoformat().replace("+00:00", "Z")
                return {
                    "anthropic-ratelimit-requests-remaining": "0",
                    "anthropic-ratelimit-requests-reset": stamp,
                    "anthropic-ratelimit-tokens-remaining": "5000",
                    "anthropic-ratelimit-tokens-reset": datetime.now(timezone.utc).isoformat(),
                }
            return {
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{seconds:g}s",
                "x-ratelimit-remaining-tokens": "5000",
                "x-ratelimit-reset-tokens": "20ms",
            }

        def _reply(
            self, anthropic: bool, model: str, verdict: bool, pause: float = 0, extra: str = ""
        ) -> None:
            score = api.scores.get(model, 0.7)
            text = (
                PREFIX
                + json.dumps(
                    {
                        "score": score,
                        "passed": score >= 0.5,
                        "reasoning": f"{model} judged it{extra}",
                    }
                )
                + "\n```"
                if verdict
                else "I cannot judge this without the workspace."
            )
            tokens_in, tokens_out = api.usage
            if anthropic:
                answer: dict[str, Any] = {
                    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": tokens_in,
                        "output_tokens": tokens_out,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                    },
                }
            else:
                answer = {
                    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text, "refusal": None},
                        }
                    ],
                    "usage": {
                        "prompt_tokens": tokens_in,
                        "completion_tokens": tokens_out,
                        "total_tokens": tokens_in + tokens_out,
                    },
                }
            data = json.dumps(answer)
            if extra:  # what it holds only as JSON escapes (\u0073k-...), never as is
                data = data.replace(extra, "".join(f"\\u{ord(c):04x}" for c in extra))
            self._send(200, data.encode(), pause=pause)

        def _error(
            self,
            anthropic: bool,
            status: int,
            kind: str,
            message: str,
            headers: dict[str, str] | None = None,
        ) -> None:
            if anthropic:
                body = {"type": "error", "error": {"type": kind, "message": message}}
            else:
                body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
            self._send(status, body, headers=headers)

        def _send(
            self,
            status: int,
            body: Any,
            content_type: str = "application/json",
            headers: dict[str, str] | None = None,
            pause: float = 0,
        ) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if not pause:
                self.wfile.write(data)
                return
            for i in range(len(data)):  # a byte at a time: each wait shorter than a timeout
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                api.sleep(pause)

    return Handler
