"""JudgeRerun, the task: run the judge command for one slot and write the slot's files."""

from __future__ import annotations

import math
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

from runner.api import (
    CommandResult,
    Item,
    RunContext,
    Task,
    TaskFailure,
    atomic_write_json,
    atomic_write_text,
    fill_template,
    run_command,
)
from runner_plugins.judge import local_judge
from runner_plugins.judge.experiment import (
    JudgeRateLimited,
    ReplyError,
    detect_rate_limit,
    parse_reply,
)
from runner_plugins.judge.local_judge import LATENCY_ENV

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


class JudgeRerun(Task):
    """Re-run the judge command for one slot and write the slot's outputs.

    Success writes judgment.json (last, so a crash never leaves a half-made slot looking
    complete), response.txt, the streams, timing.json and MODEL.md. A non-zero exit, a
    timeout or an unusable reply removes any stale judgment.json, writes only timing.json
    with ``failed: true`` (plus the streams) and raises TaskFailure; a rate-limited or
    overloaded service raises its subclass JudgeRateLimited, carrying any Retry-After.
    A failed re-judge of a complete slot raises the same way but leaves the slot's files
    as they were.
    """

    def __init__(
        self, command: list[str] | None = None, timeout: float = 120.0, latency: float | None = None
    ) -> None:
        self.command = [str(part) for part in (command or DEFAULT_COMMAND)]
        self.timeout = float(timeout)
        self.latency = _latency(latency)
        self._env: dict[str, str] | None = None
        if self.latency is not None:
            # Only the local judge reads this variable, so a real judge CLI ignores it.
            self._env = {**os.environ, LATENCY_ENV: str(self.latency)}

    def setup(self, context: RunContext) -> None:
        """Check the command template and the timeout before the first slot runs."""
        if not self.command:
            raise ValueError("command is empty; give the judge command as an argv list")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout!r}")
        try:
            fill_template(self.command, dict.fromkeys(PLACEHOLDERS, ""))
        except KeyError as exc:
            raise ValueError(
                f"command template {self.command!r} has an unknown placeholder "
                f"{{{exc.args[0]}}}; valid placeholders: {list(PLACEHOLDERS)}"
            ) from None
        except (IndexError, ValueError) as exc:
            raise ValueError(
                f"command template {self.command!r} cannot be filled ({exc}); write "
                f"placeholders as {{name}} with a name from {list(PLACEHOLDERS)} and a "
                "literal brace as {{ or }}"
            ) from None

    def run(self, item: Item) -> dict[str, Any]:
        """Judge one slot; return its score or raise TaskFailure (the slot is then failed)."""
        run_dir, slot_dir = Path(item["run_dir"]), Path(item["slot_dir"])
        values = {
            "python": sys.executable,
            "local_judge": LOCAL_JUDGE,
            **{k: item[k] for k in PLACEHOLDERS[2:]},
        }
        argv = fill_template(self.command, values)
        slot_dir.mkdir(parents=True, exist_ok=True)
        # Re-judging a complete slot must not cost its judgment when the new attempt fails.
        keep = item.get("status") == "complete"
        workspace = Path(item["workspace"])
        try:
            result = run_command(
                argv,
                cwd=workspace if workspace.is_dir() else run_dir,
                timeout=self.timeout,
                env=self._env,
            )
        except OSError as exc:
            self._fail(
                slot_dir, None, f"cannot start {argv[0]!r}: {exc.strerror or exc}", keep=keep
            )
        if result.timed_out:
            self._fail(slot_dir, result, f"timed out after {self.timeout:g} s", keep=keep)
        if result.returncode != 0:
            tail = " | ".join(line.strip() for line in result.stderr.strip().splitlines()[-3:])
            self._fail(
                slot_dir,
                result,
                f"judge exited with code {result.returncode}"
                + (f": {tail[-300:]}" if tail else " (stderr empty)"),
                keep=keep,
            )
        try:
            judgment = parse_reply(result.stdout)
        except ReplyError as exc:
            self._fail(slot_dir, result, str(exc), keep=keep)
        if not judgment["is_valid"]:
            self._fail(
                slot_dir, result, "judge marked its reply invalid (is_valid: false)", keep=keep
            )
        atomic_write_text(slot_dir / "stdout.log", result.stdout)
        atomic_write_text(slot_dir / "stderr.log", result.stderr)
        atomic_write_text(slot_dir / "response.txt", result.stdout)
        atomic_write_text(slot_dir / "MODEL.md", _model_md(item["model"], argv))
        atomic_write_json(slot_dir / "timing.json", _timing(result.seconds))
        atomic_write_json(slot_dir / "judgment.json", judgment)
        return {k: item[k] for k in ("tier", "subtest", "run", "slot", "model")} | {
            k: judgment[k] for k in ("score", "passed", "grade")
        }

    @staticmethod
    def _fail(slot_dir: Path, result: CommandResult | None, reason: str, *, keep: bool) -> NoReturn:
        """Raise TaskFailure (JudgeRateLimited for a rate limit) for a failed attempt.

        Unless ``keep``, first leave the slot ``failed``: stale judgment removed, the
        streams and a failed timing.json written. With ``keep`` no file is touched.
        """
        limited, retry_after = (False, None)
        if result is not None and not result.timed_out:
            limited, retry_after = detect_rate_limit(result.stderr + "\n" + result.stdout)
        if not keep:
            for name in ("judgment.json", "response.txt", "MODEL.md"):
                (slot_dir / name).unlink(missing_ok=True)
            if result is not None:
                atomic_write_text(slot_dir / "stdout.log", result.stdout)
                atomic_write_text(slot_dir / "stderr.log", result.stderr)
            timing = _timing(0.0 if result is None else result.seconds) | {
                "failed": True,
                "reason": reason,
            }
            if limited:
                timing |= {"rate_limited": True, "retry_after": retry_after}
            atomic_write_json(slot_dir / "timing.json", timing)
        message = f"{reason} (the slot keeps its earlier judgment)" if keep else reason
        if limited:
            hint = f" (retry after {retry_after:g} s)" if retry_after is not None else ""
            raise JudgeRateLimited(
                f"judge rate limited or overloaded{hint}: {message}", retry_after
            )
        raise TaskFailure(message)


def _latency(value: Any) -> float | None:
    """The ``latency`` parameter as seconds (None stays None); raise naming a bad value."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"latency must be a number of seconds >= 0 or null, got {value!r}")
    return seconds


def _timing(seconds: float) -> dict[str, Any]:
    return {
        "judge_duration_seconds": seconds,
        "measured_at": datetime.now(timezone.utc).isoformat(),
        "rerun": True,
    }


def _model_md(model: str, argv: list[str]) -> str:
    return (
        f"# Judge Model Information\n\n**Model**: {model}\n**Command**: `{' '.join(argv)}`\n"
        f"**Timestamp**: {datetime.now(timezone.utc).isoformat()}\n**Rerun**: true\n"
    )
