"""A slot is replaced whole: an attempt is written beside it and swapped in by renames.

Inside ``<run>/judge/``, an attempt at slot ``judge_NN`` is written into
``.judge_NN.attempt-<pid>-<random>/`` and committed by renames:

1. the current ``judge_NN/`` (if any) is renamed ``.judge_NN.replaced``;
2. the attempt folder is renamed ``judge_NN`` (the commit point);
3. ``.judge_NN.replaced`` is moved into ``judge_NN/attempts/<n>/`` (its own earlier
   attempts first, keeping their numbers), so nothing an earlier attempt wrote is lost.

An attempt that must not replace the slot (a failed re-judge of a complete slot) is
renamed straight into ``judge_NN/attempts/<n>/``. Whatever moment a crash or a signal
stops this, :func:`recover_run` (run by the next repair before anything else) brings
each slot to one of two states, as it was or as the attempt left it: an uncommitted
attempt folder is removed, a ``.replaced`` folder goes back if step 2 never happened
and into ``attempts/`` if it did, and temporary files of interrupted atomic writes
are deleted. A slot therefore never mixes the files of two attempts.

This module also writes the two files every judged slot has whoever judged it,
``MODEL.md`` and ``timing.json`` (:func:`write_model`, :func:`write_timing`), and reads
back why an attempt failed (:func:`failure_kind`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from runner.toolkit import (
    atomic_write_json,
    atomic_write_text,
    detect_rate_limit,
    leftover_temp_files,
)
from runner_plugins.judge.experiment import (
    CONFIG_FILE,
    JUDGE_DIR,
    SLOT_PREFIX,
    RunRef,
    read_object,
    replaced_dir,
    replaced_slot,
)

ATTEMPTS = "attempts"
MODEL_FILE = "MODEL.md"
TIMING_FILE = "timing.json"
RESPONSE_FILE = "response.txt"
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
_ATTEMPT = re.compile(rf"^\.({SLOT_PREFIX}\d+)\.attempt-[\w-]+$")
#: Why an attempt failed, as a failed timing.json's ``failure_kind`` says, with what the
#: summary calls it (in the order it lists them).
FAILURE_KINDS = {
    "timeout": "timed out (task.timeout)",
    "exit_code": "judge exited with a non-zero code",
    "rate_limited": "rate limited or overloaded",
    "judge_error": "the judge reported an error (is_error)",
    "unusable_reply": "reply without a usable verdict",
    "marked_invalid": "the judge marked its verdict invalid",
    "cannot_start": "judge program could not start",
    "api_error": "the judge's API refused the request (HTTP 4xx)",
    "api_unavailable": "the judge's API failed or could not be reached (HTTP 5xx, connection)",
    "other": "other",
}
# The reasons runner wrote before timing.json had failure_kind, by how they begin.
_REASONS = (
    ("timed out", "timeout"),
    ("judge exited with code", "exit_code"),
    ("cannot start", "cannot_start"),
    ("judge marked its reply invalid", "marked_invalid"),
    ("reply has no JSON object", "unusable_reply"),
)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def write_model(
    slot_dir: Path,
    model: str,
    *,
    at: str | None = None,
    command: list[str] | None = None,
    write: Callable[[Path, str], None] = atomic_write_text,
) -> None:
    """Write the slot's MODEL.md: the model that judged and when (default now).

    ``command`` is the argv of a rerun by runner, which MODEL.md then names and marks as a
    rerun; ``write`` lets the sample write plainly into its private, not yet visible folder.
    """
    lines = ["# Judge Model Information", "", f"**Model**: {model}"]
    if command is not None:
        lines.append(f"**Command**: `{' '.join(command)}`")
    lines.append(f"**Timestamp**: {at or _now()}")
    if command is not None:
        lines.append("**Rerun**: true")
    write(slot_dir / MODEL_FILE, "\n".join(lines) + "\n")


def write_timing(
    slot_dir: Path,
    seconds: float,
    *,
    at: str | None = None,
    rerun: bool = False,
    failure: str | None = None,
    kind: str | None = None,
    extra: dict[str, Any] | None = None,
    write: Callable[[Path, Any], None] = atomic_write_json,
) -> None:
    """Write the slot's timing.json: how long the judge took and when (default now).

    ``rerun`` marks an attempt by runner (:func:`was_rerun` reads it); a failed attempt
    gives its ``failure`` reason and its ``kind`` (one of FAILURE_KINDS), and timing.json
    is then the file that says it failed. ``extra`` adds keys (a judge's ``cost``).
    """
    timing: dict[str, Any] = {"judge_duration_seconds": seconds, "measured_at": at or _now()}
    if rerun:
        timing["rerun"] = True
    if failure is not None:
        timing |= {"failed": True, "reason": failure}
    if kind is not None:
        assert kind in FAILURE_KINDS, kind
        timing["failure_kind"] = kind
    write(slot_dir / TIMING_FILE, timing | (extra or {}))


def failure_kind(timing: dict[str, Any]) -> str | None:
    """Why the attempt whose timing.json holds ``timing`` failed (None: it did not say so).

    timing.json files written before ``failure_kind`` existed (and those of other
    tools) are read by their reason: a rate limit as detect_rate_limit sees one, else
    the way runner's reasons begin.
    """
    if timing.get("failed") is not True:
        return None
    kind = timing.get("failure_kind")
    if kind in FAILURE_KINDS:
        return str(kind)
    reason = str(timing.get("reason") or "")
    if timing.get("rate_limited") is True or detect_rate_limit(reason)[0]:
        return "rate_limited"
    return next((kind for start, kind in _REASONS if reason.startswith(start)), "other")


def was_rerun(slot_dir: Path) -> bool:
    """Whether the slot's timing.json says runner wrote it (see :func:`write_timing`)."""
    return (read_object(slot_dir / TIMING_FILE) or {}).get("rerun") is True


def new_attempt_dir(slot_dir: Path) -> Path:
    """Create and return an empty folder for a new attempt at ``slot_dir``, beside it."""
    slot_dir.parent.mkdir(parents=True, exist_ok=True)
    path = slot_dir.with_name(f".{slot_dir.name}.attempt-{os.getpid()}-{secrets.token_hex(4)}")
    path.mkdir()
    return path


def _number(path: Path) -> int | None:
    return int(path.name) if path.name.isdigit() else None


def next_attempt_number(attempts: Path) -> int:
    """One more than the highest numbered folder in ``attempts`` (1 when there is none)."""
    try:
        numbers = [n for p in attempts.iterdir() if (n := _number(p)) is not None]
    except FileNotFoundError:
        return 1
    return max(numbers, default=0) + 1


def archive(old: Path, slot_dir: Path) -> Path:
    """Move the folder ``old`` into ``slot_dir/attempts/<n>/``; return where it went.

    ``old``'s own ``attempts/`` entries move first, keeping their numbers, so the archive
    stays flat and in order. Each step is a rename, so repeating this after a crash
    finishes the job.
    """
    attempts = slot_dir / ATTEMPTS
    attempts.mkdir(exist_ok=True)
    inner = old / ATTEMPTS
    if inner.is_dir():
        for child in sorted(inner.iterdir(), key=lambda p: (_number(p) or 0, p.name)):
            dest = attempts / child.name
            if dest.exists():
                dest = attempts / str(next_attempt_number(attempts))
            child.rename(dest)
        inner.rmdir()
    dest = attempts / str(next_attempt_number(attempts))
    old.rename(dest)
    return dest


def inherit_modes(attempt: Path, slot_dir: Path) -> None:
    """Give the attempt folder, and each file in it that replaces one, the old mode.

    A slot on a shared experiment (group-writable, say) stays as shared once replaced.
    """
    attempt.chmod(stat.S_IMODE(slot_dir.stat().st_mode))
    for path in attempt.iterdir():
        old = slot_dir / path.name
        if path.is_file() and old.is_file():
            path.chmod(stat.S_IMODE(old.stat().st_mode))


def commit(attempt: Path, slot_dir: Path, *, replace: bool) -> Path | None:
    """Make the finished ``attempt`` folder the slot, or archive it beside the slot.

    With ``replace`` the attempt becomes ``slot_dir`` and the folder it replaces (if
    any) is archived: the return value is where that went. The attempt takes the modes
    of what it replaces (:func:`inherit_modes`). Without, the attempt itself
    is archived in ``slot_dir/attempts/`` and its place is returned.
    """
    if not replace:
        return archive(attempt, slot_dir)
    replaced = replaced_dir(slot_dir)
    had_slot = slot_dir.exists()
    if had_slot:
        inherit_modes(attempt, slot_dir)
        # Made before the swap: on a full disk it fails while the slot is still as it was.
        (attempt / ATTEMPTS).mkdir(exist_ok=True)
        slot_dir.rename(replaced)
        try:
            attempt.rename(slot_dir)
        except OSError:
            replaced.rename(slot_dir)  # the name it just freed: the slot is as it was
            raise
    else:
        attempt.rename(slot_dir)
    return archive(replaced, slot_dir) if had_slot else None


def discard(attempt: Path) -> None:
    """Remove an attempt folder that will not be committed."""
    shutil.rmtree(attempt, ignore_errors=True)


def leftovers(run: RunRef) -> list[Path]:
    """What an interrupted repair left in ``run``'s folders (see :func:`recover_run`)."""
    judge = run.dir / JUDGE_DIR
    found = leftover_temp_files(run.dir) + leftover_temp_files(judge)
    try:
        entries = sorted(judge.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return found
    for entry in entries:
        if _ATTEMPT.match(entry.name) or replaced_slot(entry) is not None:
            found.append(entry)
        elif entry.is_dir() and entry.name.startswith(SLOT_PREFIX):
            found += leftover_temp_files(entry)
    return found


def recover_run(run: RunRef) -> list[str]:
    """Finish or undo whatever an interrupted repair left in ``run``; say what was done."""
    done = []
    for path in leftovers(run):
        slot_dir = replaced_slot(path)
        if _ATTEMPT.match(path.name):
            discard(path)
            done.append(f"removed the unfinished attempt {path.name}")
        elif slot_dir is not None:
            if slot_dir.exists():
                dest = archive(path, slot_dir)
                done.append(f"moved the replaced {slot_dir.name} into {ATTEMPTS}/{dest.name}")
            else:
                path.rename(slot_dir)
                done.append(f"put back {slot_dir.name}, whose replacement never arrived")
        else:
            path.unlink(missing_ok=True)
            done.append(f"removed the temporary file {path.name}")
    return done


def being_repaired(root: Path) -> bool:
    """Whether another process holds the experiment's repair lock (a dry run's check)."""
    key = (root / CONFIG_FILE).resolve()
    if _THIS_PROCESS.holds(key):
        return False  # this process's own lock
    try:
        with open(key, "rb") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


class ExperimentBusy(RuntimeError):
    """Another process is repairing the same experiment."""


class _HeldLocks:
    """The repair locks this process holds, by experiment config file, each with the
    number of blocks holding it."""

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.held: dict[Path, tuple[IO[bytes], int]] = {}

    def holds(self, key: Path) -> bool:
        with self.guard:
            return key in self.held

    def acquire(self, key: Path, root: Path) -> None:
        with self.guard:
            fh, count = self.held.get(key, (None, 0))
            if fh is None:
                fh = open(key, "rb")
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    fh.close()
                    raise ExperimentBusy(
                        f"experiment {str(root)!r} is being repaired by another process; "
                        "wait for it to finish (a dry run is always allowed)"
                    ) from None
            self.held[key] = (fh, count + 1)

    def release(self, key: Path) -> None:
        with self.guard:
            fh, count = self.held.pop(key)
            if count > 1:
                self.held[key] = (fh, count - 1)
            else:
                fh.close()


# The one state this module keeps, process-wide by nature: flock belongs to an open
# file, so a second open in this process would block on the first; within one process
# a lock is shared (counted), only other processes are kept out. A run's source cannot
# hold it: two runs of one process (a resume copying the experiment another run holds)
# must find each other's locks.
_THIS_PROCESS = _HeldLocks()


@contextlib.contextmanager
def repair_lock(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on the experiment while repairing it (no file is created).

    The lock is taken on ``config/experiment.json``, which every experiment has, so two
    processes repairing one experiment cannot interleave their swaps.
    """
    key = (root / CONFIG_FILE).resolve()
    _THIS_PROCESS.acquire(key, root)
    try:
        yield
    finally:
        _THIS_PROCESS.release(key)
