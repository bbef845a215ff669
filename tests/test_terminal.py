"""What a person sees on a terminal: real pseudo-terminals of chosen widths, real runs."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import run_runner, runner_command

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_terminal(args: list[str], cwd: Path, columns: int, rows: int = 40) -> tuple[int, str]:
    """``python -m runner args`` with stderr and stdout on a pty ``columns`` wide and
    ``rows`` high."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen(
        runner_command(*args), cwd=cwd, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower
    )
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the other end closed
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(leader)
    code = proc.wait(timeout=30)
    # Colours dropped; a carriage return (the bar redrawn) starts a line of its own.
    text = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))
    return code, text.replace("\r\n", "\n").replace("\r", "\n")


FAILING = ["source.count=60", "task.seconds=0.01", "task.fail_rate=0.2", "parallel=4"]


def test_failures_appear_above_the_bar_as_they_happen(tmp_path: Path) -> None:
    """On a terminal, the bar is drawn and each failure has its own line with the reason."""
    code, out = run_in_terminal([*FAILING, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, 120)
    assert code == 1, out
    assert "item/s" in out or "it/s" in out  # the bar
    failed = re.findall(
        r"\[\d+/60\] (\d+) -> FAIL \(\d+ remaining, [\d.,]+ items/s, (?:ETA \w+, )?\d+s elapsed\): "
        r"TaskFailure: item \1 fails by design",
        out,
    )
    assert len(failed) >= 5
    # The end lists as many failed items as the 40-line terminal has room for (32).
    listed = re.findall(r"^\S+ WARNING   (\d+): TaskFailure: item \1 fails by design", out, re.M)
    count = int(re.findall(r"Failed items \((\d+)", out)[-1])
    assert len(listed) == min(count, 32) >= 5, out
    assert re.search(r"To run the \d+ failed item\(s\) again: python -m runner ", out)
    assert "Results in run/" in out or f"Results in {tmp_path / 'run'}" in out


def test_the_failed_items_listed_at_the_end_fit_a_short_terminal(tmp_path: Path) -> None:
    """A terminal 15 lines high lists 7 failed items at the end (8 lines are kept for
    what follows), each within its 70 columns, and counts the rest."""
    args = ["source.count=40", "task.seconds=0", "task.fail_rate=0.9", "task.seed=1"]
    code, out = run_in_terminal([*args, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, 70, 15)
    assert code == 1, out
    lines = out.splitlines()
    header = max(i for i, line in enumerate(lines) if "Failed items (" in line)
    failed = int(re.findall(r"Failed items \((\d+)", lines[header])[0])
    listed = lines[header + 1 : header + 8]
    assert all(re.search(r"WARNING   \d+: TaskFailure: item", line) for line in listed), out
    assert all(len(line) <= 70 for line in listed)
    assert lines[header + 8].endswith(f"... and {failed - 7} more (results.jsonl has every one)")


def test_a_terminal_without_width_gets_lines(tmp_path: Path) -> None:
    """A pty that reports 0 columns (script -qc) gets progress lines, not an invisible bar."""
    code, out = run_in_terminal([*FAILING, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, 0)
    assert code == 1, out
    assert "[1/60]" in out and "[60/60]" in out


@pytest.mark.parametrize("columns", [50, 80])
def test_progress_lines_fit_the_terminal(tmp_path: Path, columns: int) -> None:
    """Every progress line, time and level included, fits the terminal's width."""
    long_id = "x" * 150
    (tmp_path / "in.txt").write_text(f"{long_id}\nshort\n")
    code, out = run_in_terminal(
        ["source=lines", "source.path=in.txt", "task.seconds=0", "progress=lines",
         f"hydra.run.dir={tmp_path / 'run'}"],
        tmp_path, columns,
    )  # fmt: skip
    assert code == 0, out
    progress = [line for line in out.splitlines() if re.search(r"\[\d/2\]", line)]
    assert len(progress) == 2 and all(len(line) <= columns for line in progress), progress
    assert any(line.endswith("…") for line in progress)


def test_parallel_jobs_have_a_prefix_and_a_complete_log(tmp_path: Path) -> None:
    """Jobs run side by side by the joblib launcher: each console line says its job, and
    each job's runner.log holds every one of its items."""
    sweep = tmp_path / "sweep"
    done = run_runner(
        "-m", "parallel=1,2", "source.count=30", "task.seconds=0.01", "progress=lines",
        "hydra/launcher=joblib", f"hydra.sweep.dir={sweep}",
        cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for job in ("0", "1"):
        log = (sweep / job / "runner.log").read_text()
        assert all(f"[{n}/30]" in log for n in range(1, 31)), log
        assert "Done: 30 succeeded" in log
        assert f"[job {job}] " in done.stderr
    assert not [
        line for line in done.stderr.splitlines() if "[1/30]" in line and "[job" not in line
    ]
