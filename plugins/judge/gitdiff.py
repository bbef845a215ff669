"""The changes to tracked files, as ``git diff`` and ``git diff --cached`` print them.

Computed from a :class:`~runner_plugins.judge.gitsnapshot.Snapshot` in git's format:
its header lines, hunks from dulwich's matcher, no rename detection, no textconv or
external diff (those would run the agent's program). Content past the snapshot's
MAX_FILE_BYTES is not shown, and a long diff keeps both ends.
"""

from __future__ import annotations

import dataclasses
import io
import os
import stat

from dulwich.index import ConflictedIndexEntry
from dulwich.objects import Blob, ObjectID
from dulwich.patch import is_binary, shortid, unified_diff_with_algorithm

from runner_plugins.judge.gitpaths import framework_file, quote
from runner_plugins.judge.gitsnapshot import (
    GITLINK,
    MAX_FILE_BYTES,
    MAX_HASH_BYTES,
    Snapshot,
    blob_id,
    hash_file,
    mode_of,
)

#: The original's cut of the patch: its first and last 250 lines.
MAX_DIFF_LINES = 500


@dataclasses.dataclass(frozen=True)
class _Side:
    """One side of a file's diff: its mode, blob id (None: not known) and content
    (None: longer than MAX_FILE_BYTES)."""

    mode: int
    sha: ObjectID | None
    data: bytes | None


def _write_diff(out: io.BytesIO, path: bytes, old: _Side | None, new: _Side | None) -> None:
    """One file's diff in git's format (its header lines, the hunks from dulwich);
    content past MAX_FILE_BYTES is not shown."""
    a, b = (quote(b"a/" + path).encode(), quote(b"b/" + path).encode())
    out.write(b"diff --git %s %s\n" % (a, b))
    if old is None and new is not None:
        out.write(b"new file mode %o\n" % new.mode)
    elif new is None and old is not None:
        out.write(b"deleted file mode %o\n" % old.mode)
    elif old is not None and new is not None and old.mode != new.mode:
        out.write(b"old mode %o\nnew mode %o\n" % (old.mode, new.mode))
    old_id = old.sha if old else None
    new_id = new.sha if new else None
    if old_id == new_id and old_id is not None:
        return  # only the mode changed
    same_mode = old is not None and new is not None and old.mode == new.mode
    mode = b" %o" % new.mode if same_mode and new is not None else b""
    out.write(b"index %s..%s%s\n" % (shortid(old_id), shortid(new_id), mode))
    before = Blob.from_string(old.data) if old and old.data is not None else None
    after = Blob.from_string(new.data) if new and new.data is not None else None
    if (old and before is None) or (new and after is None):
        out.write(b"(content not shown: larger than %d bytes)\n" % MAX_FILE_BYTES)
        return
    a, b = (a if old else b"/dev/null"), (b if new else b"/dev/null")
    if any(blob is not None and is_binary(blob.data) for blob in (before, after)):
        out.write(b"Binary files %s and %s differ\n" % (a, b))
        return
    old_lines = before.splitlines() if before else []
    new_lines = after.splitlines() if after else []
    out.writelines(unified_diff_with_algorithm(old_lines, new_lines, a, b))


def _unstaged(snap: Snapshot) -> bytes:
    out = io.BytesIO()
    for path, entry in sorted(snap.index.items()):
        if framework_file(path) or isinstance(entry, ConflictedIndexEntry):
            continue
        if entry.mode == GITLINK:
            continue  # a submodule's own changes are its repository's
        y = snap.worktree_changed(path, entry)
        if not y:
            continue
        old = _Side(entry.mode, entry.sha, snap.stored(entry.sha, entry.mode))
        st = snap.scan.entries[path] if y != "D" else None
        new = None
        if st is not None and not stat.S_ISDIR(st.st_mode):
            data = snap.worktree_blob(path, st)
            if data is not None:
                sha: ObjectID | None = blob_id(data)
            elif st.st_size <= MAX_HASH_BYTES:
                sha = hash_file(snap.path / os.fsdecode(path), st.st_size)
            else:
                sha = None
            new = _Side(mode_of(st), sha, data)
        _write_diff(out, path, old, new)
    return out.getvalue()


def _staged(snap: Snapshot) -> bytes:
    out = io.BytesIO()
    if not snap.head_complete:
        return b""  # HEAD's tree was not read whole (the state says so)
    for path in sorted(snap.head.keys() | snap.index.keys()):
        entry = snap.index.get(path)
        head = snap.head.get(path)
        if framework_file(path) or isinstance(entry, ConflictedIndexEntry):
            continue
        now = None if entry is None else (entry.mode, entry.sha)
        if head == now:
            continue
        old = None if head is None else _Side(*head, snap.stored(head[1], head[0]))
        new = None if now is None else _Side(*now, snap.stored(now[1], now[0]))
        _write_diff(out, path, old, new)
    return out.getvalue()


def patchfile(snap: Snapshot) -> str | None:
    """Unstaged and staged changes to tracked files (long diffs keep both ends)."""
    if not snap.readable:
        return None
    parts = []
    for title, diff in (("Unstaged", _unstaged(snap)), ("Staged", _staged(snap))):
        text = diff.decode("utf-8", errors="replace").strip()
        if text:
            parts.append(f"## {title} Changes\n{text}")
    if not parts:
        return None
    lines = "\n\n".join(parts).split("\n")
    if len(lines) > MAX_DIFF_LINES:
        half = MAX_DIFF_LINES // 2
        lines = [*lines[:half], "", "... (truncated)", "", *lines[-half:]]
    return "\n".join(lines)
