"""A run whose disk fills up at its end: every file it writes then (the journal's last
lines, summary.json, summary.md, report.html) refused by the kernel for real ends the run
with exit 74 and one line naming the file and the errno, no traceback; the closing lines
name only files that exist, and the journal holds whole lines only.

The run folder is on a small tmpfs mounted for the test (root only; skipped with the
reason otherwise). The run's last item fills it: with data (every write that needs a new
page fails) or with empty files (every new file fails), leaving as many free pages or
inodes as the test asks, so the refusal falls on the file it names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.record.files import leftover_temp_files
from tests.inprocess import run_in_process

# argv: the item's id, the id that fills the disk, what to fill ("data" or "inodes"), the
# folder to fill, what to leave free (inodes), and the characters to print.
FILL = """
import os, sys, time
item, fill_at, what, folder, keep, chars, *wait = sys.argv[1:]
if item == fill_at:
    deadline = time.monotonic() + 30
    while wait and time.monotonic() < deadline:  # until the items before are on disk
        if os.path.exists(wait[0]) and os.path.getsize(wait[0]) > 0:
            break
        time.sleep(0.01)
    os.makedirs(folder, exist_ok=True)
    made = []
    try:
        if what == "data":
            fd = os.open(os.path.join(folder, "data"), os.O_WRONLY | os.O_CREAT)
            while True:
                os.write(fd, b"x" * 4096)
        while True:
            path = os.path.join(folder, str(len(made)))
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
            made.append(path)
    except OSError:
        pass
    for path in made[: int(keep)]:
        os.unlink(path)
print("x" * int(chars))
"""

Disk = Callable[..., Path]
#: The end of a run is the driver's whatever runs the items: each executor ends the same.
EXECUTORS = ["thread", "process", "sequential", "dask"]


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    """``disk(inodes=N)``: a 1 MiB tmpfs (of N inodes) mounted in tmp_path, unmounted
    after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(inodes: int = 1000) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        options = f"size=1m,nr_inodes={inodes}"
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        if subprocess.run(["umount", str(point)]).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], check=True)


def _run(
    tmp_path: Path,
    disk: Path,
    what: str,
    *,
    count: int = 3,
    keep: int = 0,
    chars: int = 0,
    executor: str = "thread",
) -> tuple[int, list[str], Path]:
    """Run ``count`` shell items into a folder on ``disk``, the last filling it; the exit
    code, the console's lines and the run folder."""
    script = tmp_path / "fill.py"
    script.write_text(FILL)
    command = [sys.executable, "-S", str(script), "{id}", str(count - 1), what]
    command += [str(disk / "filler"), str(keep), str(chars)]
    done = run_in_process(
        "task=shell",
        "source=range",
        f"source.count={count}",
        f"executor={executor}",
        "task.keep_streams=false",
        f"task.command=[{','.join(json.dumps(part) for part in command)}]",
        cwd=tmp_path,
        run_dir=disk / "run",
    )
    assert "Traceback" not in done.output, done.output
    return done.returncode, done.output.splitlines(), disk / "run"


def _error(lines: list[str]) -> str:
    """The run's one error line."""
    errors = [line for line in lines if "runner: error:" in line]
    assert len(errors) == 1, lines
    return errors[0]


def _results_in(lines: list[str]) -> str:
    """The closing line that names the run's files."""
    found = [line for line in lines if "Results in " in line]
    assert len(found) == 1, lines
    return found[0]


def _journal(run_dir: Path) -> list[dict[str, object]]:
    """The journal's lines, each whole."""
    data = (run_dir / "results.jsonl").read_bytes()
    assert data.endswith(b"\n") or not data
    return [json.loads(line) for line in data.splitlines()]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_summary_json_refused_ends_with_exit_74_and_one_line(
    tmp_path: Path, disk: Disk, executor: str
) -> None:
    """No page left: summary.json cannot be written; the run says so in one line (exit
    74), and the closing line no longer claims it; with every executor."""
    code, lines, run_dir = _run(tmp_path, disk(), "data", executor=executor)
    assert code == 74, lines
    error = _error(lines)
    assert f"cannot write '{run_dir / 'summary.json'}': No space left on device (ENOSPC)" in error
    assert not (run_dir / "summary.json").exists()
    assert "summary.json" not in _results_in(lines)
    assert "results.jsonl" in _results_in(lines)
    assert [r["id"] for r in _journal(run_dir)] == ["0", "1", "2"]
    assert leftover_temp_files(run_dir) == []


@pytest.mark.parametrize("executor", EXECUTORS)
def test_journal_refused_keeps_whole_lines(tmp_path: Path, disk: Disk, executor: str) -> None:
    """Lines of 1 KB: the fourth item's line needs a page the full disk has not; the run
    ends with exit 74 naming results.jsonl, whose three whole lines stay; with every
    executor."""
    code, lines, run_dir = _run(tmp_path, disk(), "data", count=4, chars=1000, executor=executor)
    assert code == 74, lines
    assert f"cannot write '{run_dir / 'results.jsonl'}': " in _error(lines)
    assert "(ENOSPC)" in _error(lines)
    assert [r["id"] for r in _journal(run_dir)] == ["0", "1", "2"]
    assert "summary.json" not in _results_in(lines)


def test_summary_md_refused_ends_with_exit_74_naming_it(tmp_path: Path, disk: Disk) -> None:
    """One inode left: summary.json takes it, and the post-processor's summary.md is
    refused: exit 74, one line naming summary.md (it was exit 1 and a traceback)."""
    code, lines, run_dir = _run(tmp_path, disk(inodes=64), "inodes", keep=1)
    assert code == 74, lines
    error = _error(lines)
    assert f"cannot write '{run_dir / 'summary.md'}': No space left on device (ENOSPC)" in error
    assert json.loads((run_dir / "summary.json").read_text())["succeeded"] == 3
    assert "summary.json" in _results_in(lines)
    assert not (run_dir / "summary.md").exists()
    assert leftover_temp_files(run_dir) == []


def test_report_refused_ends_with_exit_74_naming_it(tmp_path: Path, disk: Disk) -> None:
    """Two inodes left: summary.json and summary.md are written, report.html is refused:
    exit 74 and one line naming it (it was exit 0 and a traceback)."""
    code, lines, run_dir = _run(tmp_path, disk(inodes=64), "inodes", keep=2)
    assert code == 74, lines
    error = _error(lines)
    assert f"cannot write '{run_dir / 'report.html'}': No space left on device (ENOSPC)" in error
    assert (run_dir / "summary.md").is_file()
    assert not (run_dir / "report.html").exists()


def test_room_enough_ends_with_exit_0(tmp_path: Path, disk: Disk) -> None:
    """The same run with an inode for each file it writes at its end (summary.json,
    summary.md, report.html, job.json) ends as usual: the refusals above are the disk's."""
    code, lines, run_dir = _run(tmp_path, disk(inodes=64), "inodes", keep=4)
    assert code == 0, lines
    assert {"summary.json", "summary.md", "report.html"} <= set(os.listdir(run_dir))
    assert "summary.json" in _results_in(lines)


# A judge that answers after leaving exactly ``keep`` inodes free on the disk it fills.
JUDGE = """
import json, os, sys
folder, keep, model = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.makedirs(folder, exist_ok=True)
made = []
try:
    while True:
        path = os.path.join(folder, f"{os.getpid()}-{len(made)}")
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        made.append(path)
except OSError:
    pass
for path in made[:keep]:
    os.unlink(path)
print("```json\\n" + json.dumps({"score": 0.7, "passed": True, "reasoning": model}) + "\\n```")
"""


def test_judge_summary_copy_refused_names_the_run_folders_file(tmp_path: Path, disk: Disk) -> None:
    """The experiment has room, the run folder one inode (summary.json's): the judge
    summary's copy into the run folder is refused, and the one line names that file (it
    named the experiment's summary folder, which was written)."""
    from tests.judge_support import copy_fixture

    experiment = copy_fixture(tmp_path / "experiment")
    folder = disk(inodes=64)
    script = tmp_path / "judge.py"
    script.write_text(JUDGE)
    argv = [sys.executable, str(script), str(folder / "filler"), "1", "{model}"]
    done = run_in_process(
        "task=judge_rerun",
        f"source.experiment={experiment}",
        "source.status=[complete]",
        "source.tiers=[T0]",
        f"task.command=[{','.join(json.dumps(part) for part in argv)}]",
        cwd=tmp_path,
        run_dir=folder / "run",
    )
    assert "Traceback" not in done.output, done.output
    assert done.returncode == 74, done.output
    error = _error(done.output.splitlines())
    refused = folder / "run" / "judge_summary.json"
    assert f"cannot write '{refused}': No space left on device (ENOSPC)" in error
    assert (experiment / "summary" / "judge_summary.json").is_file()


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_streams_refused_stop_the_run_with_exit_74(
    tmp_path: Path, disk: Disk, executor: str
) -> None:
    """Item 1 fills the disk, then prints 3000 characters: streams.jsonl cannot keep
    them. Item 1 fails with StopRun naming streams.jsonl and the run stops there (exit
    74), as a refused journal stops it; it no longer runs every item left, each failed
    for its streams though its command ran, for a resume to run again."""
    script = tmp_path / "fill.py"
    script.write_text(FILL)
    folder = disk()
    fill = [sys.executable, "-S", str(script), "{id}", "1", "data", str(folder / "filler")]
    journal = str(folder / "run" / "results.jsonl")
    done = run_in_process(
        "task=shell",
        "source=range",
        "source.count=6",
        f"executor={executor}",
        "parallel=1",
        # Item 1 fills the disk once item 0's line is in the journal: items run in a
        # worker thread (or process) while the run's loop records their outcomes, so
        # item 1 could otherwise fill the disk before that line is written, and the
        # journal, refused, would stop the run first (exit 74 too, no line of item 1).
        f"task.command=[{','.join(json.dumps(part) for part in [*fill, '0', '3000', journal])}]",
        cwd=tmp_path,
        run_dir=folder / "run",
    )
    assert "Traceback" not in done.output, done.output
    assert done.returncode == 74, done.output
    lines = {str(r["id"]): r for r in _journal(folder / "run")}
    assert set(lines) <= {"0", "1", "2"}, sorted(lines)  # 3 to 5 never started
    refused = folder / "run" / "streams.jsonl"
    error = lines["1"]["error"]
    assert isinstance(error, dict) and error["type"] == "StopRun", error
    assert str(error["message"]).startswith(
        f"cannot write '{refused}': No space left on device (ENOSPC); item '1' ran but"
    )
