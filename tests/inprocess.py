"""``python -m runner <args>`` run inside the test process, for tests where the process
is not the point.

A run started as a process costs about 0.6 s of interpreter and import start-up before it
does anything; most tests only read what the run wrote (its folder, its exit code, its
lines). :func:`run_in_process` calls the same entry point, :func:`runner.cli.main`, with
the same arguments, and gives the same :class:`~tests.conftest.CliResult`. Keep a process
(``run_cli``, ``run_runner``, ``start_runner``) where the process is what is tested:
signals, the exit status a shell sees, the environment at start-up (``PYTHONPATH``,
installed plugins, the umask, which runner reads once at import), a run that must end
while its threads still run, the command line itself.

What a process would leave behind ends with the call: the working directory, the
environment, ``sys.argv``, the signal handlers, stdout and stderr, Hydra's global
instance, loguru's sinks and the garbage collector's freeze.
"""

from __future__ import annotations

import contextlib
import gc
import io
import itertools
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import CliResult, Env, RunCli

# Set at a process's start-up only: in-process, they would change nothing.
_STARTUP_ONLY = ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONSAFEPATH")
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _environment(env: Env | None) -> Iterator[None]:
    saved = dict(os.environ)
    try:
        for key, value in (env or {}).items():
            if key in _STARTUP_ONLY:
                raise ValueError(f"{key} is read at start-up: use run_cli for this test")
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _fresh_console() -> None:
    """No loguru sink, as in a new process: the run adds its console sink to this call's
    stderr, and an earlier call's sink (on that call's stderr) is gone. None is added
    back after the run (see conftest's ``_reset_global_state``)."""
    from loguru import logger

    logger.remove()


def run_in_process(*args: str, cwd: Path, run_dir: Path, env: Env | None = None) -> CliResult:
    """Run ``runner.cli.main`` with ``args`` (and ``hydra.run.dir=run_dir`` last) in ``cwd``,
    ``env`` added to the environment (None removes a variable); its exit code, stdout,
    stderr and run folder."""
    from hydra.core.global_hydra import GlobalHydra

    from runner import cli

    out, err = io.StringIO(), io.StringIO()
    handlers = {signum: signal.getsignal(signum) for signum in _SIGNALS}
    saved_argv, saved_streams, saved_cwd = sys.argv, (sys.stdout, sys.stderr), os.getcwd()
    code: int | str | None = 0
    with _environment(env):
        try:
            GlobalHydra.instance().clear()
            _fresh_console()
            os.chdir(cwd)
            sys.argv = ["runner", *args, f"hydra.run.dir={run_dir}"]
            sys.stdout, sys.stderr = out, err
            try:
                cli.main()
            except SystemExit as exc:
                code = exc.code
        finally:
            sys.stdout, sys.stderr = saved_streams
            sys.argv = saved_argv
            os.chdir(saved_cwd)
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            _fresh_console()
            GlobalHydra.instance().clear()
            gc.unfreeze()  # main() froze start-up's objects: this is no start-up
    if isinstance(code, str):  # sys.exit("message"): Python prints it and exits with 1
        err.write(code + "\n")
    returncode = code if isinstance(code, int) else (0 if code is None else 1)
    return CliResult(returncode, out.getvalue(), err.getvalue(), run_dir)


def in_process(tmp_path: Path) -> RunCli:
    """What the ``run_cli`` fixture gives, run in-process: each call in tmp_path (unless
    ``cwd`` says otherwise) with a new run folder there: run0, run1, ..."""
    counter = itertools.count()

    def run(
        *args: str, cwd: Path | None = None, env: Env | None = None, timeout: float = 0
    ) -> CliResult:
        del timeout  # run_cli's: a run in this process is not stopped from outside
        run_dir = tmp_path / f"run{next(counter)}"
        return run_in_process(*args, cwd=cwd or tmp_path, run_dir=run_dir, env=env)

    return run
