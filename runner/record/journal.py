"""results.jsonl: one line per finished item, written by one writer, read back lazily."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from runner.api import Outcome
from runner.errors import WriteError
from runner.record.files import atomic_write_text, utf8_encodable


def _fallback(value: Any) -> Any:
    # Results should be JSON-serialisable; anything else is kept as its text rather
    # than losing the outcome of an item that already ran.
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return repr(value)


_encode = json.JSONEncoder(ensure_ascii=False, default=_fallback).encode
_string = json.encoder.encode_basestring  # what _encode does with a str, without the dispatch
#: Results whose JSON text a type's own conversion gives (exact types: not bool, not a
#: str subclass): with None, the common results of a success line, built without the
#: encoder.
_SCALARS: dict[type, Any] = {str: _string, int: int.__repr__}


def _utf8(lines: list[str]) -> bytes:
    """The lines as UTF-8; a line holding text UTF-8 cannot (a lone surrogate, e.g. from a
    file name that is not UTF-8) is written with JSON escapes, which read back the same."""
    try:
        return "".join(lines).encode("utf-8")
    except UnicodeEncodeError:
        return "".join(
            line
            if line.isascii() or utf8_encodable(line)
            else json.dumps(json.loads(line), ensure_ascii=True) + "\n"
            for line in lines
        ).encode("utf-8")


def _result_text(result: Any) -> str:
    convert = _SCALARS.get(type(result))
    return _encode(result) if convert is None else convert(result)


def _number(value: float, digits: int) -> str:
    """A float's JSON text to ``digits`` decimals (``NaN`` or ``Infinity`` as the encoder
    writes them, from an executor's outcome made without a clock)."""
    return f"{value:.{digits}f}" if math.isfinite(value) else _encode(value)


def _head(outcome: Outcome, origin: float) -> str:
    """A line's fields before its result or error: the same text for every line that
    :func:`success_lines` gives a fast success."""
    if outcome.started:
        times = f'"started": {_number(outcome.started - origin, 3)}, '
        times += f'"finished": {_number(outcome.finished - origin, 3)}, '
    else:  # made without times (by an executor, not the safe call): none to record
        times = '"started": null, "finished": null, '
    return (
        f'{{"id": {_string(outcome.id)}, "status": {_string(outcome.status)}, '
        f'"seconds": {_number(outcome.seconds, 6)}, {times}'
        f'"worker": {_string(outcome.worker)}, "attempts": {1 + len(outcome.retries)}, '
    )


def success_lines(outcomes: Iterable[Outcome], origin: float = 0.0) -> list[str]:
    """Successes' journal lines (retried ones excepted), the text :func:`_head` and
    ``_encode`` give for their records.

    The one place a fast success's line is built; in one comprehension, as a run's fast
    items reach the journal in thousands between two flushes. Times are written with a
    fixed number of decimals (``seconds`` to the microsecond; ``started`` and
    ``finished`` from ``origin``, the run's start, to the millisecond): ``:.6f`` costs
    half of ``repr(round(x, 6))``, and these three numbers are most of what a line costs
    beyond its id. A success's times come from the safe call's clock: finite.
    """
    string = _string
    return [
        f'{{"id": {string(outcome.id)}, "status": "ok", '
        f'"seconds": {outcome.seconds:.6f}, '
        f'"started": {outcome.started - origin:.3f}, '
        f'"finished": {outcome.finished - origin:.3f}, '
        f'"worker": {string(outcome.worker)}, "attempts": 1, '
        f'"result": {"null" if outcome.result is None else _result_text(outcome.result)}}}\n'
        for outcome in outcomes
    ]


def success_line(outcome: Outcome, origin: float = 0.0) -> str:
    """A success's journal line (see :func:`success_lines`)."""
    return success_lines((outcome,), origin)[0]


def _line(outcome: Outcome, origin: float = 0.0) -> str:
    """The journal line of any outcome: a result JSON cannot hold is kept as its text."""
    if outcome.status == "ok" and not outcome.retries and outcome.started:
        try:
            return success_line(outcome, origin)
        except (TypeError, ValueError):
            pass  # the record's own path below keeps such a result as its text
    head = _head(outcome, origin)
    if outcome.status == "ok":
        try:
            tail = f'"result": {_encode(outcome.result)}'
        except (TypeError, ValueError):  # a result JSON cannot hold (non-text keys, a cycle)
            tail = f'"result": {_encode(repr(outcome.result))}'
    else:
        tail = f'"error": {_encode(outcome.error)}'
    if outcome.retries:  # every earlier attempt, in order
        tail += f', "retries": {_encode(list(outcome.retries))}'
    return head + tail + "}\n"


#: Bytes read at a time from a journal's end, looking for its last whole line.
_TAIL_CHUNK = 65536


def _cut_torn_tail(fd: int) -> int:
    """Cut a journal open on ``fd`` back to its last whole line (a run killed mid-write
    left the rest), so that what is appended starts a line of its own; its new size."""
    size = os.fstat(fd).st_size
    end = size
    while end > 0:
        start = max(end - _TAIL_CHUNK, 0)
        chunk = os.pread(fd, end - start, start)
        if end == size and chunk.endswith(b"\n"):
            return size
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            break
        end = start
    if end != size:
        os.ftruncate(fd, end)
    return end


#: Lines kept in memory at most between two flushes: memory stays flat however fast
#: items finish, at one write per this many lines. At 512 a flush's text (about 75 KB)
#: stays under glibc's 128 KiB mmap threshold, so it is made where the last one was;
#: 2048 lines (300 KB, its outcomes held until then) added 0.5 to 1 MB to a 1M-item
#: run's peak RSS, for a write syscall per 2048 lines instead of per 512.
MAX_BUFFERED = 512


class Journal:
    """Appends outcomes to ``results.jsonl``; only the run loop's thread writes to it.

    Lines are kept in memory and the run loop flushes them (each slow item at once, fast
    ones a few times a second, and every ``MAX_BUFFERED`` lines), so a crash loses at
    most the last moment's lines. A flush
    that fails (disk full, folder gone) cuts the file back to its last whole line and
    raises :class:`WriteError`: the journal stays valid line by line.
    """

    def __init__(
        self, path: Path, earlier: Iterable[str] | None = None, origin: float | None = None
    ) -> None:
        self.path = path
        #: The run's start, a ``time.perf_counter()`` reading: lines record when their
        #: item started and finished as seconds from it (opened as the run starts: now).
        self.origin = time.perf_counter() if origin is None else origin
        if earlier is not None:
            # A resumed run's journal starts as the earlier run's successes, whole, in
            # one rename: in its own folder, the lines of items that run again (failed,
            # torn) go, so the journal holds one line per item, as the summary counts.
            try:
                atomic_write_text(path, "".join(earlier))  # lines read as text: UTF-8
            except OSError as exc:
                raise WriteError(path, exc) from exc
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as exc:
            raise WriteError(path, exc) from exc
        try:
            self._size = _cut_torn_tail(fd)
        except OSError as exc:
            os.close(fd)
            raise WriteError(path, exc) from exc
        self._fd = fd
        self._lines: list[str] = []
        self._waiting: list[Outcome] = []  # successes whose lines are built at the flush
        self._pending = [0, 0]  # outcomes in _lines: ok, not ok
        #: Outcomes of this run on disk, whole: ok, and not ok.
        self.saved = [0, 0]

    def write(self, outcome: Outcome) -> None:
        result = outcome.result
        if (
            outcome.status == "ok"
            and not outcome.retries
            and (result is None or type(result) in _SCALARS)
            and outcome.started  # made by the safe call, with times
        ):
            # A success whose result cannot change (None, a str, an int) waits for the
            # flush to get its line, with the others: one comprehension, no call per item.
            waiting = self._waiting
            waiting.append(outcome)
            if len(waiting) + len(self._lines) >= MAX_BUFFERED:
                self.flush()
            return
        self._settle()  # the journal keeps the outcomes' order
        self._lines.append(_line(outcome, self.origin))
        self._pending[outcome.status != "ok"] += 1
        if len(self._lines) >= MAX_BUFFERED:
            self.flush()

    def _settle(self) -> None:
        """The waiting successes' lines, after the lines before them."""
        waiting = self._waiting
        if not waiting:
            return
        try:
            lines = success_lines(waiting, self.origin)
        except (TypeError, ValueError):  # a number too long for text: one at a time
            lines = [_line(outcome, self.origin) for outcome in waiting]
        self._lines += lines
        self._pending[0] += len(waiting)
        waiting.clear()

    def flush(self) -> None:
        self._settle()
        if not self._lines or self._fd < 0:
            return
        data = memoryview(_utf8(self._lines))
        pending, self._pending = self._pending, [0, 0]
        self._lines.clear()
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError as exc:
            with contextlib.suppress(OSError):  # a partial line must not stay behind
                os.ftruncate(self._fd, self._size)
            raise WriteError(self.path, exc) from exc
        self._size = os.fstat(self._fd).st_size
        self.saved[0] += pending[0]
        self.saved[1] += pending[1]

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            self.flush()
        finally:
            os.close(self._fd)
            self._fd = -1


def read_outcomes(path: Path) -> Iterator[Outcome]:
    """Yield the outcomes recorded in a journal, skipping a torn last line.

    Read back, ``started`` and ``finished`` are seconds from the start of the run that
    wrote the line (0.0 where it recorded none, or was written before they were),
    ``worker`` is empty there.
    """
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # written by a run that was killed mid-line
            record = json.loads(line)
            yield Outcome(
                id=record["id"],
                status=record["status"],
                seconds=record.get("seconds", 0.0),
                result=record.get("result"),
                error=record.get("error"),
                label=record["id"],
                started=record.get("started") or 0.0,
                finished=record.get("finished") or 0.0,
                retries=tuple(record.get("retries", ())),
                worker=record.get("worker", ""),
            )


class JournalOutcomes:
    """A re-iterable view of a journal's outcomes, for post-processors."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[Outcome]:
        return read_outcomes(self.path)
