"""runner.logs: loguru set up without its costly start-up parts, and still complete.

Each test runs in a fresh interpreter: what matters is what importing runner.logs does to
a process that has not imported asyncio or loguru yet (pytest itself has).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path


def run_python(code: str, cwd: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_runner_logs_does_not_import_asyncio(tmp_path: Path) -> None:
    found = run_python(
        """
        import json, sys
        from runner.logs import logger, add_run_log, remove_run_log
        from pathlib import Path
        sink = add_run_log(Path("."))
        logger.info("hello from the run")
        remove_run_log(sink)
        print(json.dumps({"asyncio": "asyncio" in sys.modules, "ssl": "ssl" in sys.modules}))
        """,
        tmp_path,
    )
    assert found == {"asyncio": False, "ssl": False}
    assert "hello from the run" in (tmp_path / "runner.log").read_text()


def test_a_coroutine_sink_still_receives_messages(tmp_path: Path) -> None:
    found = run_python(
        """
        import asyncio, json
        from runner.logs import logger
        received = []

        async def sink(message):
            await asyncio.sleep(0)
            received.append(message.record["message"])

        async def main():
            sink_id = logger.add(sink, format="{message}")
            logger.info("one")
            logger.info("two")
            await logger.complete()
            logger.remove(sink_id)

        asyncio.run(main())
        print(json.dumps({"received": received}))
        """,
        tmp_path,
    )
    assert found == {"received": ["one", "two"]}


def test_tracebacks_still_tell_library_frames_from_the_users(tmp_path: Path) -> None:
    """The library folders, computed late, are the ones loguru would have computed."""
    found = run_python(
        """
        import json, sys, sysconfig, os
        from pathlib import Path
        from runner.logs import logger, add_run_log, remove_run_log
        from loguru._better_exceptions import ExceptionFormatter
        formatter = ExceptionFormatter()
        schemes = sysconfig.get_scheme_names()
        names = ["stdlib", "platstdlib", "platlib", "purelib"]
        paths = {sysconfig.get_path(n, s) for s in schemes for n in names}
        expected = [os.path.abspath(p).lower() + os.sep for p in paths if p in sys.path]
        sink = add_run_log(Path("."))
        def users_function():
            return json.loads("{not json")
        try:
            users_function()
        except ValueError:
            logger.exception("parsing failed")
        remove_run_log(sink)
        print(json.dumps({
            "folders": sorted(formatter._lib_dirs),
            "expected": sorted(expected),
            "users_file_is_mine": formatter._is_file_mine(os.path.abspath("x.py")),
            "json_is_mine": formatter._is_file_mine(json.__file__),
        }))
        """,
        tmp_path,
    )
    assert found["folders"] == found["expected"]
    assert found["folders"], "no library folder found on sys.path"
    assert found["users_file_is_mine"] is True
    assert found["json_is_mine"] is False
    log = (tmp_path / "runner.log").read_text()
    assert "parsing failed" in log
    assert "users_function" in log
    assert "JSONDecodeError" in log


def test_with_asyncio_already_imported_loguru_is_imported_as_it_comes(tmp_path: Path) -> None:
    found = run_python(
        """
        import asyncio, json, sys
        import runner.logs
        module = sys.modules["loguru._asyncio_loop"]
        print(json.dumps({"real": getattr(module, "__file__", None) is not None}))
        """,
        tmp_path,
    )
    assert found == {"real": True}


def test_a_loguru_that_wants_more_of_asyncio_loop_is_imported_as_it_comes(
    tmp_path: Path,
) -> None:
    """Should loguru's internals change, runner falls back to a plain import."""
    fake = tmp_path / "site" / "loguru"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "from ._asyncio_loop import get_running_loop, a_later_addition\n"
        "logger = 'the fake loguru logger'\n"
    )
    (fake / "_asyncio_loop.py").write_text(
        "def get_running_loop():\n    pass\n\ndef a_later_addition():\n    pass\n"
    )
    code = textwrap.dedent(
        """
        import json, sys
        sys.path.insert(0, sys.argv[1])
        import runner.logs
        module = sys.modules["loguru._asyncio_loop"]
        print(json.dumps({"logger": runner.logs.logger,
                          "real": getattr(module, "__file__", None) is not None}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "site")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"logger": "the fake loguru logger", "real": True}
