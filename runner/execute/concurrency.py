"""``parallel=auto``: how many items run at once, adjusted while the batch runs.

The controller climbs like TCP's slow start and backs off like its congestion control
(additive increase, multiplicative decrease), with the gradient idea of Netflix's
concurrency-limits (compare throughput and latency at neighbouring limits) instead of a
fixed target:

* it starts at ``auto.start`` (4, like TCP's initial window of several segments: a
  short run must not spend its life climbing from 1) and doubles the limit after every
  measuring window in which throughput grew (by ``GAIN`` or more) over the window
  before, up to ``auto.max`` (a window of ``SLOW_WINDOW`` s then); it never goes below
  ``auto.min``;
* a window that did not gain returns to the best limit measured so far and remembers the
  level it tried as a *ceiling*: raising the limit gave nothing (a CPU-bound task on two
  cores, a service that slows down under load);
* a refusal (a 429 or overloaded reply: any rate-limited ``RetryableError``) that
  ``runner.execute.admission`` reads as a concurrency limit cuts the limit at once to
  one less than were in flight when it was sent, and makes the refused level the
  ceiling; one from another process (the gate's signal, which does not say how many
  were in flight) cuts it to ``BACKOFF`` of its level during slow start, by one after;
* below a ceiling the limit creeps up by one per window while throughput holds (a step
  of less than ``GAIN`` is judged by the items' times: see ``_gained``); the
  ceiling itself is tried again after ``PROBE_START`` quiet windows, twice as long each
  time it fails again (up to ``PROBE_MAX``), so that a service's limit costs few
  rejected requests once found, a level hit by a stray 429 is soon back, and a change
  of the service's capacity during the day is still noticed.

A window lasts at least ``WINDOW`` seconds and until ``2 x limit`` items finished (enough
to average over). Retries happen inside the wrapper, so an item counts once. Every change
is logged once with its reason; ``summary()`` gives what ``summary.json`` records.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

#: Growth of throughput that counts as a gain (noise is smaller than this).
GAIN = 1.05
#: Share of a rate-limited level the limit falls to.
BACKOFF = 0.75
#: Seconds a measuring window lasts at least; during slow start, where a doubling of a
#: latency-bound task doubles its throughput (far above noise), SLOW_WINDOW: long enough
#: that a busy machine's pause does not make a doubling look flat (0.1 s did, under load).
WINDOW = 0.5
SLOW_WINDOW = 0.25
#: Quiet windows before a ceiling is tried again; doubled each time it fails again, up to
#: PROBE_MAX (a level that gave nothing is retried rarely, one that did is kept).
PROBE_START = 4
PROBE_MAX = 64
#: Changes kept in summary.json (the first ones and the last ones when there are more).
KEPT_CHANGES = 400


def _gained(previous: tuple[int, float, float], level: int, rate: float, latency: float) -> bool:
    """Whether ``level`` did better than the lower level ``previous`` measured.

    A step of ``GAIN`` or more must show in the throughput. One more among many (32 ->
    33: 3%) adds less than a window's noise to it (10% at 0.5 s here), so such a step is
    judged by each item's time instead: whatever saturates (the cores, a service that
    slows down, refusals' waits) makes every item take longer by about the step's share;
    a place that was free leaves it as it was.
    """
    before, before_rate, before_latency = previous
    if rate >= before_rate * GAIN:
        return True
    step = level / before - 1
    return step < GAIN - 1 and latency <= before_latency * (1 + step / 2)


class AdaptiveLimit:
    """The number of items allowed to run at once.

    ``observe`` is called by the run loop's thread for every finished item;
    ``rate_limited`` by any thread (the gate's pause); an executor's worker holds a place
    (``acquire`` ... ``release``) while it runs items, and a remote executor keeps at most
    ``current`` items out.
    """

    def __init__(
        self,
        minimum: int = 1,
        maximum: int = 64,
        start: int | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        start = minimum if start is None else start
        if not 1 <= minimum <= start <= maximum:
            raise ValueError(
                f"auto.min={minimum!r}, auto.start={start!r} and auto.max={maximum!r}: "
                "need 1 <= min <= start <= max"
            )
        self.minimum, self.maximum = minimum, maximum
        #: How many items may run at once now.
        self.current = start
        #: Places taken (``acquire``) and not given back.
        self.running = 0
        self._cond = threading.Condition()
        self._clock = clock  # seconds, for windows and the changes' times
        self._started = clock()
        self._window_start = self._started
        self._done = 0
        self._busy = 0.0  # item-seconds finished in the window
        self._rates: dict[int, float] = {}  # limit -> items/s measured there (latest)
        self._ceiling = maximum + 1  # the lowest level known to give nothing more
        self._previous: tuple[int, float, float] | None = None  # level, items/s, latency
        self._slow_start = True
        self._quiet = 0  # windows since the ceiling was last hit
        self._wait = PROBE_START  # quiet windows before the ceiling is tried again
        self._stopped = False
        self._holdoff_until = 0.0
        self._fell = -math.inf  # when the limit last fell
        self.changes: list[tuple[float, int, str]] = [(0.0, start, "start")]
        self.limited = 0  # rate-limit signals

    # -- what workers call ---------------------------------------------------------

    def acquire(self) -> bool:
        """Wait for one of the ``current`` places to run in; False: the run is stopping."""
        with self._cond:
            while self.running >= self.current and not self._stopped:
                self._cond.wait(0.5)
            if self._stopped:
                return False
            self.running += 1
            return True

    def release(self) -> None:
        with self._cond:
            self.running -= 1
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    # -- what the run reports ------------------------------------------------------

    def rate_limited(
        self,
        reason: str = "rate limited",
        in_flight: int | None = None,
        cut: bool = True,
        age: float | None = None,
    ) -> None:
        """A worker met a rate limit: lower the limit now; the level becomes a ceiling.

        ``in_flight``: how many attempts ran when the refused one started (the service
        serves fewer): the limit falls to one less, at once, during slow start or after
        it, and a refusal of an attempt started before an earlier cut cuts nothing more.
        Without it (a signal from another process), the limit falls to ``BACKOFF`` of its
        level during slow start and by one after it, and signals within ``WINDOW`` of a cut
        are counted but cut nothing more: they come from requests started before it.
        ``age``: seconds since the refused attempt started, when known (an outcome from
        another process): one started before the limit last fell cuts nothing more (with
        a Retry-After of 1 s, a Dask worker's refusals reach the driver a second or more
        later: they cut a level that had already been cut for them, again and again).
        ``cut=False``: counted only (the refusal taught something else: a rate limit).
        """
        with self._cond:
            self.limited += 1
            if not cut:
                return
            level = self.current
            if in_flight is not None:
                if in_flight > level:
                    return
                target = in_flight - 1
                why = f"the service refused one of {in_flight} at once: {reason}"
            else:
                now = self._clock()
                if now < self._holdoff_until or (age is not None and now - age < self._fell):
                    return
                target = math.floor(level * BACKOFF) if self._slow_start else level - 1
                why = f"rate limited at {level}: {reason}"
            self._slow_start = False
            self._too_high(level if in_flight is None else in_flight)
            self._set(max(self.minimum, target), why)
            self._holdoff_until = self._clock() + WINDOW
            # Windows that saw the cut compare with nothing measured before it.
            self._previous = None
            self._restart_window()

    def signalled(self, reason: str, age: float | None = None) -> None:
        """The gate's rate-limit signal (``Gate.on_limit``): a refusal that does not say how
        many were in flight, ``age`` seconds after its attempt started when known."""
        self.rate_limited(reason, age=age)

    def aside(self, wait: Callable[[], None]) -> None:
        """Run ``wait()`` with the caller's place given up, then take one back (waiting for
        room): an item waiting for its retry leaves its place to one that can run."""
        self.release()
        try:
            wait()
        finally:
            with self._cond:
                while self.running >= self.current and not self._stopped:
                    self._cond.wait(0.5)
                self.running += 1  # even when stopping: the executor gives it back

    def _too_high(self, level: int) -> None:
        """``level`` gave no more (or was rate limited): wait longer before trying it
        again if it was a retry of the same ceiling."""
        self._wait = min(self._wait * 2, PROBE_MAX) if level == self._ceiling else PROBE_START
        self._ceiling = level
        self._quiet = 0

    def observe(self, seconds: float) -> None:
        """One item finished after ``seconds``; closes the measuring window when due."""
        self._done += 1
        self._busy += seconds
        if self._done < 2 * self.current:
            return
        now = self._clock()
        elapsed = now - self._window_start
        if elapsed < (SLOW_WINDOW if self._slow_start else WINDOW):
            return
        with self._cond:
            self._decide(self._done / elapsed, self._busy / max(self._done, 1))
            self._restart_window(now)

    def _decide(self, rate: float, latency: float) -> None:
        level = self.current
        self._rates[level] = rate
        previous = self._previous
        self._previous = (level, rate, latency)
        self._quiet += 1
        if (
            previous is not None
            and previous[0] < level
            and not _gained(previous, level, rate, latency)
        ):
            # More at once gave nothing: back to the best level below this one.
            below = {k: v for k, v in self._rates.items() if k < level}
            best = max(below, key=lambda k: below[k]) if below else self.minimum
            self._slow_start = False
            self._too_high(level)
            self._set(
                max(self.minimum, best),
                f"{rate:.1f} items/s at {level}, no gain over {previous[1]:.1f} at "
                f"{previous[0]} ({latency * 1e3:.0f} ms per item)",
            )
            return
        if level >= self.maximum:
            return
        if level == self._ceiling:
            # A retried ceiling (or a level above it) held up: nothing known above it now.
            self._ceiling = self.maximum + 1
        if self._slow_start:
            target = min(self.maximum, level * 2)
            reason = f"{rate:.1f} items/s at {level}: doubling while throughput grows"
        elif level + 1 < self._ceiling:
            target, reason = level + 1, f"{rate:.1f} items/s at {level}: one more"
        elif self._quiet >= self._wait:
            target = level + 1
            reason = f"trying {target} again after {self._quiet} quiet windows"
        else:
            return
        self._set(target, reason)

    def _set(self, level: int, reason: str) -> None:
        if level == self.current:
            return
        old, self.current = self.current, level
        if level < old:
            self._fell = self._clock()
        self.changes.append((round(self._clock() - self._started, 3), level, reason))
        logger.info(f"parallel=auto: {old} -> {level} ({reason})")
        self._cond.notify_all()

    def _restart_window(self, now: float | None = None) -> None:
        self._window_start = self._clock() if now is None else now
        self._done = 0
        self._busy = 0.0

    # -- what summary.json records -------------------------------------------------

    def settled(self) -> int:
        """The level held longest over the second half of the run (time-weighted)."""
        end = self._clock() - self._started
        half = end / 2
        held: dict[int, float] = {}
        points = [*self.changes, (end, self.current, "end")]
        for (start, level, _), (stop, _, _) in itertools.pairwise(points):
            overlap = min(stop, end) - max(start, half)
            if overlap > 0:
                held[level] = held.get(level, 0.0) + overlap
        return max(held, key=lambda k: held[k]) if held else self.current

    def summary(self) -> dict[str, Any]:
        changes = self.changes
        if len(changes) > KEPT_CHANGES:
            changes = changes[: KEPT_CHANGES // 2] + changes[-KEPT_CHANGES // 2 :]
        return {
            "mode": "auto",
            "min": self.minimum,
            "max": self.maximum,
            "settled": self.settled(),
            "final": self.current,
            "rate_limit_signals": self.limited,
            "changes": [
                {"seconds": t, "parallel": level, "reason": why} for t, level, why in changes
            ],
        }
