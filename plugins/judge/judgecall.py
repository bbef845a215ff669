"""How a slot's judge is called: the one seam between a slot's attempt and its judge.

The judge is a command, run without a shell in its own process group: by default the
local rule-based stand-in (``local_judge.py``), with ``task=judge_rerun_claude`` the
Claude Code CLI, whose reply comes inside its JSON result envelope
(``reply_format=claude_json``) with what the call cost. :func:`call` runs it and reads
what it printed into a :class:`Call`; it writes nothing (``task.JudgeRerun`` writes the
attempt's files, counts the cost and decides the slot). A judge of another kind fills a
:class:`Call` the same way.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from runner.api import RetryableError
from runner.toolkit import (
    CommandResult,
    detect_rate_limit,
    fill_template,
    run_command,
    template_fields,
)
from runner_plugins.judge import local_judge
from runner_plugins.judge.costs import cost_record
from runner_plugins.judge.judgment import parse_reply
from runner_plugins.judge.reply import Envelope, ReplyError, read_envelope

#: The local judge's file: run as a script with ``-S`` (it needs only the standard library)
#: its start-up costs half the CPU of ``-m``, so that, like a remote judge, it is mostly wait.
LOCAL_JUDGE = str(Path(local_judge.__file__).resolve())
DEFAULT_COMMAND = (
    "{python}",
    "-S",
    "{local_judge}",
    "--model",
    "{model}",
    "--prompt-file",
    "{prompt_file}",
    "--run-dir",
    "{run_dir}",
)
#: The exit code (sysexits.h) of a judge that failed for a reason worth a retry.
EX_TEMPFAIL = 75
#: How a judge's stdout holds its reply: as text, or inside Claude Code's JSON result
#: envelope (``claude -p --output-format json``), which also says what the call cost.
REPLY_FORMATS = ("text", "claude_json")
#: The placeholders a judge command template may use.
PLACEHOLDERS = (
    "python",
    "local_judge",
    "model",
    "prompt_file",
    "workspace",
    "slot_dir",
    "run_dir",
    "experiment",
    "tier",
    "subtest",
    "run",
    "slot",
)


class JudgeRateLimited(RetryableError):
    """The judge failed because its service is rate limited or overloaded: worth a retry.

    ``retry_after`` (also ``wait``) is the wait in seconds the reply asked for, or None.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after, rate_limited=True)
        self.retry_after = retry_after


@dataclasses.dataclass
class Call:
    """How one call of the judge went: its judgment, or why it gave none."""

    argv: list[str]
    #: What the command left (None: it could not be started).
    result: CommandResult | None = None
    #: Claude Code's result envelope, with ``claude_json`` when stdout held one.
    envelope: Envelope | None = None
    #: What the call cost, when the judge reported it (``costs.cost_record``).
    cost: dict[str, Any] | None = None
    judgment: dict[str, Any] | None = None
    #: The reply the judgment came from.
    reply: str = ""
    failure: str = ""
    #: Why there is no judgment, as timing.json records it (``slotfiles.FAILURE_KINDS``).
    kind: str = "other"
    #: The service said it is rate limited or overloaded, maybe with a Retry-After.
    rate_limited: bool = False
    retry_after: float | None = None
    #: The judge exited with EX_TEMPFAIL (75).
    tempfail: bool = False


def placeholder_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """What each placeholder of a command template stands for, from an item's ``data``."""
    return {
        "python": sys.executable,
        "local_judge": LOCAL_JUDGE,
        **{k: data[k] for k in PLACEHOLDERS[2:]},
    }


def check_command(command: Sequence[str], *, dry_run: bool) -> None:
    """Refuse a template with an unknown placeholder, or (unless a dry run) whose program
    is not there to run."""
    unknown = [f for f in template_fields(command) if f not in PLACEHOLDERS]
    if unknown:
        raise ValueError(
            f"command template {list(command)!r} has an unknown placeholder "
            f"{{{unknown[0]}}}; valid placeholders: {list(PLACEHOLDERS)}"
        )
    program = fill_template(command, placeholder_values(dict.fromkeys(PLACEHOLDERS, "")))[0]
    if not dry_run and _executable(program) is None:
        where = "is not an executable file" if os.sep in program else "is not found on PATH"
        raise ValueError(
            f"judge program {program!r} {where}; install it or give another "
            "command, e.g. 'task.command=[my-judge,\"{prompt_file}\"]'"
        )


def _executable(program: str) -> str | None:
    if os.sep in program:
        return program if os.path.isfile(program) and os.access(program, os.X_OK) else None
    return shutil.which(program)


def call(
    argv: list[str],
    *,
    cwd: str | Path,
    timeout: float,
    env: dict[str, str] | None,
    reply_format: str,
    model: str,
) -> Call:
    """Run the judge command ``argv`` and read its judgment, or why it gave none."""
    try:
        result = run_command(argv, cwd=cwd, timeout=timeout, env=env)
    except OSError as exc:
        return Call(
            argv, failure=f"cannot start {argv[0]!r}: {exc.strerror or exc}", kind="cannot_start"
        )
    done = Call(argv, result)
    done.envelope = read_envelope(result.stdout) if reply_format != "text" else None
    if done.envelope is not None:
        done.cost = cost_record(done.envelope.fields, model)
    try:
        done.judgment, done.reply = _judgment(result, timeout, reply_format, done.envelope)
    except ReplyError as exc:
        done.failure, done.kind = str(exc), exc.kind
    else:
        return done
    if not result.timed_out:
        done.rate_limited, done.retry_after = detect_rate_limit(
            result.stderr + "\n" + result.stdout
        )
        if done.rate_limited:
            done.kind = "rate_limited"
    done.tempfail = result.returncode == EX_TEMPFAIL
    return done


def _judgment(
    result: CommandResult, timeout: float, reply_format: str, envelope: Envelope | None
) -> tuple[dict[str, Any], str]:
    """The judgment of a finished command and the reply it came from.

    ReplyError says why there is none, its ``kind`` one of ``slotfiles.FAILURE_KINDS``.
    """
    if result.timed_out:
        raise ReplyError(
            f"timed out after {round(min(timeout, result.seconds), 2):g} s", kind="timeout"
        )
    if envelope is not None and envelope.error is not None:
        raise ReplyError(envelope.error, kind="judge_error")
    if result.returncode != 0:
        tail = " | ".join(line.strip() for line in result.stderr.strip().splitlines()[-3:])
        raise ReplyError(
            f"judge exited with code {result.returncode}"
            + (f": {tail[-300:]}" if tail else " (stderr empty)"),
            kind="exit_code",
        )
    if envelope is None and reply_format == "claude_json":
        raise ReplyError(
            "reply has no JSON object of Claude Code's result (reply_format claude_json "
            "needs the judge to print --output-format json)"
        )
    reply = result.stdout if envelope is None else envelope.text
    judgment: dict[str, Any] = parse_reply(reply)
    if not judgment["is_valid"]:
        raise ReplyError("judge marked its reply invalid (is_valid: false)", kind="marked_invalid")
    return judgment, reply
