"""A run's workspace as git sees it: HEAD's tree, the index and the work tree, read once.

The repository is read with dulwich's low-level readers (index, refs, object store; no
config, attributes, hooks or filters), only when gitrepo finds it safe to read. The work
tree is walked without following a symlink. Every read is bounded: see the limits below.
What the snapshot shows is for ``gitstatus`` and ``gitdiff`` to say.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import stat
import struct
import zlib
from pathlib import Path

from dulwich.errors import FileFormatException, ObjectFormatException
from dulwich.index import ConflictedIndexEntry, IndexEntry, read_index_dict
from dulwich.objects import Blob, Commit, ObjectID, Tree

from runner_plugins.judge.gitignore import Ignores
from runner_plugins.judge.gitobjects import BoundedStore
from runner_plugins.judge.gitpaths import folders_of
from runner_plugins.judge.gitrepo import GitDirs, git_dirs, head_commit, inside, read_capped

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

#: The mode of a submodule's entry.
GITLINK = 0o160000


def blob_id(data: bytes) -> ObjectID:
    """The blob id git gives ``data``."""
    return Blob.from_string(data).id


def hash_file(path: Path, size: int) -> ObjectID:
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


def mode_of(st: os.stat_result) -> int:
    """The git mode of a work-tree entry (as git records it with core.fileMode on)."""
    if stat.S_ISLNK(st.st_mode):
        return 0o120000
    return 0o100755 if st.st_mode & 0o100 else 0o100644


@dataclasses.dataclass
class Scan:
    """The workspace as a walk that follows no symlink saw it."""

    #: Relative path (bytes, "/"-separated) -> its lstat; folders included.
    entries: dict[bytes, os.stat_result]
    #: False when the walk stopped at MAX_SCANNED entries.
    complete: bool


class Snapshot:
    """HEAD's files, the index and the work tree of a run's workspace, read once."""

    def __init__(self, path: Path, root: Path | None = None) -> None:
        """``path`` read when it is a folder inside ``root`` (by default itself) whose
        repository runner may read (see gitrepo); else ``readable`` is False."""
        self.path = path
        readable = path.is_dir() and inside(path, root or path)
        dirs = git_dirs(path, root or path) if readable else None
        self.readable = dirs is not None
        self._dirs = dirs or GitDirs(path / ".git", path / ".git")
        self._store = BoundedStore(self._dirs.common / "objects", MAX_FILE_BYTES)
        #: HEAD's files: path -> (mode, blob id).
        self.head: dict[bytes, tuple[int, ObjectID]] = {}
        #: False when HEAD's tree has more than MAX_SCANNED entries (then not compared).
        self.head_complete = True
        self.index: dict[bytes, IndexEntry | ConflictedIndexEntry] = {}
        self.scan = Scan({}, True)
        self.ignored = Ignores()
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
            self.head_complete = self._read_tree(commit.tree)
            if not self.head_complete:
                self.head = {}
        try:
            data = read_capped(self._dirs.worktree / "index", MAX_INDEX_BYTES)
        except FileNotFoundError:
            data = b""
        if len(data) > MAX_INDEX_BYTES:
            raise ValueError(f"the index is larger than {MAX_INDEX_BYTES} bytes")
        self.index = read_index_dict(io.BytesIO(data)) if data else {}
        self.scan = self._walk()

    def _read_tree(self, root: ObjectID) -> bool:
        """HEAD's files from the tree ``root`` into ``head``; False when it has more
        than MAX_SCANNED entries (a tree bomb: a few KB of nested trees can name
        millions)."""
        todo = [(b"", root)]
        seen = 0
        while todo:
            prefix, sha = todo.pop()
            tree = self._object(sha, Tree)
            assert isinstance(tree, Tree)
            for entry in tree.iteritems():
                seen += 1
                if seen > MAX_SCANNED:
                    return False
                path = prefix + entry.path
                if stat.S_ISDIR(entry.mode):
                    todo.append((path + b"/", entry.sha))
                else:
                    self.head[path] = (entry.mode, entry.sha)
        return True

    def _walk(self) -> Scan:
        """The workspace, never through a symlink; ignored folders not entered. The
        ignore rules: info/exclude (a common file, as git has it; not
        core.excludesFile, which names a file outside) and each .gitignore (see
        gitignore)."""
        tracked_dirs = folders_of(self.index)
        ignores = self.ignored
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
                        return Scan(entries, False)
                    st = entry.stat(follow_symlinks=False)
                    entries[rel] = st
                    if stat.S_ISDIR(st.st_mode):
                        if rel not in tracked_dirs and ignores.excluded(rel, True):
                            continue
                        todo.append(rel + b"/")
        return Scan(entries, True)

    def worktree_blob(self, rel: bytes, st: os.stat_result) -> bytes | None:
        """The content git would record for ``rel`` (a link's target), or None if
        longer than MAX_FILE_BYTES."""
        full = self.path / os.fsdecode(rel)
        if stat.S_ISLNK(st.st_mode):
            return os.fsencode(os.readlink(full))
        data = read_capped(full, MAX_FILE_BYTES)
        return None if len(data) > MAX_FILE_BYTES else data

    def worktree_changed(self, rel: bytes, entry: IndexEntry) -> str:
        """git's Y column for a tracked path: "" unchanged, "M", "D" or "T"."""
        st = self.scan.entries.get(rel)
        if st is None:
            return "D" if self.scan.complete else ""
        if entry.mode == GITLINK:
            return "" if stat.S_ISDIR(st.st_mode) else "T"
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            return "D"  # a folder (or a fifo) where the file was
        if stat.S_ISLNK(st.st_mode) != stat.S_ISLNK(entry.mode):
            return "T"
        if mode_of(st) != entry.mode:
            return "M"
        if stat.S_ISREG(st.st_mode) and st.st_size != entry.size:
            return "M"
        if stat.S_ISREG(st.st_mode) and st.st_size > MAX_HASH_BYTES:
            return "" if st.st_mtime_ns == _mtime_ns(entry.mtime) else "M"
        if stat.S_ISLNK(st.st_mode):
            current = blob_id(os.fsencode(os.readlink(self.path / os.fsdecode(rel))))
        else:
            current = hash_file(self.path / os.fsdecode(rel), st.st_size)
        return "" if current == entry.sha else "M"

    def stored(self, sha: ObjectID, mode: int) -> bytes | None:
        """A blob's content from the repository, or None if longer than MAX_FILE_BYTES."""
        if mode == GITLINK:
            return b"Subproject commit " + sha + b"\n"
        obj = self._store.get(sha)  # None: larger than the limit, found before inflating
        if obj is None:
            return None
        data = obj.as_raw_string()
        return None if len(data) > MAX_FILE_BYTES else data
