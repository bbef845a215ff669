"""Paths of a workspace as git prints and groups them, and the files the original leaves out."""

from __future__ import annotations

from collections.abc import Iterable

# git's C-style quoting of paths (core.quotePath's default): these get a letter.
_ESCAPES = {7: "a", 8: "b", 9: "t", 10: "n", 11: "v", 12: "f", 13: "r", 34: '"', 92: "\\"}


def framework_file(path: bytes) -> bool:
    """Whether ``path`` is the framework's own (``CLAUDE.md``, ``.claude/``), which the
    original leaves out of the state and the diffs."""
    return path == b"CLAUDE.md" or path == b".claude" or path.startswith(b".claude/")


def quote(path: bytes) -> str:
    """``path`` as ``git status --porcelain`` prints it (quoted when unusual)."""
    if all(0x20 <= b < 0x7F and b not in (0x22, 0x5C) for b in path):
        return path.decode("ascii")
    out = []
    for b in path:
        if b in _ESCAPES:
            out.append("\\" + _ESCAPES[b])
        elif b < 0x20 or b >= 0x7F:
            out.append(f"\\{b:03o}")
        else:
            out.append(chr(b))
    return '"' + "".join(out) + '"'


def folders_of(paths: Iterable[bytes]) -> set[bytes]:
    """Every folder that holds one of ``paths`` (``a``, ``a/b`` for ``a/b/c``)."""
    return {p[:i] for p in paths for i, c in enumerate(p) if c == 0x2F}
