"""The plugin contracts: public and stable; with :mod:`runner.toolkit` (helpers), all that
a plugin imports of runner's.

A plugin is a class registered under an entry point in one of four groups:

========================  ==========================================================
``runner.sources``        iterable of :class:`Item` (may be a generator of unknown length)
``runner.tasks``          ``run(item)`` returns a JSON-serialisable result or raises
``runner.executors``      ``map(fn, items, parallel)`` yields :class:`Outcome` as they finish
``runner.postprocessors`` called once with every outcome and the :class:`RunContext`
========================  ==========================================================

Every plugin is constructed with its config parameters as keyword arguments; the
parameter names, defaults and annotations of ``__init__`` are its config schema unless
the plugin ships YAML. Any plugin may define ``setup(context)``, called once before the
first item, and sources, tasks and post-processors may define ``close()``, called once
after the last. The base classes below only document the contract: subclassing them is
optional, a class with the right methods is enough.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

# This module imports nothing else of runner's: runner's modules import it, so the
# contracts load alone and no import runs back (helpers for plugins: runner.toolkit).

__all__ = [
    "CONTRACTS",
    "EXIT_IO",
    "GROUPS",
    "BadInput",
    "ConcurrencyLimit",
    "Executor",
    "Item",
    "ItemCall",
    "Outcome",
    "PortableCall",
    "PostProcessor",
    "RetryableError",
    "RunContext",
    "Source",
    "StopRun",
    "Task",
    "TaskFailure",
]


class Item:
    """One unit of work: a unique string ``id`` and a ``data`` dict.

    ``item["key"]`` reads ``item.data["key"]``. ``label`` is what progress lines show
    (the id unless a source gives something more readable). A source that meets bad
    input (a malformed line, a duplicate id) yields an item with ``error`` set to what
    is wrong and where: that item fails with it, the task is not called, and the run
    goes on with the next item.
    """

    __slots__ = ("data", "error", "id", "label")

    def __init__(
        self,
        id: str,
        data: dict[str, Any] | None = None,
        label: str | None = None,
        error: str | None = None,
    ):
        self.id = id
        self.data = {} if data is None else data
        self.label = id if label is None else label
        self.error = error

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __repr__(self) -> str:
        return f"Item(id={self.id!r}, data={self.data!r})"

    def __eq__(self, other: object) -> bool:
        # Defining __eq__ leaves __hash__ None: an item holds mutable data, so it is
        # unhashable (``hash(item)`` raises TypeError).
        return isinstance(other, Item) and (self.id, self.data) == (other.id, other.data)


#: ``skipped``: the run stopped (halt, Ctrl-C) before the item's first attempt started;
#: such outcomes are counted, never journaled.
Status = Literal["ok", "failed", "skipped"]


@dataclasses.dataclass(slots=True)
class Outcome:
    """What became of one item; decided only by the run's safe call (:class:`ItemCall`).

    ``started`` and ``finished`` are ``time.perf_counter()`` readings; ``error`` is
    ``{"type", "message", "traceback"}`` for a failed item; ``worker`` names what ran it,
    as its executor knows it (``thread 2``, ``pid 4711``, a Dask worker's address), or is
    empty.
    """

    id: str
    status: Status
    seconds: float
    result: Any = None
    error: dict[str, Any] | None = None
    label: str = ""
    started: float = 0.0
    finished: float = 0.0
    #: The failed attempts before the last one (``retry.attempts``): each
    #: ``{"error": {...}, "seconds", "wait"}``; empty when the first attempt was the last.
    retries: tuple[dict[str, Any], ...] = ()
    worker: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class TaskFailure(Exception):
    """Raise from ``Task.run`` for an expected failure; only the message is journaled.

    Any other exception is journaled with its traceback.
    """


class RetryableError(TaskFailure):
    """Raise from ``Task.run`` for a failure worth another attempt (``retry.attempts``).

    ``wait`` is how long the service asked to wait (a Retry-After), if it said;
    ``rate_limited`` means the service is rate limited or overloaded, so no worker starts
    a new item until the wait is over.
    """

    def __init__(
        self, message: str, wait: float | None = None, *, rate_limited: bool = False
    ) -> None:
        super().__init__(message)
        self.wait = wait
        self.rate_limited = rate_limited


#: The exit code of a run a :class:`StopRun` ended (EX_IOERR); ``runner.errors`` lists
#: every exit code.
EXIT_IO = 74


class StopRun(TaskFailure):
    """Raise from ``Task.run`` (or a post-processor, a plugin's ``setup`` or a source's
    ``len``) when no further item can succeed, such as when the disk the task writes to
    is full.

    The item fails with it; then no item starts any more (running ones finish and are
    recorded), the post-processor does not run, and the run ends with ``exit_code``
    (74, EX_IOERR) and the message as its one error line: say what cannot be written,
    why, and what to do.
    """

    exit_code = EXIT_IO


class BadInput(TaskFailure):
    """The failure of an item a source marked bad (``Item.error``): the task never ran."""


@dataclasses.dataclass
class RunContext:
    """What a plugin may know about the run it is part of."""

    output_dir: Path
    config: Mapping[str, Any]
    parallel: int
    dry_run: bool = False
    source: Any = None
    task: Any = None
    #: The run folder this run continues (``resume=``, resolved: ``last`` is the folder it
    #: took), or None; ``output_dir`` itself when the run continues in place. Set before
    #: any plugin's ``setup``.
    resumed_from: Path | None = None
    #: The source's first item, read when first called (then handed to the executor as
    #: the first item all the same), or None when the source has none or could not give
    #: it. A task's ``setup`` checks with it what every item must have (a template's
    #: fields), so that a mistake stops the run before any item runs, on every executor.
    first_item: Callable[[], Item | None] = lambda: None
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Sections a post-processor adds to the run's report.html: (title, Markdown text).
    report_sections: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    #: Set by a post-processor when the run left items unrun that no failure accounts
    #: for (a budget ran out): what was left, in a few words. The run then exits 1
    #: (EXIT_FAILED_ITEMS), not 0, so that a script can tell its work is not done; the
    #: plugin says on the terminal itself what was left and what to do.
    unfinished: str | None = None


class Source(ABC):
    """Yields items; may define ``__len__`` when the count is cheap to know."""

    def setup(self, context: RunContext) -> None:  # noqa: B027  (optional hook)
        """Prepare before iteration (e.g. create inputs in ``context.output_dir``)."""

    @abstractmethod
    def __iter__(self) -> Iterator[Item]: ...


class Task(ABC):
    """Runs one item. Called from several threads at once: keep ``run`` re-entrant."""

    def setup(self, context: RunContext) -> None:  # noqa: B027
        """Prepare once before the first item."""

    @abstractmethod
    def run(self, item: Item) -> Any:
        """Return a JSON-serialisable result (or None); raise to fail the item."""

    def close(self) -> None:  # noqa: B027
        """Release resources after the last item."""


class ConcurrencyLimit(Protocol):
    """With ``parallel=auto``: how many items may run at once now (``current``, which
    moves; ``parallel`` is then its maximum)."""

    @property
    def current(self) -> int: ...

    def acquire(self) -> bool:
        """Take one of the ``current`` places (waiting for one); False: the run stops."""
        ...

    def release(self) -> None:
        """Give back the place :meth:`acquire` took."""
        ...


class PortableCall(Protocol):
    """The run's safe call, for an executor that runs items in other processes or
    machines: picklable when the task is; each process builds its own safe call from it."""

    #: The task's ``run``; a worker may wrap it (to stamp each attempt's start, say).
    run: Callable[[Item], Any]
    #: What its outcomes name as their worker (``Outcome.worker``): a worker process sets
    #: it (a Dask worker to its address); left empty, the process's pid names it.
    worker: str

    @property
    def timeout(self) -> float | None:
        """The run's ``timeout`` per attempt, if any."""
        ...

    @property
    def grace(self) -> float:
        """Seconds a command gets between SIGTERM and SIGKILL."""
        ...

    @property
    def attempts(self) -> int:
        """How many times an item may start (``retry.attempts``)."""
        ...

    def __call__(self, items: list[Item]) -> list[Outcome]:
        """Run ``items`` one after another; their outcomes, with ``started`` and
        ``finished`` as ``time.time()`` seconds (see :meth:`ItemCall.receive`)."""
        ...

    def overdue(self) -> list[Outcome]:
        """Timed-out outcomes of this process's attempts past their deadline, once each,
        as :meth:`ItemCall.overdue` gives them but in ``time.time()`` seconds: for a
        worker that runs items in threads it watches (what the attempt returns later
        is ``skipped``)."""
        ...


class ItemCall(Protocol):
    """What an executor's ``map`` is given: call it with an item for the item's outcome.

    It never raises (but ``KeyboardInterrupt``): it runs the task with the run's retries,
    rate limits and timeout and decides the outcome. The rest serves executors that run
    items in long-lived threads or in other processes.
    """

    def __call__(self, item: Item) -> Outcome: ...

    def bind(self) -> Callable[[Item], Outcome]:
        """The call for the calling thread only (same outcomes, a little less work per
        item), for a long-lived worker thread to call with every item it runs."""
        ...

    def admit(self) -> bool:
        """Call before handing an item to another process: waits for ``rate_limit``
        pauses and ``per_second``; False once the run stops."""
        ...

    def receive(self, outcome: Outcome) -> Outcome:
        """An outcome :attr:`portable` returned, back in the run's clock (and holding new
        starts while a rate-limit pause it reports lasts)."""
        ...

    def overdue(self, now: float | None = None) -> list[Outcome]:
        """With a run ``timeout``: outcomes of attempts in this process running past
        their deadline, once each; call it every :attr:`tick` seconds."""
        ...

    @property
    def tick(self) -> float | None:
        """Seconds between calls of :meth:`overdue`; None without a run ``timeout``."""
        ...

    @property
    def paced(self) -> bool:
        """True when ``rate_limit.per_second`` spaces the starts: an executor that hands
        items to other processes then sends one only when a worker can start it at once
        (none queued ahead), so that it starts when :meth:`admit` let it through."""
        ...

    @property
    def halting(self) -> bool:
        """True when a failure may halt the run (``halt.on_failures``): an executor whose
        worker runs its next item before the caller has the failed outcome then waits
        until it has it, so that nothing starts between the halting failure and the halt."""
        ...

    @property
    def limit(self) -> ConcurrencyLimit | None:
        """With ``parallel=auto``: a worker holds one of its places while it runs items;
        an executor that hands items to other processes keeps at most
        ``limit.current`` of them out. None otherwise."""
        ...

    @property
    def portable(self) -> PortableCall:
        """What runs items in another process or machine."""
        ...


class Executor(ABC):
    """Schedules ``fn`` (an :class:`ItemCall`) over items; never decides outcomes (``fn``
    never raises).

    ``map`` must pull items lazily and keep only a bounded number in flight, so a source
    of a million items costs memory in proportion to ``parallel``, not to the count.
    ``shutdown`` may be called from the thread consuming ``map`` (between outcomes) or
    after it stopped consuming: from then on no item starts (an item pulled but not
    started is dropped, not run); ``map`` still yields the outcomes of items that were
    running and then ends. With ``wait=False`` and a ``timeout`` (the run stopped: a
    signal, ``halt.mode=now``), ``map`` ends ``timeout`` seconds later, yielding each
    item still running then as failed (``Interrupted``): the run exits within its grace
    whatever a task does. With ``wait`` it returns once nothing runs any more (at most
    ``timeout`` seconds), so the run can close the task safely.
    """

    @abstractmethod
    def map(self, fn: ItemCall, items: Iterable[Item], parallel: int) -> Iterator[Outcome]: ...

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:  # noqa: B027
        """Start no more items; with ``wait``, wait (at most ``timeout`` s) for running ones."""

    def kill(self) -> int:
        """Stop the running items now (the run is interrupted, or halts with mode ``now``).

        Called after ``shutdown(wait=False)``. Commands started in the run's own process
        are stopped by the run; an executor that runs items in other processes stops
        their commands there (those items are ``skipped``: they never finished), and
        their Python code when the drain time ends. Returns how many running items it
        stopped, if it knows.
        """
        return 0


class PostProcessor(ABC):
    """Called once after every item has finished.

    ``outcomes`` is re-iterable and read back from the run's journal, so it costs no
    memory for large runs.
    """

    def setup(self, context: RunContext) -> None:  # noqa: B027
        """Prepare before the first item (rarely needed)."""

    @abstractmethod
    def __call__(self, outcomes: Iterable[Outcome], context: RunContext) -> None: ...


#: Config group name -> the contract its plugins fulfil (they must implement its
#: abstract methods), in the order a run sets them up. Each group's entry-point group
#: is ``runner.<group>s``: see GROUPS.
CONTRACTS: dict[str, type] = {
    "source": Source,
    "task": Task,
    "executor": Executor,
    "postprocessor": PostProcessor,
}
#: Config group name -> entry-point group name.
GROUPS: dict[str, str] = {group: f"runner.{group}s" for group in CONTRACTS}
