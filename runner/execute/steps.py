"""One run's steps: hand the items to the executor, record each outcome, summarise."""

from __future__ import annotations

import datetime as dt
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

from runner import api
from runner.api import Item, Outcome, RunContext
from runner.config.settings import Settings
from runner.errors import EXIT_FAILED_ITEMS, EXIT_OK, REFUSED_WRITES, UsageError, WriteError
from runner.execute import lifecycle, signals
from runner.execute.commands import CommandGroup
from runner.execute.concurrency import AdaptiveLimit
from runner.execute.policies import Gate
from runner.execute.safecall import SafeCall
from runner.record import resume
from runner.record.files import atomic_write_json
from runner.record.journal import Journal, JournalOutcomes
from runner.record.tally import Tally
from runner.show import ending
from runner.show.labels import parallel_text
from runner.show.logs import error_with_traceback

#: The plugin groups in the order they are set up (and closed in reverse).
GROUPS = tuple(api.GROUPS)


def _iso(stamp: float) -> str:
    return dt.datetime.fromtimestamp(stamp, tz=dt.timezone.utc).isoformat()


class Observer(Protocol):
    """What the run tells as each outcome is recorded (the terminal's progress bar).

    ``done`` and ``failed`` are its counts so far: the run reads them rather than keep a
    second count per item.
    """

    done: int
    failed: int

    def update(self, outcome: Outcome) -> None: ...

    def close(self) -> None: ...


class Run:
    """One run's steps, its state on the instance: start, consume, finish.

    ``run`` performs them in order; each step is a method so that a test can drive the
    run in-process, step by step (``start`` then ``consume`` then ``finish``).
    """

    def __init__(
        self,
        settings: Settings,
        output_dir: Path,
        context: RunContext,
        plugins: dict[str, Any],
        previous: Path | None,
        countdown: lifecycle.Ending | None = None,
        first: lifecycle.FirstItem | None = None,
    ) -> None:
        self.settings, self.output_dir, self.context = settings, output_dir, context
        self.countdown = countdown or lifecycle.Ending(settings.timeout_grace)
        self.source, self.task, self.executor, self.post = (plugins[g] for g in GROUPS)
        self.previous = previous
        self.total = lifecycle.length(self.source)
        # The source's items, its first one already read if a plugin asked for it.
        self.items: Iterator[Item] = (first or lifecycle.FirstItem(self.source)).items()
        self.done_before: dict[str, str] = {}
        if previous is not None:
            self.done_before = resume.succeeded_records(previous)
            self.items = resume.remaining(self.items, self.done_before)
            if self.total is not None:
                self.total = resume.count_remaining(self.source, self.done_before)
        self.commands = CommandGroup(grace=settings.timeout_grace)
        self.limit = AdaptiveLimit(*settings.auto) if settings.auto else None
        self.gate = Gate(settings.rate_limit, self.limit.signalled if self.limit else None)
        self.halt = settings.halt
        self.tally = Tally()
        self.clock_offset = time.time() - time.perf_counter()
        self.started = time.perf_counter()  # the run's own start, set again by start()
        self.first_start = float("inf")
        self.last_finish = 0.0
        self.last_flush = 0.0
        self.interrupted: KeyboardInterrupt | None = None
        self.halted: str | None = None
        self.stopped_by: UsageError | None = None  # a task's StopRun: the run ends with its line
        self.source_error: Exception | None = None
        self.write_error: WriteError | None = None
        self.outcomes: Iterator[Outcome] = iter(())
        self.signalled = threading.Event()  # a first signal, from run()'s start on

    def run(self, progress: Observer) -> int:
        """Every step in order; the exit code, or the run's failure raised."""
        # A signal from the start on stops the run as one during the loop does: it still
        # ends with its journal and summary.
        with signals.deferred(lambda signum: self.signalled.set()):
            self.start(progress)
            self.consume()
        return self.finish()

    def start(self, progress: Observer) -> None:
        """Open the journal and hand the items to the executor."""
        settings, previous = self.settings, self.previous
        if previous is not None:
            logger.info(
                f"Resuming {str(previous)!r}: {len(self.done_before)} item(s) succeeded there "
                "and are not run again"
            )
        total, auto = self.total, settings.auto
        # With auto, settings.parallel is only its ceiling: the line says auto's range.
        bounds = {"mode": "auto", "min": auto[0], "max": auto[1]} if auto else None
        logger.info(
            f"Running task {settings.name('task')!r} on source {settings.name('source')!r} "
            f"({'?' if total is None else total} items) with executor "
            f"{settings.name('executor')!r}, parallel={parallel_text(settings.parallel, bounds)}; "
            f"output: {self.output_dir}"
        )
        self.progress = progress
        self.started = time.perf_counter()
        self.journal = Journal(
            self.output_dir / resume.JOURNAL,
            None if previous is None else self.done_before.values(),
        )
        safe_call = SafeCall(
            self.task.run,
            settings.retry,
            self.gate,
            self.commands,
            settings.timeout,
            self.limit,
            halting=self.halt.active,
        )
        self.outcomes = self.executor.map(safe_call, self.items, settings.parallel)

    def stop(self, kill: bool) -> int:
        """Start nothing more; with ``kill`` also stop the running commands, and give
        the items still running what is left of ``timeout_grace`` to end."""
        # Without kill, running items finish (halt.mode=soon, a task's StopRun).
        drain = self.countdown.start() if kill else None
        lifecycle.shutdown(self.executor, wait=False, timeout=drain)
        self.gate.stop()
        if self.limit is not None:
            self.limit.stop()
        if not kill:
            return 0
        killed = self.commands.stop()
        killed += lifecycle.kill(self.executor)
        return killed

    def record(self, outcome: Outcome) -> None:
        """Journal one outcome, tell the observer, and halt or stop if it says so."""
        status = outcome.status
        if status == "skipped":
            return
        journal = self.journal
        journal.write(outcome)
        if outcome.started < self.first_start:
            self.first_start = outcome.started
        last_finish = self.last_finish
        if outcome.finished > last_finish:
            self.last_finish = last_finish = outcome.finished
        # A slow item's result is on disk at once (a resume after kill -9 must not pay
        # for it again); fast ones a few times a second, so that they cost no syscall each.
        if outcome.seconds > 0.005 or last_finish - self.last_flush > 0.25:
            journal.flush()
            self.last_flush = last_finish
        progress = self.progress
        progress.update(outcome)
        if self.limit is not None:
            self.limit.observe(outcome.seconds)
        tally = self.tally
        if outcome.seconds > tally.floor:
            tally.slow(outcome)
        if status == "ok":
            return
        tally.failure(outcome)
        code = (outcome.error or {}).get("exit_code")
        if code is not None and self.stopped_by is None:
            self.stopped_by = lifecycle.stopped(outcome.error or {}, code)
            self.halted = f"stopped by the task: {self.stopped_by}"
            self.stop(kill=False)  # running items finish and are recorded
        halt = self.halt
        if halt.active and self.halted is None and status == "failed":
            if halt.reached(progress.failed, progress.done, self.total):
                self.halted = f"{progress.failed} failure(s) reached halt.on_failures"
                killed = self.stop(kill=halt.mode == "now")
                logger.warning(
                    f"Halting ({halt.mode}): {self.halted}; no item starts any more"
                    + (f", {killed} running command(s) killed" if killed else "")
                )

    def consume(self) -> None:
        """Record every outcome the executor returns, until the end, a signal or a failure.

        A signal during the loop does not raise: it wakes a watcher thread, which stops
        the run (nothing new starts, commands are killed); the loop then records what the
        running items return within timeout_grace, and the interruption is kept for
        ``finish``.
        """
        signalled = self.signalled
        loop_done = threading.Event()

        def on_signal() -> None:
            signalled.wait()
            if not loop_done.is_set():
                killed = self.stop(kill=True)
                logger.warning(
                    f"Interrupted ({signal_name(signals.received())}): nothing new starts; "
                    f"killed {killed} running command(s)."
                )

        threading.Thread(target=on_signal, name="runner-signal", daemon=True).start()
        journal, record = self.journal, self.record
        with signals.on_second_signal(lambda: self.commands.stop(wait=0), journal.flush):
            try:
                journal.flush()  # a resumed run's earlier results, before anything can fail
                with signals.deferred(lambda signum: signalled.set()):
                    for outcome in self.outcomes:
                        record(outcome)
            except KeyboardInterrupt as exc:  # signals not installed (a library caller)
                self.interrupted = exc
                self.stop(kill=True)
            except WriteError as exc:  # the journal cannot be written: stop, keep what is whole
                self.write_error = exc
            except (
                lifecycle.SourceError
            ) as exc:  # the source failed part-way (malformed, lost file)
                cause = exc.__cause__
                self.source_error = cause if isinstance(cause, Exception) else exc
            finally:
                loop_done.set()
                signalled.set()  # lets the watcher end
                self._close_loop()

    def _close_loop(self) -> None:
        if self.interrupted is None and (self.write_error or self.source_error):
            self.stop(kill=True)
        lifecycle.close(self.outcomes)  # unblocks workers waiting to hand over outcomes
        try:
            with signals.deferred(lambda signum: None):  # a signal must not cut a flush
                self.journal.close()
        except WriteError as exc:
            self.write_error = self.write_error or exc
        self.progress.close()

    def finish(self) -> int:
        """Wait for running items, write summary.json, run the post-processor.

        Returns the exit code; raises the run's failure (an interruption, a write or
        source error, a task's StopRun) once everything that can be recorded is.
        """
        settings, progress = self.settings, self.progress
        if self.interrupted is None and signals.received() is not None:
            self.interrupted = signals.Interrupted(signals.received() or signal.SIGINT)
        # Running items end before the task is closed (the stack's order) and before the
        # post-processor reads what they did.
        lifecycle.shutdown(self.executor, wait=True, timeout=self.countdown.remaining())
        if self.write_error is not None:  # count what is on disk, whole, not what was buffered
            progress.done, progress.failed = sum(self.journal.saved), self.journal.saved[1]
        summary = self.summary()
        self.context.summary = summary
        written = ["results.jsonl", "summary.json", "runner.log"]
        try:
            atomic_write_json(self.output_dir / "summary.json", summary)
        except OSError as exc:
            self.write_error = self.write_error or WriteError(self.output_dir / "summary.json", exc)
            written.remove("summary.json")
        done, auto = progress.done, self.limit is not None
        logger.info(
            f"Done: {summary['succeeded']} succeeded, {summary['failed']} failed of {done} "
            f"in {summary['wall_seconds']:.2f}s ({summary['items_per_second']:.1f} items/s)."
            + (f" {summary['skipped']} item(s) did not run." if summary["skipped"] else "")
            + (f" parallel={parallel_text(settings.parallel, summary['concurrency'])}." * auto)
        )
        ending.log_ending(
            summary, self.output_dir, written, self.tally.first_failed, ending.run_overrides()
        )
        failure: BaseException | None = self.write_error or self.interrupted or self.stopped_by
        if self.source_error is not None and self.write_error is None:
            # What ran is journaled and summarised; the rest of the source cannot be read.
            failure = UsageError(
                f"source {settings.name('source')!r} failed after {done} item(s): "
                f"{self.source_error}"
            )
            failure.__cause__ = self.source_error
        code = EXIT_FAILED_ITEMS if progress.failed else EXIT_OK
        if failure is None:
            try:
                self.post(JournalOutcomes(self.journal.path), self.context)
            except api.StopRun as exc:
                failure = lifecycle.stopped({"message": str(exc)}, exc.exit_code)
            except Exception as exc:
                if isinstance(exc, OSError) and exc.errno in REFUSED_WRITES and exc.filename:
                    failure = WriteError(exc.filename, exc)  # its file, refused by the disk
                else:
                    error_with_traceback(
                        f"postprocessor {settings.name('postprocessor')!r} failed: "
                        f"{type(exc).__name__}: {exc}",
                        exc,
                    )
                    code = EXIT_FAILED_ITEMS
            if self.context.unfinished:  # items left unrun: the work is not done
                code = EXIT_FAILED_ITEMS
        if failure is not None:
            raise failure
        return code

    def summary(self) -> dict[str, Any]:
        """What summary.json holds: the counts, the times, the stops and the tally."""
        settings, progress, interrupted = self.settings, self.progress, self.interrupted
        done, total = progress.done, self.total
        first_start, last_finish = self.first_start, self.last_finish
        wall = max(last_finish - first_start, 0.0) if done else 0.0
        signum = signals.exit_code_of(interrupted) - 128 if interrupted else None
        return {
            **{group: settings.name(group) for group in GROUPS},
            "parallel": settings.parallel,
            "total": done,
            "succeeded": done - progress.failed,
            "failed": progress.failed,
            "skipped": None if total is None else max(total - done, 0),
            "interrupted": interrupted is not None,
            "signal": signal_name(signum) if interrupted else None,
            "halted": self.halted,
            "rate_limit_pauses": self.gate.pauses,
            "resumed_from": None if self.previous is None else str(self.previous),
            "already_succeeded": len(self.done_before),
            "wall_seconds": round(wall, 6),
            "items_per_second": round(done / wall, 3) if wall > 0 else 0.0,
            # The run's own start and end: an interrupted run with no item finished has them too.
            "started_at": _iso(min(self.started, first_start) + self.clock_offset),
            "finished_at": _iso((last_finish if done else time.perf_counter()) + self.clock_offset),
            **self.tally.figures(),
            "concurrency": self.limit.summary()
            if self.limit is not None
            else {"mode": "fixed", "parallel": settings.parallel},
        }


def signal_name(signum: int | None) -> str:
    """SIGTERM for 15; SIGINT when unknown (a plain KeyboardInterrupt)."""
    try:
        return signal.Signals(signum or signal.SIGINT).name
    except ValueError:
        return f"signal {signum}"
