"""``task=judge_rerun``: JudgeRerun judges one slot and swaps the slot in whole.

The judge itself is called in ``judgecall`` (the one place that knows how: a command,
the local judge or the Claude Code CLI); this module decides what becomes of the slot.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from runner.api import Item, RetryableError, RunContext, Task, TaskFailure
from runner.toolkit import (
    CommandsStopped,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    fill_template,
    template_fields,
)
from runner_plugins.judge import judgecall
from runner_plugins.judge.costs import (
    LEDGER_FILE,
    BudgetExhausted,
    CostLedger,
    estimated_record,
    usd,
)
from runner_plugins.judge.experiment import JUDGMENT_FILE
from runner_plugins.judge.judgecall import (
    DEFAULT_COMMAND,
    REPLY_FORMATS,
    JudgeRateLimited,
    placeholder_values,
)
from runner_plugins.judge.local_judge import LATENCY_ENV
from runner_plugins.judge.reply import Envelope, is_number
from runner_plugins.judge.runsource import JudgeRuns
from runner_plugins.judge.slotfiles import (
    ATTEMPTS,
    RESPONSE_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    commit,
    discard,
    new_attempt_dir,
    write_model,
    write_timing,
)
from runner_plugins.judge.system_prompt import read_system_prompt, write_copy
from runner_plugins.judge.writes import refused, stop_repair

#: What a repair stopped by a full disk leaves, and what to do (see ``writes``).
STOPPED_REPAIR = (
    "no judge starts any more (those running finish), every slot is as it was or whole, "
    "and the consensus and summary are not regenerated: make room and run the same "
    "command again"
)


class JudgeRerun(Task):
    """Re-run the judge command for one slot; the slot is replaced whole (see ``slotfiles``).

    Every attempt is written into a folder beside the slot and committed by renames.
    Success: judgment.json, response.txt, the streams, timing.json (``rerun: true``) and
    MODEL.md become the slot; the folder it replaces is kept in ``attempts/<n>/``. A
    non-zero exit, a timeout or an unusable reply: timing.json with ``failed: true``
    plus the streams become the slot (it stays ``failed``), again keeping what it
    replaces; a rate-limited or overloaded service raises JudgeRateLimited with any
    Retry-After. A failed re-judge of a complete slot leaves the slot as it was and keeps
    the failed attempt in ``attempts/<n>/``. A slot whose run has no judge prompt to give
    fails at once with the reason, and nothing is written.

    - ``command``: argv template, run without a shell from the run's workspace/.
      Placeholders: {python} (this interpreter), {local_judge} (the stand-in judge's
      file), {model} {prompt_file} {workspace} {slot_dir} {run_dir} {experiment} {tier}
      {subtest} {run} {slot}. {slot_dir} is this attempt's folder, swapped in whole as
      the slot when it ends. The reply on stdout must contain a JSON object with a
      numeric "score". The default runs the local rule-based stand-in judge (standard
      library only, so ``-S`` skips site-packages at start-up);
    - ``timeout``: seconds before the judge's process group is killed and the attempt
      marked failed (the original's 20 minutes);
    - ``latency``: seconds the local judge sleeps to act like a remote call (null: its
      default), passed as RUNNER_LOCAL_JUDGE_LATENCY, which other judges ignore;
    - ``reply_format``: ``text`` (stdout is the reply) or ``claude_json`` (stdout is
      Claude Code's JSON result: the reply is its ``result``, ``is_error`` fails the
      attempt with its message, and the call's cost and tokens go into timing.json's
      ``cost`` and the run's ``judge_costs.jsonl``);
    - ``budget_usd``: with ``claude_json``, once this run's judge calls have cost this
      many US dollars no further judge starts (running ones finish): each slot left
      is skipped (BudgetExhausted) and stays exactly as it was, and the run ends 1 (its
      work not done). null: no cap;
    - ``unreported_cost_usd``: with ``claude_json``, what a call that reported no cost
      (killed by ``timeout`` or a signal, or ended without an envelope) is counted at,
      unless a call of the same model cost more earlier in this run: then that. Such a
      call's line in ``judge_costs.jsonl`` says ``"estimated": true``;
    - ``system_prompt_file``: the judge's system prompt (the rubric and criteria the
      judge prompt points at; see ``system_prompt``), read once at setup; null: none;
    - ``system_prompt_flag``: the judge command's option that takes a system prompt's
      file (``--system-prompt-file`` for Claude Code, as task=judge_rerun_claude sets);
      with a ``system_prompt_file``, it and the path of the run folder's copy of the
      file are put after the program. A command without one refuses a system prompt.

    A write into the experiment that its file system refuses (full, over quota,
    read-only: see ``writes``) leaves the slot as it was and stops the run (StopRun,
    exit 74): no judge starts after it.
    """

    def __init__(
        self,
        command: Sequence[str] | None = DEFAULT_COMMAND,
        timeout: float = 1200.0,
        latency: float | None = None,
        reply_format: str = "text",
        budget_usd: float | None = None,
        unreported_cost_usd: float = 1.0,
        system_prompt_file: str | None = None,
        system_prompt_flag: str | None = None,
    ) -> None:
        # Elements arrive as the user wrote them; one that Hydra re-typed (an unquoted
        # true or 1e3) is refused, as is a template no slot could fill.
        template_fields(command or DEFAULT_COMMAND)
        self.command = list(command or DEFAULT_COMMAND)
        self.timeout = float(timeout)
        self.latency = _latency(latency)
        if reply_format not in REPLY_FORMATS:
            raise ValueError(
                f"reply_format {reply_format!r} is not supported; supported: {list(REPLY_FORMATS)}"
            )
        self.reply_format = reply_format
        self.budget_usd = _budget(budget_usd)
        if self.budget_usd is not None and self.reply_format != "claude_json":
            raise ValueError(
                f"budget_usd needs a judge that reports its cost (reply_format "
                f"'claude_json', as task=judge_rerun_claude sets); reply_format "
                f"{self.reply_format!r} reports none, so the budget could never be reached"
            )
        unreported = _number(
            unreported_cost_usd, "unreported_cost_usd", "US dollars", positive=False
        )
        if unreported is None:
            raise ValueError("unreported_cost_usd must be a number of US dollars >= 0, got None")
        self.unreported_cost_usd = unreported
        if system_prompt_file is not None and not isinstance(system_prompt_file, str):
            raise ValueError(
                f"system_prompt_file must be the path of a file or null, got {system_prompt_file!r}"
            )
        if system_prompt_flag is not None and not (
            isinstance(system_prompt_flag, str) and system_prompt_flag.startswith("-")
        ):
            raise ValueError(
                "system_prompt_flag must be the judge command's option that takes a system "
                f"prompt's file (e.g. --system-prompt-file) or null, got {system_prompt_flag!r}"
            )
        self.system_prompt_file = system_prompt_file
        self.system_prompt_flag = system_prompt_flag
        #: What goes after the judge's program: the flag and the system prompt's copy.
        self._system_args: list[str] = []
        #: What this run's judge calls cost (``claude_json`` only); made by setup.
        self.ledger: CostLedger | None = None
        #: Why writes into the experiment are refused, once one was (``writes``): no
        #: judge starts after it. Per process; the core stops the other processes' items.
        self.refusal: str | None = None
        self._env: dict[str, str] | None = None
        if self.latency is not None:
            # Only the local judge reads this variable, so a real judge CLI ignores it.
            self._env = {**os.environ, LATENCY_ENV: str(self.latency)}

    def setup(self, context: RunContext) -> None:
        """Check the source, the command template, its program and the timeout."""
        if isinstance(context.source, JudgeRuns):
            raise ValueError(
                "judge_rerun judges slots: it needs the judge_slots source, not judge_runs "
                "(task=judge_regenerate goes with judge_runs)"
            )
        if not self.command:
            raise ValueError("command is empty; give the judge command as an argv list")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ValueError(f"timeout must be a number of seconds > 0, got {self.timeout!r}")
        judgecall.check_command(self.command, dry_run=context.dry_run)
        if self.system_prompt_file is not None:
            if self.system_prompt_flag is None:
                judge = (
                    "the local judge"
                    if tuple(self.command) == DEFAULT_COMMAND
                    else repr(self.command[0])
                )
                raise ValueError(
                    "task.system_prompt_file needs a judge command that takes a system "
                    f"prompt, and task.system_prompt_flag names no option of {judge} for "
                    "it: give its option (task=judge_rerun_claude sets --system-prompt-file), "
                    "or task.system_prompt_file=null"
                )
            text = read_system_prompt(self.system_prompt_file)
            if not context.dry_run:
                copy = write_copy(text, Path(context.output_dir))
                self._system_args = [self.system_prompt_flag, str(copy)]
        if self.reply_format == "claude_json" and not context.dry_run:
            self.ledger = CostLedger(Path(context.output_dir) / LEDGER_FILE)

    def run(self, item: Item) -> dict[str, Any]:
        """Judge one slot; return its score or raise TaskFailure (see the class doc)."""
        if item.get("unjudgeable"):
            raise TaskFailure(f"{item['unjudgeable']}; the slot is left as it was")
        if self.refusal is not None:  # the run is stopping for it: this slot never started
            raise CommandsStopped(f"no judge started: {self.refusal}")
        if self.budget_usd is not None and self.ledger is not None:
            spent = self.ledger.spent()
            if spent >= self.budget_usd:
                raise BudgetExhausted(
                    f"judge budget of {usd(self.budget_usd)} reached ({usd(spent)} spent by "
                    "this run's judge calls): no judge started, the slot is as it was"
                )
        slot_dir = Path(item["slot_dir"])
        # Re-judging a complete slot must not cost its judgment when the new attempt fails.
        keep = item.get("status") == "complete"
        attempt: Path | None = None
        try:
            attempt = new_attempt_dir(slot_dir)
            done = self._attempt(item, attempt)
            moved = commit(attempt, slot_dir, replace=done.judgment is not None or not keep)
        except BaseException as exc:
            if attempt is not None:
                discard(attempt)  # an attempt that did not finish is never committed
            if isinstance(exc, OSError) and refused(exc):
                stop = stop_repair(slot_dir, exc, STOPPED_REPAIR)
                self.refusal = self.refusal or str(stop)
                raise stop from exc
            raise
        where = f"{ATTEMPTS}/{moved.name}" if moved is not None else ""
        if done.judgment is not None:
            kept = f"; the folder it replaced is kept in {where}" if moved else ""
            cost = {} if done.cost is None else {"cost_usd": done.cost["total_cost_usd"]}
            return {k: item[k] for k in ("tier", "subtest", "run", "slot", "model")} | {
                "score": done.judgment["score"],
                "passed": done.judgment["passed"],
                "grade": done.judgment["grade"],
                "change": f"judged (was {item['status']}){kept}",
                **cost,
            }
        failure = done.failure
        if keep:
            failure += f" (the slot keeps its judgment; this attempt is in {where})"
        else:
            kept = f"; the folder it had is kept in {where}" if moved else ""
            failure += f" (the slot is failed{kept})"
        if done.rate_limited:
            wait = done.retry_after
            hint = f" (retry after {wait:g} s)" if wait is not None else ""
            raise JudgeRateLimited(f"judge rate limited or overloaded{hint}: {failure}", wait)
        if done.retry is not None:
            raise RetryableError(f"{done.retry}, worth a retry: {failure}")
        raise TaskFailure(failure)

    def _attempt(self, item: Item, attempt: Path) -> Attempt:
        """Call the judge and write the attempt's files into ``attempt``; say how it went.

        The one step that knows the judge is a command (``judgecall``): a judge of
        another kind overrides it, and :meth:`run` decides the slot from what it says.
        """
        # {slot_dir} is where this attempt's files go: a judge that writes there writes
        # into the attempt, which is swapped in whole (never into the live slot).
        argv = fill_template(
            self.command, placeholder_values(item.data) | {"slot_dir": str(attempt)}
        )
        argv[1:1] = self._system_args
        workspace = Path(item["workspace"])
        done = judgecall.call(
            argv,
            cwd=workspace if workspace.is_dir() else item["run_dir"],
            timeout=self.timeout,
            env=self._env,
            reply_format=self.reply_format,
            model=item["model"],
        )
        result = done.result
        if result is not None and self.ledger is not None:  # at once: the budget must see it
            self._count(item, self.ledger, done.cost, done.envelope)
        if result is not None:
            atomic_write_bytes(attempt / STDOUT_FILE, result.stdout_bytes)
            atomic_write_bytes(attempt / STDERR_FILE, result.stderr_bytes)
        seconds = 0.0 if result is None else result.seconds
        extra: dict[str, Any] = {} if done.cost is None else {"cost": done.cost}
        if done.judgment is not None:
            atomic_write_text(attempt / RESPONSE_FILE, done.reply)
            write_model(attempt, item["model"], command=argv)
            write_timing(attempt, seconds, rerun=True, extra=extra)
            atomic_write_json(attempt / JUDGMENT_FILE, done.judgment)
        else:
            if done.rate_limited:
                extra = {"rate_limited": True, "retry_after": done.retry_after} | extra
            write_timing(
                attempt, seconds, rerun=True, failure=done.failure, kind=done.kind, extra=extra
            )
        return Attempt(
            done.judgment,
            done.failure,
            done.rate_limited,
            done.retry_after,
            "judge exited with EX_TEMPFAIL (75)" if done.tempfail else None,
            done.cost,
        )

    def _count(
        self,
        item: Item,
        ledger: CostLedger,
        cost: dict[str, Any] | None,
        envelope: Envelope | None,
    ) -> None:
        """Add a finished call's cost to the run's ledger; one that reported none (killed,
        crashed, no envelope) is counted at its bound, marked estimated."""
        record = cost
        if record is None or not is_number(record["total_cost_usd"]):
            bound = max(self.unreported_cost_usd, ledger.largest(item["model"]))
            record = estimated_record(item["model"], bound, record)
        ok = envelope is not None and envelope.error is None
        try:
            ledger.add(record | {"slot": item.id, "ok": ok})
        except OSError as exc:  # the paid judgment is kept; its cost is in timing.json
            logger.warning(f"cannot count the cost of {item.id} in the run's ledger: {exc}")


@dataclasses.dataclass
class Attempt:
    """How one attempt went: its judgment, or why it failed and whether a retry is worth it."""

    judgment: dict[str, Any] | None = None
    failure: str = ""
    #: The service said it is rate limited or overloaded, maybe with a Retry-After.
    rate_limited: bool = False
    retry_after: float | None = None
    #: Why another attempt is worth it (the judge exited with EX_TEMPFAIL, its API
    #: failed), or None.
    retry: str | None = None
    #: What the call cost, when the judge reported it (``costs.cost_record``).
    cost: dict[str, Any] | None = None


def _number(value: Any, name: str, unit: str, *, positive: bool) -> float | None:
    """A number parameter (None stays None); raise naming the bad value and what fits."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if (
        isinstance(value, bool)
        or not math.isfinite(number)
        or number < 0
        or (positive and not number)
    ):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a number of {unit} {bound} or null, got {value!r}")
    return number


def _budget(value: Any) -> float | None:
    """The ``budget_usd`` parameter as dollars (null: no cap)."""
    return _number(value, "budget_usd", "US dollars", positive=True)


def _latency(value: Any) -> float | None:
    """The ``latency`` parameter as seconds (null: the local judge's default)."""
    return _number(value, "latency", "seconds", positive=False)
