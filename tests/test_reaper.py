"""The reaper: after runner dies by any signal, kill -9 included, its commands end too.

Each test tags the processes it starts with an environment variable of its own, so that
every process the run started (commands, worker processes, reapers) can be found in
/proc, and killed at the end whatever happened.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.execute import reaper
from tests.conftest import process_running, start_runner
from tests.judge_support import copy_fixture

TAG = "RUNNER_TEST_REAPER_TAG"
DEADLINE = 10.0  # seconds for what the reaper ends: its bound is the grace (SIGTERM here)

# A command: writes its pid into the folder argv[1] (atomically), then sleeps until the
# file argv[2] exists (at most a minute). Any other arguments are ignored.
COMMAND = """
import os, sys, time
marks, go = sys.argv[1], sys.argv[2]
mark = os.path.join(marks, str(os.getpid()))
open(mark + '.tmp', 'w').close()
os.replace(mark + '.tmp', mark)
for _ in range(600):
    if os.path.exists(go):
        break
    time.sleep(0.1)
"""

# Runs a command (argv[1:]) with run_command in a thread and forks a child that sleeps:
# prints the child's pid, then waits to be killed.
FORKS_WHILE_A_COMMAND_RUNS = """
import os, sys, threading, time
from runner.execute.commands import run_command
threading.Thread(target=run_command, args=(sys.argv[1:],), daemon=True).start()
time.sleep(0.5)
child = os.fork()
if child == 0:
    time.sleep(60)
    os._exit(0)
print(child, flush=True)
time.sleep(60)
"""


def _tagged(tag: str) -> dict[int, str]:
    """The running processes (zombies excluded) carrying ``tag``: pid -> command line."""
    found = {}
    needle = f"{TAG}={tag}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            found[int(entry.name)] = cmdline
    return found


@pytest.fixture
def tag() -> Iterator[str]:
    """This test's tag; whatever carries it is killed after the test."""
    value = uuid.uuid4().hex
    yield value
    for pid in _tagged(value):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_for(
    what: str, check: Callable[[], object], proc: subprocess.Popen[str], seconds: float = 60
) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if proc.poll() is not None:
            raise AssertionError(f"runner ended before {what}: {proc.communicate()[0]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {seconds} s")
        time.sleep(0.05)


def _marks(folder: Path) -> list[int]:
    return [int(p.name) for p in folder.iterdir() if p.name.isdigit()]


def _kill_9_and_check(proc: subprocess.Popen[str], marks: Path, count: int, tag: str) -> None:
    """Once ``count`` commands run, SIGKILL runner; every command and every process it
    started (worker processes, reapers) ends within the deadline."""
    _wait_for(f"{count} running commands", lambda: len(_marks(marks)) >= count, proc)
    commands = _marks(marks)
    assert all(process_running(pid, grace=0) for pid in commands)
    started = _tagged(tag)
    assert set(commands) <= set(started)
    proc.kill()
    proc.communicate(timeout=30)
    assert [pid for pid in commands if process_running(pid, grace=DEADLINE)] == []
    left = {pid: cmd for pid, cmd in _tagged(tag).items() if process_running(pid, DEADLINE)}
    assert left == {}


@pytest.mark.slow
@pytest.mark.parametrize(
    "executor", ["executor=thread", "executor=process", "executor=dask"], ids=str
)
def test_kill_9_ends_every_command_of_the_run(tmp_path: Path, tag: str, executor: str) -> None:
    """kill -9 of runner, its commands running in its threads, in the process executor's
    workers or in Dask's LocalCluster workers: every command ends within seconds, and so
    does every process the run started."""
    marks = tmp_path / "marks"
    marks.mkdir()
    command = f'task.command=[{sys.executable},-S,-c,"{COMMAND}",{marks},{tmp_path / "go"}]'
    proc = start_runner(
        "task=shell",
        command,
        executor,
        "source.count=4",
        "parallel=2",
        "progress=off",
        cwd=tmp_path,
        env={TAG: tag},
        run_dir=tmp_path / "run",
    )
    _kill_9_and_check(proc, marks, 2, tag)


@pytest.mark.slow
def test_kill_9_of_a_repair_ends_its_judges(tmp_path: Path, tag: str) -> None:
    """kill -9 of a judge_rerun while its judges run: the judges end within seconds."""
    experiment = copy_fixture(tmp_path / "experiment")
    for removed in list(experiment.glob("T*/*/run_01/judge/judge_02"))[:2]:
        shutil.rmtree(removed)
    marks = tmp_path / "marks"
    marks.mkdir()
    judge = f'[{sys.executable},-S,-c,"{COMMAND}",{marks},{tmp_path / "go"},"{{slot_dir}}"]'
    proc = start_runner(
        "task=judge_rerun",
        f"source.experiment={experiment}",
        f"task.command={judge}",
        "parallel=2",
        "progress=off",
        cwd=tmp_path,
        env={TAG: tag},
        run_dir=tmp_path / "run",
    )
    _kill_9_and_check(proc, marks, 2, tag)


def test_a_run_that_ends_leaves_no_reaper_behind(tmp_path: Path, tag: str) -> None:
    """The reaper starts with the first command and exits with runner."""
    marks = tmp_path / "marks"
    marks.mkdir()
    go = tmp_path / "go"
    command = f'task.command=[{sys.executable},-S,-c,"{COMMAND}",{marks},{go}]'
    proc = start_runner(
        "task=shell",
        command,
        "source.count=2",
        "parallel=2",
        "progress=off",
        cwd=tmp_path,
        env={TAG: tag},
        run_dir=tmp_path / "run",
    )
    _wait_for("running commands", lambda: len(_marks(marks)) >= 2, proc)
    reapers = [pid for pid, cmd in _tagged(tag).items() if reaper.__file__ in cmd]
    assert len(reapers) == 1
    go.touch()
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert not process_running(reapers[0], grace=DEADLINE)
    assert _tagged(tag) == {}


def _python(script: str, *args: object, tag: str) -> subprocess.Popen[str]:
    env = {**os.environ, TAG: tag}
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_child_forked_without_exec_does_not_hold_the_reaper_back(
    tmp_path: Path, tag: str
) -> None:
    """A process forks (as the process executor's fork start method does) while a command
    runs, then is killed: the command ends though the forked child lives on."""
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = _python(
        FORKS_WHILE_A_COMMAND_RUNS, sys.executable, "-S", "-c", COMMAND, marks, "go", tag=tag
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    _wait_for("a running command", lambda: _marks(marks), proc)
    [command] = _marks(marks)
    proc.kill()
    proc.wait()
    assert not process_running(command, grace=DEADLINE)
    assert process_running(child, grace=0)


def _reaper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-I", "-S", reaper.__file__], stdin=subprocess.PIPE, start_new_session=True
    )


def _group_ignoring_sigterm(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A process leading its own group, ignoring SIGTERM, and the pid of a grandchild in
    that group, which ignores it too."""
    pid_file = tmp_path / "grandchild"
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "if sys.argv[1] == 'lead':\n"
        "    subprocess.Popen([sys.executable, '-c', sys.argv[2], 'follow', sys.argv[2], "
        "sys.argv[3]])\n"
        "else:\n"
        "    open(sys.argv[3], 'w').write(str(__import__('os').getpid()))\n"
        "time.sleep(60)\n"
    )
    leader = subprocess.Popen(
        [sys.executable, "-c", code, "lead", code, str(pid_file)], start_new_session=True
    )
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the grandchild did not start"
        time.sleep(0.02)
    return leader, int(pid_file.read_text())


def test_a_group_ignoring_sigterm_gets_sigkill_after_its_grace(tmp_path: Path) -> None:
    """At end of file the reaper sends SIGTERM, then SIGKILL after the group's grace: the
    leader and the grandchild that both ignore SIGTERM end."""
    leader, grandchild = _group_ignoring_sigterm(tmp_path)
    try:
        proc = _reaper()
        assert proc.stdin is not None
        started = reaper._start_time(leader.pid)
        proc.stdin.write(b"+%d %s 0.5\n" % (leader.pid, started.encode()))
        proc.stdin.close()
        assert proc.wait(timeout=DEADLINE + 30) == 0
        assert leader.wait(timeout=DEADLINE) == -signal.SIGKILL
        assert not process_running(grandchild, grace=DEADLINE)
    finally:
        leader.kill()
        leader.wait()
        if process_running(grandchild, grace=0):
            os.kill(grandchild, signal.SIGKILL)


@pytest.mark.parametrize("line", ["-{pid}", "+{pid} 1 0.5"], ids=["taken-off", "other-start"])
def test_a_group_taken_off_or_of_another_process_is_left_alone(tmp_path: Path, line: str) -> None:
    """A group taken off the list (its command ended), or whose leader has another start
    time than the one listed (its pid taken again), is not killed."""
    leader = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        proc = _reaper()
        assert proc.stdin is not None
        started = reaper._start_time(leader.pid)
        assert started not in ("-", "1")
        proc.stdin.write(b"+%d %s 0.5\n" % (leader.pid, started.encode()))
        proc.stdin.write(line.format(pid=leader.pid).encode() + b"\n")
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        assert leader.poll() is None
    finally:
        leader.kill()
        leader.wait()


def test_a_command_started_but_not_yet_listed_is_found_by_its_mark() -> None:
    """A process that dies between starting a command and listing it (Popen waits about a
    millisecond for the child's exec): the reaper finds the command by the mark in its
    environment and ends it; a process with another mark is left alone."""
    token = "0123456789abcdef"
    ours = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={**os.environ, reaper.MARK: token},
        start_new_session=True,
    )
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={**os.environ, reaper.MARK: "another"},
        start_new_session=True,
    )
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", reaper.__file__, token],
            stdin=subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdin is not None
        proc.stdin.close()  # nothing listed: the process died before it could list it
        assert proc.wait(timeout=DEADLINE + 30) == 0
        assert ours.wait(timeout=DEADLINE) == -signal.SIGTERM
        assert other.poll() is None
    finally:
        for leftover in (ours, other):
            leftover.kill()
            leftover.wait()


def test_every_command_carries_its_processs_mark(tmp_path: Path) -> None:
    """run_command adds this process's mark to the command's environment (and to an
    environment the caller gives)."""
    from runner.toolkit import run_command

    printed = run_command([sys.executable, "-c", f"import os; print(os.environ['{reaper.MARK}'])"])
    given = run_command(
        [sys.executable, "-c", f"import os; print(os.environ['{reaper.MARK}'])"],
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert printed.stdout.strip() == given.stdout.strip() == reaper.mark()[reaper.MARK] != ""
