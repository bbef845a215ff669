"""OpenAI's chat completions: ``POST {base_url}/v1/chat/completions``, as OpenAI serves
it (``openai``) and as OpenAI-compatible servers do (``openai_compatible``: vLLM,
Ollama, llama.cpp's server, LM Studio)."""

from __future__ import annotations

from typing import Any, ClassVar

from runner_plugins.judge.providers import Provider, Reply, count, duration_wait, unusable


class OpenAI(Provider):
    """A bearer key; a system prompt is the first message (role ``system``, which
    OpenAI's reasoning models read as ``developer``); the reply is the first choice's
    message; ``x-ratelimit-reset-*``
    give durations (``6m0s``). Asks for at most ``max_completion_tokens``, the name
    OpenAI's current models take (its reasoning models refuse ``max_tokens``)."""

    path = "/v1/chat/completions"
    limit_headers = "x-ratelimit-"
    #: The body's name for the cap on output tokens.
    max_tokens_field: ClassVar[str] = "max_completion_tokens"

    def headers(self, key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"} if key else {}

    def body(
        self, model: str, prompt: str, max_tokens: int, system: str | None = None
    ) -> dict[str, Any]:
        first = [{"role": "system", "content": system}] if system is not None else []
        return {
            "model": model,
            self.max_tokens_field: max_tokens,
            "messages": [*first, {"role": "user", "content": prompt}],
        }

    def reply(self, data: Any) -> Reply:
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise unusable("no 'choices'")
        message = choices[0].get("message")
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            refusal = message.get("refusal") if isinstance(message, dict) else None
            raise unusable(f"the model refused: {refusal}" if refusal else "no message content")
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        return Reply(
            text=text,
            input_tokens=count(usage.get("prompt_tokens")),
            output_tokens=count(usage.get("completion_tokens")),
            id=data.get("id") if isinstance(data.get("id"), str) else None,
            model=data.get("model") if isinstance(data.get("model"), str) else None,
            truncated=choices[0].get("finish_reason") == "length",
        )

    def reset_seconds(self, value: str, now: float) -> float | None:
        return duration_wait(value)


class OpenAICompatible(OpenAI):
    """As :class:`OpenAI`, but the cap is ``max_tokens``, the name local servers read."""

    max_tokens_field = "max_tokens"
