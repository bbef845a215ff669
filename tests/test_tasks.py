"""Built-in tasks: sleep's deterministic failures and shell's argv templates."""

from __future__ import annotations

import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from runner.api import Item, RunContext, TaskFailure
from runner.toolkit import STREAMS_FILE, StreamLog, read_streams
from runner_plugins.tasks import ShellTask, SleepTask


def test_sleep_failures_are_seeded_and_stable() -> None:
    """The same seed fails the same items; another seed fails others; the rate holds."""
    ids = [Item(str(i)) for i in range(2000)]
    first = {i.id for i in ids if SleepTask(0, 0.25, seed=1).fails(i)}
    again = {i.id for i in ids if SleepTask(0, 0.25, seed=1).fails(i)}
    other = {i.id for i in ids if SleepTask(0, 0.25, seed=2).fails(i)}
    assert first == again and first != other
    assert 400 < len(first) < 600


def test_sleep_raises_for_failing_items() -> None:
    """A failing item raises TaskFailure; fail_rate 0 never fails."""
    task = SleepTask(0, 1.0)
    with pytest.raises(TaskFailure):
        task.run(Item("1"))
    assert SleepTask(0, 0.0).run(Item("1")) is None


def test_sleep_rejects_bad_rate() -> None:
    """fail_rate outside [0, 1] is refused, naming the value."""
    with pytest.raises(ValueError, match=r"1\.5"):
        SleepTask(0, 1.5)


def shell(tmp_path: Path, command: list[str]) -> ShellTask:
    task = ShellTask(command=command)
    task.setup(RunContext(output_dir=tmp_path, config={}, parallel=1))
    return task


def test_shell_fills_placeholders_and_keeps_streams(tmp_path: Path) -> None:
    """Placeholders come from the item; stdout and stderr land in <run>/streams.jsonl."""
    task = shell(
        tmp_path,
        [
            sys.executable,
            "-c",
            "import sys; print(sys.argv[1]); print('e', file=sys.stderr)",
            "{word}-{id}",
        ],
    )
    result = task.run(Item("7", {"word": "hello"}))
    assert result["stdout"].strip() == "hello-7"
    [record] = read_streams(tmp_path, "7")
    assert record == {"id": "7", "stdout": "hello-7\n", "stderr": "e\n"}
    quiet = shell(tmp_path, [sys.executable, "-c", "pass"])
    quiet.run(Item("8"))
    assert [r["id"] for r in read_streams(tmp_path)] == ["7"]  # a quiet item writes nothing


def test_shell_never_uses_a_shell(tmp_path: Path) -> None:
    """Shell syntax in item data reaches the program literally and runs nothing."""
    marker = tmp_path / "pwned"
    attempts = [
        f"; touch {marker}",
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"x && touch {marker}",
        "{id}",
    ]
    task = shell(tmp_path, [sys.executable, "-c", "import sys; print(sys.argv[1])", "{value}"])
    for n, attempt in enumerate(attempts):
        result = task.run(Item(str(n), {"value": attempt}))
        assert result["stdout"].rstrip("\n") == attempt
    assert not marker.exists()


def test_shell_nonzero_exit_reports_code_and_stderr(tmp_path: Path) -> None:
    """A non-zero exit fails with the exit code and the end of stderr."""
    task = shell(
        tmp_path, [sys.executable, "-c", "import sys; sys.stderr.write('disk full'); sys.exit(3)"]
    )
    with pytest.raises(TaskFailure, match="exit code 3: disk full"):
        task.run(Item("1"))


def test_shell_missing_placeholder_names_it(tmp_path: Path) -> None:
    """A placeholder the item lacks fails the item naming the placeholder."""
    task = shell(tmp_path, ["echo", "{path}"])
    with pytest.raises(TaskFailure, match=r"\{path\} has no value"):
        task.run(Item("1", {"line": "x"}))


def test_shell_missing_program_is_a_failure(tmp_path: Path) -> None:
    """A program that does not exist fails the item, naming it."""
    task = shell(tmp_path, ["no-such-program-xyz"])
    with pytest.raises(TaskFailure, match="no-such-program-xyz"):
        task.run(Item("1"))


def test_shell_timeout_kills_the_command(tmp_path: Path) -> None:
    """A command past its timeout is killed and the item fails."""
    task = ShellTask(
        command=[sys.executable, "-c", "import time; time.sleep(30)"],
        timeout=0.3,
        keep_streams=False,
    )
    with pytest.raises(TaskFailure, match="timed out"):
        task.run(Item("1"))


def test_streams_of_concurrent_items_never_mix(tmp_path: Path) -> None:
    """Ids like ``a.csv`` and ``a.json`` run at once: each line holds one item's streams,
    whole, however large."""
    echo_both = (
        "import sys, time; time.sleep(0.2); big = sys.argv[1] * 50_000;"
        " print(big); print(sys.argv[1], file=sys.stderr)"
    )
    task = shell(tmp_path, [sys.executable, "-c", echo_both, "{id}"])
    ids = ["a.csv", "a.json", "a.csv.gz", "a_csv", "a\nb", "-rf"]
    with ThreadPoolExecutor(len(ids)) as pool:
        list(pool.map(lambda i: task.run(Item(i)), ids))
    task.close()
    records = list(read_streams(tmp_path))
    assert sorted(r["id"] for r in records) == sorted(ids)
    for record in records:
        assert record["stdout"] == record["id"] * 50_000 + "\n"
        assert record["stderr"] == record["id"] + "\n"
    assert len((tmp_path / STREAMS_FILE).read_text().splitlines()) == len(ids)


def test_python_m_runner_streams_prints_an_items_streams_back(tmp_path: Path) -> None:
    """The documented way to read one item's streams: stdout to stdout, stderr to stderr."""
    task = shell(
        tmp_path, [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"]
    )
    task.run(Item("a.csv"))
    task.run(Item("a.csv"))  # a second attempt: both are kept, in order
    task.close()

    def streams(*args: str, run_dir: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "runner.streams", str(run_dir), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    shown = streams("a.csv")
    assert (shown.returncode, shown.stdout, shown.stderr) == (0, "out\nout\n", "err\nerr\n")
    assert streams().stdout == "a.csv\n"
    missing = streams("nope")
    assert missing.returncode == 1 and "'nope' printed nothing" in missing.stderr
    assert streams(run_dir=tmp_path / "elsewhere").returncode == 2


def test_a_torn_streams_line_is_skipped(tmp_path: Path) -> None:
    """A line cut short by a full disk or a kill does not hide the others."""
    (tmp_path / STREAMS_FILE).write_text(
        '{"id": "a", "stdout": "x", "stderr": ""}\n{"id": "b", "stdo'
    )
    assert [r["id"] for r in read_streams(tmp_path)] == ["a"]


def test_a_record_written_after_a_torn_one_is_still_read(tmp_path: Path) -> None:
    """A write cut short by a full disk, then a whole one on the same line: the whole
    one is read back; a write after close() opens the file again."""
    (tmp_path / STREAMS_FILE).write_text(
        '{"id": "a", "stdout": "x", "std{"id": "b", "stdout": "y", "stderr": ""}\n'
    )
    assert [r["id"] for r in read_streams(tmp_path)] == ["b"]
    log = StreamLog(tmp_path / STREAMS_FILE)
    log.close()
    log.add("c", "z", "")
    log.close()
    assert [r["id"] for r in read_streams(tmp_path)] == ["b", "c"]


def test_a_stream_log_carried_to_another_process_opens_the_file_for_itself(
    tmp_path: Path,
) -> None:
    """A pickled StreamLog (as a process executor carries a task) keeps its path and
    none of its descriptor: the copy appends to the same file after the original closed."""
    log = StreamLog(tmp_path / STREAMS_FILE)
    log.add("a", "1", "")
    copy = pickle.loads(pickle.dumps(log))
    assert type(copy) is StreamLog and copy.path == log.path
    log.close()
    copy.add("b", "2", "")
    copy.close()
    assert [r["id"] for r in read_streams(tmp_path)] == ["a", "b"]


def test_streams_of_an_id_that_is_not_utf8_are_found_by_that_id(tmp_path: Path) -> None:
    """A lone surrogate in an id is written as JSON's escape: the file is UTF-8, and the
    id os.fsdecode gives (as ``python -m runner.streams`` gets it from argv) finds it."""
    log = StreamLog(tmp_path / STREAMS_FILE)
    log.add("bad\udcffname", "out é\n", "")
    log.add("good", "x", "")
    log.close()
    (tmp_path / STREAMS_FILE).read_bytes().decode("utf-8")
    assert [r["stdout"] for r in read_streams(tmp_path, "bad\udcffname")] == ["out é\n"]
