"""A run's workspace read as ``git status --porcelain`` and ``git diff`` show it,
without running git.

git obeys the repository's own config and attributes, so in the agent's workspace
``core.fsmonitor``, ``diff.external``, a textconv or a clean filter would run the
agent's program. runner reads the repository with dulwich's low-level readers instead
(index, refs, object store; no config, attributes, hooks or filters), only when gitrepo
finds it safe to read, and computes the status and the diffs itself: git's format, hunks
from dulwich's matcher, no rename detection. The framework's own files (``CLAUDE.md``,
``.claude/``) are left out, as the original leaves them out. A symlink is listed as one,
never followed. The work is bounded: see the limits below.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import stat
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from dulwich.errors import FileFormatException, ObjectFormatException
from dulwich.index import ConflictedIndexEntry, IndexEntry, read_index_dict
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.patch import is_binary, shortid, unified_diff_with_algorithm

from runner_plugins.judge.gitignore import Ignores
from runner_plugins.judge.gitobjects import BoundedStore
from runner_plugins.judge.gitrepo import GitDirs, git_dirs, head_commit, inside, read_capped

#: Lines listed under "Files modified/created by agent"; the rest are counted.
MAX_LISTED = 1000
#: Entries of the workspace walked (files and folders); a larger workspace is read in
#: part. Also the bound on the entries of HEAD's tree walked (past it, HEAD is not
#: compared with the index: no staged change is shown, and the state says so).
MAX_SCANNED = 100_000
#: Bytes of the index read; a larger index makes the repository unreadable.
MAX_INDEX_BYTES = 64 * 1024 * 1024
#: Bytes of one file (in the workspace or the repository) read for the diff.
MAX_FILE_BYTES = 1024 * 1024
#: Bytes of one tracked file hashed to tell whether it changed; a larger one of the
#: same size counts as modified when its mtime differs from the index's.
MAX_HASH_BYTES = 64 * 1024 * 1024
#: The original's cut of the patch: its first and last 250 lines.
MAX_DIFF_LINES = 500

UNREADABLE = "(unable to get workspace state)"
_NO_CHANGES = "(no changes detected)"
_KINDS = {"M": "modified", "A": "added", "??": "created", "D": "deleted"}
# git's C-style quoting of paths (core.quotePath's default): these get a letter.
_ESCAPES = {7: "a", 8: "b", 9: "t", 10: "n", 11: "v", 12: "f", 13: "r", 34: '"', 92: "\\"}
_GITLINK = 0o160000


def _framework_file(path: bytes) -> bool:
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


def _blob_id(data: bytes) -> ObjectID:
    return Blob.from_string(data).id


def _hash_file(path: Path, size: int) -> ObjectID:
    """The blob id of the regular file ``path`` (``size`` bytes), read in chunks."""
    digest = hashlib.sha1(b"blob %d\0" % size)  # git's object id
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(f"{path} is not a regular file")
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return ObjectID(digest.hexdigest().encode("ascii"))


def _mtime_ns(value: int | float | tuple[int, int]) -> int:
    if isinstance(value, tuple):
        return value[0] * 1_000_000_000 + value[1]
    return int(value * 1_000_000_000)


def _mode_of(st: os.stat_result) -> int:
    """The git mode of a work-tree entry (as git records it with core.fileMode on)."""
    if stat.S_ISLNK(st.st_mode):
        return 0o120000
    return 0o100755 if st.st_mode & 0o100 else 0o100644


def _folders_of(paths: Iterable[bytes]) -> set[bytes]:
    """Every folder that holds one of ``paths`` (``a``, ``a/b`` for ``a/b/c``)."""
    return {p[:i] for p in paths for i, c in enumerate(p) if c == 0x2F}


@dataclasses.dataclass
class _Scan:
    """The workspace as a walk that follows no symlink saw it."""

    #: Relative path (bytes, "/"-separated) -> its lstat; folders included.
    entries: dict[bytes, os.stat_result]
    #: False when the walk stopped at MAX_SCANNED entries.
    complete: bool


@dataclasses.dataclass(frozen=True)
class _Side:
    """One side of a file's diff: its mode, blob id (None: not known) and content
    (None: longer than MAX_FILE_BYTES)."""

    mode: int
    sha: ObjectID | None
    data: bytes | None


class Workspace:
    """A run's workspace read as ``git status`` and ``git diff`` would show it."""

    def __init__(self, path: Path, root: Path | None = None) -> None:
        """``path`` read when it is a folder inside ``root`` (by default itself) whose
        repository runner may read (see gitrepo), else shown as UNREADABLE."""
        self.path = path
        readable = path.is_dir() and inside(path, root or path)
        dirs = git_dirs(path, root or path) if readable else None
        self.readable = dirs is not None
        self._dirs = dirs or GitDirs(path / ".git", path / ".git")
        self._store = BoundedStore(self._dirs.common / "objects", MAX_FILE_BYTES)
        self._head: dict[bytes, tuple[int, ObjectID]] = {}
        #: False when HEAD's tree has more than MAX_SCANNED entries (then not compared).
        self._head_complete = True
        self._index: dict[bytes, IndexEntry | ConflictedIndexEntry] = {}
        self._scan = _Scan({}, True)
        self._ignored = Ignores()
        if dirs is not None:
            try:
                self._read()
            except (
                OSError,
                ValueError,
                KeyError,
                AssertionError,  # dulwich's word for some malformed files
                struct.error,
                FileFormatException,
                ObjectFormatException,
                zlib.error,
            ):
                self.readable = False

    def _object(self, sha: ObjectID, kind: type[Commit] | type[Tree]) -> Commit | Tree:
        obj = self._store.get(sha)
        if obj is None:
            raise ValueError(f"{sha!r} is larger than {MAX_FILE_BYTES} bytes")
        if not isinstance(obj, kind):
            raise ValueError(f"{sha!r} is not a {kind.__name__}")
        return obj

    def _read(self) -> None:
        head = head_commit(self._dirs)
        if head is not None:
            commit = self._object(head, Commit)
            assert isinstance(commit, Commit)
            self._head_complete = self._read_tree(commit.tree)
            if not self._head_complete:
                self._head = {}
        try:
            data = read_capped(self._dirs.worktree / "index", MAX_INDEX_BYTES)
        except FileNotFoundError:
            data = b""
        if len(data) > MAX_INDEX_BYTES:
            raise ValueError(f"the index is larger than {MAX_INDEX_BYTES} bytes")
        self._index = read_index_dict(io.BytesIO(data)) if data else {}
        self._scan = self._walk()

    def _read_tree(self, root: ObjectID) -> bool:
        """HEAD's files from the tree ``root`` into ``_head``; False when it has more
        than MAX_SCANNED entries (a tree bomb: a few KB of nested trees can name
        millions)."""
        todo = [(b"", root)]
        seen = 0
        while todo:
            prefix, sha = todo.pop()
            tree = self._object(sha, Tree)
            for entry in tree.iteritems():
                seen += 1
                if seen > MAX_SCANNED:
                    return False
                path = prefix + entry.path
                if stat.S_ISDIR(entry.mode):
                    todo.append((path + b"/", entry.sha))
                else:
                    self._head[path] = (entry.mode, entry.sha)
        return True

    # --- the work tree ------------------------------------------------------------

    def _walk(self) -> _Scan:
        """The workspace, never through a symlink; ignored folders not entered. The
        ignore rules: info/exclude (a common file, as git has it; not
        core.excludesFile, which names a file outside) and each .gitignore (see
        gitignore)."""
        tracked_dirs = _folders_of(self._index)
        ignores = self._ignored
        ignores.read(b"\0", self._dirs.common / "info" / "exclude", ".git/info/exclude")
        entries: dict[bytes, os.stat_result] = {}
        todo = [b""]
        while todo:
            folder = todo.pop()
            where = os.fsdecode(folder) + ".gitignore"
            ignores.read(folder.rstrip(b"/"), self.path / where, where)
            with os.scandir(os.path.join(os.fsencode(self.path), folder)) as it:
                for entry in it:
                    rel = folder + entry.name
                    if entry.name == b".git":
                        continue  # the repository itself, or a nested one's
                    if len(entries) >= MAX_SCANNED:
                        return _Scan(entries, False)
                    st = entry.stat(follow_symlinks=False)
                    entries[rel] = st
                    if stat.S_ISDIR(st.st_mode):
                        if rel not in tracked_dirs and ignores.excluded(rel, True):
                            continue
                        todo.append(rel + b"/")
        return _Scan(entries, True)

    def _worktree_blob(self, rel: bytes, st: os.stat_result) -> bytes | None:
        """The content git would record for ``rel`` (a link's target), or None if
        longer than MAX_FILE_BYTES."""
        full = self.path / os.fsdecode(rel)
        if stat.S_ISLNK(st.st_mode):
            return os.fsencode(os.readlink(full))
        data = read_capped(full, MAX_FILE_BYTES)
        return None if len(data) > MAX_FILE_BYTES else data

    def _worktree_changed(self, rel: bytes, entry: IndexEntry) -> str:
        """git's Y column for a tracked path: "" unchanged, "M", "D" or "T"."""
        st = self._scan.entries.get(rel)
        if st is None:
            return "D" if self._scan.complete else ""
        if entry.mode == _GITLINK:
            return "" if stat.S_ISDIR(st.st_mode) else "T"
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            return "D"  # a folder (or a fifo) where the file was
        if stat.S_ISLNK(st.st_mode) != stat.S_ISLNK(entry.mode):
            return "T"
        if _mode_of(st) != entry.mode:
            return "M"
        if stat.S_ISREG(st.st_mode) and st.st_size != entry.size:
            return "M"
        if stat.S_ISREG(st.st_mode) and st.st_size > MAX_HASH_BYTES:
            return "" if st.st_mtime_ns == _mtime_ns(entry.mtime) else "M"
        if stat.S_ISLNK(st.st_mode):
            current = _blob_id(os.fsencode(os.readlink(self.path / os.fsdecode(rel))))
        else:
            current = _hash_file(self.path / os.fsdecode(rel), st.st_size)
        return "" if current == entry.sha else "M"

    # --- status -------------------------------------------------------------------

    def _tracked_changes(self) -> Iterator[tuple[bytes, str, str]]:
        """(path, X, Y) of each tracked path that changed, sorted as git sorts them."""
        for path in sorted(self._head.keys() | self._index.keys()):
            entry = self._index.get(path)
            if isinstance(entry, ConflictedIndexEntry):
                yield path, "U", "U"
                continue
            head = self._head.get(path)
            if entry is None:
                x, y = "D", ""
            elif not self._head_complete:
                x, y = "", self._worktree_changed(path, entry)  # HEAD not compared
            else:
                x = "A" if head is None else ("M" if head != (entry.mode, entry.sha) else "")
                y = self._worktree_changed(path, entry)
            if x or y:
                yield path, x or " ", y or " "

    def _untracked(self) -> list[bytes]:
        """Untracked, unignored paths as ``git status`` shows them: a folder holding no
        tracked file as one ``folder/`` entry."""
        tracked_dirs = _folders_of(self._index)
        shown: set[bytes] = set()
        for rel, st in self._scan.entries.items():
            if stat.S_ISDIR(st.st_mode) or rel in self._index:
                continue
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                continue  # git lists neither fifos nor sockets
            if self._ignored.excluded(rel, False):
                continue
            parts = rel.split(b"/")
            unit = rel
            for i in range(1, len(parts)):
                if b"/".join(parts[:i]) not in tracked_dirs:
                    unit = b"/".join(parts[:i]) + b"/"
                    break
            shown.add(unit)
        return sorted(shown)

    def _label(self, rel: bytes, kind: str) -> str:
        st = self._scan.entries.get(rel.rstrip(b"/"))
        link = ", symlink" if st is not None and stat.S_ISLNK(st.st_mode) else ""
        return f"- `{quote(rel)}` ({kind}{link})"

    def state(self) -> str:
        """The files the agent created, modified or deleted, as the original lists them."""
        if not self.readable:
            return UNREADABLE
        lines = []
        for path, x, y in self._tracked_changes():
            if not _framework_file(path):
                code = (x + y).strip()
                lines.append(self._label(path, _KINDS.get(code, code)))
        for unit in self._untracked():
            if _framework_file(unit.rstrip(b"/")):
                continue
            if not unit.endswith(b"/"):
                lines.append(self._label(unit, "created"))
                continue
            # The original expands an untracked folder to every file in it.
            inside = (
                rel
                for rel, st in self._scan.entries.items()
                if rel.startswith(unit) and not stat.S_ISDIR(st.st_mode)
            )
            for rel in sorted(inside, key=lambda p: p.split(b"/")):
                if not _framework_file(rel):
                    lines.append(self._label(rel, "created"))
        if len(lines) > MAX_LISTED:
            more = len(lines) - MAX_LISTED
            lines = [*lines[:MAX_LISTED], f"... ({more} more not listed: at most {MAX_LISTED})"]
        if not self._scan.complete:
            lines.append(f"... (the workspace was read up to {MAX_SCANNED} entries)")
        if not self._head_complete:
            lines.append(
                f"... (HEAD's tree has more than {MAX_SCANNED} entries: not compared with "
                "the index, so staged changes are not shown)"
            )
        lines += [f"... (ignore file not applied: {name})" for name in self._ignored.skipped]
        return "\n".join(["Files modified/created by agent:", *(lines or [_NO_CHANGES])])

    # --- diffs --------------------------------------------------------------------

    def _stored(self, sha: ObjectID, mode: int) -> bytes | None:
        """A blob's content from the repository, or None if longer than MAX_FILE_BYTES."""
        if mode == _GITLINK:
            return b"Subproject commit " + sha + b"\n"
        obj = self._store.get(sha)  # None: larger than the limit, found before inflating
        if obj is None:
            return None
        data = obj.as_raw_string()
        return None if len(data) > MAX_FILE_BYTES else data

    def _write_diff(
        self, out: io.BytesIO, path: bytes, old: _Side | None, new: _Side | None
    ) -> None:
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

    def _unstaged(self) -> bytes:
        out = io.BytesIO()
        for path, entry in sorted(self._index.items()):
            if _framework_file(path) or isinstance(entry, ConflictedIndexEntry):
                continue
            if entry.mode == _GITLINK:
                continue  # a submodule's own changes are its repository's
            y = self._worktree_changed(path, entry)
            if not y:
                continue
            old = _Side(entry.mode, entry.sha, self._stored(entry.sha, entry.mode))
            st = self._scan.entries[path] if y != "D" else None
            new = None
            if st is not None and not stat.S_ISDIR(st.st_mode):
                data = self._worktree_blob(path, st)
                if data is not None:
                    sha: ObjectID | None = _blob_id(data)
                elif st.st_size <= MAX_HASH_BYTES:
                    sha = _hash_file(self.path / os.fsdecode(path), st.st_size)
                else:
                    sha = None
                new = _Side(_mode_of(st), sha, data)
            self._write_diff(out, path, old, new)
        return out.getvalue()

    def _staged(self) -> bytes:
        out = io.BytesIO()
        if not self._head_complete:
            return b""  # HEAD's tree was not read whole (the state says so)
        for path in sorted(self._head.keys() | self._index.keys()):
            entry = self._index.get(path)
            head = self._head.get(path)
            if _framework_file(path) or isinstance(entry, ConflictedIndexEntry):
                continue
            now = None if entry is None else (entry.mode, entry.sha)
            if head == now:
                continue
            old = None if head is None else _Side(*head, self._stored(head[1], head[0]))
            new = None if now is None else _Side(*now, self._stored(now[1], now[0]))
            self._write_diff(out, path, old, new)
        return out.getvalue()

    def patchfile(self) -> str | None:
        """Unstaged and staged changes to tracked files (long diffs keep both ends)."""
        if not self.readable:
            return None
        parts = []
        for title, diff in (("Unstaged", self._unstaged()), ("Staged", self._staged())):
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

    def deleted(self) -> list[str]:
        """Tracked files the agent deleted (``git diff --name-only --diff-filter=D HEAD``)."""
        if not self.readable:
            return []
        gone = []
        for path in sorted(self._head if self._head_complete else self._index):
            entry = self._index.get(path)
            if entry is None or (
                isinstance(entry, IndexEntry) and self._worktree_changed(path, entry) == "D"
            ):
                gone.append(quote(path))
        return gone
