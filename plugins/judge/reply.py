"""Reading a judge's reply: the verdict in its free text, and the values of its fields.

The reply is text holding one JSON object with a numeric score. What the judgment made
from it holds (grade, validity) is the format's business, in ``experiment.parse_reply``.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterator
from typing import Any

#: The reasoning of a reply that gives none, as the original writes it.
NO_REASONING = "No reasoning provided"


class ReplyError(ValueError):
    """The judge's reply holds no usable judgment."""


def is_number(value: Any) -> bool:
    """True for a finite int or float (a JSON ``true`` is not a score)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


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
        except ValueError:
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
