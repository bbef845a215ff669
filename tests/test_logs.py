"""runner.show.logs: loguru as it comes, to the console and to each run's runner.log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from loguru import logger

from runner.show import logs


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_loguru_is_imported_as_it_comes(tmp_path: Path) -> None:
    """No module of loguru's is replaced and its environment variable is left alone."""
    done = run_python(
        """
        import json, os, sys
        import runner.show.logs
        import loguru._asyncio_loop as loop
        print(json.dumps({"loop": loop.__file__, "env": os.environ.get("LOGURU_AUTOINIT")}))
        """,
        tmp_path,
    )
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["loop"] and found["loop"].endswith(os.path.join("loguru", "_asyncio_loop.py"))
    assert found["env"] is None


def test_the_console_gets_runners_and_the_stdlibs_messages_once(tmp_path: Path) -> None:
    """Console.configure replaces loguru's default sink; stdlib records are routed to it."""
    done = run_python(
        """
        import logging
        from runner.show import logs
        console = logs.Console()
        console.configure("INFO")
        console.configure("INFO")
        logs.logger.info("from runner")
        logging.getLogger("a.library").warning("from a library")
        logs.logger.bind(file_only=True).info("only in runner.log")
        """,
        tmp_path,
    )
    assert done.stderr.count("from runner") == 1
    assert done.stderr.count("from a library") == 1
    assert "only in runner.log" not in done.stderr


def test_runner_log_holds_the_traceback_the_console_does_not(tmp_path: Path) -> None:
    """error_with_traceback: one line on the console, the traceback in runner.log."""
    console: list[str] = []
    console_id = logger.add(console.append, format="{message}", filter=logs._console_filter)
    sink = logs.add_run_log(tmp_path)

    def users_function() -> None:
        json.loads("{not json")

    try:
        users_function()
    except ValueError as exc:
        logs.error_with_traceback("parsing failed", exc)
    logs.remove_run_log(sink)
    logger.remove(console_id)
    logger.info("after the run")
    log = (tmp_path / "runner.log").read_text()
    assert "parsing failed" in log and "users_function" in log and "JSONDecodeError" in log
    assert "after the run" not in log
    assert [line.strip() for line in console] == ["parsing failed"]


def test_a_run_log_that_cannot_be_written_turns_itself_off(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A failed write (disk full) costs one line on stderr, not a traceback per message."""
    sink = logs.RunLog(tmp_path / "runner.log")
    sink._fh = open("/dev/full", "w", encoding="utf-8")
    sink.write("first\n")
    sink.write("second\n")
    err = capfd.readouterr().err
    assert err.count("cannot write") == 1 and "Traceback" not in err


def test_a_message_quoting_a_name_that_is_not_utf8_is_logged_escaped(tmp_path: Path) -> None:
    """runner.log stays UTF-8 and keeps the line: a lone surrogate is its backslash escape."""
    sink = logs.RunLog(tmp_path / "runner.log")
    sink.write("failed: g/bad\udcffname\n")
    sink.write("next\n")
    sink.close()
    text = (tmp_path / "runner.log").read_bytes().decode("utf-8")
    assert text == "failed: g/bad\\udcffname\nnext\n"


def test_a_jobs_prefix_ends_with_it_and_a_carried_console_leaves_no_sink(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """end_job drops the job's prefix; a console a launcher carries into a worker (pickled
    with the task) adds a sink of its own there and removes it when the job ends, so that
    the worker's next job does not print each line twice."""
    import pickle

    console = logs.Console()
    try:
        console.configure("INFO", "[job 1] ")
        logger.info("during the job")
        console.end_job()
        logger.info("after the job")
        carried = pickle.loads(pickle.dumps(console))
        carried.configure("INFO", "[job 2] ")
        logger.info("in the worker")
        carried.end_job()
        logger.info("once")
    finally:
        console.close()
    lines = capsys.readouterr().err.splitlines()
    assert next(line for line in lines if "during the job" in line).startswith("[job 1] ")
    assert not next(line for line in lines if "after the job" in line).startswith("[job")
    assert any(line.startswith("[job 2] ") and "in the worker" in line for line in lines)
    assert sum("once" in line for line in lines) == 1
