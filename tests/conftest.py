"""Shared fixtures: ``python -m runner`` in a subprocess, and state resets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from omegaconf import DictConfig

from tests.plugin_support import write_test_plugins

REPO = Path(__file__).resolve().parent.parent


@dataclass
class CliResult:
    """A finished ``python -m runner`` process and its run folder."""

    returncode: int
    stdout: str
    stderr: str
    run_dir: Path

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def results(self) -> list[dict[str, Any]]:
        path = self.run_dir / "results.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.run_dir / "summary.json").read_text())
        return data


RunCli = Callable[..., CliResult]


def process_running(pid: int, grace: float = 5.0) -> bool:
    """Whether ``pid`` still runs after ``grace`` seconds; a zombie (killed, not yet
    reaped by init) counts as ended."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.05)
    return True


#: Variables to add to the environment of a run; None removes one.
Env = Mapping[str, str | None]


def runner_command(*args: str, run_dir: Path | None = None) -> list[str]:
    """The argv of ``python -m runner <args>`` (this interpreter); ``run_dir``, when given,
    becomes the run folder (``hydra.run.dir``, the last argument)."""
    folder = () if run_dir is None else (f"hydra.run.dir={run_dir}",)
    return [sys.executable, "-m", "runner", *args, *folder]


def _environment(env: Env | None) -> dict[str, str]:
    merged = {**os.environ, **(env or {})}
    return {key: value for key, value in merged.items() if value is not None}


def run_runner(
    *args: str,
    cwd: Path | None = None,
    env: Env | None = None,
    timeout: float = 120,
    run_dir: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m runner <args>`` to its end and capture its output as text.

    ``env`` is added to this process's environment (a None value removes the variable);
    ``run_dir``, when given, becomes the run folder (``hydra.run.dir``, the last argument);
    ``cwd`` defaults to this process's working directory.
    """
    return subprocess.run(
        runner_command(*args, run_dir=run_dir),
        cwd=cwd,
        env=_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_runner(
    *args: str,
    cwd: Path | None = None,
    env: Env | None = None,
    run_dir: Path | None = None,
    stdout: int | IO[Any] = subprocess.PIPE,
) -> subprocess.Popen[str]:
    """Start ``python -m runner <args>`` (to signal it, say); stderr goes with stdout.

    Arguments as for :func:`run_runner`; ``stdout=subprocess.DEVNULL`` discards the output,
    an open file (or a file descriptor) receives it.
    """
    return subprocess.Popen(
        runner_command(*args, run_dir=run_dir),
        cwd=cwd,
        env=_environment(env),
        stdout=stdout,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def run_cli(tmp_path: Path) -> RunCli:
    """Run ``python -m runner <args>`` (in tmp_path unless ``cwd`` says otherwise), each
    run in a new run folder in tmp_path: run0, run1, ..."""
    counter = iter(range(1_000_000))

    def run(
        *args: str, cwd: Path | None = None, env: Env | None = None, timeout: float = 120
    ) -> CliResult:
        run_dir = tmp_path / f"run{next(counter)}"
        proc = run_runner(*args, cwd=cwd or tmp_path, env=env, timeout=timeout, run_dir=run_dir)
        return CliResult(proc.returncode, proc.stdout, proc.stderr, run_dir)

    return run


@pytest.fixture
def run_app(tmp_path: Path) -> RunCli:
    """As ``run_cli``, but the run happens in this process (``runner.cli.main``, the same
    entry point): for tests that read what a run did, where the process is not the point
    (tests/inprocess.py says what stays a process)."""
    from tests.inprocess import in_process

    return in_process(tmp_path)


Compose = Callable[..., DictConfig]


@pytest.fixture
def compose_config() -> Iterator[Compose]:
    """Compose runner's config as a run does (its config source, Hydra's compose API):
    ``compose_config("task=shell", ...)`` gives the DictConfig for those overrides."""
    from hydra import compose, initialize

    from runner.cli import _register_hydra_plugins

    _register_hydra_plugins()
    with initialize(version_base="1.3", config_path=None):
        yield lambda *overrides: compose("config", overrides=list(overrides))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty folder on sys.path; the registry rescans after the test writes into it."""
    from runner.config import registry

    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    registry.refresh()
    yield folder
    for module_name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(folder)):
            del sys.modules[module_name]
    monkeypatch.undo()
    registry.refresh()


@pytest.fixture(autouse=True)
def _reset_global_state() -> Iterator[None]:
    """Each test starts with no Hydra instance, no loguru sink, no open source. A test that
    reads what was logged adds its own sink (``log_lines``); a run adds its console's. No
    sink is added back for the next test: each ``logger.add`` costs some 12 ms (loguru
    asks ``sysconfig`` for every install scheme's paths), 15 s of CPU over the suite."""
    from hydra.core.global_hydra import GlobalHydra
    from loguru import logger

    from tests.judge_support import close_sources

    logger.remove()
    yield
    close_sources()
    GlobalHydra.instance().clear()
    logger.remove()


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    """A writable copy of the real judge experiment (the vendored original stays as is)."""
    from tests.judge_support import copy_fixture

    return copy_fixture(tmp_path / "experiment")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """A run's output folder."""
    (tmp_path / "out").mkdir()
    return tmp_path / "out"


@pytest.fixture
def judge_cmd(tmp_path: Path) -> Callable[..., list[str]]:
    """Build the argv of the fake judge for a mode and a score."""
    from tests.judge_support import judge_command

    return lambda mode="good", score=0.4: judge_command(tmp_path, mode, score)


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """The messages logged through loguru during the test."""
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="INFO")
    yield lines
    logger.remove(sink)


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of test plugin distributions (good, broken, duplicated), for PYTHONPATH."""
    root = tmp_path_factory.mktemp("plugins")
    write_test_plugins(root)
    return root
