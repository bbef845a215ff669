"""Reading a judge's reply: the verdict in its free text, and the values of its fields.

The reply is text holding one JSON object with a numeric score. What the judgment made
from it holds (grade, validity) is the format's business, in ``judgment.parse_reply``.
A judge run as ``claude --output-format json`` wraps that text in Claude Code's result
envelope (:func:`read_envelope`), which also says whether the call failed and what it cost.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from collections.abc import Iterator
from typing import Any

#: The reasoning of a reply that gives none, as the original writes it.
NO_REASONING = "No reasoning provided"


class ReplyError(ValueError):
    """The judge's reply holds no usable judgment.

    ``kind`` says why, as a failed attempt's timing.json records it
    (``slotfiles.FAILURE_KINDS``); by default the reply has no usable verdict.
    """

    def __init__(self, message: str, kind: str = "unusable_reply") -> None:
        super().__init__(message)
        self.kind = kind


def is_number(value: Any) -> bool:
    """True for a finite int or float (a JSON ``true`` is not a score), one a float can
    hold: a reply's integer of 400 digits is no score, count or cost (math.isfinite, and
    every sum with a float, raises OverflowError on it)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def clamp_score(value: float) -> float:
    """Clamp a score into [0, 1]."""
    return min(1.0, max(0.0, float(value)))


_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\r?\n(.*?)```", re.DOTALL | re.IGNORECASE)


def _top_level_objects(text: str) -> Iterator[str]:
    """Balanced ``{...}`` spans outside any other object, quotes inside them respected."""
    depth, start, in_string, escaped = 0, 0, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"' and depth:
            in_string = True
        elif ch == "{":
            start = i if depth == 0 else start
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                yield text[start : i + 1]


def find_verdict(text: str) -> dict[str, Any] | None:
    """The first JSON object with a numeric ``score``: fenced blocks first, then bare objects.

    Only whole top-level objects are considered, so a category's nested ``score`` is never
    taken for the verdict (an unbalanced ``{`` in prose therefore hides a later bare
    object, never a fenced one). The first block wins, as in the experiments this format
    comes from (a judge that "reconsiders" in later blocks was recorded with its first).
    """
    fenced = (m.group(1) for m in _FENCE.finditer(text))
    for candidate in itertools.chain(fenced, _top_level_objects(text)):
        try:
            obj = json.loads(candidate)
        except (ValueError, RecursionError):  # nested deeper than json reads: no verdict
            continue
        if isinstance(obj, dict) and is_number(obj.get("score")):
            return obj
    return None


def passed_value(value: object) -> bool:
    """A reply's ``passed`` as the original reads it (truthy passes, absent fails), except
    that the strings "false", "no" and "0" mean what they say."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "0", "none", "null")
    return bool(value)


@dataclasses.dataclass(frozen=True)
class Envelope:
    """Claude Code's result message (``claude -p --output-format json``).

    ``text`` is the reply (its ``result``); ``error`` is None for a call that succeeded,
    else what went wrong; ``fields`` is the whole message, usage and cost included.
    """

    text: str
    error: str | None
    fields: dict[str, Any]


def _envelope(message: dict[str, Any]) -> Envelope:
    result = message.get("result")
    text = result if isinstance(result, str) else ""
    subtype = str(message.get("subtype") or "")
    # is_error marks a failed call (an API error, a usage limit); the error_* subtypes
    # (error_max_turns, error_during_execution) end without a reply.
    if message.get("is_error") is not True and not subtype.startswith("error"):
        return Envelope(text, None, message)
    errors = message.get("errors")
    detail = text or (" ".join(map(str, errors)) if isinstance(errors, list) else "")
    detail = " ".join(detail.split())[:300] or "no message"
    which = f" ({subtype})" if subtype not in ("", "success") else ""
    return Envelope(text, f"Claude Code reported an error{which}: {detail}", message)


def read_envelope(stdout: str) -> Envelope | None:
    """The result envelope on ``stdout``, or None when stdout holds none.

    Claude Code prints one JSON object of ``"type": "result"``; with ``--verbose`` it
    prints the list of every message, the result last. A stream of one message per line
    (``stream-json``) is read from its last line that is JSON.
    """
    text = stdout.strip()
    try:
        messages = [json.loads(text)]
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json reads
        messages = []
        for line in reversed(text.splitlines()):
            try:
                messages = [json.loads(line)]
            except (ValueError, RecursionError):
                continue
            break
    if messages and isinstance(messages[0], list):
        messages = list(reversed(messages[0]))
    for message in messages:
        if isinstance(message, dict) and message.get("type") == "result":
            return _envelope(message)
    return None
