"""Writes into the experiment that its file system refuses: which refusals stop a repair.

A full disk (ENOSPC), an exhausted quota (EDQUOT) or a file system mounted read-only
(EROFS) refuses every write into the experiment, not one slot's: each further judge
call would be paid for and its verdict thrown away. Such a refusal ends the run
(:class:`runner.api.StopRun`, exit 74) with one line naming where and why. Any other
error (a slot folder another user owns, say) stays one slot's failure.
"""

from __future__ import annotations

import errno
from pathlib import Path

from runner.api import StopRun

#: The errno values that refuse every write into the experiment.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def refused(exc: BaseException) -> bool:
    """Whether ``exc`` is a write the experiment's file system refuses whatever the file."""
    return isinstance(exc, OSError) and exc.errno in NO_ROOM


def stop_repair(where: Path, exc: OSError, then: str) -> StopRun:
    """The error that ends the run: ``where`` could not be written, why, and ``then``
    (what was left as it was and what to do)."""
    code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return StopRun(f"cannot write {str(where)!r}: {exc.strerror or exc} ({code}); {then}")
