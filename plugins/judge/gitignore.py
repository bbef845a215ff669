"""git's ignore rules for a workspace, from files runner reads itself.

dulwich's IgnoreFilterManager opens each ``.gitignore`` itself, whole and blocking (a
FIFO there hangs it; a 200 MB one takes minutes). Here each file is read as gitrepo
reads every file (no symlink, no FIFO or device, at most MAX_IGNORE_BYTES), its
patterns parsed and matched by dulwich (``read_ignore_patterns``, ``IgnoreFilter``,
``Pattern``), and git's precedence applied: the deepest ``.gitignore`` with a matching
pattern decides, the last matching pattern in it, ``info/exclude`` below them all, and
nothing under an excluded folder can be re-included. At most MAX_IGNORE_PATTERNS
patterns are used in all; a file past either bound is not applied, and ``skipped``
says which (the state lists it).
"""

from __future__ import annotations

import io
from pathlib import Path

from dulwich.ignore import IgnoreFilter, Pattern, read_ignore_patterns

from runner_plugins.judge.gitrepo import read_capped

#: Bytes of one ignore file read; a larger one is not applied.
MAX_IGNORE_BYTES = 256 * 1024
#: Patterns used from all ignore files together; a file that would pass it is not applied.
MAX_IGNORE_PATTERNS = 1000


class Ignores:
    """The ignore rules read so far: ``info/exclude``, then each folder's ``.gitignore``
    as the walk enters it (a folder's rules are read before anything in it is asked)."""

    def __init__(self) -> None:
        #: folder (b"" the top, b"a/b") -> its .gitignore's patterns; b"\0" info/exclude.
        self._filters: dict[bytes, IgnoreFilter] = {}
        self._patterns = 0
        self._excluded_dirs: dict[bytes, bool] = {}
        #: Ignore files not applied, and why.
        self.skipped: list[str] = []

    def read(self, folder: bytes, path: Path, name: str) -> None:
        """Add the rules of the file ``path`` (shown as ``name``) for ``folder``
        (b"\\0": ``info/exclude``, under every folder's); a missing file has none."""
        try:
            data = read_capped(path, MAX_IGNORE_BYTES)
        except FileNotFoundError:
            return
        except OSError:
            self.skipped.append(f"{name} (not a regular file)")
            return
        if len(data) > MAX_IGNORE_BYTES:
            self.skipped.append(f"{name} (larger than {MAX_IGNORE_BYTES} bytes)")
            return
        patterns = list(read_ignore_patterns(io.BytesIO(data)))
        if self._patterns + len(patterns) > MAX_IGNORE_PATTERNS:
            self.skipped.append(f"{name} (past {MAX_IGNORE_PATTERNS} patterns in all)")
            return
        self._patterns += len(patterns)
        self._filters[folder] = IgnoreFilter(patterns)

    def _deciding(self, name: bytes, is_dir: bool) -> Pattern | None:
        """The pattern that decides ``name`` alone (not its folders), if any."""
        parts = name.split(b"/")
        for depth in range(len(parts) - 1, -1, -1):
            rules = self._filters.get(b"/".join(parts[:depth]))
            if rules is not None:
                relative = b"/".join(parts[depth:])
                for pattern in reversed(rules.patterns):
                    if pattern.matches(relative, is_dir):
                        return pattern
        exclude = self._filters.get(b"\0")
        if exclude is not None:
            for pattern in reversed(exclude.patterns):
                if pattern.matches(name, is_dir):
                    return pattern
        return None

    def excluded(self, name: bytes, is_dir: bool) -> bool:
        """Whether git leaves ``name`` out: a pattern excludes it or a folder above it."""
        cut = name.rfind(b"/")
        if cut >= 0 and self._excluded_dir(name[:cut]):
            return True
        if is_dir:
            return self._excluded_dir(name)
        pattern = self._deciding(name, False)
        return pattern is not None and pattern.is_exclude

    def _excluded_dir(self, name: bytes) -> bool:
        known = self._excluded_dirs.get(name)
        if known is None:
            cut = name.rfind(b"/")
            pattern = self._deciding(name, True)
            known = (cut >= 0 and self._excluded_dir(name[:cut])) or (
                pattern is not None and pattern.is_exclude
            )
            self._excluded_dirs[name] = known
        return known
