"""Built-in tasks: sleep's deterministic failures and shell's argv templates."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runner.api import Item, RunContext, TaskFailure
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
