"""run_command: no shell, its own process group, a timeout that holds, per-run groups."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.execute import commands as process
from runner.execute.commands import (
    CommandGroup,
    CommandsStopped,
    command_deadline,
    run_command,
    use_group,
)
from runner.execute.templates import fill_template
from tests.conftest import process_running

# Writes its pid (atomically) to argv[1] after a line on stdout, then sleeps holding the
# pipes it inherited.
HOLDS_THE_PIPES = """
import os, sys, time
print('grandchild', flush=True)
open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()))
os.replace(sys.argv[1] + '.tmp', sys.argv[1])
time.sleep(60)
"""

# Starts HOLDS_THE_PIPES in its own session (argv[2]: 'escape') or in the command's group,
# waits until it runs, says so, then exits (argv[3]: 'exit') or sleeps.
STARTS_A_HOLDER = f"""
import os, subprocess, sys, time
pid_file, session, then = sys.argv[1:]
subprocess.Popen([sys.executable, '-c', {HOLDS_THE_PIPES!r}, pid_file],
                 start_new_session=session == 'escape')
while not os.path.exists(pid_file):
    time.sleep(0.01)
print('child', flush=True)
if then == 'sleep':
    time.sleep(60)
"""


def starts_a_holder(pid_file: Path, session: str, then: str) -> list[str]:
    """A command whose child holds its output pipes, in its own session or not."""
    return [sys.executable, "-c", STARTS_A_HOLDER, str(pid_file), session, then]


def python(script: str, *args: object) -> list[str]:
    return [sys.executable, "-c", script, *map(str, args)]


SLEEPS = python("import time; time.sleep(60)")


@pytest.fixture
def leftovers() -> Iterator[list[Path]]:
    """Pid files of processes that may outlive their command: killed by pid at the end."""
    pid_files: list[Path] = []
    yield pid_files
    for pid_file in pid_files:
        if pid_file.exists():
            pid = int(pid_file.read_text())
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            assert not process_running(pid)


def test_streams_are_captured_and_written(tmp_path: Path) -> None:
    """stdout and stderr come back and land in the files given."""
    result = run_command(
        [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"],
        stdout_path=tmp_path / "o",
        stderr_path=tmp_path / "e",
    )
    assert result.ok and result.returncode == 0
    assert (result.stdout, result.stderr) == ("out\n", "err\n")
    assert (tmp_path / "o").read_text() == "out\n" and (tmp_path / "e").read_text() == "err\n"


def test_stream_files_keep_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    """A judge's stdout.log holds what it printed, byte for byte; the text shows U+FFFD."""
    script = (
        "import sys; sys.stdout.buffer.write(b'bad\\xffname\\n'); sys.stderr.buffer.write(b'\\xfe')"
    )
    result = run_command(
        [sys.executable, "-c", script], stdout_path=tmp_path / "o", stderr_path=tmp_path / "e"
    )
    assert result.ok and result.stdout == "bad\ufffdname\n"
    assert (tmp_path / "o").read_bytes() == b"bad\xffname\n"
    assert (tmp_path / "e").read_bytes() == b"\xfe"


def spawns_a_grandchild(pid_file: Path) -> list[str]:
    """A command that starts a long-lived child of its own and writes its pid."""
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open(r'{pid_file}.tmp', 'w').write(str(child.pid))\n"
        "import os; os.replace(r'{pid_file}.tmp', r'{pid_file}')\n"
        "time.sleep(60)\n"
    ).replace("{pid_file}", str(pid_file))
    return [sys.executable, "-c", script]


def wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert path.exists(), f"{path} did not appear within {seconds}s"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    """A command past its timeout is killed with the grandchildren it started."""
    pid_file = tmp_path / "grandchild.pid"
    result = run_command(spawns_a_grandchild(pid_file), timeout=3.0)
    assert result.timed_out and result.returncode is None and not result.ok
    assert pid_file.exists(), "the command was killed before it started its child"
    assert not process_running(int(pid_file.read_text()))


def test_no_command_starts_after_stop() -> None:
    """After a group's stop (an interrupted run) none of its commands starts, until allow."""
    group = process.CommandGroup()
    group.stop()
    with process.use_group(group):
        with pytest.raises(CommandsStopped, match="interrupted"):
            run_command([sys.executable, "-c", "import time; time.sleep(30)"])
        group.allow()
        assert run_command([sys.executable, "-c", "pass"]).ok


def test_stop_kills_running_commands_and_their_children(tmp_path: Path) -> None:
    """stop ends the commands other threads wait on, grandchildren included; what a
    killed command printed is no result (CommandsStopped), even once commands are allowed."""
    pid_file = tmp_path / "grandchild.pid"
    errors: list[BaseException] = []
    group = process.CommandGroup()

    def wait_on_command() -> None:
        try:
            with process.use_group(group):
                run_command(spawns_a_grandchild(pid_file))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait_on_command)
    thread.start()
    wait_for(pid_file)
    try:
        assert group.stop() == 1
    finally:
        group.allow()
    thread.join(timeout=10)
    assert [type(e) for e in errors] == [CommandsStopped]
    assert not process_running(int(pid_file.read_text()))
    assert run_command([sys.executable, "-c", "pass"]).ok


def test_missing_program_raises() -> None:
    """A program that does not exist raises FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        run_command(["no-such-program-xyz"])


def test_templates_are_filled_literally() -> None:
    """Values are inserted once: braces and shell syntax inside them stay as they are."""
    argv = fill_template(["echo", "{a}", "x{b}y"], {"a": "$(rm -rf ~); {b}", "b": "1"})
    assert argv == ["echo", "$(rm -rf ~); {b}", "x1y"]
    with pytest.raises(KeyError, match="missing"):
        fill_template(["{missing}"], {})


def test_escaped_grandchild_cannot_hold_a_timeout(tmp_path: Path, leftovers: list[Path]) -> None:
    """A command past its timeout returns within timeout + grace + 3 s with what it
    printed, while a grandchild in its own session still runs holding the pipes."""
    pid_file = tmp_path / "grandchild.pid"
    leftovers.append(pid_file)
    result = run_command(starts_a_holder(pid_file, "escape", "sleep"), timeout=3.0, grace=1.0)
    assert result.timed_out and result.returncode is None
    assert result.seconds < 3.0 + 1.0 + 3.0
    assert result.stdout == "grandchild\nchild\n"
    assert process_running(int(pid_file.read_text()), grace=0.2)


def test_escaped_grandchild_cannot_hold_a_finished_command(
    tmp_path: Path, leftovers: list[Path]
) -> None:
    """A command that exits returns at once with what was printed, while a grandchild in
    its own session still runs holding the pipes."""
    pid_file = tmp_path / "grandchild.pid"
    leftovers.append(pid_file)
    result = run_command(starts_a_holder(pid_file, "escape", "exit"), timeout=60)
    assert result.ok and result.stdout == "grandchild\nchild\n"
    assert result.seconds < 5.0
    assert process_running(int(pid_file.read_text()), grace=0.2)


def test_leftovers_in_the_group_holding_the_pipes_are_killed(
    tmp_path: Path, leftovers: list[Path]
) -> None:
    """A command that exits returns at once, and a grandchild left in its group that holds
    the pipes is killed."""
    pid_file = tmp_path / "grandchild.pid"
    leftovers.append(pid_file)
    result = run_command(starts_a_holder(pid_file, "stay", "exit"), timeout=60)
    assert result.ok and result.stdout == "grandchild\nchild\n"
    assert result.seconds < 5.0
    assert not process_running(int(pid_file.read_text()))


TRAPS_SIGTERM = """
import signal, sys, time
def on_term(signum, frame):
    open(sys.argv[1], 'w').write('terminated')
    sys.exit(3)
signal.signal(signal.SIGTERM, on_term)
time.sleep(60)
"""


def test_sigterm_lets_a_command_clean_up(tmp_path: Path) -> None:
    """On timeout a command gets SIGTERM first; one that exits on it ends at once, far
    before its grace, and the result is timed out with no return code."""
    marker = tmp_path / "marker"
    result = run_command(python(TRAPS_SIGTERM, marker), timeout=2.0, grace=30.0)
    assert marker.read_text() == "terminated"
    assert result.timed_out and result.returncode is None and not result.ok
    assert result.seconds < 2.0 + 5.0


IGNORES_SIGTERM = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], 'w').close()
time.sleep(60)
"""


def test_sigterm_ignored_means_sigkill_after_the_grace(tmp_path: Path) -> None:
    """A command that ignores SIGTERM is killed once its group's grace has passed."""
    ready = tmp_path / "ready"
    with use_group(CommandGroup(grace=1.0)):
        result = run_command(python(IGNORES_SIGTERM, ready), timeout=1.5)
    assert ready.exists(), "the command was stopped before it ignored SIGTERM"
    assert result.timed_out and result.returncode is None
    assert 1.5 + 1.0 - 0.1 < result.seconds < 1.5 + 1.0 + 3.0


PRINTS_MEGABYTES = """
import sys
data = sys.stdin.read()
for i in range(128):
    sys.stdout.write(str(i % 10) * 65536)
    sys.stderr.write(chr(97 + i % 26) * 32768)
sys.stdout.write(data)
"""


def test_megabytes_of_output_are_captured_whole(tmp_path: Path) -> None:
    """Megabytes on both streams and on stdin neither block nor get cut."""
    text = "stdin line\n" * 200_000
    result = run_command(
        python(PRINTS_MEGABYTES),
        timeout=60,
        stdin_text=text,
        stdout_path=tmp_path / "o",
        stderr_path=tmp_path / "e",
    )
    assert result.ok
    expected_out = "".join(str(i % 10) * 65536 for i in range(128)) + text
    assert result.stdout == expected_out
    assert result.stderr == "".join(chr(97 + i % 26) * 32768 for i in range(128))
    assert (tmp_path / "o").read_text() == expected_out


def test_context_deadline_shortens_the_timeout(tmp_path: Path) -> None:
    """A command stops at the context's deadline when it comes before its own timeout;
    one whose deadline has passed is not started and is timed out; a nested deadline
    never extends an outer one."""
    with command_deadline(time.monotonic() + 1.0):
        result = run_command(SLEEPS, timeout=60, grace=1.0)
    assert result.timed_out and result.seconds < 1.0 + 1.0 + 3.0

    marker = tmp_path / "ran"
    with command_deadline(time.monotonic() - 1), command_deadline(time.monotonic() + 60):
        result = run_command(python("open(__import__('sys').argv[1], 'w')", marker))
    assert result.timed_out and result.returncode is None and result.seconds == 0.0
    assert not marker.exists()
    assert run_command(python("pass")).ok


WAITS_FOR_GO = """
import os, sys, time
open(sys.argv[1], 'w').close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.01)
print('second done')
"""


def test_stopping_a_group_leaves_other_groups_running(tmp_path: Path) -> None:
    """stop() kills its own group's running command (grandchildren too; the caller gets
    CommandsStopped) and refuses new ones, while another group's command, in another
    thread, runs on to its end and new commands start there and in the default group."""
    first, second = CommandGroup(), CommandGroup()
    pid_file, ready, go = tmp_path / "grandchild.pid", tmp_path / "ready", tmp_path / "go"
    outcomes: dict[str, object] = {}

    def run_in(group: CommandGroup, name: str, argv: list[str]) -> None:
        with use_group(group):
            try:
                outcomes[name] = run_command(argv, timeout=60)
            except BaseException as exc:
                outcomes[name] = exc

    threads = [
        threading.Thread(target=run_in, args=(first, "first", spawns_a_grandchild(pid_file))),
        threading.Thread(target=run_in, args=(second, "second", python(WAITS_FOR_GO, ready, go))),
    ]
    for thread in threads:
        thread.start()
    try:
        wait_for(pid_file)
        wait_for(ready)
        assert first.stop() == 1
        threads[0].join(timeout=10)
        assert isinstance(outcomes["first"], CommandsStopped)
        assert not process_running(int(pid_file.read_text()))
        with use_group(first), pytest.raises(CommandsStopped):
            run_command(python("pass"))
        with use_group(second):
            assert run_command(python("pass")).ok
        assert run_command(python("pass")).ok
        assert "second" not in outcomes
    finally:
        go.touch()
        for thread in threads:
            thread.join(timeout=10)
    second_result = outcomes["second"]
    assert isinstance(second_result, process.CommandResult)
    assert second_result.ok and second_result.stdout == "second done\n"
