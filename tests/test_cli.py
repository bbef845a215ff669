"""End to end: ``python -m runner`` as a user runs it: in a subprocess where the process is
the point (exit status, signals, environment, installs, pipes), in this process (run_app,
the same entry point) where the test reads what the run did."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runner.config import registry
from tests.conftest import (
    REPO,
    CliResult,
    RunCli,
    process_running,
    run_runner,
    runner_command,
    start_runner,
)
from tests.inprocess import run_in_process


def test_sleep_run_leaves_log_journal_and_summary(run_cli: RunCli) -> None:
    """A run writes runner.log, one journal line per item and a complete summary.json."""
    result = run_cli("parallel=4", "source.count=20", "task.seconds=0.01")
    assert result.returncode == 0, result.output
    lines = result.results()
    assert sorted(int(r["id"]) for r in lines) == list(range(20))
    assert {r["status"] for r in lines} == {"ok"}
    assert all(r["seconds"] >= 0.0 for r in lines)
    summary = result.summary()
    assert summary["task"] == "sleep" and summary["source"] == "range"
    assert summary["executor"] == "thread" and summary["parallel"] == 4
    assert (summary["total"], summary["succeeded"], summary["failed"]) == (20, 20, 0)
    # wall_seconds spans every item, which ran at most 4 at a time.
    wall = summary["wall_seconds"]
    assert max(r["seconds"] for r in lines) <= wall + 1e-5
    assert sum(r["seconds"] for r in lines) <= 4 * wall + 1e-4
    assert summary["items_per_second"] == pytest.approx(20 / wall, rel=1e-3)
    assert summary["started_at"] <= summary["finished_at"]
    log = (result.run_dir / "runner.log").read_text()
    assert "[20/20]" in log and "Done: 20 succeeded" in log
    assert "remaining" in result.output
    report = (result.run_dir / "summary.md").read_text()
    assert "| 20 | 20 | 0 |" in report and "## Slowest 5 items" in report


def test_failures_exit_1_and_are_journaled(run_cli: RunCli) -> None:
    """Failed items give exit code 1, each with its error, and FAIL progress lines."""
    result = run_cli("parallel=3", "source.count=40", "task.seconds=0", "task.fail_rate=0.3")
    assert result.returncode == 1, result.output
    failed = [r for r in result.results() if r["status"] == "failed"]
    assert failed and all(r["error"]["type"] == "TaskFailure" for r in failed)
    assert result.summary()["failed"] == len(failed)
    assert "-> FAIL" in result.output
    report = (result.run_dir / "summary.md").read_text()
    assert f"- TaskFailure: {len(failed)} " in report


def test_summary_top_0_lists_no_slowest_items(run_app: RunCli) -> None:
    result = run_app("source.count=3", "task.seconds=0", "postprocessor.top=0")
    assert result.returncode == 0, result.output
    report = (result.run_dir / "summary.md").read_text()
    assert "| 3 | 3 | 0 |" in report and "Slowest" not in report


@pytest.mark.parametrize("top", ["-1", "11"])
def test_a_summary_top_out_of_range_is_a_usage_error(run_app: RunCli, top: str) -> None:
    """summary.md lists at most the 10 slowest items summary.json keeps."""
    result = run_app("source.count=3", f"postprocessor.top={top}")
    assert result.returncode == 2, result.output
    assert f"top={top} must be between 0 and 10" in result.output
    assert "Traceback" not in result.output
    assert not (result.run_dir / "results.jsonl").exists()


@pytest.mark.parametrize("executor", [n for n in registry.names("executor") if n != "thread"])
def test_same_items_fail_under_every_executor(run_app: RunCli, executor: str) -> None:
    """The seeded failures are the same items with every executor as with threads."""
    args = ("source.count=60", "task.seconds=0", "task.fail_rate=0.2", "task.seed=5")
    threaded = run_app("parallel=6", *args)
    other = run_app("parallel=6", f"executor={executor}", *args)

    def ids(result: CliResult, status: str) -> set[str]:
        return {r["id"] for r in result.results() if r["status"] == status}

    assert other.returncode == threaded.returncode == 1, other.output
    assert ids(threaded, "failed") == ids(other, "failed") != set()
    assert ids(threaded, "ok") == ids(other, "ok") and len(ids(other, "ok")) > 30


def test_summary_json_has_the_slowest_items_and_the_failures_by_type(run_app: RunCli) -> None:
    """The figures summary.md shows are in summary.json, gathered as items finished."""
    result = run_app("parallel=3", "source.count=30", "task.seconds=0.01", "task.fail_rate=0.3")
    records, summary = result.results(), result.summary()
    failed = [r for r in records if r["status"] == "failed"]
    assert summary["failures_by_type"]["TaskFailure"]["count"] == len(failed) > 0
    assert summary["failures_by_type"]["TaskFailure"]["example"].split(":")[0] in {
        r["id"] for r in failed
    }
    slowest = sorted(records, key=lambda r: r["seconds"], reverse=True)[:10]
    assert [e["seconds"] for e in summary["slowest"]] == [r["seconds"] for r in slowest]


def test_dry_run_lists_items_and_writes_no_results(run_app: RunCli, tmp_path: Path) -> None:
    """dry_run lists the count and first items, runs nothing, writes no journal."""
    data = tmp_path / "data"
    data.mkdir()
    for n in range(3):
        (data / f"f{n}.csv").write_text("a\nb\n")
    marker = tmp_path / "ran"
    result = run_app(
        "dry_run=true",
        "task=shell",
        "source=glob",
        f"source.root={data}",
        "source.pattern=*.csv",
        f"task.command=[touch,{marker}]",
    )
    assert result.returncode == 0, result.output
    assert "3 item(s) would run" in result.output and "f0.csv" in result.output
    for name in ("results.jsonl", "summary.json", "summary.md", "streams.jsonl"):
        assert not (result.run_dir / name).exists(), name
    assert not marker.exists()


def test_shell_over_lines_with_injection_attempts(run_app: RunCli, tmp_path: Path) -> None:
    """Lines with shell syntax are passed as literal arguments; nothing extra runs."""
    marker = tmp_path / "pwned"
    lines = ["plain", f"; touch {marker}", f"$(touch {marker})", f"| touch {marker}"]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    echo = "import sys; print(sys.argv[1])"
    result = run_app(
        "parallel=2",
        "task=shell",
        "source=lines",
        "source.path=in.txt",
        f"task.command=[{sys.executable},-c,'{echo}','{{line}}']",
    )
    assert result.returncode == 0, result.output
    outputs = {r["result"]["stdout"].rstrip("\n") for r in result.results()}
    assert outputs == set(lines)
    assert not marker.exists()
    assert len((result.run_dir / "streams.jsonl").read_text().splitlines()) == 4


def test_relative_paths_mean_the_working_directory(run_app: RunCli, tmp_path: Path) -> None:
    """source.path is read relative to where the user ran the command."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "urls.txt").write_text("a\nb\n")
    result = run_app(
        "task=sleep", "task.seconds=0", "source=lines", "source.path=urls.txt", cwd=work
    )
    assert result.returncode == 0, result.output
    assert result.summary()["total"] == 2


def test_missing_input_file_is_a_usage_error(run_app: RunCli) -> None:
    """A missing source file gives one line naming it and exit code 2."""
    result = run_app("source=lines", "source.path=absent.txt")
    assert result.returncode == 2
    errors = [line for line in result.output.splitlines() if "error" in line]
    assert len(errors) == 1 and "absent.txt" in errors[0]
    assert "Traceback" not in result.output
    assert not (result.run_dir / "results.jsonl").exists()


def test_malformed_jsonl_mid_run_fails_that_item_only(run_app: RunCli, tmp_path: Path) -> None:
    """A malformed line fails its own item with its line number; the lines after it run."""
    good = [json.dumps({"n": n}) for n in range(5)]
    (tmp_path / "in.jsonl").write_text("\n".join([*good, "{oops", *good]) + "\n")
    result = run_app("source=jsonl", "source.path=in.jsonl", "task.seconds=0", "parallel=4")
    assert result.returncode == 1, result.output
    assert "line 6 is not valid JSON" in result.output and "Traceback" not in result.output
    records = result.results()
    assert len(records) == 11 and result.summary()["failed"] == 1
    [bad] = [r for r in records if r["status"] == "failed"]
    assert bad["error"]["type"] == "BadInput"


def test_two_runs_never_share_a_folder(tmp_path: Path) -> None:
    """Runs started in the same second get distinct default run folders."""
    args = ("source.count=1", "task.seconds=0")
    procs = [start_runner(*args, cwd=tmp_path, stdout=subprocess.DEVNULL) for _ in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    folders = list((tmp_path / "outputs").glob("*/*"))
    assert len(folders) == 3
    assert all((f / "summary.json").is_file() for f in folders)


@pytest.mark.slow
def test_non_editable_install_from_another_folder(tmp_path: Path) -> None:
    """`pip install .` (here into a --target folder) finds its configs and plugins."""
    src = tmp_path / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            ".git", "outputs", "*.egg-info", "build", "__pycache__", ".venv", "examples"
        ),
    )
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",  # setuptools and wheel: the dev extra's
            "--target",
            str(site),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run_runner(
        "parallel=2",
        "source.count=5",
        "task.seconds=0",
        cwd=elsewhere,
        env={"PYTHONPATH": str(site)},
        run_dir=tmp_path / "run",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["total"] == 5
    # The page's templates are package data: without them the run still ends, page-less.
    assert "<h2>Item durations</h2>" in (tmp_path / "run" / "report.html").read_text()
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import runner, runner_plugins, runner_conf; "
            "print(runner.__file__, runner_plugins.__file__, runner_conf.__file__)",
        ],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.count(str(site)) == 3


def test_ctrl_c_exits_130_and_kills_running_commands(tmp_path: Path) -> None:
    """SIGINT stops the run with exit code 130, kills running commands, keeps the journal."""
    import signal
    import time

    marker = tmp_path / "child.pid"
    child = (
        f"import os, time; open(r'{marker}', 'a').write(str(os.getpid()) + '\\n'); time.sleep(60)"
    )
    run_dir = tmp_path / "run"
    proc = start_runner(
        "parallel=2",
        "source.count=4",
        "task=shell",
        f'task.command=[{sys.executable},-c,"{child}"]',
        cwd=tmp_path,
        run_dir=run_dir,
    )
    deadline = time.monotonic() + 30
    while (
        time.monotonic() < deadline
        and len(marker.read_text().split() if marker.exists() else []) < 2
    ):
        time.sleep(0.05)
    assert len(marker.read_text().split()) == 2, "the two first commands did not start"
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, output
    assert "Interrupted" in output
    pids = marker.read_text().split()
    assert len(pids) == 2, "a command started after Ctrl-C"
    for pid in map(int, pids):
        assert not process_running(pid), f"child {pid} outlived the interrupted run"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True
    journaled = (run_dir / "results.jsonl").read_text().splitlines()
    assert summary["total"] == len(journaled) < 4


def test_unwritable_run_folder_is_a_usage_error(tmp_path: Path) -> None:
    """A run folder that cannot be created gives one line naming it and exit code 2."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_runner(
        "source.count=1", "task.seconds=0", cwd=tmp_path, timeout=60, run_dir=blocker / "run"
    )
    assert proc.returncode == 2
    assert f"Cannot write '{blocker / 'run'}'" in proc.stderr
    assert "Traceback" not in proc.stderr and "hydra.run.dir=PATH" in proc.stderr


def test_progress_bar_mode_keeps_item_lines_in_the_log(run_app: RunCli) -> None:
    """progress=bar draws a tqdm bar; the per-item lines then go only to runner.log."""
    result = run_app("progress=bar", "parallel=2", "source.count=30", "task.seconds=0")
    assert result.returncode == 0, result.output
    assert "100%" in result.stderr and "30/30" in result.stderr
    assert "-> OK" not in result.output
    assert "[30/30] " in (result.run_dir / "runner.log").read_text()


@pytest.mark.parametrize(
    ("users", "launcher"), [(None, "basic"), ("0", "basic"), (None, "joblib"), ("0", "joblib")]
)
def test_commands_get_the_users_environment(
    run_cli: RunCli, tmp_path: Path, users: str | None, launcher: str
) -> None:
    """runner sets HYDRA_FULL_ERROR for itself; the commands it runs see the user's value
    and nothing of runner's, also in jobs the joblib launcher runs in other processes."""
    seen = tmp_path / "seen"
    script = tmp_path / "env.py"
    script.write_text(
        "import os\n"
        f"open({str(seen)!r}, 'w').write(repr(sorted((k, v) for k, v in os.environ.items() "
        "if 'HYDRA_FULL_ERROR' in k)))\n"
    )
    args = ["task=shell", f"task.command=[{sys.executable},{script}]", "source.count=1"]
    if launcher == "joblib":
        args = ["-m", "hydra/launcher=joblib", f"hydra.sweep.dir={tmp_path / 'sweep'}", *args]
    proc = run_runner(
        *args,
        env={"HYDRA_FULL_ERROR": users},  # None: unset
        run_dir=None if launcher == "joblib" else tmp_path / "run",
    )
    assert proc.returncode == 0, proc.stderr
    assert seen.read_text() == repr([] if users is None else [("HYDRA_FULL_ERROR", users)])


def test_a_job_returns_its_throughput_to_hydra(run_app: RunCli, tmp_path: Path) -> None:
    """The value a sweeper optimises is the job's items/s (0 for a job that did not run)."""
    probe = "+hydra.callbacks.probe._target_=tests.hydra_probe.ReturnProbe"
    ran = run_app("source.count=20", "task.seconds=0.01", "parallel=2", probe, cwd=REPO)
    assert ran.returncode == 0, ran.output
    returned = json.loads(ran.run_dir.with_name("run0.return_value.json").read_text())
    assert returned == pytest.approx(ran.summary()["items_per_second"]) and returned > 0
    broken = run_app("source=lines", "source.path=/nonexistent", probe, cwd=REPO)
    assert broken.returncode == 2
    assert json.loads(broken.run_dir.with_name("run1.return_value.json").read_text()) == 0.0


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("+paralel=4", "Unknown key 'paralel'. Valid keys here: parallel, dry_run,"),
        ("+task.bogus=1", "Unknown key 'task.bogus'. Valid keys here: name, seconds,"),
        ("+retry.atempts=2", "Unknown key 'retry.atempts'. Valid keys here: attempts,"),
        ("parallel=1,2", "To sweep over it, add --multirun to your command line"),
    ],
)
def test_added_keys_must_exist_and_hydras_hints_are_kept(
    run_app: RunCli, override: str, expected: str
) -> None:
    """A typo added with + is refused naming the valid keys; Hydra's hint stays on the line."""
    result = run_app("source.count=1", override)
    assert result.returncode == 2, result.output
    [line] = [line for line in result.output.splitlines() if "error:" in line]
    assert expected in line
    assert not (result.run_dir / "results.jsonl").exists()


@pytest.mark.parametrize(
    "argv",
    [
        [sys.executable, "-m", "runner.plugins", "--json"],
        [sys.executable, "-m", "runner.plugins"],
        runner_command("--info", "all"),
        runner_command("--cfg", "job"),
    ],
)
def test_a_reader_that_goes_away_ends_quietly(argv: list[str], tmp_path: Path) -> None:
    """`... | true` (a reader gone before the first line): no traceback, no logging error."""
    pipeline = subprocess.run(
        f"{shlex.join(argv)} | true; echo ${{PIPESTATUS[0]}}",
        shell=True, executable="/bin/bash", cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert pipeline.stdout.strip() in ("0", "141"), pipeline.stderr
    assert "Traceback" not in pipeline.stderr and "Logging error" not in pipeline.stderr
    assert "Broken pipe" not in pipeline.stderr


def test_shell_completion_offers_plugin_options(tmp_path: Path) -> None:
    """README's completion: `runner task=sh<TAB>` completes to task=shell."""
    runner = Path(sys.executable).with_name("runner")
    line = "runner task=sh"
    done = subprocess.run(
        [str(runner), "-sc", "query=bash"],
        env={**os.environ, "COMP_LINE": line, "COMP_POINT": str(len(line))},
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.stdout.split() == ["task=shell"], done.stderr


@pytest.mark.parametrize("key", ["paralel", "task.bogus", "retry.atempts"])
def test_an_unknown_key_gets_the_same_line_with_or_without_plus(run_app: RunCli, key: str) -> None:
    """Hydra refuses ``key=value`` and the settings refuse ``+key=value``: both lines come
    from one formatter over the same schema, so they name the same valid keys."""
    lines = []
    for override in (f"{key}=1", f"+{key}=1"):
        result = run_app("source.count=1", override)
        assert result.returncode == 2, result.output
        [line] = [line for line in result.output.splitlines() if "error:" in line]
        lines.append(line[line.index("Unknown key") :])
    assert lines[0] == lines[1]
    assert "hydra" not in lines[0]


def test_version_names_runner_and_where_its_plugins_come_from(
    plugin_path: Path, tmp_path: Path
) -> None:
    """--version names runner and its version first (not Hydra's alone), then each
    distribution that registers plugins, as pytest --version does; exit 0."""
    import hydra

    import runner

    proc = run_runner("--version", cwd=tmp_path, env={"PYTHONPATH": str(plugin_path)})
    assert proc.returncode == 0, proc.stderr
    first, *rest = proc.stdout.splitlines()
    assert first.startswith(f"runner {runner.__version__} (Python ")
    assert first.endswith(f", Hydra {hydra.__version__})")
    assert rest[0] == "plugins from:"
    assert "  itemrunner 0.1.0: 6 sources, 6 tasks, 4 executors, 3 postprocessors" in rest
    assert "  tmp-repeat 0.1: 2 tasks" in rest and "  twin-a 0.1: 1 task" in rest
    assert proc.stderr == ""


def test_info_prints_each_section_once(tmp_path: Path) -> None:
    """--info prints its Defaults Tree and Config once, on stdout, and nothing on stderr:
    runner's console does not repeat what Hydra prints through logging."""
    proc = run_runner("--info", "all", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for header in ("Defaults Tree", "Defaults List", "Config"):
        assert proc.stdout.splitlines().count(header) == 1, proc.stdout
    assert proc.stdout.count("    task: sleep\n") == 1 and proc.stdout.count("parallel: 1\n") == 1
    assert proc.stderr == ""


def test_a_run_refused_for_its_config_leaves_no_folder(run_app: RunCli, tmp_path: Path) -> None:
    """A config error found once the run folder exists (a missing input, a bad parallel)
    ends with one line and exit 2 and leaves no folder behind; a folder that held
    something before keeps it, with job.json saying why the run stopped."""
    for bad, named in ((("source=lines", "source.path=missing.txt"), "'missing.txt'"),
                       (("parallel=0",), "parallel=0")):  # fmt: skip
        result = run_app(*bad, "task.seconds=0")
        assert result.returncode == 2, result.output
        [line] = [line for line in result.output.splitlines() if "runner: error:" in line]
        assert named in line
        assert not result.run_dir.exists() and result.run_dir.parent.is_dir()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine\n")
    result = run_in_process("parallel=0", cwd=tmp_path, run_dir=kept)
    assert result.returncode == 2, result.output
    assert (kept / "notes.txt").read_text() == "mine\n"
    assert json.loads((kept / "job.json").read_text())["code"] == 2


STARTUP_GARBAGE_PROBE = """
    import gc

    from runner.api import Item, Task


    class StartupGarbage(Task):
        def __init__(self) -> None:
            # Every object is traversed here, the frozen ones too: the cyclic garbage
            # found is what start-up left frozen (what was made since is little).
            gc.unfreeze()
            self.found = gc.collect()
            gc.freeze()

        def run(self, item: Item) -> int:
            return self.found
"""


def test_start_up_garbage_is_collected_before_the_run(tmp_path: Path) -> None:
    """Hydra's composition of the config leaves some 4,000 objects of cyclic garbage:
    collected before the objects that remain are frozen, not kept frozen until exit (in
    a process: start-up is the point)."""
    from tests.plugin_support import write_distribution

    site = tmp_path / "site"
    write_distribution(
        site,
        "startup-garbage",
        {"runner.tasks": {"startup_garbage": "startup_garbage_mod:StartupGarbage"}},
        {"startup_garbage_mod.py": STARTUP_GARBAGE_PROBE},
    )
    proc = run_runner(
        "task=startup_garbage",
        "source.count=1",
        "progress=off",
        cwd=tmp_path,
        env={"PYTHONPATH": str(site)},
        run_dir=tmp_path / "run",
    )
    assert proc.returncode == 0, proc.stderr
    [line] = (tmp_path / "run" / "results.jsonl").read_text().splitlines()
    # Before: 3,000 and more (all of Hydra's composition); now what building the plugins
    # left, a few hundred at most.
    assert json.loads(line)["result"] < 1_000
