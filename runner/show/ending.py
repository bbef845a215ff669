"""The end of a run on the console: which items failed and why, where the files are, and
the command that runs what is left.

Like pytest's "short test summary info": the first failed items by id with their one-line
errors, as many as fit the terminal, the rest counted; then, for a run that left items
failed or unrun (halted, interrupted, a source or disk that failed), the command that
resumes it: the run's own overrides with ``resume=`` this run's folder, which runs the
failed and the unrun items again and skips the ones that succeeded. runner has no command
that retries only the failed ids: resume is the one that runs exactly what is left.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from runner.show.labels import MESSAGE_CHARS, shown_path
from runner.show.progress import CONSOLE_MARGIN

#: Failed items listed when stderr is no terminal (a log file, CI): its height is unknown.
FAILED_SHOWN_WITHOUT_TERMINAL = 10
#: Terminal lines kept for what follows the list: its header, the rest's count, the
#: files, the command, a post-processor's lines and the prompt.
LINES_AFTER = 8
#: Failed items listed however short the terminal.
FAILED_SHOWN_AT_LEAST = 3


def terminal_size() -> tuple[int, int]:
    """Columns and lines of the terminal stderr is on; (0, 0) when it is none."""
    try:
        if sys.stderr.isatty():
            size = os.get_terminal_size(sys.stderr.fileno())
            return size.columns, size.lines
    except (OSError, ValueError):
        pass
    return 0, 0


def failed_lines(first: Sequence[tuple[str, str]], failed: int, size: tuple[int, int]) -> list[str]:
    """The list of failed items: a header, one line per item shown (``  <id>: <error>``,
    cut to the terminal's width), and the count of the rest; [] when none failed.

    ``first`` holds the first failed items in the order they failed (fewer than
    ``failed`` when the run kept only some), ``size`` the terminal's columns and lines
    ((0, 0): no terminal).
    """
    if not failed:
        return []
    columns, rows = size
    room = max(rows - LINES_AFTER, FAILED_SHOWN_AT_LEAST) if rows else FAILED_SHOWN_WITHOUT_TERMINAL
    shown = list(first[:room])
    width = columns - CONSOLE_MARGIN if columns else MESSAGE_CHARS
    note = f", the first {len(shown)} shown" if len(shown) < failed else ""
    lines = [f"Failed items ({failed}{note}):"]
    for item_id, reason in shown:
        line = f"  {item_id}: {reason}"
        lines.append(line if len(line) <= width else line[: max(width - 1, 10)] + "…")
    if failed > len(shown):
        lines.append(f"  ... and {failed - len(shown)} more (results.jsonl has every one)")
    return lines


def program() -> list[str]:
    """How this process was started, as a person would type it again: ``runner`` for the
    installed script, else ``python -m runner``."""
    if Path(sys.argv[0]).name == "runner":
        return ["runner"]
    return ["python", "-m", "runner"]


def run_overrides() -> list[str] | None:
    """The command-line overrides of the run under way (Hydra's ``hydra.overrides.task``),
    or None when Hydra did not start it (a library caller)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return [str(override) for override in HydraConfig.get().overrides.task]


def resume_command(output_dir: Path, overrides: Sequence[str]) -> str:
    """The shell command that resumes the run in ``output_dir``: its own ``overrides``
    (what resume compares: the same task and source options) with ``resume=`` that
    folder in place of any earlier one; each argument quoted for a POSIX shell."""
    kept = [o for o in overrides if o.lstrip("+").split("=", 1)[0] != "resume"]
    return shlex.join([*program(), *kept, f"resume={shown_path(output_dir)}"])


def next_step(summary: dict[str, Any], output_dir: Path, overrides: Sequence[str] | None) -> str:
    """What to run next for a run that left items failed or unrun, or "" when none is left."""
    failed, unrun = summary.get("failed") or 0, summary.get("skipped")
    # A source of unknown length that was stopped has unrun items it cannot count.
    uncounted = unrun is None and bool(summary.get("interrupted") or summary.get("halted"))
    left = [f"{failed} failed"] if failed else []
    if unrun or uncounted:
        left.append(f"{unrun} unrun" if unrun else "unrun")
    if not left:
        return ""
    what = f"the {' and '.join(left)} item(s)"
    if overrides is None:  # not started from runner's command line: say what to add
        return f"To run {what} again, add resume={shown_path(output_dir)} to the run's overrides"
    return f"To run {what} again: {resume_command(output_dir, overrides)}"


def log_ending(
    summary: dict[str, Any],
    output_dir: Path,
    written: Sequence[str],
    first_failed: Sequence[tuple[str, str]],
    overrides: Sequence[str] | None,
) -> None:
    """Log the failed items, where the run's files are (those of ``written`` that exist:
    a full disk may have refused some) and the command that runs what is left."""
    for line in failed_lines(first_failed, summary.get("failed") or 0, terminal_size()):
        logger.warning(line)
    files = [name for name in written if (output_dir / name).is_file()]
    logger.info(f"Results in {shown_path(output_dir)}{os.sep} ({', '.join(files) or 'no file'})")
    step = next_step(summary, output_dir, overrides)
    if step:
        logger.warning(step)
