"""Anthropic's Messages API: ``POST {base_url}/v1/messages``."""

from __future__ import annotations

from typing import Any

from runner_plugins.judge.providers import Provider, Reply, count, rfc3339_wait, unusable

#: The API version every request names (Anthropic's current one).
VERSION = "2023-06-01"


class Anthropic(Provider):
    """The key goes in ``x-api-key``; a system prompt in the body's ``system``; the reply
    is the text of the message's content blocks; ``anthropic-ratelimit-*-reset`` give
    RFC 3339 times."""

    path = "/v1/messages"
    limit_headers = "anthropic-ratelimit-"

    def headers(self, key: str | None) -> dict[str, str]:
        return {"anthropic-version": VERSION} | ({"x-api-key": key} if key else {})

    def body(
        self, model: str, prompt: str, max_tokens: int, system: str | None = None
    ) -> dict[str, Any]:
        return {
            "model": model,
            "max_tokens": max_tokens,
            **({"system": system} if system is not None else {}),
            "messages": [{"role": "user", "content": prompt}],
        }

    def reply(self, data: Any) -> Reply:
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise unusable("no 'content' list")
        texts = [
            block["text"]
            for block in data["content"]
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        ]
        if not texts:
            raise unusable("no text block in 'content'")
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        return Reply(
            text="".join(texts),
            input_tokens=count(usage.get("input_tokens")),
            output_tokens=count(usage.get("output_tokens")),
            cache_creation_input_tokens=count(usage.get("cache_creation_input_tokens")),
            cache_read_input_tokens=count(usage.get("cache_read_input_tokens")),
            id=data.get("id") if isinstance(data.get("id"), str) else None,
            model=data.get("model") if isinstance(data.get("model"), str) else None,
            truncated=data.get("stop_reason") == "max_tokens",
        )

    def reset_seconds(self, value: str, now: float) -> float | None:
        return rfc3339_wait(value, now)
