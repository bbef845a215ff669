"""run_command: no shell, its own process group, a timeout that reaches grandchildren."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from runner import process
from runner.process import fill_template, run_command
from tests.conftest import process_running


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
    result = run_command(spawns_a_grandchild(pid_file), timeout=5.0)
    assert result.timed_out and result.returncode is None and not result.ok
    assert pid_file.exists(), "the command was killed before it started its child"
    assert not process_running(int(pid_file.read_text()))


def test_no_command_starts_after_kill_all() -> None:
    """After kill_all (an interrupted run) no command starts, until allow_commands."""
    process.kill_all()
    try:
        with pytest.raises(process.CommandsStopped, match="interrupted"):
            run_command([sys.executable, "-c", "import time; time.sleep(30)"])
    finally:
        process.allow_commands()
    assert run_command([sys.executable, "-c", "pass"]).ok


def test_kill_all_kills_running_commands_and_their_children(tmp_path: Path) -> None:
    """kill_all ends the commands other threads wait on, grandchildren included; what a
    killed command printed is no result (CommandsStopped), even once commands are allowed."""
    import threading

    pid_file = tmp_path / "grandchild.pid"
    errors: list[BaseException] = []

    def wait_on_command() -> None:
        try:
            run_command(spawns_a_grandchild(pid_file))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait_on_command)
    thread.start()
    wait_for(pid_file)
    try:
        assert process.kill_all() == 1
    finally:
        process.allow_commands()
    thread.join(timeout=10)
    assert [type(e) for e in errors] == [process.CommandsStopped]
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
