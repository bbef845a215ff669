"""run_command: no shell, its own process group, a timeout that reaches grandchildren."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from runner import process
from runner.process import fill_template, run_command


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_streams_are_captured_and_written(tmp_path: Path) -> None:
    """stdout and stderr come back and land in the files given."""
    result = run_command(
        [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"],
        stdout_path=tmp_path / "o", stderr_path=tmp_path / "e",
    )
    assert result.ok and result.returncode == 0
    assert (result.stdout, result.stderr) == ("out\n", "err\n")
    assert (tmp_path / "o").read_text() == "out\n" and (tmp_path / "e").read_text() == "err\n"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    """A command past its timeout is killed with the grandchildren it started."""
    pid_file = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open(r'{pid_file}', 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    result = run_command([sys.executable, "-c", script], timeout=1.0)
    assert result.timed_out and result.returncode is None and not result.ok
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)  # killed, waiting to be reaped by init
    assert not _alive(grandchild) or Path(f"/proc/{grandchild}/stat").read_text().split()[2] == "Z"


def test_commands_started_after_kill_all_are_killed_at_once() -> None:
    """After kill_all (an interrupted run), a command a worker was starting cannot survive."""
    process.kill_all()
    try:
        result = run_command([sys.executable, "-c", "import time; time.sleep(30)"], timeout=20)
        assert result.returncode is not None and result.returncode < 0
        assert result.seconds < 20
    finally:
        process.allow_commands()
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
