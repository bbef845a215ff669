"""The top-level config schema and its conversion to plain values for the run."""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from runner.api import GROUPS
from runner.errors import UsageError, unknown_key
from runner.execute.policies import HaltPolicy, RetryPolicy


@dataclasses.dataclass
class RetryConfig:
    """``retry.*``: another attempt for a retryable failure, after a backoff."""

    # Attempts per item for a retryable failure (RetryableError, exit code 75, a rate
    # limit); 1 never retries.
    attempts: int = 1
    # Seconds before the second attempt; doubled for each further one, times a random
    # factor in [0.5, 1]. A longer wait the service asks for (Retry-After) is kept.
    backoff: float = 1.0
    # The longest single wait, in seconds: a backoff, a Retry-After, a rate-limit pause,
    # the spacing of rate_limit.per_second. 5 minutes outlasts a per-minute limit's reset
    # with room; a longer answer (a day's quota) would only stall the run.
    max_wait: float = 300.0


@dataclasses.dataclass
class RateLimitConfig:
    """``rate_limit.*``: how fast items may start."""

    # At most this many attempts start per second, across all workers (null: no cap); at
    # least one per retry.max_wait.
    per_second: Optional[float] = None  # noqa: UP045  (OmegaConf needs Optional)


@dataclasses.dataclass
class AutoConfig:
    """``auto.*``: the range ``parallel=auto`` moves in."""

    # The fewest items at once it goes down to.
    min: int = 1
    # The most items at once it goes up to (worker threads or batches out).
    max: int = 64
    # Items at once to begin with (held within min..max); the climb doubles from here.
    start: int = 4


@dataclasses.dataclass
class HaltConfig:
    """``halt.*``: stop a run that fails too much."""

    # Halt after this many failed items (5) or this share of all items ('10%'); null: never.
    on_failures: Any = None
    # soon: start nothing more, let running items finish; now: stop running items too.
    mode: str = "soon"


@dataclasses.dataclass
class CoreConfig:
    """runner's own top-level keys, with their defaults (the only place they are set)."""

    # Worker count: how many items run at once (1 .. MAX_PARALLEL), or auto: adjusted
    # while the run goes, between auto.min and auto.max (docs/running.md, "parallel=auto").
    parallel: Any = 1
    # List the items that would run, run nothing, write no results.
    dry_run: bool = False
    # Progress display: auto (bar on a terminal, lines otherwise), bar, lines, off.
    progress: str = "auto"
    # Console log level; runner.log always records INFO and above.
    log_level: str = "INFO"
    # Seconds per attempt of an item (null: none). A command's process group gets
    # SIGTERM, then SIGKILL after timeout_grace seconds.
    timeout: Optional[float] = None  # noqa: UP045
    timeout_grace: float = 5.0
    retry: RetryConfig = dataclasses.field(default_factory=RetryConfig)
    rate_limit: RateLimitConfig = dataclasses.field(default_factory=RateLimitConfig)
    halt: HaltConfig = dataclasses.field(default_factory=HaltConfig)
    auto: AutoConfig = dataclasses.field(default_factory=AutoConfig)
    # A label that changes nothing in the run: sweep it to repeat each setting
    # (-m parallel=1,2,4 repeat=1,2,3); the sweep report compares the medians.
    repeat: Optional[int] = None  # noqa: UP045
    # A previous run folder (or "last"): its succeeded items are not run again.
    resume: Optional[str] = None  # noqa: UP045


#: The schema of ``conf/config.yaml``: runner's own keys, a node per plugin group (filled
#: by the group's option) and Hydra's own settings (run folders, sweeps; Hydra fills and
#: removes that node).
RunConfig: type = dataclasses.make_dataclass(
    "RunConfig", [(key, Any, None) for key in (*GROUPS, "hydra")], bases=(CoreConfig,)
)


#: Top-level keys whose node is a config dataclass of its own.
_NESTED: dict[str, type] = {
    "retry": RetryConfig,
    "rate_limit": RateLimitConfig,
    "halt": HaltConfig,
    "auto": AutoConfig,
}

#: The longest wait a setting may ask, in seconds (about 31 years): beyond it a sleep would
#: overflow (Python's threads hold waits up to ``threading.TIMEOUT_MAX``), and no run
#: means it.
LONGEST_WAIT = min(1e9, threading.TIMEOUT_MAX)
#: The largest ``parallel`` accepted (docs/tasks.md): each worker is a thread and most run a
#: command, so far more would exhaust threads and processes before it gained speed.
MAX_PARALLEL = 4096
PROGRESS_MODES = ("auto", "bar", "lines", "off")
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The run's config as plain Python values: cheap to read in per-item code."""

    parallel: int
    dry_run: bool
    progress: str
    log_level: str
    plugins: dict[str, dict[str, Any]]  # group -> node, "name" included
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    rate_limit: float | None = None  # starts per second
    halt: HaltPolicy = dataclasses.field(default_factory=HaltPolicy)
    timeout: float | None = None
    timeout_grace: float = 5.0
    resume: str | None = None
    #: ``parallel=auto``: (auto.min, auto.max, auto.start within them); ``parallel`` is
    #: then auto.max.
    auto: tuple[int, int, int] | None = None

    def params(self, group: str) -> dict[str, Any]:
        """The constructor arguments of the selected plugin of ``group``."""
        return {k: v for k, v in self.plugins[group].items() if k != "name"}

    def name(self, group: str) -> str:
        return str(self.plugins[group]["name"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "parallel": self.parallel,
            "dry_run": self.dry_run,
            "progress": self.progress,
            "log_level": self.log_level,
            **self.plugins,
        }


def _refuse_unknown_keys(plain: dict[Any, Any]) -> None:
    """Keys the config does not have, added with Hydra's ``+key=value``: a typo there
    would otherwise be ignored. The valid keys come from the same dataclasses and plugin
    constructors that type the config nodes."""
    from runner.config import registry

    nodes: list[tuple[str, dict[Any, Any], type]] = [("", plain, RunConfig)]
    nodes += [(f"{k}.", plain.get(k) or {}, t) for k, t in _NESTED.items()]
    for group in GROUPS:
        node = plain.get(group)
        if isinstance(node, dict) and "name" in node:
            cls = registry.load_plugin(group, str(node["name"]))
            nodes.append((f"{group}.", node, registry.schema_for(str(node["name"]), cls)))
    for prefix, node, schema in nodes:
        valid = [f.name for f in dataclasses.fields(schema)]
        unknown = sorted(set(node) - set(valid) - {"hydra"})
        if unknown:
            raise UsageError(unknown_key(prefix + unknown[0], valid))


def settings_from(cfg: DictConfig) -> Settings:
    """Validate the composed config and turn it into plain values, once, before any item."""
    try:
        missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra"))
        if not missing:
            plain = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:  # ${oops}, ${oc.env:NOPE} in an override
        raise UsageError(_unresolvable(cfg, exc)) from exc
    if missing:
        raise UsageError(
            f"Missing mandatory value: {missing[0]}. Set it on the command line, "
            f"e.g. {missing[0]}=VALUE."
        )
    assert isinstance(plain, dict)
    _refuse_unknown_keys(plain)
    plain = _with_defaults(plain)
    parallel = plain["parallel"]
    auto: tuple[int, int, int] | None = None
    if parallel == "auto":
        low, high, start = (plain["auto"][key] for key in ("min", "max", "start"))
        for key, value in (("auto.min", low), ("auto.max", high), ("auto.start", start)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"{key}={value!r} is invalid: it must be an integer >= 1.")
        if low > high:
            raise UsageError(f"auto.min={low!r} is above auto.max={high!r}.")
        auto, parallel = (low, high, min(max(start, low), high)), high
    elif not isinstance(parallel, int) or isinstance(parallel, bool) or parallel < 1:
        raise UsageError(f"parallel={parallel!r} is invalid: it must be an integer >= 1, or auto.")
    if parallel > MAX_PARALLEL:
        name = "auto.max" if auto else "parallel"
        raise UsageError(
            f"{name}={parallel!r} is too large: the maximum is {MAX_PARALLEL} workers."
        )
    progress = str(plain["progress"])
    if progress not in PROGRESS_MODES:
        raise UsageError(
            f"progress={progress!r} is invalid. Valid choices: {', '.join(PROGRESS_MODES)}."
        )
    given = plain["log_level"]
    level = str(given).upper()
    if level not in LOG_LEVELS:
        raise UsageError(f"log_level={given!r} is invalid. Valid choices: {', '.join(LOG_LEVELS)}.")
    plugins: dict[str, dict[str, Any]] = {}
    for group in GROUPS:
        node = plain.get(group)
        if not isinstance(node, dict) or "name" not in node:
            raise UsageError(f"No {group} selected: add {group}=NAME to the command line.")
        plugins[group] = node
    retry, halt = plain["retry"], plain["halt"]
    try:
        halt_policy = HaltPolicy.parse(halt["on_failures"], str(halt["mode"]))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    resume = plain["resume"]
    max_wait = _number(retry["max_wait"], "retry.max_wait", low=0, strict=True, high=LONGEST_WAIT)
    per_second = _optional(plain["rate_limit"]["per_second"], "rate_limit.per_second")
    if per_second is not None and 1.0 / per_second > max_wait:
        raise UsageError(
            f"rate_limit.per_second={plain['rate_limit']['per_second']!r} is invalid: it "
            f"must be a number >= {1.0 / max_wait:.3g} (a start at least every "
            f"retry.max_wait={max_wait:g} s), or null."
        )
    return Settings(
        parallel=parallel,
        auto=auto,
        dry_run=bool(plain["dry_run"]),
        progress=progress,
        log_level=level,
        plugins=plugins,
        retry=RetryPolicy(
            attempts=_number(retry["attempts"], "retry.attempts", low=1, integer=True),
            backoff=_number(retry["backoff"], "retry.backoff", low=0, high=LONGEST_WAIT),
            max_wait=max_wait,
        ),
        rate_limit=per_second,
        halt=halt_policy,
        timeout=_optional(plain["timeout"], "timeout", high=LONGEST_WAIT),
        timeout_grace=_number(plain["timeout_grace"], "timeout_grace", low=0, high=LONGEST_WAIT),
        resume=None if resume is None else str(resume),
    )


def _with_defaults(plain: dict[Any, Any]) -> dict[Any, Any]:
    """The config's values over RunConfig's defaults, the one place they are written (a
    composed config has them all; a config built by hand may leave some out)."""
    values = dataclasses.asdict(RunConfig())
    for key, value in plain.items():
        values[key] = {**values[key], **(value or {})} if key in _NESTED else value
    return values


def _number(
    value: Any,
    key: str,
    *,
    low: float,
    strict: bool = False,
    high: float | None = None,
    integer: bool = False,
    optional: bool = False,
) -> Any:
    """``value`` as a finite number >= ``low`` (> with ``strict``), <= ``high`` (an int if
    ``integer``; None allowed if ``optional``), or a UsageError naming what is valid."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and integer:
        ok = isinstance(value, int)
    if ok:
        # An int is finite however large (math.isfinite would raise OverflowError).
        finite = isinstance(value, int) or math.isfinite(value)
        ok = finite and (value > low if strict else value >= low)
        ok = ok and (high is None or value <= high)
    if not ok:
        kind = "an integer" if integer else "a number"
        valid = f"{kind} {'>' if strict else '>='} {low:g}"
        if high is not None:
            valid += f" and <= {high:g}"
        raise UsageError(
            f"{key}={value!r} is invalid: it must be {valid}{', or null' if optional else ''}."
        )
    return value


def _optional(value: Any, key: str, high: float | None = None) -> float | None:
    """A positive, finite number of seconds (or per second), or None."""
    if value is None:
        return None
    return float(_number(value, key, low=0, strict=True, high=high, optional=True))


def _unresolvable(cfg: DictConfig, exc: OmegaConfBaseException) -> str:
    """One line naming the key whose interpolation failed, its text and why."""
    key = str(getattr(exc, "full_key", "") or "")
    # OmegaConf wraps what went wrong in errors of its own: the first exception down the
    # chain that is not OmegaConf's (a resolver's own error, e.g. oc.env's KeyError) says
    # why, or else the innermost of OmegaConf's.
    cause: BaseException = exc
    while isinstance(cause, OmegaConfBaseException):
        inner = cause.__cause__ or cause.__context__
        if inner is None:
            break
        cause = inner
    if isinstance(cause, KeyError) and cause.args:
        reason = str(cause.args[0])  # str() of a KeyError would quote its message
    else:
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    if not key:
        return f"Invalid config: {reason}."
    try:
        text: Any = OmegaConf.to_container(cfg, resolve=False)
        for part in key.split("."):
            text = text[part]
    except (KeyError, TypeError, IndexError):
        text = None
    shown = f"{key}={text!r}" if isinstance(text, str) else key
    return f"{shown} cannot be resolved: {reason.rstrip('.')}."
