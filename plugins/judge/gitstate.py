"""A run's workspace read as ``git status --porcelain`` and ``git diff`` show it,
without running git.

git obeys the repository's own config and attributes, so in the agent's workspace
``core.fsmonitor``, ``diff.external``, a textconv or a clean filter would run the
agent's program. runner reads the repository with dulwich's low-level readers instead
(``gitsnapshot``: no config, attributes, hooks or filters), only when gitrepo finds it
safe to read, and computes the status (``gitstatus``) and the diffs (``gitdiff``)
itself. The framework's own files (``CLAUDE.md``, ``.claude/``) are left out, as the
original leaves them out. A symlink is listed as one, never followed. The work is
bounded: see the limits in ``gitsnapshot``.
"""

from __future__ import annotations

from pathlib import Path

from runner_plugins.judge import gitdiff, gitstatus
from runner_plugins.judge.gitsnapshot import Snapshot


class Workspace:
    """A run's workspace read as ``git status`` and ``git diff`` would show it."""

    def __init__(self, path: Path, root: Path | None = None) -> None:
        """``path`` read when it is a folder inside ``root`` (by default itself) whose
        repository runner may read (see gitrepo), else shown as ``gitstatus.UNREADABLE``."""
        self._snapshot = Snapshot(path, root)

    def state(self) -> str:
        """The files the agent created, modified or deleted, as the original lists them."""
        return gitstatus.state(self._snapshot)

    def patchfile(self) -> str | None:
        """Unstaged and staged changes to tracked files (long diffs keep both ends)."""
        return gitdiff.patchfile(self._snapshot)

    def deleted(self) -> list[str]:
        """Tracked files the agent deleted (``git diff --name-only --diff-filter=D HEAD``)."""
        return gitstatus.deleted(self._snapshot)
