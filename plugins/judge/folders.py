"""Folders that appear whole: built in ``<dest>.partial``, then renamed into place.

The sample experiment and an experiment's copy are made this way, so a run killed while
making one leaves no ``dest`` that a resumed run would take for a finished folder; the
``.partial`` it leaves is removed by the next build.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path


def build_whole(dest: Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(folder)`` on ``<dest>.partial`` and rename that to ``dest``; return ``dest``.

    ``dest``, if it exists, must be an empty folder. On any error, or an interruption,
    the partial folder is removed: ``dest`` never holds half a folder.
    """
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        build(partial)
        if dest.exists():
            dest.rmdir()  # only an empty folder may be replaced
        partial.rename(dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return dest
