"""Item ids and labels as text that is safe to print on one line."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

# Longest id or label a line shows, and longest failure message, in characters.
LABEL_CHARS = 80
MESSAGE_CHARS = 240
ELLIPSIS = "…"


def printable(text: str, limit: int = LABEL_CHARS) -> str:
    """``text`` as one safe line of at most ``limit`` characters.

    Control and other non-printable characters are escaped as ``repr`` escapes them
    (``\\n``, ``\\x1b``, ``\\u2028``), so an id holding a newline or a terminal escape
    cannot forge a line such as ``Done: 999 succeeded``. Longer text is cut, never inside
    an escape, and ends with an ellipsis; only the part shown is read, so a huge id is cheap.
    """
    if len(text) <= limit and text.isprintable():
        return text
    pieces: list[str] = []
    used = 0
    for ch in text:
        piece = ch if ch.isprintable() else repr(ch)[1:-1]
        if used + len(piece) > limit:
            # The ellipsis takes one character: drop pieces until it fits.
            while pieces and used + 1 > limit:
                used -= len(pieces.pop())
            return "".join(pieces) + ELLIPSIS
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces)


def shown_path(path: str | os.PathLike[str]) -> str:
    """``path`` as a console line shows it: relative to the working directory when that
    is shorter, else absolute."""
    absolute = os.path.abspath(path)
    try:
        relative = os.path.relpath(absolute)
    except ValueError:  # another drive
        return absolute
    return relative if len(relative) < len(absolute) else absolute


def parallel_text(parallel: object, concurrency: Mapping[str, Any] | None = None) -> str:
    """``parallel`` as a heading shows it: ``8``, or for ``parallel=auto`` (a
    ``concurrency`` of mode ``auto``, as summary.json holds it) ``auto (1..64)``, with
    ``, settled at 16`` once the run knows (``parallel`` is then only auto's ceiling)."""
    if not concurrency or concurrency.get("mode") != "auto":
        return str(parallel)
    text = f"auto ({concurrency.get('min')}..{concurrency.get('max')}"
    settled = concurrency.get("settled")
    return text + (f", settled at {settled})" if settled is not None else ")")
