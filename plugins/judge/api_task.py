"""The judge task over HTTP: JudgeRerunApi judges one slot with a provider's API."""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from loguru import logger

from runner.api import Item, RunContext, TaskFailure
from runner.toolkit import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    current_group,
)
from runner_plugins.judge.api_judge import Call, HttpJudge, price_for, read_prices
from runner_plugins.judge.costs import LEDGER_FILE, CostLedger, cost_record, estimated_record
from runner_plugins.judge.experiment import JUDGMENT_FILE
from runner_plugins.judge.gitrepo import inside, read_capped
from runner_plugins.judge.judgment import parse_reply
from runner_plugins.judge.prompt import PROMPT_FILE
from runner_plugins.judge.providers import installed, load_provider, takes_system
from runner_plugins.judge.reply import ReplyError, is_number
from runner_plugins.judge.runsource import JudgeRuns
from runner_plugins.judge.slotfiles import (
    RESPONSE_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    write_model,
    write_timing,
)
from runner_plugins.judge.system_prompt import read_system_prompt
from runner_plugins.judge.task import Attempt, JudgeRerun, _budget

#: What an environment variable's name may be (POSIX).
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: The most bytes of a run's judge_prompt.md sent (a model's context is far smaller).
MAX_PROMPT_READ = 4 * 1024 * 1024


class JudgeRerunApi(JudgeRerun):
    """Judge one slot by one request to a provider's HTTP API; the slot is replaced whole,
    as :class:`JudgeRerun` does, with the same files (``stdout.log`` holds the API's
    answer, ``stderr.log`` why it failed).

    The prompt is the run's judge_prompt.md (never read through a symlink or from
    outside the experiment), sent as the one user message to the slot's model, with the
    system prompt when one is given.

    - ``provider``: a registered provider (``runner.judge_providers``): ``anthropic``,
      ``openai``, ``openai_compatible``, or one a package adds; required, as is
    - ``base_url``: the API's root, the provider's path is added (``/v1/messages``);
      task=judge_rerun_anthropic and task=judge_rerun_openai set both;
    - ``api_key_env``: the environment variable holding the key (null: send none); unset
      or empty stops the run before the first call. The key is read from the
      environment only, and blanked out of anything written;
    - ``max_tokens``: the most tokens a reply may have;
    - ``prices``: model -> ``{input, output}``, US dollars per million tokens; a model
      without its own entry takes the longest entry it starts with, else ``*``'s. A
      call's cost is its usage at its price (unknown without one: then counted as
      unreported);
    - ``timeout``: seconds a request may take in all before it fails (retryable);
    - ``budget_usd``, ``unreported_cost_usd``: as for :class:`JudgeRerun`;
    - ``system_prompt_file``: the judge's system prompt (see ``system_prompt``), read
      once at setup and sent with every request as the provider places one (Anthropic's
      ``system``, a first ``system`` message for OpenAI's); null: none.

    429, 503 and 529 are rate limits (retryable, pausing every worker for the wait the
    service asked for); another 4xx fails the slot with the provider's message; a 5xx,
    a timeout or a dropped connection is retryable (``retry.attempts``).
    """

    def __init__(
        self,
        provider: str | None = None,
        base_url: str | None = None,
        api_key_env: str | None = None,
        max_tokens: int = 8192,
        prices: dict[str, Any] | None = None,
        timeout: float = 600.0,
        budget_usd: float | None = None,
        unreported_cost_usd: float = 1.0,
        system_prompt_file: str | None = None,
    ) -> None:
        # JudgeRerun's run() commits each attempt; what runs the judge is this class's.
        super().__init__(
            timeout=timeout,
            unreported_cost_usd=unreported_cost_usd,
            system_prompt_file=system_prompt_file,
        )
        self.budget_usd = _budget(budget_usd)  # a cost from usage: any budget can be reached
        if not (
            isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0
        ):
            raise ValueError(f"max_tokens must be a whole number of tokens > 0, got {max_tokens!r}")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        if isinstance(base_url, str) and "@" in base_url.partition("//")[2].partition("/")[0]:
            # Not shown: it holds a secret, which job.json and MODEL.md would keep too.
            raise ValueError(
                "base_url holds a user name or password (user:pass@host): the URL is not "
                "shown; give the key in the variable task.api_key_env names instead"
            )
        if base_url is not None and not _is_root_url(base_url):
            raise ValueError(
                f"base_url {base_url!r} is not an http:// or https:// URL of a host (a port "
                "1-65535, no ?query or #fragment); e.g. task.base_url=https://api.anthropic.com"
            )
        if api_key_env is not None and not (
            isinstance(api_key_env, str) and _ENV_NAME.fullmatch(api_key_env)
        ):
            # Not shown: what was given in its place may be the key itself.
            raise ValueError(
                "api_key_env must be the name of an environment variable (letters, digits, "
                "_; e.g. ANTHROPIC_API_KEY), not the key itself, or null for a server that "
                "needs no key; what was given is not shown"
            )
        self.provider = provider
        self.prices = read_prices(prices)
        #: None until both provider and base_url are given (setup refuses to run then).
        self.judge: HttpJudge | None = None
        if provider is not None and base_url is not None:
            self.judge = HttpJudge(
                load_provider(provider), base_url, api_key_env, max_tokens, self.timeout
            )
        self._unpriced: set[str] = set()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def setup(self, context: RunContext) -> None:
        """Check the source, that provider and base_url are given, read the system prompt
        and, unless a dry run, check that the key is there (exit 2 if not)."""
        if isinstance(context.source, JudgeRuns):
            raise ValueError(
                "judge_rerun_api judges slots: it needs the judge_slots source, not judge_runs "
                "(task=judge_regenerate goes with judge_runs)"
            )
        if self.judge is None:
            missing = "task.provider" if self.provider is None else "task.base_url"
            raise ValueError(
                f"{missing} is not set; give task.provider (installed: {sorted(installed())}) "
                "and task.base_url, or use task=judge_rerun_anthropic or task=judge_rerun_openai"
            )
        if self.system_prompt_file is not None:
            if not takes_system(self.judge.provider):
                raise ValueError(
                    f"judge provider {self.provider!r} takes no system prompt (its body() "
                    "has no 'system' parameter): give task.system_prompt_file=null, or a "
                    f"provider that takes one ({', '.join(sorted(installed()))})"
                )
            self.judge.system = read_system_prompt(self.system_prompt_file)
        if context.dry_run:
            return
        # httpx logs each request at INFO: a second console line per slot, beside the
        # progress line; what failed is in each slot's timing.json and the journal.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        try:
            self.judge.key()
        except TaskFailure as exc:
            raise ValueError(str(exc)) from None
        self.ledger = CostLedger(Path(context.output_dir) / LEDGER_FILE)

    def close(self) -> None:
        """Close every worker's HTTP client."""
        if self.judge is not None:
            self.judge.clients.close()

    def _attempt(self, item: Item, attempt: Path) -> Attempt:
        """Ask the API and write the attempt's files into ``attempt``; say how it went."""
        prompt = _prompt(item)
        model = str(item["model"])
        judge = self.judge
        assert judge is not None, "setup refuses a task without a judge"
        # As a command would not start: once the run is interrupted, no call is paid for.
        current_group().refuse_if_stopped(f"POST {judge.url}")
        call = judge.ask(model, prompt)
        done = Attempt()
        reply_text = ""
        if call.reply is not None:
            done.cost = self._cost(model, call)
            reply_text = call.reply.text
        kind = call.kind
        failure = call.failure
        if call.reply is not None:
            try:
                done.judgment = parse_reply(reply_text)
                if not done.judgment["is_valid"]:
                    raise ReplyError(
                        "judge marked its reply invalid (is_valid: false)", kind="marked_invalid"
                    )
            except ReplyError as exc:
                done.judgment = None
                failure, kind = str(exc), exc.kind
                if call.reply.truncated:
                    failure += f" (the reply stopped at task.max_tokens={judge.max_tokens})"
        if call.billed and self.ledger is not None:  # counted at once: the budget must see it
            self._charge(item, self.ledger, done.cost, ok=done.judgment is not None)
        atomic_write_bytes(attempt / STDOUT_FILE, call.body)
        atomic_write_text(attempt / STDERR_FILE, "" if done.judgment else failure + "\n")
        extra: dict[str, Any] = {"http_status": call.status}
        if done.cost is not None:
            extra["cost"] = done.cost
        if done.judgment is not None:
            atomic_write_text(attempt / RESPONSE_FILE, reply_text)
            write_model(attempt, model, command=["POST", judge.url])
            write_timing(attempt, call.seconds, rerun=True, extra=extra)
            atomic_write_json(attempt / JUDGMENT_FILE, done.judgment)
            return done
        done.failure = failure
        if call.rate_limited:
            done.rate_limited, done.retry_after = True, call.wait
            extra |= {"rate_limited": True, "retry_after": call.wait}
        if call.retry and not call.rate_limited:
            done.retry = "the judge's API failed or did not answer"
        write_timing(attempt, call.seconds, rerun=True, failure=failure, kind=kind, extra=extra)
        return done

    def _cost(self, model: str, call: Call) -> dict[str, Any]:
        """The cost record of a call that answered (``costs.cost_record``'s fields)."""
        assert call.reply is not None
        reply = call.reply
        price = price_for(self.prices, model)
        cost = price.cost(reply) if price is not None else None
        if price is None:
            with self._lock:
                new = model not in self._unpriced
                self._unpriced.add(model)
            if new:
                logger.warning(
                    f"no price for judge model {model!r} in task.prices: its calls' cost is "
                    "unknown and counted at task.unreported_cost_usd against the budget"
                )
        usage = {
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
            "cache_creation_input_tokens": reply.cache_creation_input_tokens,
            "cache_read_input_tokens": reply.cache_read_input_tokens,
        }
        fields = {
            "usage": usage,
            "total_cost_usd": cost,
            "duration_ms": round(call.seconds * 1000),
            "duration_api_ms": round(call.seconds * 1000),
            "num_turns": 1,
            "session_id": reply.id,
            "modelUsage": {reply.model or model: {"costUSD": cost}},
        }
        return cost_record(fields, model)

    def _charge(
        self, item: Item, ledger: CostLedger, cost: Mapping[str, Any] | None, ok: bool
    ) -> None:
        """Add a call the provider may have charged for to the run's ledger; one whose
        cost is unknown is counted at its bound, marked estimated."""
        record = dict(cost) if cost is not None else None
        if record is None or not is_number(record["total_cost_usd"]):
            bound = max(self.unreported_cost_usd, ledger.largest(item["model"]))
            record = estimated_record(item["model"], bound, record)
        try:
            ledger.add(record | {"slot": item.id, "ok": ok})
        except OSError as exc:  # the paid judgment is kept; its cost is in timing.json
            logger.warning(f"cannot count the cost of {item.id} in the run's ledger: {exc}")


def _is_root_url(value: object) -> bool:
    """Whether ``value`` is an API's root URL that the provider's path can follow: one
    httpx reads, naming a host (and a valid port), with nothing after its path. Checked
    here, so that a typo is one line before any call, not a failed request per slot."""
    if not (isinstance(value, str) and value.startswith(("http://", "https://"))):
        return False
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        return False
    port_ok = url.port is None or 0 < url.port < 65536
    plain = not (url.query or url.fragment or any(c.isspace() for c in value))
    return bool(url.host) and port_ok and plain


def _prompt(item: Item) -> str:
    """The run's judge prompt; TaskFailure (nothing sent, the slot as it was) when it is
    a symlink, leads outside the experiment, is no regular file or is too large."""
    path, root = Path(item["prompt_file"]), Path(item["experiment"])
    if not inside(path, root):
        raise TaskFailure(
            f"{PROMPT_FILE} is a symlink or leads outside the experiment: not sent; "
            "the slot is left as it was"
        )
    try:
        data = read_capped(path, MAX_PROMPT_READ)
    except OSError as exc:
        raise TaskFailure(f"cannot read {PROMPT_FILE}: {exc}; the slot is left as it was") from None
    if len(data) > MAX_PROMPT_READ:
        raise TaskFailure(
            f"{PROMPT_FILE} is larger than {MAX_PROMPT_READ} bytes: not sent; the slot is "
            "left as it was"
        )
    return data.decode("utf-8", errors="replace")
