"""Copies of an experiment: whole or not at all, writable, symlinks never followed; and
the experiment a resumed run starts from (the one its earlier run repaired)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from loguru import logger

from runner.api import RunContext
from runner_plugins.judge import slotfiles
from runner_plugins.judge.experiment import CONFIG_FILE
from runner_plugins.judge.folders import build_whole
from runner_plugins.judge.writes import refused, stop_repair

#: What a copy the destination refused leaves, said after the cause.
COPY_REFUSED = "the partial copy was removed; make room and run again"


class _Refused(Exception):
    """A file copy the destination's file system refused (full, over quota, read-only).

    Not an OSError, so that ``shutil.copytree`` stops at once rather than trying every
    other file (each failing the same way) and listing them all in one error.
    """

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def copy_experiment(src: Path, dest: Path) -> None:
    """Copy an experiment folder whole (see ``folders``) and make the copy writable.

    Sources are often read-only; a run killed while copying, or a copy that fails,
    leaves no ``dest``. A destination that refuses writes (``writes.refused``) stops
    the run (StopRun, exit 74); any other failure is one ValueError line: the first
    file that failed and how many others did.
    """
    try:
        build_whole(dest, lambda partial: _copy_writable(src, partial))
    except _Refused as exc:
        raise stop_repair(dest, exc.error, COPY_REFUSED) from exc.error
    except shutil.Error as exc:  # copytree's list of (source, destination, why)
        failures = exc.args[0] if isinstance(exc.args[0], list) else [(src, dest, exc)]
        first, _, why = failures[0]
        others = f" (and {len(failures) - 1} other file(s))" if len(failures) > 1 else ""
        raise ValueError(
            f"cannot copy the experiment to {str(dest)!r}: {str(first)!r}: {why}{others}; "
            "the partial copy was removed"
        ) from None
    except OSError as exc:
        if refused(exc):
            raise stop_repair(dest, exc, COPY_REFUSED) from exc
        raise ValueError(
            f"cannot copy the experiment to {str(dest)!r}: {exc}; the partial copy was removed"
        ) from exc


def _copy_file(src: str, dst: str) -> object:
    try:
        return shutil.copy2(src, dst)
    except OSError as exc:
        if refused(exc):
            raise _Refused(exc) from exc
        raise


def _copy_writable(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, symlinks=True, copy_function=_copy_file)
    for folder, dirs, files in os.walk(dest):
        for name in [*dirs, *files, ""]:
            path = Path(folder, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)


#: Where, in the run folder, the sample experiment is made and an experiment is copied
#: (``copy``): repaired there, so a run resumed into another folder starts from them.
SAMPLE_FOLDER = "sample-experiment"
COPY_FOLDER = "experiment"


def earlier_copy(context: RunContext, name: str) -> Path | None:
    """The experiment in the run folder this run resumes (``name`` in it), when that is
    another folder; None for a fresh run or one continued in place.

    That run skipped none of its slots' repairs: they are in its folder's experiment, and
    only there. A resumed run must start from it, for the items it does not run again are
    the slots it repaired. A folder whose experiment is missing, or is not a folder of its
    own (a symlink), is refused rather than replaced by the original or a new sample.
    """
    earlier = context.resumed_from
    if earlier is None:
        return None
    earlier = Path(earlier).absolute()
    if earlier.resolve() == Path(context.output_dir).resolve():
        return None
    path = earlier / name
    if path.is_symlink() or not (path / CONFIG_FILE).is_file():
        raise ValueError(
            f"resume={str(earlier)!r}: that run's experiment {str(path)!r} is missing or "
            "not a folder, so the slots it repaired (skipped now) could not be carried "
            "over; start a new run without resume=, or give a run folder that still has it"
        )
    return path


def copy_earlier(earlier: Path, dest: Path) -> None:
    """Make ``dest`` a copy of the experiment a resumed run left (``earlier``), whole.

    Whatever ``dest`` held goes first: it can only be what a run of this folder stopped
    before its first item left (its journal is empty, or the run would have been
    refused), perhaps copied from elsewhere, which must not stand in for ``earlier``.
    The copy is made under ``earlier``'s repair lock, so that a run still repairing it
    (or continuing it in place) stops this one rather than being copied half-way through
    a slot swap. Symlinks are copied as symlinks, never followed, as from the original.
    """
    with slotfiles.repair_lock(earlier):
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        elif dest.exists():
            shutil.rmtree(dest)
        copy_experiment(earlier, dest)
    logger.info(
        f"resume: the experiment is copied from {str(earlier)!r}, with the slots that run repaired"
    )
