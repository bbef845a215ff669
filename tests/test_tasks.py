"""Built-in tasks: sleep's deterministic failures and shell's argv templates."""

from __future__ import annotations

import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from runner.api import Item, RunContext, TaskFailure
from runner_plugins.tasks import ShellTask, SleepTask, _stream_name
from tests.conftest import RunCli


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
    """Placeholders come from the item; stdout and stderr land in <run>/items/."""
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
    [stdout] = (tmp_path / "items").glob("*.stdout")
    assert stdout.read_text().strip() == "hello-7"
    assert next((tmp_path / "items").glob("*.stderr")).read_text().strip() == "e"


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


def test_stream_files_of_ids_differing_after_a_dot(tmp_path: Path) -> None:
    """Ids ``a.csv`` and ``a.json``, run at once, each get their own stdout and stderr files."""
    echo_both = (
        "import sys, time; time.sleep(0.2); print(sys.argv[1]); print(sys.argv[1], file=sys.stderr)"
    )
    task = shell(tmp_path, [sys.executable, "-c", echo_both, "{id}"])
    ids = ["a.csv", "a.json", "a.csv.gz", "a_csv"]
    with ThreadPoolExecutor(len(ids)) as pool:
        list(pool.map(lambda i: task.run(Item(i)), ids))
    for suffix in (".stdout", ".stderr"):
        files = sorted((tmp_path / "items").glob(f"*{suffix}"))
        assert len(files) == len(ids)
        assert sorted(f.read_text().strip() for f in files) == sorted(ids)


@pytest.mark.parametrize(
    "item_id",
    ["../../etc/passwd", "-rf", ".hidden", "x" * 5000, "a\nb", "\u00e9t\u00e9/\u00fc", "", "..."],
)
def test_stream_names_are_safe_and_readable(item_id: str) -> None:
    """A stream file name is short, starts with a letter, digit or _, and holds no path."""
    name = _stream_name(item_id)
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,39}-[0-9a-f]{16}", name), name
    assert _stream_name(item_id) == name and _stream_name(item_id + " ") != name


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"timeout": -1}, ValueError, r"timeout=-1 is invalid"),
        ({"timeout": 0}, ValueError, r"timeout=0 is invalid"),
        ({"timeout": float("nan")}, ValueError, r"timeout=nan is invalid"),
        ({"timeout": float("inf")}, ValueError, r"timeout=inf is invalid"),
        ({"cwd": "/nonexistent-runner-dir"}, FileNotFoundError, "does not exist"),
        ({"cwd": __file__}, NotADirectoryError, "is not a folder"),
        ({"command": ["echo", "{}"]}, ValueError, r"element 2 '\{\}' has the positional"),
        ({"command": ["echo", "x{0}"]}, ValueError, r"positional placeholder \{0\}"),
        ({"command": ["echo", "{id:d}"]}, ValueError, r"format spec 'd'.*an id"),
        ({"command": ["echo", "{n:>>>}"]}, ValueError, r"format spec '>>>'"),
        ({"command": ["echo", "{n!z}"]}, ValueError, r"conversion !z"),
        ({"command": ["echo", "{oops"]}, ValueError, r"element 2 '\{oops' is not a template"),
        ({"command": [True]}, ValueError, r"element 1 is True \(a boolean\), not text"),
        ({"command": ["echo", 1000.0]}, ValueError, r"element 2 is 1000.0 \(a number\)"),
        ({"command": ["echo", None]}, ValueError, r"element 2 is None \(null\)"),
    ],
)
def test_shell_refuses_settings_that_fail_every_item(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    """A timeout, cwd or command no item could run with is refused at construction."""
    with pytest.raises(error, match=match):
        ShellTask(**{"command": ["echo", "{id}"], **kwargs})  # type: ignore[arg-type]


def test_shell_accepts_what_items_can_fill(tmp_path: Path) -> None:
    """Literal braces, conversions, numeric specs, nested fields and a real cwd are fine."""
    task = ShellTask(
        command=["echo", "{{x}}", "{id!r}", "{n:04d}", "{id:>{w}}", "{data[k]}"],
        cwd=str(tmp_path),
        timeout=5,
        keep_streams=False,
    )
    assert task.fields == ["data", "id", "n", "w"]
    result = task.run(Item("a", {"n": 7, "w": 3, "data": {"k": "v"}}))
    assert result["stdout"] == "{x} 'a' 0007   a v\n"


def test_shell_value_of_the_wrong_type_fails_its_item(tmp_path: Path) -> None:
    """A spec a value cannot take fails that item naming the id, without a traceback."""
    task = shell(tmp_path, ["echo", "{n:d}"])
    with pytest.raises(TaskFailure, match=r"cannot fill the command for item 'a'"):
        task.run(Item("a", {"n": "seven"}))


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("task.timeout=-1", "timeout=-1.0 is invalid"),
        ("task.timeout=0", "timeout=0.0 is invalid"),
        ("task.timeout=nan", "timeout=nan is invalid"),
        ("task.timeout=inf", "timeout=inf is invalid"),
        ("task.cwd=/nonexistent-runner-dir", "cwd='/nonexistent-runner-dir' does not exist"),
        ("task.command=[true]", "element 1 is True (a boolean), not text: quote it"),
        ("task.command=[echo,1e3]", "element 2 is 1000.0 (a number)"),
        ("task.command=[echo,1_000]", "element 2 is 1000 (a number)"),
        ("task.command=[echo,null]", "element 2 is None (null)"),
        ('task.command=[echo,"{}"]', "positional placeholder {}"),
        ('task.command=[echo,"{0}"]', "positional placeholder {0}"),
        ('task.command=[echo,"{id:d}"]', "format spec 'd'"),
    ],
)
def test_shell_settings_that_fail_every_item_stop_the_run(
    run_cli: RunCli, override: str, expected: str
) -> None:
    """Each is refused before the first item: exit 2, one line naming the value."""
    result = run_cli("task=shell", "task.command=[echo,x]", override, "source.count=2")
    assert result.returncode == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if "error" in line]
    assert len(errors) == 1 and expected in errors[0], result.output
    assert not (result.run_dir / "results.jsonl").exists()


def test_quoted_command_elements_reach_the_program_as_written(run_cli: RunCli) -> None:
    """Quoted true, null and numbers arrive as the text the user typed, never re-typed."""
    show = "import sys; print(sys.argv[1:])"
    result = run_cli(
        "task=shell",
        f'task.command=[{sys.executable},-c,"{show}","true","null","1e3","1_000","007"]',
        "source.count=1",
    )
    assert result.returncode == 0, result.output
    [record] = result.results()
    assert record["result"]["stdout"] == "['true', 'null', '1e3', '1_000', '007']\n"
