"""The judge's system prompt (``task.system_prompt_file``): read once, before any call.

The judge prompt each run holds (``judge_prompt.md``) ends by pointing the judge at
"the rubric and criteria in your system prompt"; the original passes that system prompt
as a file (ProjectScylla's ``config/judge/system_prompt.md``, given to the Claude Code CLI
with ``--system-prompt-file``). Here the evaluator names the file: it is their own
configuration, not the experiment's, but it is read like an input all the same: a
regular file (no symlink, no device or FIFO), at most MAX_SYSTEM_PROMPT_BYTES, UTF-8.
What cannot be read so stops the run before its first call (ValueError: exit 2, one
line naming the path). A CLI judge is given a copy written into the run folder
(COPY_FILE), so that what it reads is what was checked, and the run keeps it.
"""

from __future__ import annotations

import os
from pathlib import Path

from runner.api import StopRun
from runner.toolkit import atomic_write_text
from runner_plugins.judge.gitrepo import read_capped

#: The most bytes of a system prompt (as of a run's judge_prompt.md sent over HTTP).
MAX_SYSTEM_PROMPT_BYTES = 4 * 1024 * 1024
#: The run folder's copy of the system prompt, the file a CLI judge is given.
COPY_FILE = "judge_system_prompt.md"


def read_system_prompt(path: str | os.PathLike[str]) -> str:
    """The text of the system prompt file ``path``; ValueError naming it and why not."""
    shown = str(path)
    try:
        data = read_capped(Path(path), MAX_SYSTEM_PROMPT_BYTES)
    except OSError as exc:
        if os.path.islink(path):
            why = "is a symlink; give the file it leads to"
        elif isinstance(exc, FileNotFoundError):
            why = "does not exist"
        elif exc.strerror is None:  # read_capped's own refusal
            why = "is not a regular file"
        else:
            why = f"cannot be read ({exc.strerror})"
        raise ValueError(f"task.system_prompt_file {shown!r} {why}") from None
    if len(data) > MAX_SYSTEM_PROMPT_BYTES:
        raise ValueError(
            f"task.system_prompt_file {shown!r} is larger than {MAX_SYSTEM_PROMPT_BYTES} bytes"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"task.system_prompt_file {shown!r} is not UTF-8 text (byte {exc.start})"
        ) from None
    if not text.strip():
        raise ValueError(f"task.system_prompt_file {shown!r} is empty; give null for none")
    return text


def write_copy(text: str, output_dir: Path) -> Path:
    """Write ``text`` into the run folder as COPY_FILE; its absolute path. StopRun (exit
    74) when the run folder refuses it: no judge has started."""
    copy = Path(output_dir).absolute() / COPY_FILE
    try:
        atomic_write_text(copy, text)
    except OSError as exc:
        raise StopRun(
            f"cannot write the system prompt's copy {str(copy)!r}: {exc.strerror or exc}; "
            "no judge started: make room and run the same command again"
        ) from exc
    return copy
