"""Where a run's workspace keeps its git repository, and whether runner may read it.

The workspace is the agent's, so its ``.git`` is only ever read as data, and only when
everything it leads to stays inside the experiment (the folder holding the tiers). A
ProjectScylla workspace is a git worktree of the experiment's ``repo/``: its ``.git`` is
a file ``gitdir: <path>`` naming ``repo/.git/worktrees/<name>/``, whose ``commondir``
file names ``repo/.git`` back. git reads HEAD and the index from that worktree folder,
and the objects, ``packed-refs`` and the refs shared by all worktrees (all of ``refs/``
but ``refs/bisect/``, ``refs/worktree/``, ``refs/rewritten/``) from the common one;
runner does the same. Either path may be absolute or relative (to the workspace, to the
worktree folder), as git writes them.

Not read (the state is "unable to get workspace state"): a ``.git`` that is a symlink, a
pointer or ``commondir`` that resolves outside the experiment or is malformed, a symlink
anywhere in the worktree or common folder (dulwich would follow it), anything there
that is neither a folder nor a regular file (a FIFO would block a reader forever; a
device could do anything when opened), and ``objects/info/alternates`` in either
(objects borrowed from elsewhere).

Every file runner reads itself (a pointer, HEAD, a ref, ``packed-refs``, the index,
an ignore file, a work-tree file) is opened by :func:`read_capped`: checked to be a
regular file before and after opening, never through a symlink, never blocking, and
read up to a bound.
"""

from __future__ import annotations

import dataclasses
import io
import os
import stat
from pathlib import Path

from dulwich.objects import ObjectID, valid_hexsha
from dulwich.refs import SYMREF, Ref, check_ref_format, read_packed_refs_with_peeled

#: Bytes of a ``.git`` file, a ``commondir`` file or a loose ref read: one line.
MAX_POINTER_BYTES = 4096
#: Bytes of ``packed-refs`` read; a larger one makes the repository unreadable.
MAX_PACKED_REFS_BYTES = 16 * 1024 * 1024
# Refs each worktree keeps for itself (the rest are shared, in the common folder).
_PER_WORKTREE = (b"refs/bisect/", b"refs/worktree/", b"refs/rewritten/")


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` is no symlink and resolves inside ``root`` (no folder above it
    leads elsewhere)."""
    try:
        return not path.is_symlink() and path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError):
        return False


def read_capped(path: Path, limit: int) -> bytes:
    """At most ``limit`` + 1 bytes of the regular file ``path``, never through a symlink;
    OSError for anything else (checked before opening too: opening a device may act)."""
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise OSError(f"{path} is not a regular file")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(f"{path} is not a regular file")
        return f.read(limit + 1)


@dataclasses.dataclass(frozen=True)
class GitDirs:
    """The two folders of a repository as git uses them (the same one outside a worktree)."""

    #: HEAD, the index and the per-worktree refs.
    worktree: Path
    #: Objects, packed-refs, the shared refs and info/exclude.
    common: Path

    def read_ref(self, name: bytes) -> bytes | None:
        """What the ref ``name`` holds (an object id, or ``ref: <name>``), from its loose
        file in the folder git looks it up in, else ``packed-refs``; None if neither
        has it."""
        folder = self.worktree if name == b"HEAD" or name.startswith(_PER_WORKTREE) else self.common
        try:
            data = read_capped(folder / os.fsdecode(name), MAX_POINTER_BYTES)
        except FileNotFoundError:
            data = None
        if data is not None:
            if len(data) > MAX_POINTER_BYTES:
                raise ValueError(f"{name!r} is too long for a ref")
            return data.rstrip(b"\r\n")
        if folder != self.common:
            return None
        try:
            packed = read_capped(self.common / "packed-refs", MAX_PACKED_REFS_BYTES)
        except FileNotFoundError:
            return None
        if len(packed) > MAX_PACKED_REFS_BYTES:
            raise ValueError(f"packed-refs is larger than {MAX_PACKED_REFS_BYTES} bytes")
        lines = [line for line in packed.splitlines(keepends=True) if not line.startswith(b"#")]
        for sha, ref, _ in read_packed_refs_with_peeled(io.BytesIO(b"".join(lines))):
            if ref == name:
                return sha
        return None


def _pointed(file: Path, base: Path, prefix: bytes, root: Path) -> Path | None:
    """The folder the one-line ``file`` names after ``prefix`` (relative to ``base``),
    resolved, when it is a folder inside ``root``; else None. Trailing line ends are
    dropped, as git drops them."""
    data = read_capped(file, MAX_POINTER_BYTES)
    if len(data) > MAX_POINTER_BYTES or not data.startswith(prefix):
        return None
    target = data[len(prefix) :].rstrip(b"\r\n")
    if not target or b"\0" in target:
        return None
    folder = Path(os.fsdecode(os.path.join(os.fsencode(base), target)))
    if not inside(folder, root):
        return None
    folder = folder.resolve()
    return folder if stat.S_ISDIR(os.lstat(folder).st_mode) else None


def _plain(git_dir: Path) -> bool:
    """Whether ``git_dir`` borrows no objects and holds only folders and regular files."""
    if os.path.lexists(git_dir / "objects" / "info" / "alternates"):
        return False
    for folder, dirs, files in os.walk(git_dir):
        for name in (*dirs, *files):
            mode = os.lstat(os.path.join(folder, name)).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                return False
    return True


def git_dirs(workspace: Path, root: Path) -> GitDirs | None:
    """The repository of ``workspace`` (itself inside ``root``) when runner may read it
    (see the module doc), else None."""
    git = workspace / ".git"
    try:
        mode = os.lstat(git).st_mode
        if stat.S_ISDIR(mode):
            worktree: Path | None = git
        elif stat.S_ISREG(mode):
            worktree = _pointed(git, workspace, b"gitdir: ", root)
        else:
            return None  # absent, or a symlink
        if worktree is None or not _plain(worktree):
            return None
        if not os.path.lexists(worktree / "commondir"):
            return GitDirs(worktree, worktree)
        common = _pointed(worktree / "commondir", worktree, b"", root)
        if common is None or not _plain(common):
            return None
    except OSError:
        return None
    return GitDirs(worktree, common)


def head_commit(dirs: GitDirs) -> ObjectID | None:
    """The commit HEAD names, or None on an unborn branch. A symbolic ref is followed
    only to a well-formed name under refs/ (joined to the repository's path, any name,
    ``/etc/x`` too, would lead outside)."""
    name = Ref(b"HEAD")
    for _ in range(5):
        contents = dirs.read_ref(name)
        if contents is None:
            return None  # an unborn branch: everything in the index is added
        if not contents.startswith(SYMREF):
            if not valid_hexsha(contents):
                raise ValueError(f"{name!r} holds no object id")
            return ObjectID(contents)
        name = Ref(contents[len(SYMREF) :].strip())
        if not name.startswith(b"refs/") or not check_ref_format(name):
            raise ValueError(f"HEAD leads to {name!r}")
    raise ValueError("HEAD is a loop of symbolic refs")
