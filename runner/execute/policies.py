"""What a run does about failures and limits: retries, the rate-limit gate, halting.

All three are per-run objects built from the top-level config (``retry``,
``rate_limit``, ``halt``) before the first item, and cost next to nothing per item
when they have nothing to do.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from loguru import logger

from runner.api import RetryableError

_clock = time.perf_counter


class Stopped(Exception):
    """A wait was cut short because the run is stopping."""


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """``retry.attempts`` tries per item for a :class:`RetryableError`, with backoff.

    The n-th wait is ``backoff * 2**(n-1)`` seconds, at most ``max_wait``, times a
    random factor in [0.5, 1] (jitter, so that workers that failed together do not
    retry together); a longer wait the service asked for (``RetryableError.wait``, a
    Retry-After) is kept, up to ``max_wait``: no single wait is longer, whatever a
    service answers (a day's quota would otherwise stall the run for hours).
    """

    attempts: int = 1
    backoff: float = 1.0
    max_wait: float = 300.0

    def wait_for(self, attempt: int, error: RetryableError) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        # 2.0 ** 1024 raises OverflowError; beyond 2 ** 1023 every wait is max_wait anyway.
        computed = min(self.max_wait, self.backoff * 2.0 ** min(attempt - 1, 1023))
        computed *= random.uniform(0.5, 1.0)
        asked = error.wait
        if asked is None or not asked > 0:  # none, negative or NaN: the backoff applies
            return computed
        return float(min(self.max_wait, max(computed, asked)))  # an int may pass a float's range


class Gate:
    """Where every attempt waits before it starts: rate-limit pauses and ``per_second``.

    A rate-limited failure with a wait pauses the whole run: no worker starts an attempt
    until the pause is over (logged once per pause). ``per_second`` spaces attempt
    starts across all workers. :meth:`stop` wakes every waiter with :class:`Stopped`.
    """

    def __init__(
        self,
        per_second: float | None = None,
        on_limit: Callable[[str, float | None], None] | None = None,
    ) -> None:
        self.interval = 0.0 if not per_second else 1.0 / per_second
        #: Told of every rate-limit signal, with the refused attempt's age in seconds when
        #: known (``parallel=auto`` lowers its limit).
        self.on_limit = on_limit
        #: time.perf_counter() until which no attempt starts (0: no pause); read unlocked.
        self.paused_until = 0.0
        # Starts that may come at once after an idle spell: one, or 50 ms worth.
        self.burst = max(self.interval, 0.05)
        #: With ``per_second`` (``spaced``): the start times of the next attempts,
        #: ``interval`` apart (next() on a count is atomic, so no lock per start). A pause
        #: moves them on.
        self.spaced = bool(self.interval)
        self.times: Iterator[float] = itertools.count(_clock(), self.interval)
        #: True while an attempt may start without asking (the per-item fast path).
        self.idle = not self.interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.pauses = 0

    def limited(self, reason: str, age: float | None = None) -> None:
        """A rate-limit signal, whether or not it still holds the starts; ``age``: seconds
        since the refused attempt started, when known."""
        if self.on_limit is not None:
            self.on_limit(reason, age)

    def pause(self, seconds: float, reason: str, age: float | None = None) -> None:
        """Hold every start for ``seconds`` from now (a longer pause already set wins)."""
        self.limited(reason, age)
        now = _clock()
        until = now + seconds
        with self._lock:
            if until <= self.paused_until:
                return
            new = self.paused_until < now
            self.paused_until = until
            self.idle = False
            if self.spaced:  # starts drawn from now on come after the pause
                self._times_from(until)
            self.pauses += new
        if new:
            logger.warning(f"Rate limited: no item starts for {seconds:.1f} s ({reason})")

    def sleep(self, seconds: float) -> None:
        """Sleep, or raise Stopped as soon as the run stops."""
        if seconds > 0 and self._stop.wait(seconds):
            raise Stopped("the run is stopping")
        if self._stop.is_set():
            raise Stopped("the run is stopping")

    def enter(self, now: float | None = None) -> float:
        """Wait until an attempt may start; return when it may (``now``, when at once).

        ``now``: the caller's ``time.perf_counter()`` reading, if it has one (it saves
        a clock reading per item).
        """
        if now is None:
            now = _clock()
        if self.paused_until <= now:
            if not self.spaced:
                return now
            return self.ticket(now, next(self.times))
        while self.paused_until > now:
            self.sleep(self.paused_until - now)
            now = _clock()
        return self.enter()

    def ticket(self, now: float, start: float) -> float:
        """Start at ``start`` (a ticket drawn at ``now``): at once, or after a sleep."""
        if start <= now:
            # When the cap does not bind, the start times are moved up (rarely), so that
            # at most ``burst`` of unused starts pile up.
            if start < now - self.burst:
                with self._lock:
                    if self.paused_until <= now:
                        self._times_from(now + self.interval)
            return now
        self.sleep(start - now)
        now = _clock()
        if self.paused_until <= now:
            return now
        return self.enter(now)

    def _times_from(self, earliest: float) -> None:
        """Start times from ``earliest`` on, never before one already drawn (threads
        sleeping until theirs still start then). Call with the lock held."""
        self.times = itertools.count(max(earliest, next(self.times)), self.interval)

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()


@dataclasses.dataclass(frozen=True)
class HaltPolicy:
    """``halt.on_failures`` (a count, or a percentage of the items like "10%") and mode.

    ``soon``: start nothing more, let running items finish; ``now``: stop them too.
    """

    count: int | None = None
    fraction: float | None = None
    mode: str = "soon"

    @classmethod
    def parse(cls, on_failures: Any, mode: str) -> HaltPolicy:
        """Read the config values; raise ValueError naming a bad one."""
        if mode not in HALT_MODES:
            raise ValueError(
                f"halt.mode={mode!r} is invalid. Valid choices: {', '.join(HALT_MODES)}."
            )
        if on_failures is None:
            return cls(mode=mode)
        text = str(on_failures).strip()
        try:
            if text.endswith("%"):
                percent = float(text[:-1])
                if not 0 < percent <= 100 or not math.isfinite(percent):
                    raise ValueError
                return cls(fraction=percent / 100, mode=mode)
            if isinstance(on_failures, bool):
                raise ValueError
            count = int(text)
            if count < 1 or str(count) != text:
                raise ValueError
            return cls(count=count, mode=mode)
        except ValueError:
            raise ValueError(
                f"halt.on_failures={on_failures!r} is invalid: give a count >= 1 (e.g. 5) "
                "or a percentage of the items in (0, 100] (e.g. '10%'), or null."
            ) from None

    @property
    def active(self) -> bool:
        return self.count is not None or self.fraction is not None

    def reached(self, failed: int, done: int, total: int | None) -> bool:
        """Whether ``failed`` failures (of ``done`` finished, ``total`` known) halt the run."""
        if self.count is not None:
            return failed >= self.count
        if self.fraction is not None:
            if total is not None:
                return failed >= self.fraction * total
            # The count unknown: a share of those finished, once enough have finished
            # for the share to mean something (10 for 10%).
            return done * self.fraction >= 1 and failed >= self.fraction * done
        return False


HALT_MODES = ("soon", "now")


def retrying(
    run: Callable[[], Any],
    policy: RetryPolicy,
    gate: Gate,
    record: Callable[[BaseException, float, float], None],
    first: RetryableError,
    first_seconds: float,
    alone: Callable[[float], None] | None = None,
) -> Any:
    """Try ``run`` again after its first attempt failed with ``first``, until it succeeds,
    raises a non-retryable error or uses every attempt of ``policy``.

    The first attempt runs without this machinery (it costs nothing when nothing fails);
    this is called only for a retryable failure. ``record(error, seconds, wait)`` is
    called for each failed attempt that another follows. Built on tenacity; every wait
    goes through ``gate``, so that it ends when the run stops, and a rate-limited
    failure pauses the whole run instead of this item alone. With ``alone`` (the caller
    learns from refusals instead: ``runner.execute.admission``), the item waits alone
    through it, a service's Retry-After stretched by up to a quarter so that the items
    one burst refused do not come back together.
    """
    import tenacity

    clock = time.perf_counter
    began = [clock()]

    def hold(error: RetryableError, attempt: int, seconds: float) -> float:
        wait = policy.wait_for(attempt, error)
        if alone is not None and error.rate_limited and error.wait is not None:
            wait = min(policy.max_wait, wait * random.uniform(1.0, 1.25))
        record(error, seconds, wait)
        if error.rate_limited and alone is None:
            gate.pause(wait, str(error)[:120])
            return 0.0  # the gate holds this attempt like every other
        return wait

    def wait(state: tenacity.RetryCallState) -> float:
        assert state.outcome is not None
        error = state.outcome.exception()
        assert isinstance(error, RetryableError)
        # tenacity asks for the wait before it checks the stop: the last attempt's
        # failure is the item's error, not a retry.
        if state.attempt_number + 1 >= policy.attempts:
            return 0.0
        return hold(error, state.attempt_number + 1, clock() - began[0])

    def attempt() -> Any:
        gate.enter()
        began[0] = clock()
        return run()

    sleep = gate.sleep if alone is None else alone
    sleep(hold(first, 1, first_seconds))
    retryer = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.attempts - 1),
        wait=wait,
        retry=tenacity.retry_if_exception_type(RetryableError),
        sleep=sleep,
        reraise=True,
    )
    return retryer(attempt)
