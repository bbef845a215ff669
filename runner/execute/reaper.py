"""The reaper: a small process that ends this process's commands once this process is gone.

Commands run in sessions of their own (a timeout kills the whole group), so nothing
else ends them when the process that started them dies: after ``kill -9`` a judge
would go on, and go on costing. The first command a process starts also starts a
reaper (``python -I -S`` running this file, in a session of its own, so that neither
the terminal's Ctrl-C nor a kill of runner's process group reaches it). This process
writes each command's process group to the reaper's stdin when the command starts and
again when it has ended; a process's every open descriptor closes when it dies, by
whatever signal, so the reaper reads end-of-file then and sends SIGTERM to each group
still listed, SIGKILL to what is left of one after its ``grace`` (the command's
``timeout_grace``), and exits. A normal exit closes the pipe too: with no group listed,
the reaper exits at once.

One reaper per process, not per run: what it guards against is this process's death,
which ends every run in it. A child made by ``fork`` without ``exec`` (the process
executor's ``fork`` start method) closes its copy of the pipe and starts its own
reaper if it runs commands.

Only a group listed and not yet taken off is killed. A command leads its group, so the
group's id is the command's pid, which Linux does not give to a new process while any
process of that group is left. The window is between the moment this process reaps the
command and the moment it takes the group off (a few microseconds): should it die just
then and the pid be taken by a new process that makes itself a group leader, that one
would be killed; so the start time of the command is listed with it, and a group whose
leader is there with another start time is left alone. A command is listed right after
it is started; should this process die in between (while ``Popen`` waits for the
child's ``exec``, about a millisecond), that one is still found: every command carries
this process's mark in its environment (:func:`mark`), and at end-of-file the reaper also
ends every group with a process that carries it (SIGTERM, then SIGKILL after
``DEFAULT_GRACE``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time

_TICK = 0.05  # seconds between two looks at whether the signalled groups are empty
#: The variable that marks, in a command's environment, the process that started it.
MARK = "RUNNER_REAPER_MARK"
#: Seconds between SIGTERM and SIGKILL for a marked group that was never listed.
DEFAULT_GRACE = 5.0


def _start_time(pid: int) -> str:
    """``pid``'s start time (clock ticks since boot), or ``-`` when /proc cannot say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "-"


# This process's side ------------------------------------------------------------------


class _Client:
    """The write end of the reaper's pipe and the groups listed there."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fd: int | None = None
        self.pid: int | None = None  # the reaper's, for tests and diagnostics
        self.token = ""  # the mark of this process's commands, which its reaper knows
        self.listed: dict[int, bytes] = {}  # group -> the line that listed it
        # Every reaper this process (or the parent it was forked from) started: forgetting
        # one would have Popen warn that it still runs.
        self.reapers: list[subprocess.Popen[bytes]] = []

    def _spawn(self) -> None:
        read, write = os.pipe()
        token = self.token or secrets.token_hex(8)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), token],
                stdin=read,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",  # holds no folder of the run (a mount to unmount, a folder to delete)
                start_new_session=True,
            )
        except BaseException:
            os.close(write)
            raise
        finally:
            os.close(read)
        self.reapers.append(proc)
        self.fd, self.pid, self.token = write, proc.pid, token

    def mark(self) -> str:
        """The mark for a command about to start, its reaper started first if need be."""
        with self.lock:
            if self.fd is None:
                self._send(b"")
            return self.token

    def _send(self, line: bytes) -> None:
        """Write ``line``; a reaper that is gone (killed) is replaced, told every group."""
        if self.fd is not None:
            try:
                _write_all(self.fd, line)
                return
            except OSError:
                os.close(self.fd)
                self.fd = None
        self._spawn()
        assert self.fd is not None
        _write_all(self.fd, b"".join(self.listed.values()))

    def register(self, pgid: int, grace: float) -> None:
        line = b"+%d %s %r\n" % (pgid, _start_time(pgid).encode(), float(grace))
        with self.lock:
            self.listed[pgid] = line
            try:
                self._send(line)
            except BaseException:
                del self.listed[pgid]
                raise

    def unregister(self, pgid: int) -> None:
        with self.lock:
            if self.listed.pop(pgid, None) is not None and self.fd is not None:
                # A reaper gone by now has nothing of this group to kill.
                with contextlib.suppress(OSError):
                    os.write(self.fd, b"-%d\n" % pgid)

    def forget(self) -> None:
        """In a child made by fork: the pipe and the groups are the parent's."""
        self.lock = threading.Lock()  # another thread may have held the parent's
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = self.pid = None
        self.token = ""
        self.listed = {}

    def close_at_exit(self) -> None:
        """Close the pipe when no group is listed, and wait for the reapers to exit."""
        # Exit would close the pipe anyway; closing first lets the reaper be waited for,
        # so that a long-lived parent (a test session) keeps no zombie.
        with self.lock:
            if self.fd is not None and not self.listed:
                # An end, not a death: no marked command is looked for (a grandchild
                # that left its command's group on purpose is left as it was).
                with contextlib.suppress(OSError):
                    _write_all(self.fd, b".\n")
                os.close(self.fd)
                self.fd = None
                for proc in self.reapers:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(1.0)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# The one state this module keeps, process-wide by nature: what the reaper guards
# against is this process's death, which ends every run in it, so the pipe and the
# groups listed there belong to the process, not to a run (a run-owned reaper would
# miss commands a plugin starts outside a run, and two runs in one process would start
# two). A child made by fork gets a fresh one (the hook below); exit closes it.
_THIS_PROCESS = _Client()


def register(pgid: int, grace: float) -> None:
    """List the process group ``pgid`` (a command that just started; ``grace``: seconds
    between SIGTERM and SIGKILL should this process die while it runs)."""
    _THIS_PROCESS.register(pgid, grace)


def unregister(pgid: int) -> None:
    """Take ``pgid`` off the list: its command has ended."""
    _THIS_PROCESS.unregister(pgid)


def close() -> None:
    """This process ends normally, its commands over: the reaper exits without killing.

    Python calls it at exit; a process that leaves by ``os._exit`` (a multiprocessing
    worker) calls it itself.
    """
    _THIS_PROCESS.close_at_exit()


def mark() -> dict[str, str]:
    """What to add to a command's environment before it starts, so that this process's
    reaper finds it even if this process dies before listing it."""
    return {MARK: _THIS_PROCESS.mark()}


def reaper_pid() -> int | None:
    """The pid of this process's reaper, if one was started."""
    return _THIS_PROCESS.pid


os.register_at_fork(after_in_child=_THIS_PROCESS.forget)
atexit.register(_THIS_PROCESS.close_at_exit)


# The reaper's side ---------------------------------------------------------------------


def _ours(pgid: int, started: str) -> bool:
    """Whether ``pgid`` is still the group listed: its leader gone, or the same process."""
    now = _start_time(pgid)
    return started == "-" or now == "-" or now == started


def _running(pgids: set[int]) -> set[int]:
    """The groups among ``pgids`` with a process still running (not a zombie: the init
    of a container may reap orphans late)."""
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc: a zombie counts as running
        return {pgid for pgid in pgids if _exists(pgid)}
    running: set[int] = set()
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    state, _, pgrp = stat.read().rsplit(b")", 1)[1].split()[:3]
            except (OSError, ValueError):
                continue  # gone meanwhile
            if int(pgrp) in pgids and state not in (b"Z", b"X"):
                running.add(int(pgrp))
    return running


def _exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _kill(groups: dict[int, tuple[str, float]]) -> None:
    """SIGTERM each group; SIGKILL what is left of one after its grace."""
    deadlines: dict[int, float] = {}
    for pgid, (started, grace) in groups.items():
        if _ours(pgid, started):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)
                deadlines[pgid] = time.monotonic() + grace
    while deadlines:
        time.sleep(_TICK)
        now = time.monotonic()
        running = _running(set(deadlines))
        for pgid, deadline in list(deadlines.items()):
            if pgid not in running:
                del deadlines[pgid]
            elif now >= deadline:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
                del deadlines[pgid]


def _marked(token: str) -> dict[int, tuple[str, float]]:
    """The groups of the processes whose environment carries ``token`` (commands started
    but not yet listed when their process died), as ``_kill`` takes them."""
    needle = f"{MARK}={token}".encode()
    groups: dict[int, tuple[str, float]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return groups
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if needle not in environ.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat", "rb") as stat:
                pgrp = int(stat.read().rsplit(b")", 1)[1].split()[2])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
        groups.setdefault(pgrp, ("-", DEFAULT_GRACE))
    return groups


def main() -> None:
    """The reaper: read the list from stdin until end-of-file, then kill what is on it."""
    # Signals meant for runner are not for the reaper, which acts on end-of-file alone.
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_IGN)
    groups: dict[int, tuple[str, float]] = {}
    pending, ended = b"", False
    while data := os.read(0, 65536):
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            fields = line[1:].split()
            if line[:1] == b"+" and len(fields) == 3:
                groups[int(fields[0])] = (fields[1].decode(), float(fields[2]))
            elif line[:1] == b"-" and fields:
                groups.pop(int(fields[0]), None)
            elif line == b".":
                ended = True
    token = sys.argv[1] if len(sys.argv) > 1 and not ended else ""
    _kill((_marked(token) if token else {}) | groups)


if __name__ == "__main__":
    main()
