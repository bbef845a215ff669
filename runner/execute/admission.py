"""What a service's refusals teach, applied to every attempt that follows.

A refusal (a rate-limited ``RetryableError``: 429, 503, "overloaded") is information, not
a reason to stop the whole run. :class:`Admission` counts the attempts in flight (every
attempt of the run's thread-side safe call, from its first one) and learns from each
refusal which kind of limit the service has:

* a *concurrency* limit (it serves so many at once): the refused attempt started with
  ``n`` in flight, so the service serves at most ``n - 1``. A fixed ``parallel`` becomes
  an upper bound: at most ``n - 1`` attempts run at once from then on (logged once);
  with ``parallel=auto`` its limit is cut to ``n - 1`` (:meth:`AdaptiveLimit.rate_limited`).
  One more is tried after ``PROBE_START`` quiet seconds, twice as long each time the
  service refuses it again (up to ``PROBE_MAX``), so a capacity that grows is found again;
* a *rate* limit (it serves so many a second): refusals come at levels where the service
  also serves. Starts are then paced (one every ``1/rate`` s) at the rate the service
  served over the last ``RATE_SPAN`` seconds, and the pace is raised by ``RATE_STEP``
  after every ``RATE_PROBE`` seconds without a refusal.

Which one it is: over a concurrency limit, the service refuses a level almost as soon as
it is reached (within two typical attempts); under a rate limit it serves that level for a
while, more a second than the level below gave, until its bucket is empty. The first
refusal is read as a concurrency limit (the only evidence there is), and later decisions
wait until one typical attempt has had time to finish since the last change, so that
they weigh answers to requests made under it. A rate limit that a cap alone meets (a cap
of ``k`` serves about ``k / latency`` a second) is met by the cap; pacing comes in when
the cap's one more is served for a while and then refused.

Only the refused item waits (its Retry-After, jittered, or its backoff): the others keep
the service busy. Before the first refusal an attempt costs a list append and pop here.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

from runner.api import RetryableError
from runner.execute.concurrency import AdaptiveLimit
from runner.execute.policies import Stopped

#: Quiet seconds before one more at once is tried above a learned concurrency limit;
#: doubled each time the service refuses that level again, up to PROBE_MAX.
PROBE_START = 2.0
PROBE_MAX = 64.0
#: Seconds of served answers a learned rate is measured over; of answers kept.
RATE_SPAN = 2.0
KEPT_SECONDS = 10.0
#: A level that served this much more a second than the one below, then was refused, is
#: under a rate limit (its bucket emptied), not over a concurrency limit.
RATE_GAIN = 1.1
#: A learned rate is raised by this factor after every RATE_PROBE seconds without a refusal.
RATE_STEP = 1.05
RATE_PROBE = 1.0


class Admission:
    """The attempts in flight, and the limits the service's refusals taught.

    ``begin`` before an attempt (it waits for the learned limits once a refusal came),
    ``end`` after it, with the attempt's exception if any.
    """

    def __init__(
        self,
        limit: AdaptiveLimit | None = None,
        sleep: Callable[[float], None] = time.sleep,
        stopping: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        #: ``parallel=auto``'s limit, which a concurrency limit cuts (else ``cap`` does).
        self.limit = limit
        #: One entry per attempt in flight (list.append and pop are atomic: no lock needed
        #: until the first refusal).
        self.flight: list[None] = []
        #: True from the first refusal on: every attempt then goes through :meth:`enter`.
        self.active = False
        #: At most this many attempts at once (a fixed count's learned bound), or None.
        self.cap: int | None = None
        #: Starts per second (a learned rate limit), or None.
        self.rate: float | None = None
        self.refusals = 0
        self._sleep, self._stopping, self._clock = sleep, stopping, clock
        self._cond = threading.Condition()
        self._next_start = 0.0
        self._changed = 0.0  # when a limit last changed (what was started before is old)
        self._cap_changed = 0.0  # when the cap last changed (the levels refused since)
        self._cap_raised = self._rate_raised = 0.0  # when each was last raised
        self._probe_wait = PROBE_START
        self._probing = False  # the cap was raised and no refusal has said no yet
        self._refused_at: collections.Counter[int] = collections.Counter()
        self._served_times: collections.deque[float] = collections.deque()
        self._kept_from = 0.0  # every answer served since then is in _served_times
        self._reached: dict[int, float] = {}  # level -> when first in flight under the cap
        self._latency = 0.0  # of served attempts, a moving average
        self._activated = 0.0  # when the first refusal came
        self._said_cap = self._said_rate = False

    # -- around every attempt ------------------------------------------------------

    def begin(self) -> int:
        """Count an attempt in (waiting for the learned limits, if any); the number in
        flight with it."""
        if self.active:
            return self.enter()
        flight = self.flight
        flight.append(None)
        return len(flight)

    def enter(self) -> int:
        """Wait for a start the learned rate allows, then for room under the learned cap."""
        if self.rate is not None:
            with self._cond:
                now = self._clock()
                rate = self.rate
                at = max(self._next_start, now) if rate is not None else now
                self._next_start = at + (1.0 / rate if rate else 0.0)
            if at > now:
                self._sleep(at - now)
        with self._cond:
            while self.cap is not None and len(self.flight) >= self.cap:
                if self._stopping():
                    raise Stopped("the run is stopping")
                self._cond.wait(0.1)
            self.flight.append(None)
            in_flight = len(self.flight)
            if in_flight not in self._reached:
                self._reached[in_flight] = self._clock()
            return in_flight

    def end(self, in_flight: int, started: float, error: BaseException | None = None) -> None:
        """An attempt that began with ``in_flight`` at ``started`` ended (``error``: how)."""
        refused = isinstance(error, RetryableError) and error.rate_limited
        if refused:
            # Those started after this one may have reached the service first: the most
            # in flight either way (too many only delays the limit found, too few lowers it).
            in_flight = max(in_flight, len(self.flight))
        self.flight.pop()
        if not (self.active or refused):
            return
        now = self._clock()
        with self._cond:
            self._cond.notify()
            if refused:
                assert isinstance(error, RetryableError)
                self._refused(in_flight, started, now, str(error)[:120])
            elif error is None:
                self._served(in_flight, started, now)

    # -- what the answers teach ----------------------------------------------------

    def _served(self, in_flight: int, started: float, now: float) -> None:
        times = self._served_times
        times.append(now)
        if times[0] < now - KEPT_SECONDS:
            self._kept_from = now - KEPT_SECONDS
            while times[0] < self._kept_from:
                times.popleft()
        took = now - started
        self._latency = took if not self._latency else 0.8 * self._latency + 0.2 * took
        quiet = now - self._changed
        if self.rate is not None and min(quiet, now - self._rate_raised) >= RATE_PROBE:
            self.rate *= RATE_STEP
            self._rate_raised = now
            logger.debug(f"Starts paced at {self.rate:.1f}/s (no refusal for a while)")
        if self.cap is not None and min(quiet, now - self._cap_raised) >= self._probe_wait:
            self.cap += 1
            self._cap_raised, self._probing = now, True
            logger.debug(f"Trying {self.cap} at once (no refusal for a while)")

    def _refused(self, in_flight: int, started: float, now: float, reason: str) -> None:
        self.refusals += 1
        first = not self.active
        if first:
            self.active, self._activated = True, now
        if not first and (started < self._changed or now - self._changed < self._latency):
            # Started before the last change, or answered before what was started
            # under it could be: not evidence about it yet.
            if started >= self._cap_changed:
                self._refused_at[in_flight] += 1
            self._note(reason)
            return
        self._refused_at[in_flight] += 1
        level = min(self._refused_at)
        reached = self._reached.get(level)
        if first or reached is None or now - reached < 2 * self._latency:
            # Refused (almost) as soon as that many were in flight: a concurrency limit.
            self._cut(now, level - 1, reason)
        elif self.rate is not None:
            self._paced(now, self._served_rate(now - RATE_SPAN, now), reason)
        else:
            # Served there a while, then refused: a rate limit if that level served more
            # a second than the one below it did (a bucket emptied), else a concurrency
            # limit the count of attempts in flight overstated for a while.
            there = self._served_rate(reached, now)
            # The level below measured: answers kept from before that level was reached.
            known = reached - max(self._activated, self._kept_from) >= RATE_SPAN / 2
            if known and there >= RATE_GAIN * self._served_rate(reached - RATE_SPAN, reached):
                self._paced(now, there, reason)
            else:
                self._cut(now, level - 1, reason)
        self._changed = now

    def _cut(self, now: float, most: int, reason: str) -> None:
        self._concurrency(most, reason)
        # What each level gets is counted again under the new cap.
        self._cap_changed = now
        self._refused_at.clear()
        self._reached.clear()

    def _served_rate(self, since: float, until: float) -> float:
        """Answers served a second between two times, over the part of that span whose
        answers are all kept (the last KEPT_SECONDS): answers dropped do not count as
        none served (a level reached a minute ago served what the last 10 s show, not a
        sixth of it; the level below it, before them, is not measured: see ``known``)."""
        since = max(since, self._activated, self._kept_from)
        if until - since <= 0:
            return 0.0
        return sum(1 for at in self._served_times if since <= at < until) / (until - since)

    def _concurrency(self, most: int, reason: str) -> None:
        """The service serves at most ``most`` at once."""
        if self._probing:
            self._probe_wait = min(self._probe_wait * 2, PROBE_MAX)
            self._probing = False
        if self.limit is not None:
            self.limit.rate_limited(reason, in_flight=most + 1)
            return
        refused, most = most + 1, max(1, most)
        if self.cap is not None and most >= self.cap:
            return
        self.cap = most
        if not self._said_cap:
            self._said_cap = True
            logger.warning(
                f"The service refused a request with {refused} in flight ({reason}): at most "
                f"{most} at once from now on (parallel is an upper bound; one more is tried "
                "after a quiet spell)"
            )
        else:
            logger.debug(f"At most {most} at once from now on ({reason})")

    def _paced(self, now: float, rate: float, reason: str) -> None:
        """The service serves so many a second: pace the starts at what it served."""
        rate = max(rate, 1.0 / RATE_SPAN)
        if self.rate is not None:
            rate = min(rate, self.rate)
        self.rate = rate
        self._note(reason)
        if not self._said_rate:
            self._said_rate = True
            logger.warning(
                f"The service refuses by rate, not by how many run at once ({reason}): "
                f"starts paced at {rate:.1f}/s from now on (raised after a quiet spell)"
            )
        else:
            logger.debug(f"Starts paced at {rate:.1f}/s ({reason})")

    def _note(self, reason: str) -> None:
        if self.limit is not None:
            self.limit.rate_limited(reason, in_flight=None, cut=False)

    def summary(self) -> dict[str, Any]:
        """What the refusals taught, for the run's record."""
        return {
            "refusals": self.refusals,
            "cap": self.cap,
            "paced_per_second": None if self.rate is None else round(self.rate, 2),
        }
