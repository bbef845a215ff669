"""``python -m runner``: the Hydra app, its error reporting and its exit codes."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from loguru import logger

from runner.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED_ITEMS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    exit_codes_text,
    sweep_exit_code,
    unknown_key,
)
from runner.execute import signals
from runner.show import logs

CONFIG_PACKAGE = "runner_conf"

# HYDRA_FULL_ERROR as the user set it (JSON: null when unset), recorded by main() before
# it sets its own: in the environment, so that jobs a launcher runs in other processes
# (joblib) find it too.
_USERS_FULL_ERROR = "_RUNNER_USERS_HYDRA_FULL_ERROR"


@contextlib.contextmanager
def _users_environment() -> Iterator[None]:
    """Within a job, HYDRA_FULL_ERROR is the user's again and runner's record of it is
    gone, so commands inherit the user's environment; Hydra reads it only for errors
    outside jobs."""
    recorded = os.environ.get(_USERS_FULL_ERROR)
    if recorded is None:  # main() did not run (a library caller): nothing of ours to undo
        yield
        return
    ours = {
        key: os.environ.pop(key)
        for key in ("HYDRA_FULL_ERROR", _USERS_FULL_ERROR)
        if key in os.environ
    }
    users = json.loads(recorded)
    if users is not None:
        os.environ["HYDRA_FULL_ERROR"] = users
    try:
        yield
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)
        os.environ.update(ours)


def _register_hydra_plugins() -> None:
    # Plugins.register is public: hydra/core/plugins.py (1.3) documents it, "Call
    # Plugins.instance().register(MyPlugin) to manually register a plugin class", and
    # routes a ConfigSource to its sources registry. The alternative, a module in the
    # hydra_plugins namespace package that Plugins scans, would need that package listed
    # in pyproject.toml's packages and package-dir.
    from hydra.core.config_search_path import ConfigSearchPath
    from hydra.core.plugins import Plugins
    from hydra.plugins.search_path_plugin import SearchPathPlugin
    from omegaconf import OmegaConf

    from runner.config.configsource import RunnerConfigSource

    class RunnerSearchPath(SearchPathPlugin):
        def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
            search_path.append(provider="runner", path=f"runner://{CONFIG_PACKAGE}")

    Plugins.instance().register(RunnerConfigSource)
    Plugins.instance().register(RunnerSearchPath)
    # --help's header shows the exit codes from runner/errors.py, their one list.
    OmegaConf.register_new_resolver("runner_exit_codes", exit_codes_text, replace=True)


def one_line(exc: BaseException) -> str:
    """A user-facing, one-line account of a config or plugin error."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for err in chain:
        if isinstance(err, UsageError):
            return str(err)
    for err in chain:
        if isinstance(err, OSError) and err.filename:
            return (
                f"Cannot write {str(err.filename)!r}: {err.strerror or err}. Choose a writable "
                "folder with hydra.run.dir=PATH (hydra.sweep.dir=PATH for -m)."
            )
    for err in chain:
        if isinstance(err, MissingConfigException):
            path = err.missing_cfg_file or ""
            group, _, option = path.rpartition("/")
            if group and err.options is not None:
                valid = ", ".join(err.options)
                return f"Unknown {group} {option!r}. Valid {group}s: {valid}."
            return str(err).splitlines()[0]
    for err in chain:
        if isinstance(err, OmegaConfBaseException):
            key = getattr(err, "full_key", "") or getattr(err, "key", "")
            parent = getattr(err, "parent_node", None)
            text = str(err).splitlines()[0]
            if isinstance(err, ConfigAttributeError | ConfigKeyError):
                keys = parent.keys() if parent is not None and hasattr(parent, "keys") else ()
                return unknown_key(str(key), keys)
            value = getattr(err, "value", None)
            return f"Invalid value {value!r} for {key!r}: {text}"
    # Hydra's own messages put their hints on the next lines ("add --multirun"): keep
    # them, on the one line.
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return "; ".join(lines[:4]) if lines else type(exc).__name__


def quiet_broken_pipe() -> NoReturn:
    """End quietly when stdout's reader has gone (``| head``), as ``cat`` does: 141."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the flush at exit must not fail again
    sys.exit(EXIT_BROKEN_PIPE)


def _run_job(cfg: Any, console: logs.Console, startup: _Startup) -> tuple[int, float]:
    """One Hydra job: its exit code and throughput (items/s of a job that ran, exit 0 or
    1; 0 for one that did not). Never raises, so a multirun always reaches its end.
    ``startup``: what main() did before any job (see _freeze_startup_objects)."""
    from hydra.core.hydra_config import HydraConfig

    with _users_environment():
        code = _job(cfg, console, startup)
    if code not in (EXIT_OK, EXIT_FAILED_ITEMS):
        return code, 0.0
    summary = Path(HydraConfig.get().runtime.output_dir) / "summary.json"
    try:
        return code, float(json.loads(summary.read_text(encoding="utf-8"))["items_per_second"])
    except (OSError, ValueError, KeyError, TypeError):
        return code, 0.0


def _job(cfg: Any, console: logs.Console, startup: _Startup) -> int:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from runner.config.settings import settings_from
    from runner.execute.run import execute
    from runner.record.jobs import STATUS_FILE, write_job_status
    from runner.record.resume import FolderInUse

    hydra_config = HydraConfig.get()
    output_dir = Path(hydra_config.runtime.output_dir)
    sweep = hydra_config.mode == RunMode.MULTIRUN
    # A run refused for its config leaves no folder (there is nothing in it to read): one
    # made for it, where Hydra wrote only its .hydra/ record, unless a sweep's report
    # needs the job's job.json.
    fresh = not sweep and _holds_only(output_dir, {hydra_config.output_subdir})
    refused = False  # for its config, before anything ran: the folder goes
    ours = {hydra_config.output_subdir, logs.RUN_LOG, STATUS_FILE}  # what it may hold then
    sink = logs.add_run_log(output_dir)
    # A sweep's jobs may run side by side (a parallel launcher): say whose line it is.
    prefix = f"[job {hydra_config.job.num}] " if sweep else ""
    code, error = EXIT_INTERRUPTED, ""  # what job.json records
    record = True  # a folder that holds another run keeps that run's job.json
    try:
        console.configure(prefix=prefix)  # a config error is a line of this job too
        settings = settings_from(cfg)
        console.configure(settings.log_level, prefix)
        _freeze_startup_objects(startup)
        code = execute(settings, output_dir, prefix)
        return code
    except UsageError as exc:
        code, error = exc.exit_code, one_line(exc)
        record = not isinstance(exc, FolderInUse)
        logger.error(f"runner: error: {error}")
        # Nothing ran if the folder holds no more than it did, the log and job.json.
        refused = fresh and code == EXIT_USAGE and _holds_only(output_dir, ours)
        return code
    except KeyboardInterrupt as exc:
        code = signals.exit_code_of(exc)
        raise
    except BaseException as exc:  # a plugin's bug: its traceback goes to runner.log
        code = EXIT_USAGE if isinstance(exc, SystemExit) else 1
        error = f"unexpected error: {type(exc).__name__}: {exc}".splitlines()[0]
        logs.error_with_traceback(f"runner: {error}", exc)
        return code
    finally:
        if record and not refused:
            write_job_status(output_dir, code, error)
        logs.remove_run_log(sink)
        if refused:
            _remove_run_folder(output_dir, ours)
        console.end_job()


def _holds_only(folder: Path, names: set[str | None]) -> bool:
    """Whether every entry of ``folder`` is one of ``names``."""
    try:
        return all(entry.name in names for entry in folder.iterdir())
    except OSError:
        return False


def _remove_run_folder(folder: Path, names: set[str | None]) -> None:
    """Remove a run folder holding only the entries ``names`` (Hydra's record of the run,
    runner.log, job.json); one that cannot go leaves the folder (its runner.log says why
    the run stopped)."""
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            if entry.name in names and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.name in names:
                entry.unlink()
        folder.rmdir()


def signal_name(code: int) -> str:
    """The name of the signal behind an exit code of 128 + signal."""
    import signal

    try:
        return signal.Signals(code - 128).name
    except ValueError:
        return f"exit code {code}"


@dataclasses.dataclass(frozen=True)
class _Startup:
    """What main() did before its jobs: froze what start-up made, in process ``pid``;
    ``jobs``, the exit codes of the jobs it ran since (main()'s list, which grows)."""

    pid: int
    jobs: list[int]


def _freeze_startup_objects(startup: _Startup) -> None:
    """Exclude what start-up made (modules, Hydra's and OmegaConf's objects) from GC.

    Python's cyclic garbage collector traverses every tracked object in its full
    collections, including the ones it runs at exit. Start-up leaves some 40,000 of them
    that live until exit; frozen, they are no longer traversed: a one-item run ends about
    50 ms sooner (bench/bench_startup.py), and long runs skip them in every full
    collection. Objects made from here on (the plugins, the items, their garbage) are
    collected as usual.

    ``startup``: what main() did before any job (see :class:`_Startup`). It froze the
    modules once they were imported (they leave no garbage). What was made since, Hydra's
    composition of the config, holds some 4,000 objects of cyclic garbage: collected
    first (the collection traverses only the 6,000 objects made since, about 3 ms; all
    44,000 took 20), they no longer stay in memory until exit (0.5 MB of a run's peak
    RSS). In a multirun, a later job collects everything first, so one job's garbage never
    outlives it. In a process main() did not start (a launcher's worker), the first job
    freezes without collecting, and a later one there finds the frozen objects of the
    one before.

    No job counts the frozen objects where main() froze them: ``gc.get_freeze_count()``
    walks them all (about 20 ms for the million objects of a test process).
    """
    if startup.pid != os.getpid():  # a process main() did not start (a pickled job)
        if gc.get_freeze_count():  # an earlier job's objects here are frozen: few
            gc.unfreeze()
            gc.collect()
    elif startup.jobs:  # an earlier job's objects are frozen too
        gc.unfreeze()
        gc.collect()
    else:
        gc.collect()
    gc.freeze()


def main() -> None:
    """Entry point of ``python -m runner`` and the ``runner`` command."""
    import hydra

    if "--version" in sys.argv[1:]:  # Hydra's own --version would name only Hydra
        from runner.config.listing import version_text

        try:
            print(version_text(), flush=True)
        except BrokenPipeError:
            quiet_broken_pipe()
        sys.exit(EXIT_OK)
    console = logs.Console()
    console.configure()
    # Hydra prints --info, --cfg and --help through stdlib logging to stdout: a reader
    # that went away (`| head`) must not cost a traceback per line.
    logging.raiseExceptions = False
    # Let exceptions reach us rather than Hydra's printer, which exits with 1 and a
    # multi-line report; we print one line and exit with our documented codes.
    os.environ[_USERS_FULL_ERROR] = json.dumps(os.environ.get("HYDRA_FULL_ERROR"))
    os.environ["HYDRA_FULL_ERROR"] = "1"
    _register_hydra_plugins()
    # The modules, imported by now, are not garbage: frozen without a collection (which
    # would traverse them all), so that a job's collection traverses only its own objects.
    gc.freeze()
    # Exit codes of the jobs this process runs (one for a run, one per job for a multirun).
    job_codes: list[int] = []
    startup = _Startup(os.getpid(), job_codes)

    @hydra.main(version_base="1.3", config_path=None, config_name="config")
    def app(cfg: Any) -> float:
        # An interruption raises out of the job, and so ends the whole sweep, not just
        # this job; the report is still written.
        code, throughput = _run_job(cfg, console, startup)
        job_codes.append(code)
        # What a sweeper that optimises (e.g. Optuna over parallel) maximises.
        return throughput

    from runner.sweep import watching

    signals.install()
    with watching() as sweep:
        try:
            app()
        except KeyboardInterrupt as exc:
            code = signals.exit_code_of(exc)
            sweep.finish("interrupted", code)
            logger.error(f"runner: interrupted ({signal_name(code)})")
            sys.exit(code)
        except SystemExit:
            raise
        except BrokenPipeError:  # `... --info all | head`: the reader has what it wanted
            quiet_broken_pipe()
        except Exception as exc:
            sweep.finish(one_line(exc))
            sys.stderr.write(f"runner: error: {one_line(exc)}\n")
            sys.exit(EXIT_USAGE)
        # A multirun's report gives the code of every job's job.json (jobs that ran in
        # other processes, with joblib, count too); the jobs run here count in any case (a
        # job whose folder the report cannot find still fails the sweep).
        sweep_code = sweep.finish()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        quiet_broken_pipe()
    sys.exit(sweep_exit_code(job_codes + ([] if sweep_code is None else [sweep_code])))
