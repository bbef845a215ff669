"""Helpers for plugin authors: public and stable, like :mod:`runner.api`.

:mod:`runner.api` holds the contracts (what a plugin is) and imports nothing else of
runner's; this module holds the tools a plugin may use to do its work. A plugin imports
these two modules and nothing else of runner's: the modules these helpers live in are
runner's own and may move or change.

Running commands (argv only, never a shell)
    :func:`run_command` runs one in its own process group and session, with a timeout
    that reaches every grandchild, and returns a :class:`CommandResult`; it raises
    :class:`CommandsStopped` once the run stops. A :class:`CommandGroup` is the set of a
    run's commands that stop together; :func:`current_group` is the calling context's
    and :func:`join_group` makes a long-lived worker thread's later commands join one.
    :func:`attempt_deadline` is when the calling item's attempt must end (the run's
    ``timeout``), for a task whose waits are not commands (a socket).
    Should the process die, its reaper ends its commands; a worker process that leaves
    by ``os._exit`` after a normal end calls :func:`close_reaper` first.
Items and templates
    :func:`template_fields` checks an argv template once; :func:`fill_for_item` fills it
    from an item (failing the item, not the run, when a placeholder has no value);
    :func:`fill_template` fills it from any mapping.
Files
    :func:`atomic_write_text`, :func:`atomic_write_bytes` and :func:`atomic_write_json`
    replace a file whole or not at all; :func:`leftover_temp_files` lists what a killed
    writer left in a folder.
Items' output
    :class:`StreamLog` appends an attempt's stdout and stderr to the run's
    :data:`STREAMS_FILE`; :func:`read_streams` reads them back.
Failures
    :func:`detect_rate_limit` tells a rate-limited or overloaded service's reply from
    other failures; :func:`retry_after_seconds` reads a ``Retry-After`` header (seconds
    or an HTTP-date); :func:`error_info` is a failure as the journal stores it and
    :class:`TimedOut` the failure of an attempt past the run's ``timeout`` (for
    executors that run items in other processes).
Text
    :func:`printable` makes an id or label safe to print on one line; :func:`shown_path`
    shows a path as the console does; :func:`parallel_text` shows ``parallel`` as a heading
    does (``auto (1..64, settled at 16)``); :func:`markdown_table` writes a Markdown table
    (for a report section); :data:`SLOWEST` is how many items ``summary.json`` lists as
    slowest.
"""

from __future__ import annotations

from runner.execute.command_group import attempt_deadline
from runner.execute.commands import (
    CommandGroup,
    CommandResult,
    CommandsStopped,
    current_group,
    join_group,
    run_command,
)
from runner.execute.ratelimits import detect_rate_limit, retry_after_seconds
from runner.execute.reaper import close as close_reaper
from runner.execute.safecall import TimedOut, error_info
from runner.execute.templates import fill_for_item, fill_template, template_fields
from runner.record.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    leftover_temp_files,
)
from runner.record.streams import STREAMS_FILE, StreamLog, read_streams
from runner.record.tally import SLOWEST
from runner.show.labels import parallel_text, printable, shown_path
from runner.show.markdown import markdown_table

__all__ = [
    "SLOWEST",
    "STREAMS_FILE",
    "CommandGroup",
    "CommandResult",
    "CommandsStopped",
    "StreamLog",
    "TimedOut",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "attempt_deadline",
    "close_reaper",
    "current_group",
    "detect_rate_limit",
    "error_info",
    "fill_for_item",
    "fill_template",
    "join_group",
    "leftover_temp_files",
    "markdown_table",
    "parallel_text",
    "printable",
    "read_streams",
    "retry_after_seconds",
    "run_command",
    "shown_path",
    "template_fields",
]
