"""What happened over a run's time, read back from its journal into a fixed number of time
bins: how busy each worker was, items finished and running, the rate-limited waits, and
the failed items (the first ones named, the rest counted), for report.html.

Its cost does not grow with the item count but for one read of the file: memory is the
bins (``BINS`` per worker row, at most ``MAX_ROWS`` rows), and the lines parsed in Python
are about ``SAMPLE`` successes drawn at random across the journal, each standing for the
lines around it (a long run's picture is an estimate, and says so), plus every failed line (a
failure must not vanish from the picture) and every line of a rate-limited wait. The
journal is read in blocks, each block's lines split and its sampled ones searched with
one regex, as ``run_page.durations`` reads it.
"""

from __future__ import annotations

import array
import dataclasses
import json
import math
import os
import random
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Time bins across the run.
BINS = 80
#: Worker rows drawn at most; more workers share one last row.
MAX_ROWS = 24
#: Successful lines parsed at most (evenly spread over a longer journal).
SAMPLE = 3_000
#: Failed items named in the table at most; the rest are counted.
FAILED_ROWS = 50
#: Lines of rate-limited waits read at most.
WAIT_LINES = 2_000
#: Characters of a failed item's error shown.
ERROR_CHARS = 160
#: A line's timing fields as runner writes them (``runner.record.journal``). The id
#: before them is a JSON string, where a quote is always escaped: so the first match on
#: a line is its own fields (a result holding such text comes after them, and the rest of
#: the line is matched too, so that the next match is on a later line).
_TIMING = re.compile(
    rb'"status": "(ok|failed)", "seconds": ([^,\n]*), "started": (-?[\d.]+), '
    rb'"finished": (-?[\d.]+), "worker": "((?:[^"\\\n]|\\.)*)"[^\n]*'
)
#: A line's first ``"seconds": `` and its value (up to a comma), and the rest of the line.
_SECONDS = re.compile(rb'"seconds": ([^,\n]*)[^\n]*')
_FAILED = b'"status": "failed", '
#: In a failed line and in each earlier attempt's record: one search of a block finds
#: both (a search costs about as much as counting the block's lines).
_ERROR = b'"error": '
_PAUSE = b'"pause": '
#: Bytes read at a time: a block's lines are split at once, so this bounds what reading
#: adds to the run's peak memory (1 MiB blocks added about 7 MB at 1M items, 256 KiB ones
#: 1.5 MB). Under glibc's 128 KiB mmap threshold, a block comes from the heap, where the
#: last one's space is used again, rather than mapped and unmapped each time.
_BLOCK = 1 << 16


@dataclasses.dataclass
class Timeline:
    """A run's time in bins of ``width`` seconds from its start (``BINS`` at most)."""

    width: float
    #: Worker name -> item-seconds busy in each bin (a share of ``width`` once divided).
    busy: dict[str, list[float]]
    #: Worker name -> failed items that ended in each bin.
    failures: dict[str, list[int]]
    #: Worker name -> items that ended in each bin.
    items: dict[str, list[float]]
    #: Items finished in each bin.
    finished: list[float]
    #: Rate-limited waits: (from, to) in seconds from the run's start, the first ones.
    waits: list[tuple[float, float]]
    #: About one success line parsed in this many (1: every line; more: an estimate).
    step: int
    #: Lines with no times (an older runner's, or made without them; estimated when
    #: sampled): not drawn.
    untimed: int

    @property
    def end(self) -> float:
        return self.width * len(self.finished)


def _count_lines(fh: Any, size: int) -> int:
    lines, left = 0, size
    while left > 0 and (chunk := fh.read(min(_BLOCK, left))):
        lines += chunk.count(b"\n")
        left -= len(chunk)
    fh.seek(0)
    return lines


def _last_finish(fh: Any, size: int) -> float:
    """The latest end among the journal's last lines: the run's end, near enough (lines
    are written as items end; a later one is drawn in the last bin)."""
    read = 65536
    while True:
        fh.seek(max(size - read, 0))
        found = (_number(match[3]) for match in _TIMING.findall(fh.read(read)))
        ends = [end for end in found if end is not None]
        if ends or read >= size:  # long last lines (tracebacks): read further back
            fh.seek(0)
            return max(ends, default=0.0)
        read *= 8


def _worker_rows(name: str, rows: dict[str, int]) -> str:
    """The row a worker's items are drawn in: its own, or the shared last one."""
    if name in rows:
        return name
    if len(rows) < MAX_ROWS - 1:
        rows[name] = len(rows)
        return name
    return "other workers"


def _wait_spans(line: bytes) -> list[tuple[float, float]]:
    """The rate-limited waits a line records: each ``pause`` from the end of the attempt
    it followed (attempts ran one after another from the item's start)."""
    try:
        record = json.loads(line)
        at = float(record["started"])
    except (ValueError, TypeError, KeyError):
        return []
    spans: list[tuple[float, float]] = []
    for retry in record.get("retries") or ():
        if not isinstance(retry, dict):
            return spans
        at += float(retry.get("seconds") or 0.0)
        pause = (retry.get("error") or {}).get("pause")
        if isinstance(pause, (int, float)) and pause > 0:
            spans.append((at, at + pause))
        at += float(retry.get("wait") or 0.0)
    pause = (record.get("error") or {}).get("pause")
    if isinstance(pause, (int, float)) and pause > 0 and record.get("finished") is not None:
        spans.append((float(record["finished"]), float(record["finished"]) + pause))
    return spans


def _failed_row(line: bytes, number: int) -> tuple[str, str, int, int] | None:
    """A failed line's id, one-line error, attempts and its line number (``number``)."""
    try:
        record = json.loads(line)
        error = record.get("error") or {}
        text = f"{error.get('type', '?')}: {error.get('message', '')}".strip()
        first = text.splitlines()[0] if text else ""
        if len(first) > ERROR_CHARS or first != text:
            first = first[: ERROR_CHARS - 1] + "…"
        return str(record["id"]), first, int(record.get("attempts") or 1), number
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


class _Bins:
    """The ``count`` bins being filled, a line at a time."""

    def __init__(self, width: float, count: int) -> None:
        self.scale = 1.0 / width
        self.width = width
        self.count = count
        self.rows: dict[str, int] = {}
        self.busy: dict[str, list[float]] = {}
        self.failures: dict[str, list[int]] = {}
        self.items: dict[str, list[float]] = {}
        self.finished = [0.0] * count
        self._names: dict[bytes, str] = {}  # a worker's name in the journal -> its row's

    def add(self, worker: bytes, took: bytes, end: bytes, weight: float, ok: bool) -> None:
        """An item that ended at ``end`` after ``took`` seconds: its duration to the
        microsecond, as the journal keeps it (its start and end are to the millisecond)."""
        try:
            seconds, finished = float(took), float(end)
        except ValueError:
            return  # not a number (a line not written by runner): not drawn
        started = finished - seconds
        if not (started >= -0.001 and seconds >= 0 and finished < math.inf):
            return  # not this run's (made without times), or NaN
        started = max(started, 0.0)
        name = self._names.get(worker)
        if name is None:
            name = self._names[worker] = _worker_rows(_text(worker) or "unknown worker", self.rows)
        busy = self.busy.get(name)
        if busy is None:
            busy = self.busy[name] = [0.0] * self.count
            self.failures[name] = [0] * self.count
            self.items[name] = [0.0] * self.count
        last = self.count - 1
        first = min(int(started * self.scale), last)
        at = min(int(finished * self.scale), last)
        if first == at:
            busy[first] += (finished - started) * weight
        else:  # a spell across bins: each gets its share
            width = self.width
            busy[first] += ((first + 1) * width - started) * weight
            for index in range(first + 1, at):
                busy[index] += width * weight
            busy[at] += (finished - max(at * width, started)) * weight
        self.finished[at] += weight
        self.items[name][at] += weight
        if not ok:
            self.failures[name][at] += 1


def _text(raw: bytes) -> str:
    try:
        value = json.loads(b'"' + raw + b'"')
    except ValueError:
        return raw.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


@dataclasses.dataclass
class Reading:
    """What report.html reads of a journal in its one pass."""

    #: Item durations: every line's, or an even sample of ``durations`` lines (an array
    #: of doubles: 8 bytes each, where a list of floats holds 32, some 0.5 MB at 20,000).
    durations: Sequence[float]
    timeline: Timeline | None
    #: The first failed items (id, "Type: message", attempts, line number in the journal),
    #: and how many failed.
    failed: list[tuple[str, str, int, int]] = dataclasses.field(default_factory=list)
    failed_count: int = 0


def _number(text: bytes) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read_journal(journal: Path, skip: int = 0, durations: int = 20_000) -> Reading:
    """The journal's durations (for the histogram) and the run's timeline (None when no
    line holds times), in one read.

    ``skip``: lines at the journal's head that an earlier run wrote (a resumed run's
    successes there, timed from that run's start): they have no place on the timeline.
    Only a regular file is read, and no further than its size when opened: a journal
    that is a device (``/dev/full``) or keeps growing is not read for ever.
    """
    try:
        with open(journal, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                return Reading(array.array("d"), None)
            size = info.st_size
            lines = _count_lines(fh, size)
            end = _last_finish(fh, size)
            return _read(fh, size, lines, skip, end, durations)
    except OSError:
        return Reading(array.array("d"), None)


def _read(fh: Any, size: int, lines: int, skip: int, end: float, sample: int) -> Reading:
    # Bins of a round width (1, 2 or 5 times a power of ten) that cover the run.
    raw = max(end, 1e-3) * 1.0001 / BINS
    power = 10.0 ** math.floor(math.log10(raw))
    width = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    bins = _Bins(width, min(BINS, math.ceil(max(end, 1e-3) * 1.0001 / width)))
    step = max(1, math.ceil((lines - skip) / SAMPLE))
    draw = random.Random(0)  # the same page for the same journal
    jitter = [draw.randrange(step) for _ in range(4099)]
    every = max(1, math.ceil(lines / sample))  # the durations' step
    found_durations = array.array("d")
    waits: list[tuple[float, float]] = []
    failed: list[tuple[str, str, int, int]] = []
    failed_count = untimed = wait_lines = 0
    number, left = 0, size  # the next line's number
    torn: list[bytes] = []  # the start of a line that goes on in the next block
    # A block at a time: its lines split and its sampled ones searched at once (a line at
    # a time cost about 40 ms per 100k lines at the end of every run). The block is split
    # as read, with no copy of it joined to the line it ends or begins.
    while left > 0 and number < lines and (chunk := fh.read(min(_BLOCK, left))):
        left -= len(chunk)
        whole = chunk.split(b"\n")
        if len(whole) == 1:
            torn.append(chunk)
            continue
        if torn:
            whole[0] = b"".join([*torn, whole[0]])
        torn = [whole.pop()]
        del whole[lines - number :]  # lines written after the count
        start, number = number, number + len(whole)
        texts = _SECONDS.findall(b"\n".join(whole[-start % every :: every]))
        try:
            values = [float(text) for text in texts]
        except ValueError:  # not a number: that line is left out, the others counted once
            values = [v for v in map(_number, texts) if v is not None]
        found_durations.extend(values)
        if number <= skip:
            continue  # an earlier run's successes: neither timed from this run nor failed
        if start < skip:
            whole = whole[skip - start :]
            start = skip
        if end > 0:
            if step == 1:
                sampled, weight = whole, 1.0
            else:
                # A line drawn at random in each stretch of ``step`` lines, not every
                # step-th: lines come in patterns (workers in turn, a chunk each) that an
                # even stride would alias into the picture. Stretches are counted from
                # the first line drawn, across blocks.
                here, weight = start - skip, float(step)
                stretch, count = here // step, len(whole)
                sampled = []
                while (first := stretch * step - here) < count:
                    at = first + jitter[stretch % len(jitter)]
                    if 0 <= at < count:
                        sampled.append(whole[at])
                    stretch += 1
            found = _TIMING.findall(b"\n".join(sampled))
            untimed += round((len(sampled) - len(found)) * weight)
            for status, seconds, _, finished, worker in found:
                if status == b"ok":
                    bins.add(worker, seconds, finished, weight, True)
        # A failed line, or one of attempts that failed before (the first line may have
        # begun in an earlier block).
        if _ERROR in chunk or _ERROR in whole[0]:
            for index, line in enumerate(whole, start + 1):
                if _ERROR not in line:
                    continue
                if _PAUSE in line and wait_lines < WAIT_LINES:
                    wait_lines += 1
                    waits += _wait_spans(line)
                if _FAILED not in line:
                    continue
                # The line's own status is its first (the id before it is a JSON string).
                at = line.find(b'"status": ')
                if not line.startswith(_FAILED, at):
                    continue  # a result that quotes such text
                failed_count += 1
                match = _TIMING.match(line, at) if end > 0 else None
                if match is not None:
                    bins.add(match[5], match[2], match[4], 1, False)
                if len(failed) < FAILED_ROWS and (row := _failed_row(line, index)) is not None:
                    failed.append(row)
    waits.sort()
    timeline = Timeline(
        width, bins.busy, bins.failures, bins.items, bins.finished, waits, step, untimed
    )
    return Reading(found_durations, timeline if bins.busy else None, failed, failed_count)
