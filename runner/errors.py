"""Errors a user can cause, and the exit codes they end a run with."""

from __future__ import annotations

import errno
from collections.abc import Iterable

from runner.api import EXIT_IO as EXIT_IO  # re-exported: every exit code is here

#: Exit codes: the table below is the one list, shown by ``--help`` and in docs/running.md
#: (tests/test_faults_exit_codes.py compares that page's table with it).
EXIT_OK = 0
EXIT_FAILED_ITEMS = 1
EXIT_USAGE = 2
# EXIT_IO, 74 (EX_IOERR): defined in runner.api, with the StopRun a plugin raises for it.
EXIT_BROKEN_PIPE = 141  # SIGPIPE: stdout's reader went away (`| head`); nothing else wrong
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C); SIGTERM gives 143 and SIGHUP 129: 128 + signal
INTERRUPT_CODES = (130, 143, 129)

#: Every exit code runner ends with, and what it means, in one line each.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "every item succeeded, or a dry run"),
    (
        EXIT_FAILED_ITEMS,
        "some items failed or were left unrun (a budget ran out), or the post-processor failed",
    ),
    (EXIT_USAGE, "usage error: one line names the bad value and the valid choices"),
    (EXIT_IO, "a file of the run could not be written (disk full): one line names it"),
    (EXIT_INTERRUPTED, "interrupted by SIGINT (Ctrl-C)"),
    (143, "interrupted by SIGTERM"),
    (129, "interrupted by SIGHUP"),
    (EXIT_BROKEN_PIPE, "the reader of stdout went away (`head` at the end of a pipe)"),
)


def exit_codes_text() -> str:
    """The exit codes as ``--help`` shows them: a line per code."""
    return "Exit codes:\n" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES)


#: What a file system answers when it refuses every write, whatever the file: full
#: (ENOSPC), over quota (EDQUOT), read-only (EROFS), or over the size a process may
#: write (EFBIG, ``ulimit -f``).
REFUSED_WRITES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def os_error_text(error: OSError) -> str:
    """An OSError's text with its errno's name: ``No space left on device (ENOSPC)``."""
    name = errno.errorcode.get(error.errno or 0)
    text = error.strerror or str(error)
    return f"{text} ({name})" if name else text


def sweep_exit_code(codes: list[int]) -> int:
    """Several jobs' exit code: an interruption's (128 + signal) if any, else the largest."""
    stopped = [code for code in codes if code in INTERRUPT_CODES]
    return stopped[0] if stopped else max(codes, default=EXIT_OK)


def unknown_key(key: str, valid: Iterable[object], where: str = "") -> str:
    """The one line for a config key that does not exist, however it was found: by Hydra
    (``key=value``), by the settings (``+key=value``) or in a plugin's YAML file. ``valid``
    are the keys of the node it was meant for, from the same schemas that type the config
    (Hydra's own node and a defaults list are not the user's to set)."""
    names = [str(k) for k in valid if str(k) not in ("hydra", "defaults")]
    hint = f" Valid keys here: {', '.join(names)}." if names else ""
    return f"Unknown key {key!r}{where}.{hint}"


class UsageError(Exception):
    """A bad config, override, plugin or input: reported as one line, exit code 2."""

    exit_code = EXIT_USAGE


class WriteError(UsageError):
    """A file of the run could not be written: one line naming it, exit code 74."""

    exit_code = EXIT_IO

    def __init__(self, path: object, error: OSError) -> None:
        #: The file and why, without what to do: ``cannot write 'x': ... (ENOSPC)``.
        self.reason = f"cannot write {str(path)!r}: {os_error_text(error)}"
        super().__init__(
            f"{self.reason}; what was written before is whole (results.jsonl line by line; "
            "resume=PATH runs the rest)"
        )
        self.path = path


class PluginError(UsageError):
    """A plugin that cannot be used; carries which one and why."""

    def __init__(
        self,
        message: str,
        *,
        group: str,
        name: str,
        value: str = "",
        distribution: str = "",
    ) -> None:
        super().__init__(message)
        self.group = group
        self.name = name
        self.value = value
        self.distribution = distribution
