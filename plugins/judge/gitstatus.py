"""What the agent changed, listed as the original lists ``git status --porcelain``.

The status is computed from a :class:`~runner_plugins.judge.gitsnapshot.Snapshot`, as
git computes it (HEAD against the index, the index against the work tree, the
untracked files that no ignore rule excludes), never by running git.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator

from dulwich.index import ConflictedIndexEntry, IndexEntry

from runner_plugins.judge import gitsnapshot
from runner_plugins.judge.gitpaths import folders_of, framework_file, quote
from runner_plugins.judge.gitsnapshot import Snapshot

#: Lines listed under "Files modified/created by agent"; the rest are counted.
MAX_LISTED = 1000

UNREADABLE = "(unable to get workspace state)"
_NO_CHANGES = "(no changes detected)"
_KINDS = {"M": "modified", "A": "added", "??": "created", "D": "deleted"}


def _tracked_changes(snap: Snapshot) -> Iterator[tuple[bytes, str, str]]:
    """(path, X, Y) of each tracked path that changed, sorted as git sorts them."""
    for path in sorted(snap.head.keys() | snap.index.keys()):
        entry = snap.index.get(path)
        if isinstance(entry, ConflictedIndexEntry):
            yield path, "U", "U"
            continue
        head = snap.head.get(path)
        if entry is None:
            x, y = "D", ""
        elif not snap.head_complete:
            x, y = "", snap.worktree_changed(path, entry)  # HEAD not compared
        else:
            x = "A" if head is None else ("M" if head != (entry.mode, entry.sha) else "")
            y = snap.worktree_changed(path, entry)
        if x or y:
            yield path, x or " ", y or " "


def _untracked(snap: Snapshot) -> list[bytes]:
    """Untracked, unignored paths as ``git status`` shows them: a folder holding no
    tracked file as one ``folder/`` entry."""
    tracked_dirs = folders_of(snap.index)
    shown: set[bytes] = set()
    for rel, st in snap.scan.entries.items():
        if stat.S_ISDIR(st.st_mode) or rel in snap.index:
            continue
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            continue  # git lists neither fifos nor sockets
        if snap.ignored.excluded(rel, False):
            continue
        parts = rel.split(b"/")
        unit = rel
        for i in range(1, len(parts)):
            if b"/".join(parts[:i]) not in tracked_dirs:
                unit = b"/".join(parts[:i]) + b"/"
                break
        shown.add(unit)
    return sorted(shown)


def _label(snap: Snapshot, rel: bytes, kind: str) -> str:
    st = snap.scan.entries.get(rel.rstrip(b"/"))
    link = ", symlink" if st is not None and stat.S_ISLNK(st.st_mode) else ""
    return f"- `{quote(rel)}` ({kind}{link})"


def state(snap: Snapshot) -> str:
    """The files the agent created, modified or deleted, as the original lists them."""
    if not snap.readable:
        return UNREADABLE
    lines = []
    for path, x, y in _tracked_changes(snap):
        if not framework_file(path):
            code = (x + y).strip()
            lines.append(_label(snap, path, _KINDS.get(code, code)))
    for unit in _untracked(snap):
        if framework_file(unit.rstrip(b"/")):
            continue
        if not unit.endswith(b"/"):
            lines.append(_label(snap, unit, "created"))
            continue
        # The original expands an untracked folder to every file in it.
        inside = (
            rel
            for rel, st in snap.scan.entries.items()
            if rel.startswith(unit) and not stat.S_ISDIR(st.st_mode)
        )
        for rel in sorted(inside, key=lambda p: p.split(b"/")):
            if not framework_file(rel):
                lines.append(_label(snap, rel, "created"))
    if len(lines) > MAX_LISTED:
        more = len(lines) - MAX_LISTED
        lines = [*lines[:MAX_LISTED], f"... ({more} more not listed: at most {MAX_LISTED})"]
    # Looked up on the module, as the snapshot's walks look it up: the bound they used.
    scanned = gitsnapshot.MAX_SCANNED
    if not snap.scan.complete:
        lines.append(f"... (the workspace was read up to {scanned} entries)")
    if not snap.head_complete:
        lines.append(
            f"... (HEAD's tree has more than {scanned} entries: not compared with "
            "the index, so staged changes are not shown)"
        )
    lines += [f"... (ignore file not applied: {name})" for name in snap.ignored.skipped]
    return "\n".join(["Files modified/created by agent:", *(lines or [_NO_CHANGES])])


def deleted(snap: Snapshot) -> list[str]:
    """Tracked files the agent deleted (``git diff --name-only --diff-filter=D HEAD``)."""
    if not snap.readable:
        return []
    gone = []
    for path in sorted(snap.head if snap.head_complete else snap.index):
        entry = snap.index.get(path)
        if entry is None or (
            isinstance(entry, IndexEntry) and snap.worktree_changed(path, entry) == "D"
        ):
            gone.append(quote(path))
    return gone
